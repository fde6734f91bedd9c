/* Backward at every norm site: the gradients that flow through the batch statistics and how
 * much the layer amplifies the gradient (the paper's Section 3-4 backward analysis).
 *   g_mu, g_sigma2 (batch; batch-official: through its all-row statistics of the layer-scaled,
 *     mean-filled input) and g_psi2 (power-v; power during warm-up): (1/d)||dL/dstat||_2,
 *     as the scheme computed them in its backward (NaN when the scheme takes no gradient
 *     through that statistic at this step);
 *   nu_norm: (1/d)||nu||_2 before this step's update, and correction_norm: the Frobenius norm
 *     over real rows of the term k*nu*xhat the backward subtracts, k as the scheme's descriptor
 *     gives it (power: 1 after warm-up; power-official: 1-alpha) — schemes that keep nu only;
 *   grad_out_norm = ||dL/dy||_F, grad_in_norm = ||dL/dx||_F (the site's own dL/dx, before the
 *     residual gradient is added), grad_gain = their ratio (an empirical Lipschitz constant of
 *     the layer), grad_in_max = max |dL/dx| (the paper bounds it for PN). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probes.h"
#include "util.h"

typedef struct {
    int ids[NS_SITE_GRADS_N]; /* the schema's group site_grads */
    int owns_step;    /* whether this probe appends the site's step series */
    float *nu_before; /* [d] */
} SiteSeries;

typedef struct {
    SiteSeries *sites;
    int n_sites;
    double *col; /* [d] scratch: per-channel sums of xhat^2 over the real rows */
} GradState;

static int declare(NsProbe *p, NsProbes *set, char *err)
{
    GradState *st = p->state;
    const NsModel *m = &set->tr->model;
    st->n_sites = m->n_sites;
    st->sites = ns_xcalloc((size_t)m->n_sites, sizeof(SiteSeries));
    st->col = ns_xcalloc((size_t)m->cfg.d_model, sizeof(double));
    char path[NS_RUNLOG_PATH_LEN], step[NS_RUNLOG_PATH_LEN];
    for (int i = 0; i < m->n_sites; i++) {
        st->sites[i].nu_before = ns_xcalloc((size_t)m->cfg.d_model, sizeof(float));
        ns_runlog_site_path(path, sizeof path, m->sites[i].path, NULL);
        /* The batch-stats probe, when on, declares and appends the site's step series. */
        ns_runlog_path(step, sizeof step, path, NS_RUNLOG_STEP);
        st->sites[i].owns_step = ns_runlog_find(&set->log, step) < 0;
        if (ns_runlog_add_group(&set->log, NS_G_SITE_GRADS, path, NULL, st->sites[i].ids,
                                err) < 0)
            return -1;
    }
    return 0;
}

static void norm_forward_begin(NsProbe *p, NsProbes *set, const NsNormSite *site, int index,
                               const float *x, const uint8_t *mask, int N)
{
    (void)set;
    (void)x;
    (void)mask;
    (void)N;
    GradState *st = p->state;
    if (site->nu)
        memcpy(st->sites[index].nu_before, site->nu, sizeof(float) * (size_t)site->d);
}

static double scaled_norm(const float *v, int d)
{
    if (isnan(v[0]))
        return NAN;
    return sqrt(ns_sumsq(v, (size_t)d)) / d;
}

/* ||k * nu * xhat||_F over the real rows, with k from the scheme (NaN when it subtracts none),
 * as |k| sqrt(sum_c nu_c^2 sum_r xhat_rc^2): the per-channel sums vectorize across channels,
 * where a single running sum over r and c was latency-bound. col is [d] scratch. */
static double correction_norm(const NsNormSite *site, const float *nu, const uint8_t *mask,
                              int N, double *col)
{
    if (!site->scheme->correction_scale)
        return NAN;
    double scale = site->scheme->correction_scale(site);
    if (isnan(scale))
        return NAN;
    int d = site->d;
    memset(col, 0, sizeof(double) * (size_t)d);
    for (int r = 0; r < N; r++) {
        if (!mask[r])
            continue;
        const float *xh = site->xhat + (size_t)r * d;
        for (int c = 0; c < d; c++)
            col[c] += (double)xh[c] * xh[c];
    }
    double s = 0.0;
    for (int c = 0; c < d; c++)
        s += (double)nu[c] * nu[c] * col[c];
    return fabs(scale) * sqrt(s);
}

static void norm_backward_end(NsProbe *p, NsProbes *set, const NsNormSite *site, int index,
                              const float *dy, const float *dx, const uint8_t *mask, int N)
{
    GradState *st = p->state;
    SiteSeries *s = &st->sites[index];
    NsRunLog *log = &set->log;
    int d = site->d, pn = (site->scheme->state & NS_STATE_NU) != 0;
    size_t n = (size_t)N * d;
    float mx; /* one pass over dx for its norm and its largest magnitude */
    double out = sqrt(ns_sumsq(dy, n)), in = sqrt(ns_sumsq_absmax(dx, n, &mx));
    if (s->owns_step)
        ns_runlog_append_i64(log, s->ids[NS_SITE_GRADS_STEP], set->step);
    ns_runlog_append_f64(log, s->ids[NS_SITE_GRADS_G_MU], scaled_norm(site->g_mean, d));
    ns_runlog_append_f64(log, s->ids[NS_SITE_GRADS_G_SIGMA2], scaled_norm(site->g_var, d));
    ns_runlog_append_f64(log, s->ids[NS_SITE_GRADS_G_PSI2], scaled_norm(site->g_psi2, d));
    ns_runlog_append_f64(log, s->ids[NS_SITE_GRADS_NU_NORM], pn ? scaled_norm(s->nu_before, d) : NAN);
    ns_runlog_append_f64(log, s->ids[NS_SITE_GRADS_CORRECTION_NORM],
                         pn ? correction_norm(site, s->nu_before, mask, N, st->col) : NAN);
    ns_runlog_append_f64(log, s->ids[NS_SITE_GRADS_GRAD_OUT_NORM], out);
    ns_runlog_append_f64(log, s->ids[NS_SITE_GRADS_GRAD_IN_NORM], in);
    ns_runlog_append_f64(log, s->ids[NS_SITE_GRADS_GRAD_GAIN], out > 0 ? in / out : NAN);
    ns_runlog_append_f64(log, s->ids[NS_SITE_GRADS_GRAD_IN_MAX], mx);
}

static void destroy(NsProbe *p)
{
    GradState *st = p->state;
    for (int i = 0; st->sites && i < st->n_sites; i++)
        free(st->sites[i].nu_before);
    free(st->sites);
    free(st->col);
    free(st);
}

void ns_probe_gradients(NsProbe *p)
{
    *p = (NsProbe){.name = "gradients", .state = ns_xcalloc(1, sizeof(GradState)),
                   .declare = declare, .norm_forward_begin = norm_forward_begin,
                   .norm_backward_end = norm_backward_end, .destroy = destroy};
}
