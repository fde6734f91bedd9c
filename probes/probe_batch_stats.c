/* Forward batch statistics at every norm site: how far the statistics of this batch stray from
 * the running statistics they are compared with (the paper's Figure 2 and its box plots).
 *
 * At each training forward of a site, over the real rows of the norm's input x:
 *   mu_B = mean x,  sigma2_B = mean (x - mu_B)^2 (biased),  psi2_B = mean x^2,
 * and the distances (1/d)||stat_B - running||_2 against the running values BEFORE this step's
 * update, with the scale-free ||stat_B - running||_2 / ||running||_2 beside them (absolute
 * distances grow with the input's scale, so they cannot compare schemes whose inputs differ in
 * scale, e.g. batch-official's RMS-scaled input against batch's raw one). Schemes that keep
 * running statistics supply them (batch: running_mean/var; PN schemes: running_psi2); every
 * other statistic, and every statistic of layer/rms/none, comes from the probe's own running
 * averages (momentum 0.1, init mean 0, var 1, psi2 1), so every scheme is measured the same way.
 *
 * x is the input the scheme normalizes: at a site with row scaling in front of its scheme
 * (--pn-groups, batch-official's layer scaling) the scaled rows, the same input its running
 * statistics track, read after the site's forward (at the end of its backward, when the site
 * still holds them). A scheme whose statistics are not those of the real rows of x
 * (stats_all_rows: batch-official, whose mean and variance run over all N rows of the
 * layer-scaled, mean-filled input) is recorded with the statistics it actually used: the site's
 * batch_mean/batch_var and psi2_B = sigma2_B + mu_B^2, the quadratic mean over those N rows.
 *
 * With several ranks (docs/distributed.md) the statistics are again those the scheme used: with
 * --batch-stats global, over the real rows of all ranks; with local, over rank 0's own rows (rank
 * 0 writes the log). A local run also records, per site, the spread of the three distances
 * over the ranks (each rank's own statistics against the running values, which rank 0 gives to
 * all): their minimum, median and maximum over ranks.
 *
 * Beside the distances, the training-inference discrepancy (TID) of Wang, Wu, Huang (NeurIPS
 * 2022) against the same running values, tid_mean/var/psi2, each with its sampling floor (TID
 * below). Sites of batch-regularized also record their penalty P. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "probes.h"
#include "util.h"

enum { V_STEP, V_BMEAN, V_BVAR, V_BPSI2, V_RMEAN, V_RVAR, V_RPSI2, V_N };

typedef struct {
    int step, dist[3], rel_dist[3];
    int tid[3], floor[3]; /* tid_mean, tid_var, tid_psi2 and their sampling floors */
    int rows;             /* real rows the statistics ran over (over the site's ranks) */
    int spread[3][3]; /* --batch-stats local, several ranks: [min, median, max][statistic] */
    int vec[V_N];
    int penalty; /* series of the site's penalty (-1: its scheme adds none) */
    int pending; /* scaled rows or stats_all_rows: forward seen, not yet recorded */
    float *own_mean, *own_var, *own_psi2; /* the probe's running averages [d] */
    float *batch[3], *running[3];         /* this step's vectors [d] */
} SiteSeries;

typedef struct {
    SiteSeries *sites;
    int n_sites;
    double *acc; /* [3][d] accumulators (+1: the row count) */
    NsComm *spread_comm; /* the ranks to take the spread over (NULL: not recorded) */
} StatsState;

#define PROBE_MOMENTUM 0.1f

enum { D_STEP, D_MEAN, D_VAR, D_PSI2, D_REL_MEAN, D_REL_VAR, D_REL_PSI2, D_N };

#define ROWS_NOTE " (batch-official: over all N rows, padding included, of the layer-scaled, " \
                  "mean-filled input: the statistic the scheme used)"
static const NsRunLogScalar DISTANCES[D_N] = {
    {"step", "step", "training step of each row of this site's series"},
    {"dist_mean", "1", "(1/d)||mu_B - running_mean||_2; mu_B over the real rows of the input x "
                       "the scheme normalizes (after --pn-groups' group scaling where set)"
                       ROWS_NOTE ", running value before this step's update"},
    {"dist_var", "1", "(1/d)||sigma2_B - running_var||_2; sigma2_B biased, over the real rows "
                      "of x" ROWS_NOTE},
    {"dist_psi2", "1", "(1/d)||psi2_B - running_psi2||_2, psi2_B = mean x^2 over the real rows "
                       "of x (batch-official: sigma2_B + mu_B^2 over its N rows)"},
    {"rel_dist_mean", "1", "||mu_B - running_mean||_2 / ||running_mean||_2: dist_mean without "
                           "the input's scale (same rows)"},
    {"rel_dist_var", "1", "||sigma2_B - running_var||_2 / ||running_var||_2 (same rows as "
                          "dist_var)"},
    {"rel_dist_psi2", "1", "||psi2_B - running_psi2||_2 / ||running_psi2||_2 (same rows as "
                           "dist_psi2)"},
};

/* Declared at the sites of schemes that add a penalty to the objective (batch-regularized). */
static const NsRunLogScalar PENALTY = {
    "penalty", "nats", "this site's P of batch-regularized (model-spec.md): (lm ||running_mean - "
                       "mu_B||^2 + lv sum_c |running_var - var_B|) / n, running values after "
                       "this step's update, n the batch's real tokens over all ranks (--batch-stats "
                       "local: rank 0's own statistics)"};

/* The training-inference discrepancy of Wang, Wu, Huang (NeurIPS 2022), per channel against the
 * same running values as dist_* (before this step's update; their code compares with the values
 * after it: docs/runlog.md), averaged over channels, eps = the site's 1e-5; and beside each its
 * sampling floor, what the batch's own sampling noise gives with a perfect running value if the
 * n real rows were independent normal draws (docs/runlog.md derives them; rows past the first
 * site are not independent, so a later site's TID can sit below its floor). */
enum { T_MEAN, T_VAR, T_PSI2, T_MEAN_FLOOR, T_VAR_FLOOR, T_PSI2_FLOOR, T_N };
#define TID_NOTE " (same rows and running values as dist_*, before this step's update)"
#define FLOOR_NOTE ", n the real rows of the statistic (over the site's ranks); assumes " \
                   "independent normal rows"
static const NsRunLogScalar TID[T_N] = {
    {"tid_mean", "1", "mean_c |running_mean_c - mu_B,c| / sqrt(sigma2_B,c + eps)" TID_NOTE},
    {"tid_var", "1", "mean_c |sqrt(running_var_c + eps) / sqrt(sigma2_B,c + eps) - 1|" TID_NOTE},
    {"tid_psi2", "1", "mean_c |sqrt(running_psi2_c + eps) / sqrt(psi2_B,c + eps) - 1|" TID_NOTE},
    {"tid_mean_floor", "1", "sqrt(2 / (pi n)): E tid_mean with a perfect running mean"
                            FLOOR_NOTE},
    {"tid_var_floor", "1", "1 / sqrt(pi n): E tid_var with a perfect running variance"
                           FLOOR_NOTE},
    {"tid_psi2_floor", "1", "mean_c sqrt((s2_c^2 + 2 m_c^2 s2_c) / (pi n)) / (psi2_B,c + eps), "
                            "m = mu_B, s2 = sigma2_B: E tid_psi2 with a perfect running psi2, "
                            "to first order" FLOOR_NOTE},
};

#define SPREAD_NOTE " over the ranks of a --batch-stats local run: each rank's distance between " \
                    "its own batch statistic and the running value (rank 0's, shared by all)"
static const NsRunLogScalar SPREAD[3][3] = {
    {{"rank_min_dist_mean", "1", "minimum of dist_mean" SPREAD_NOTE},
     {"rank_min_dist_var", "1", "minimum of dist_var" SPREAD_NOTE},
     {"rank_min_dist_psi2", "1", "minimum of dist_psi2" SPREAD_NOTE}},
    {{"rank_median_dist_mean", "1", "median of dist_mean" SPREAD_NOTE},
     {"rank_median_dist_var", "1", "median of dist_var" SPREAD_NOTE},
     {"rank_median_dist_psi2", "1", "median of dist_psi2" SPREAD_NOTE}},
    {{"rank_max_dist_mean", "1", "maximum of dist_mean" SPREAD_NOTE},
     {"rank_max_dist_var", "1", "maximum of dist_var" SPREAD_NOTE},
     {"rank_max_dist_psi2", "1", "maximum of dist_psi2" SPREAD_NOTE}},
};

static int declare_site(SiteSeries *s, NsProbes *set, const NsNormSite *site, int spread,
                        char *err)
{
    char path[NS_RUNLOG_PATH_LEN];
    int ids[D_N];
    const char *group = ns_runlog_site_path(path, sizeof path, site->path, NULL);
    if (ns_runlog_add_scalars(&set->log, group, DISTANCES, D_N, ids, err) < 0)
        return -1;
    for (int q = 0; spread && q < 3; q++)
        if (ns_runlog_add_scalars(&set->log, group, SPREAD[q], 3, s->spread[q], err) < 0)
            return -1;
    s->penalty = -1;
    if (site->scheme->has_penalty &&
        ns_runlog_add_scalars(&set->log, group, &PENALTY, 1, &s->penalty, err) < 0)
        return -1;
    int tid[T_N];
    if (ns_runlog_add_scalars(&set->log, group, TID, T_N, tid, err) < 0)
        return -1;
    for (int k = 0; k < 3; k++) {
        s->tid[k] = tid[T_MEAN + k];
        s->floor[k] = tid[T_MEAN_FLOOR + k];
    }
    s->step = ids[D_STEP];
    for (int k = 0; k < 3; k++) {
        s->dist[k] = ids[D_MEAN + k];
        s->rel_dist[k] = ids[D_REL_MEAN + k];
    }
    static const char *const names[V_N] = {"step", "batch_mean", "batch_var", "batch_psi2",
                                           "running_mean", "running_var", "running_psi2"};
    for (int v = 0; v < V_N; v++) {
        ns_runlog_vector_path(path, sizeof path, site->path, names[v]);
        s->vec[v] = ns_runlog_add(&set->log, path, v == V_STEP ? NS_SERIES_I64 :
                                  NS_SERIES_F32_VEC, site->d, v == V_STEP ? "step" : "1",
                                  v == V_STEP ? "training step of each vector row" :
                                  "per-channel statistic [n][d] (running: before the update)",
                                  err);
        if (s->vec[v] < 0)
            return -1;
    }
    return 0;
}

static int declare(NsProbe *p, NsProbes *set, char *err)
{
    StatsState *st = p->state;
    const NsModel *m = &set->tr->model;
    int d = m->cfg.d_model;
    st->n_sites = m->n_sites;
    st->sites = ns_xcalloc((size_t)m->n_sites, sizeof(SiteSeries));
    st->acc = ns_xcalloc(3 * (size_t)d + 1, sizeof(double));
    NsComm *comm = m->comm;
    st->spread_comm = comm->size > 1 && m->local_stats ? comm : NULL;
    for (int i = 0; i < m->n_sites; i++) {
        SiteSeries *s = &st->sites[i];
        s->own_mean = ns_xcalloc((size_t)d, sizeof(float));
        s->own_var = ns_xcalloc((size_t)d, sizeof(float));
        s->own_psi2 = ns_xcalloc((size_t)d, sizeof(float));
        for (int k = 0; k < 3; k++) {
            s->batch[k] = ns_xcalloc((size_t)d, sizeof(float));
            s->running[k] = ns_xcalloc((size_t)d, sizeof(float));
        }
        for (int c = 0; c < d; c++)
            s->own_var[c] = s->own_psi2[c] = 1.0f;
        if (declare_site(s, set, &m->sites[i], st->spread_comm != NULL, err) < 0)
            return -1;
    }
    return 0;
}

/* mean, biased variance and quadratic mean per channel over the real rows (of every rank whose
 * rows the site's statistics cover). */
static void batch_statistics(StatsState *st, SiteSeries *s, const NsNormSite *site,
                             const float *x, const uint8_t *mask, int N, int d)
{
    double *sum = st->acc, *sq = st->acc + d;
    memset(st->acc, 0, sizeof(double) * (2 * (size_t)d + 1));
    int n = 0;
    for (int r = 0; r < N; r++) {
        if (!mask[r])
            continue;
        const float *row = x + (size_t)r * d;
        for (int c = 0; c < d; c++) {
            sum[c] += row[c];
            sq[c] += (double)row[c] * row[c];
        }
        n++;
    }
    st->acc[2 * d] = n;
    ns_norm_reduce(site, st->acc, 2 * d + 1);
    n = (int)st->acc[2 * d];
    s->rows = n;
    for (int c = 0; c < d; c++) {
        double mean = n ? sum[c] / n : NAN, psi2 = n ? sq[c] / n : NAN;
        s->batch[0][c] = (float)mean;
        s->batch[1][c] = (float)fmax(psi2 - mean * mean, 0.0);
        s->batch[2][c] = (float)psi2;
    }
}

/* The running values the batch statistics are compared with, before this step's update. */
static void running_statistics(SiteSeries *s, const NsNormSite *site, int d)
{
    const float *mean = site->running_mean ? site->running_mean : s->own_mean;
    const float *var = site->running_var ? site->running_var : s->own_var;
    const float *psi2 = site->running_psi2 ? site->running_psi2 : s->own_psi2;
    memcpy(s->running[0], mean, sizeof(float) * (size_t)d);
    memcpy(s->running[1], var, sizeof(float) * (size_t)d);
    memcpy(s->running[2], psi2, sizeof(float) * (size_t)d);
}

static void update_own(SiteSeries *s, int d)
{
    for (int c = 0; c < d; c++) {
        s->own_mean[c] += PROBE_MOMENTUM * (s->batch[0][c] - s->own_mean[c]);
        s->own_var[c] += PROBE_MOMENTUM * (s->batch[1][c] - s->own_var[c]);
        s->own_psi2[c] += PROBE_MOMENTUM * (s->batch[2][c] - s->own_psi2[c]);
    }
}

/* The paper's distance between a batch statistic and its running value. */
static double scaled_distance(const float *a, const float *b, int d)
{
    return ns_l2_distance(a, b, (size_t)d) / d;
}

/* The scale-free distance ||a - b|| / ||b|| (NaN when b is zero). */
static double relative_distance(const float *a, const float *b, int d)
{
    double nb = sqrt(ns_sumsq(b, (size_t)d));
    return nb > 0 ? ns_l2_distance(a, b, (size_t)d) / nb : NAN;
}

/* mean_c |a_c| over the channels, of the three TIDs, against the logged vectors. */
static void tid_values(const SiteSeries *s, double eps, int d, double out[3])
{
    const float *mu = s->batch[0], *var = s->batch[1], *psi2 = s->batch[2];
    double sum[3] = {0.0, 0.0, 0.0};
    for (int c = 0; c < d; c++) {
        double sd = sqrt((double)var[c] + eps);
        sum[0] += fabs((double)s->running[0][c] - mu[c]) / sd;
        sum[1] += fabs(sqrt((double)s->running[1][c] + eps) / sd - 1.0);
        sum[2] += fabs(sqrt((double)s->running[2][c] + eps) / sqrt((double)psi2[c] + eps) - 1.0);
    }
    for (int k = 0; k < 3; k++)
        out[k] = sum[k] / d;
}

/* The sampling floors for n independent normal rows (docs/runlog.md): a perfect running mean
 * leaves |N(0, s2/n)| / s, mean sqrt(2/(pi n)); a perfect running variance leaves
 * |sqrt(s2 / var_B) - 1| ~ |N(0, 1/(2n))|, mean 1/sqrt(pi n); psi2_B has variance
 * (2 s2^2 + 4 m^2 s2) / n, so per channel sqrt((s2^2 + 2 m^2 s2) / (pi n)) / psi2, taken with
 * the batch's own m, s2 and averaged over channels like tid_psi2. */
static void tid_floors(const SiteSeries *s, double eps, int d, double out[3])
{
    double n = s->rows, sum = 0.0;
    if (n <= 0) {
        out[0] = out[1] = out[2] = NAN;
        return;
    }
    for (int c = 0; c < d; c++) {
        double m = s->batch[0][c], s2 = s->batch[1][c];
        sum += sqrt((s2 * s2 + 2.0 * m * m * s2) / (M_PI * n)) / ((double)s->batch[2][c] + eps);
    }
    out[0] = sqrt(2.0 / (M_PI * n));
    out[1] = 1.0 / sqrt(M_PI * n);
    out[2] = sum / d;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Minimum, median and maximum over the ranks of each rank's three distances. */
static void record_spread(NsRunLog *log, NsComm *comm, SiteSeries *s, const double *dist)
{
    int n = comm->size;
    double *all = ns_xmalloc(sizeof(double) * 3 * (size_t)n);
    comm->allgather_f64(comm, dist, 3, all);
    double *col = ns_xmalloc(sizeof(double) * (size_t)n);
    for (int k = 0; k < 3; k++) {
        for (int r = 0; r < n; r++)
            col[r] = all[(size_t)r * 3 + k];
        qsort(col, (size_t)n, sizeof(double), compare_doubles);
        double median = n % 2 ? col[n / 2] : 0.5 * (col[n / 2 - 1] + col[n / 2]);
        ns_runlog_append_f64(log, s->spread[0][k], col[0]);
        ns_runlog_append_f64(log, s->spread[1][k], median);
        ns_runlog_append_f64(log, s->spread[2][k], col[n - 1]);
    }
    free(col);
    free(all);
}

/* Appends this step's distances and TIDs (and, on the vector cadence, the vectors) of s. */
static void record(NsProbes *set, StatsState *st, SiteSeries *s, int d, double eps)
{
    NsRunLog *log = &set->log;
    double tid[3], floor[3];
    tid_values(s, eps, d, tid);
    tid_floors(s, eps, d, floor);
    for (int k = 0; k < 3; k++) {
        ns_runlog_append_f64(log, s->tid[k], tid[k]);
        ns_runlog_append_f64(log, s->floor[k], floor[k]);
    }
    ns_runlog_append_i64(log, s->step, set->step);
    double dist[3];
    for (int k = 0; k < 3; k++) {
        dist[k] = scaled_distance(s->batch[k], s->running[k], d);
        ns_runlog_append_f64(log, s->dist[k], dist[k]);
    }
    if (st->spread_comm)
        record_spread(log, st->spread_comm, s, dist);
    for (int k = 0; k < 3; k++)
        ns_runlog_append_f64(log, s->rel_dist[k],
                             relative_distance(s->batch[k], s->running[k], d));
    int every = set->tr->cfg.probe_vectors_every;
    if (every > 0 && (set->step % every == 0 || set->step == 1)) {
        ns_runlog_append_i64(log, s->vec[V_STEP], set->step);
        for (int k = 0; k < 3; k++) {
            ns_runlog_append(log, s->vec[V_BMEAN + k], s->batch[k]);
            ns_runlog_append(log, s->vec[V_RMEAN + k], s->running[k]);
        }
    }
}

static void norm_forward_begin(NsProbe *p, NsProbes *set, const NsNormSite *site, int index,
                               const float *x, const uint8_t *mask, int N)
{
    StatsState *st = p->state;
    SiteSeries *s = &st->sites[index];
    int d = site->d;
    running_statistics(s, site, d); /* before the forward updates them */
    if (site->scheme->stats_all_rows || site->groups > 0) {
        s->pending = 1; /* what the scheme sees is known after the site's forward */
        return;
    }
    batch_statistics(st, s, site, x, mask, N, d);
    update_own(s, d);
    record(set, st, s, d, site->eps);
}

/* The site's penalty, where its scheme adds one. Sites whose scheme sees other rows than x: the
 * statistics of the scaled rows (still in the site's cache), or those the scheme took
 * (stats_all_rows). */
static void norm_backward_end(NsProbe *p, NsProbes *set, const NsNormSite *site, int index,
                              const float *dy, const float *dx, const uint8_t *mask, int N)
{
    (void)dy, (void)dx;
    StatsState *st = p->state;
    SiteSeries *s = &st->sites[index];
    if (s->penalty >= 0) /* known after the site's forward */
        ns_runlog_append_f64(&set->log, s->penalty, site->penalty);
    if (!s->pending)
        return;
    s->pending = 0;
    int d = site->d;
    if (!site->scheme->stats_all_rows) {
        batch_statistics(st, s, site, site->grouped, mask, N, d);
        update_own(s, d);
        record(set, st, s, d, site->eps);
        return;
    }
    int real = 0; /* the rows the release's mean ran over, the independent ones */
    for (int r = 0; r < N; r++)
        real += mask[r] != 0;
    s->rows = ns_norm_reduce_count(site, real);
    for (int c = 0; c < d; c++) {
        float mean = site->batch_mean[c], var = site->batch_var[c];
        s->batch[0][c] = mean;
        s->batch[1][c] = var;
        s->batch[2][c] = var + mean * mean; /* mean of w^2 over the N mean-filled rows */
    }
    update_own(s, d);
    record(set, st, s, d, site->eps);
}

static void destroy(NsProbe *p)
{
    StatsState *st = p->state;
    for (int i = 0; st->sites && i < st->n_sites; i++) {
        SiteSeries *s = &st->sites[i];
        free(s->own_mean);
        free(s->own_var);
        free(s->own_psi2);
        for (int k = 0; k < 3; k++) {
            free(s->batch[k]);
            free(s->running[k]);
        }
    }
    free(st->sites);
    free(st->acc);
    free(st);
}


/* ------------------------------------------------------------ state in checkpoints */

/* The probe's running averages are state carried from step to step, like a model's: a resumed
 * run must continue them where the checkpoint left them, or its distances differ from an
 * uninterrupted run's. Saved as own/<site index> float32 [3][d] (mean, var, psi2). */
static int save_own_state(NsProbe *p, NsProbes *set, hid_t group, char *err)
{
    const StatsState *st = p->state;
    int d = set->tr->model.cfg.d_model;
    float *buf = ns_xmalloc(3 * sizeof(float) * (size_t)d);
    int rc = 0;
    for (int i = 0; i < st->n_sites && rc == 0; i++) {
        const SiteSeries *s = &st->sites[i];
        memcpy(buf, s->own_mean, sizeof(float) * (size_t)d);
        memcpy(buf + d, s->own_var, sizeof(float) * (size_t)d);
        memcpy(buf + 2 * d, s->own_psi2, sizeof(float) * (size_t)d);
        char path[32];
        snprintf(path, sizeof path, "own/%d", i);
        hsize_t dims[2] = {3, (hsize_t)d};
        rc = ns_h5_write_f32(group, path, buf, 2, dims, err);
    }
    free(buf);
    return rc;
}

static int load_own_state(NsProbe *p, NsProbes *set, hid_t group, char *err)
{
    StatsState *st = p->state;
    int d = set->tr->model.cfg.d_model;
    float *buf = ns_xmalloc(3 * sizeof(float) * (size_t)d);
    int rc = 0;
    for (int i = 0; i < st->n_sites && rc == 0; i++) {
        SiteSeries *s = &st->sites[i];
        char path[32];
        snprintf(path, sizeof path, "own/%d", i);
        rc = ns_h5_read(group, path, H5T_NATIVE_FLOAT, buf, 3 * (size_t)d, err);
        if (rc == 0) {
            memcpy(s->own_mean, buf, sizeof(float) * (size_t)d);
            memcpy(s->own_var, buf + d, sizeof(float) * (size_t)d);
            memcpy(s->own_psi2, buf + 2 * d, sizeof(float) * (size_t)d);
        }
    }
    free(buf);
    return rc < 0 ? ns_fail_context(err, "probe batch-stats") : 0;
}

void ns_probe_batch_stats(NsProbe *p)
{
    *p = (NsProbe){.name = "batch-stats", .state = ns_xcalloc(1, sizeof(StatsState)),
                   .declare = declare, .norm_forward_begin = norm_forward_begin,
                   .norm_backward_end = norm_backward_end, .destroy = destroy,
                   .save_state = save_own_state, .load_state = load_own_state};
}
