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


typedef struct {
    int step, dist[3], rel_dist[3];
    int tid[3], floor[3]; /* tid_mean, tid_var, tid_psi2 and their sampling floors */
    int rows;             /* real rows the statistics ran over (over the site's ranks) */
    int spread[3][3]; /* --batch-stats local, several ranks: [min, median, max][statistic] */
    int vec[NS_VECTORS_N];
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

/* Statistics are indexed mean, var, psi2 here, in the schema's order. */
_Static_assert(NS_SITE_DIST_PSI2 == NS_SITE_DIST_MEAN + 2 &&
                   NS_SITE_REL_DIST_PSI2 == NS_SITE_REL_DIST_MEAN + 2 &&
                   NS_SITE_SPREAD_RANK_MAX_DIST_PSI2 == NS_SITE_SPREAD_RANK_MIN_DIST_MEAN + 8 &&
                   NS_VECTORS_BATCH_PSI2 == NS_VECTORS_BATCH_MEAN + 2 &&
                   NS_VECTORS_RUNNING_PSI2 == NS_VECTORS_RUNNING_MEAN + 2,
               "runlog.schema.json: a site's statistics are mean, var, psi2 in this order");
_Static_assert(NS_SITE_TID_PSI2 == NS_SITE_TID_MEAN + 2 &&
                   NS_SITE_TID_PSI2_FLOOR == NS_SITE_TID_MEAN_FLOOR + 2,
               "runlog.schema.json: a site's TIDs are mean, var, psi2 in this order");

/* The training-inference discrepancy of Wang, Wu, Huang (NeurIPS 2022), per channel against the
 * same running values as dist_* (before this step's update; their code compares with the values
 * after it: docs/runlog.md), averaged over channels, eps = the site's 1e-5; and beside each its
 * sampling floor, what the batch's own sampling noise gives with a perfect running value if the
 * n real rows were independent normal draws (docs/runlog.md derives them; rows past the first
 * site are not independent, so a later site's TID can sit below its floor). Declared in the
 * schema's group site; a scheme that adds a penalty to the objective (batch-regularized) also
 * records its site's penalty (group site_penalty). */

/* The site's series are the schema's groups site, site_spread (several ranks, local
 * statistics) and vectors (src/io/runlog.schema.json). */
static int declare_site(SiteSeries *s, NsProbes *set, const NsNormSite *site, int spread,
                        char *err)
{
    char path[NS_RUNLOG_PATH_LEN], vectors[NS_RUNLOG_PATH_LEN];
    int ids[NS_SITE_N], spread_ids[NS_SITE_SPREAD_N];
    const char *group = ns_runlog_site_path(path, sizeof path, site->path, NULL);
    if (ns_runlog_add_group(&set->log, NS_G_SITE, group, NULL, ids, err) < 0)
        return -1;
    if (spread && ns_runlog_add_group(&set->log, NS_G_SITE_SPREAD, group, NULL, spread_ids,
                                      err) < 0)
        return -1;
    s->penalty = -1;
    if (site->scheme->has_penalty &&
        ns_runlog_add_group(&set->log, NS_G_SITE_PENALTY, group, NULL, &s->penalty, err) < 0)
        return -1;
    s->step = ids[NS_SITE_STEP];
    for (int k = 0; k < 3; k++) {
        s->dist[k] = ids[NS_SITE_DIST_MEAN + k];
        s->rel_dist[k] = ids[NS_SITE_REL_DIST_MEAN + k];
        s->tid[k] = ids[NS_SITE_TID_MEAN + k];
        s->floor[k] = ids[NS_SITE_TID_MEAN_FLOOR + k];
        for (int q = 0; spread && q < 3; q++) /* [min, median, max][mean, var, psi2] */
            s->spread[q][k] = spread_ids[NS_SITE_SPREAD_RANK_MIN_DIST_MEAN + 3 * q + k];
    }
    NsRunLogWidths widths = {.channels = site->d};
    ns_runlog_path(vectors, sizeof vectors, group, "vectors");
    return ns_runlog_add_group(&set->log, NS_G_VECTORS, vectors, &widths, s->vec, err);
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
        ns_runlog_append_i64(log, s->vec[NS_VECTORS_STEP], set->step);
        for (int k = 0; k < 3; k++) {
            ns_runlog_append(log, s->vec[NS_VECTORS_BATCH_MEAN + k], s->batch[k]);
            ns_runlog_append(log, s->vec[NS_VECTORS_RUNNING_MEAN + k], s->running[k]);
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
