/* What every normalization scheme shares: the registry lookup, site set-up with the state its
 * descriptor asks for, the channel reductions over real rows, the affine map, and the dispatch
 * that puts group scaling in front of the schemes that take it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "norm.h"
#include "util.h"

#define NS_NORM_SCHEME_ENTRY(kind, scheme) [kind] = &scheme,
static const NsNormScheme *const SCHEMES[NS_NORM_COUNT] = {NS_NORM_SCHEMES(NS_NORM_SCHEME_ENTRY)};
#undef NS_NORM_SCHEME_ENTRY

const NsNormScheme *ns_norm_scheme_for(NsNormKind kind)
{
    return (kind >= 0 && kind < NS_NORM_COUNT) ? SCHEMES[kind] : &ns_scheme_none;
}

const NsNormScheme *ns_norm_scheme_named(const char *name)
{
    for (int k = 0; k < NS_NORM_COUNT; k++)
        if (strcmp(SCHEMES[k]->name, name) == 0)
            return SCHEMES[k];
    return NULL;
}

static float *alloc_state(const NsNormScheme *scheme, unsigned which, int d)
{
    return (scheme->state & which) ? ns_xcalloc((size_t)d, sizeof(float)) : NULL;
}

static float *alloc_d(int d) { return ns_xcalloc((size_t)d, sizeof(float)); }

static int group_count(const NsNormScheme *scheme, const NsModelConfig *cfg)
{
    switch (scheme->groups) {
    case NS_GROUPS_OPTION: return cfg->pn_groups;
    case NS_GROUPS_LAYER: return cfg->no_layer_scaling ? 0 : 1; /* the ablation: none */
    default: return 0;
    }
}

void ns_norm_site_init(NsNormSite *s, const char *path, const NsModelConfig *cfg, int max_rows)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    const NsNormScheme *scheme = ns_norm_scheme_for(cfg->norm);
    s->scheme = scheme;
    s->d = cfg->d_model;
    s->max_rows = max_rows;
    s->eps = cfg->eps;
    s->momentum = cfg->bn_momentum;
    s->alpha = cfg->pn_alpha;
    s->warmup = cfg->pn_warmup;
    s->groups = group_count(scheme, cfg);
    s->penalty_mean = cfg->rbn_penalty_mean;
    s->penalty_var = cfg->rbn_penalty_var;
    if (scheme->has_penalty)
        s->penalty_grad = ns_xcalloc(2 * (size_t)cfg->d_model, sizeof(float));
    int d = s->d;
    s->running_mean = alloc_state(scheme, NS_STATE_RUNNING_MEAN, d);
    s->running_var = alloc_state(scheme, NS_STATE_RUNNING_VAR, d);
    s->running_psi2 = alloc_state(scheme, NS_STATE_RUNNING_PSI2, d);
    s->nu = alloc_state(scheme, NS_STATE_NU, d);
    size_t nd = (size_t)max_rows * d;
    s->xhat = ns_xcalloc(nd, sizeof(float));
    s->inv_std = ns_xcalloc((size_t)(max_rows > d ? max_rows : d), sizeof(float));
    s->batch_mean = alloc_d(d);
    s->batch_var = alloc_d(d);
    s->batch_psi2 = alloc_d(d);
    s->g_mean = alloc_d(d);
    s->g_var = alloc_d(d);
    s->g_psi2 = alloc_d(d);
    if (s->groups > 0) {
        s->grouped = ns_xcalloc(nd, sizeof(float));
        s->dgrouped = ns_xcalloc(nd, sizeof(float));
        s->group_inv = ns_xcalloc((size_t)max_rows * s->groups, sizeof(float));
    }
    ns_norm_site_reset_state(s);
}

void ns_norm_site_reset_state(NsNormSite *s)
{
    for (int c = 0; c < s->d; c++) {
        if (s->running_mean)
            s->running_mean[c] = 0.0f;
        if (s->running_var)
            s->running_var[c] = 1.0f;
        if (s->running_psi2)
            s->running_psi2[c] = 1.0f;
        if (s->nu)
            s->nu[c] = 0.0f;
    }
    s->step = 0;
    s->penalty = 0.0;
    ns_fill_nan(s->batch_mean, s->d);
    ns_fill_nan(s->batch_var, s->d);
    ns_fill_nan(s->batch_psi2, s->d);
    ns_fill_nan(s->g_mean, s->d);
    ns_fill_nan(s->g_var, s->d);
    ns_fill_nan(s->g_psi2, s->d);
}

void ns_norm_site_bind(NsNormSite *s, float *weight, float *bias, float *dweight, float *dbias)
{
    s->weight = weight;
    s->bias = bias;
    s->dweight = dweight;
    s->dbias = dbias;
}

void ns_norm_site_free(NsNormSite *s)
{
    float *bufs[] = {s->running_mean, s->running_var, s->running_psi2, s->nu, s->xhat,
                     s->inv_std, s->batch_mean, s->batch_var, s->batch_psi2, s->g_mean,
                     s->g_var, s->g_psi2, s->grouped, s->dgrouped, s->group_inv,
                     s->penalty_grad};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    memset(s, 0, sizeof *s);
}

void ns_norm_forward(NsNormSite *s, const float *x, float *y, const uint8_t *mask, int N,
                     int training)
{
    if (s->groups > 0) {
        ns_group_scale_forward(s, x, s->grouped, N);
        x = s->grouped;
    }
    s->scheme->forward(s, x, y, mask, N, training);
}

void ns_norm_backward(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask, int N)
{
    if (s->groups > 0) {
        s->scheme->backward(s, dy, s->dgrouped, mask, N);
        ns_group_scale_backward(s, s->dgrouped, s->grouped, dx, N);
        return;
    }
    s->scheme->backward(s, dy, dx, mask, N);
}

int ns_norm_state_tensors(NsNormSite *s, const char **names, float **ptrs)
{
    int n = 0;
    const char *all_names[] = {"running_mean", "running_var", "running_psi2", "nu"};
    float *all_ptrs[] = {s->running_mean, s->running_var, s->running_psi2, s->nu};
    for (int i = 0; i < 4; i++) {
        if (all_ptrs[i]) {
            names[n] = all_names[i];
            ptrs[n] = all_ptrs[i];
            n++;
        }
    }
    return n;
}

int ns_norm_has_step(const NsNormSite *s) { return (s->scheme->state & NS_STATE_STEP) != 0; }

void ns_norm_reduce(const NsNormSite *s, double *x, int n)
{
    if (s->comm)
        s->comm->sum_f64(s->comm, x, (size_t)n);
}

int ns_norm_reduce_count(const NsNormSite *s, int count)
{
    double c = count;
    ns_norm_reduce(s, &c, 1);
    return (int)c;
}

/* Sums over real rows into out[0..d) and the real row count into out[d], summed over ranks. */
static int channel_sums(const NsNormSite *s, double *out, const float *x, const uint8_t *mask,
                        int N, int squares)
{
    int n = 0, d = s->d;
    memset(out, 0, sizeof(double) * (size_t)(d + 1));
    for (int r = 0; r < N; r++) {
        if (!mask[r])
            continue;
        const float *row = x + (size_t)r * d;
        if (squares)
            for (int c = 0; c < d; c++)
                out[c] += (double)row[c] * row[c];
        else
            for (int c = 0; c < d; c++)
                out[c] += row[c];
        n++;
    }
    out[d] = n;
    ns_norm_reduce(s, out, d + 1);
    n = (int)out[d];
    for (int c = 0; c < d; c++)
        out[c] = n > 0 ? out[c] / n : 0.0;
    return n;
}

int ns_channel_mean(const NsNormSite *s, double *out, const float *x, const uint8_t *mask, int N)
{
    double *sums = ns_xmalloc(sizeof(double) * (size_t)(s->d + 1));
    int n = channel_sums(s, sums, x, mask, N, 0);
    memcpy(out, sums, sizeof(double) * (size_t)s->d);
    free(sums);
    return n;
}

int ns_channel_mean_sqdev(const NsNormSite *s, double *mean, double *sqdev, const float *x,
                          const uint8_t *mask, int N)
{
    int d = s->d;
    int n = ns_channel_mean(s, mean, x, mask, N);
    memset(sqdev, 0, sizeof(double) * (size_t)d);
    for (int r = 0; r < N; r++) {
        if (!mask[r])
            continue;
        const float *row = x + (size_t)r * d;
        for (int c = 0; c < d; c++)
            sqdev[c] += (row[c] - mean[c]) * (row[c] - mean[c]);
    }
    ns_norm_reduce(s, sqdev, d);
    return n;
}

int ns_channel_sq_mean(const NsNormSite *s, double *out, const float *x, const uint8_t *mask,
                       int N)
{
    double *sums = ns_xmalloc(sizeof(double) * (size_t)(s->d + 1));
    int n = channel_sums(s, sums, x, mask, N, 1);
    memcpy(out, sums, sizeof(double) * (size_t)s->d);
    free(sums);
    return n;
}

void ns_affine_forward(const NsNormSite *s, float *y, int N)
{
    int d = s->d;
    for (int r = 0; r < N; r++) {
        const float *xh = s->xhat + (size_t)r * d;
        float *out = y + (size_t)r * d;
        for (int c = 0; c < d; c++)
            out[c] = s->weight[c] * xh[c] + s->bias[c];
    }
}

void ns_affine_backward(NsNormSite *s, const float *dy, float *g, int N)
{
    int d = s->d;
    for (int r = 0; r < N; r++) {
        const float *xh = s->xhat + (size_t)r * d;
        const float *gy = dy + (size_t)r * d;
        float *out = g + (size_t)r * d;
        for (int c = 0; c < d; c++) {
            s->dweight[c] += gy[c] * xh[c];
            s->dbias[c] += gy[c];
            out[c] = s->weight[c] * gy[c];
        }
    }
}

void ns_fill_nan(float *x, int n)
{
    for (int i = 0; i < n; i++)
        x[i] = NAN;
}
