/* BatchNorm as the authors' released code computes it (`MaskSyncBatchNorm`, model-spec.md
 * "batch-official"). Three things set it apart from `batch`:
 *   1. layer scaling: every row is first divided by its RMS over all d channels. The site's
 *      dispatch does that (group scaling with one group, norm_common.c), so this file sees the
 *      scaled input u;
 *   2. padded rows are replaced by mu_S, the mean of the real rows of u, and
 *   3. plain batch norm then runs over all N rows: mu = mu_S, but var = (1/N) sum_S (u - mu_S)^2,
 *      i.e. the real rows' variance shrunk by the real fraction n/N.
 * Outputs at padded rows are therefore exactly `bias`. Running statistics use momentum
 * bn_momentum (0.05 by default for this scheme) and the all-row unbiasing N/(N-1).
 * --no-layer-scaling drops step 1 (an ablation; the site then has no group scaling). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "norm.h"
#include "util.h"

/* The statistics the release takes: mean of the real rows, variance over all N rows of the
 * mean-filled input (padded rows sit at the mean, adding nothing to the sum but counting in N).
 * Returns N: the rows of all the site's ranks. */
static int official_stats(const NsNormSite *s, const float *u, const uint8_t *mask, int N,
                          double *mean, double *var)
{
    ns_channel_mean_sqdev(s, mean, var, u, mask, N);
    N = ns_norm_reduce_count(s, N);
    for (int c = 0; c < s->d; c++)
        var[c] = N > 0 ? var[c] / N : 0.0;
    return N;
}

/* xhat = (u - mean) * inv_std; padded rows (mask 0) are the mean itself, so their xhat is 0.
 * mask == NULL normalizes every row (inference). */
static void normalize_rows(NsNormSite *s, const float *u, const float *mean, const uint8_t *mask,
                           int N)
{
    int d = s->d;
    for (int r = 0; r < N; r++) {
        const float *row = u + (size_t)r * d;
        float *xh = s->xhat + (size_t)r * d;
        if (mask && !mask[r])
            memset(xh, 0, sizeof(float) * (size_t)d);
        else
            for (int c = 0; c < d; c++)
                xh[c] = (row[c] - mean[c]) * s->inv_std[c];
    }
}

static void official_forward(NsNormSite *s, const float *u, float *y, const uint8_t *mask, int N,
                             int training)
{
    int d = s->d;
    if (!training) {
        for (int c = 0; c < d; c++)
            s->inv_std[c] = 1.0f / sqrtf(s->running_var[c] + s->eps);
        normalize_rows(s, u, s->running_mean, NULL, N);
        ns_affine_forward(s, y, N);
        return;
    }
    s->step++;
    double *mean = ns_xmalloc(sizeof(double) * 2 * (size_t)d), *var = mean + d;
    int all = official_stats(s, u, mask, N, mean, var);
    /* The release's running variance is unbiased over all N rows, padding included. */
    double unbias = all > 1 ? (double)all / (all - 1) : 1.0;
    float m = s->momentum;
    for (int c = 0; c < d; c++) {
        s->batch_mean[c] = (float)mean[c];
        s->batch_var[c] = (float)var[c];
        s->inv_std[c] = (float)(1.0 / sqrt(var[c] + s->eps));
        s->running_mean[c] = (1.0f - m) * s->running_mean[c] + m * (float)mean[c];
        s->running_var[c] = (1.0f - m) * s->running_var[c] + m * (float)(var[c] * unbias);
    }
    ns_fill_nan(s->batch_psi2, d);
    free(mean);
    normalize_rows(s, u, s->batch_mean, mask, N);
    ns_affine_forward(s, y, N);
}

/* Batch norm over all N rows of w (w = u at real rows, mu_S at padded ones), g = weight * dy:
 *   dL/dw_r = inv * (g_r - mean_N g - xhat_r * mean_N(g * xhat))
 * and then through the mean fill: every padded row's dL/dw is spread evenly over the real rows
 * (mu_S = mean_S u), while padded rows of u themselves get no gradient. */
static void official_backward(NsNormSite *s, const float *dy, float *du, const uint8_t *mask,
                              int N)
{
    int d = s->d;
    ns_affine_backward(s, dy, du, N);
    /* sum_g, sum_gx, then the real and all row counts (summed over the site's ranks), then
     * pad_dw */
    double *sum_g = ns_xcalloc(3 * (size_t)d + 2, sizeof(double)), *sum_gx = sum_g + d,
           *pad_dw = sum_g + 2 * (size_t)d + 2;
    int n = 0;
    for (int r = 0; r < N; r++) {
        const float *g = du + (size_t)r * d, *xh = s->xhat + (size_t)r * d;
        n += mask[r] != 0;
        for (int c = 0; c < d; c++) {
            sum_g[c] += g[c];
            sum_gx[c] += g[c] * xh[c];
        }
    }
    sum_g[2 * d] = n;
    sum_g[2 * d + 1] = N;
    ns_norm_reduce(s, sum_g, 2 * d + 2);
    n = (int)sum_g[2 * d];
    int all = (int)sum_g[2 * d + 1];
    for (int c = 0; c < d; c++) {
        float inv = s->inv_std[c];
        s->g_mean[c] = (float)(-inv * sum_g[c]);
        s->g_var[c] = (float)(-0.5 * inv * inv * sum_gx[c]);
    }
    ns_fill_nan(s->g_psi2, d);
    for (int r = 0; r < N; r++) {
        float *g = du + (size_t)r * d;
        const float *xh = s->xhat + (size_t)r * d;
        for (int c = 0; c < d; c++)
            g[c] = s->inv_std[c] *
                   (g[c] - (float)(sum_g[c] / all) - xh[c] * (float)(sum_gx[c] / all));
        if (!mask[r])
            for (int c = 0; c < d; c++) {
                pad_dw[c] += g[c];
                g[c] = 0.0f;
            }
    }
    ns_norm_reduce(s, pad_dw, d); /* padded rows of any rank feed the real rows of every rank */
    if (n > 0)
        for (int r = 0; r < N; r++)
            if (mask[r])
                for (int c = 0; c < d; c++)
                    du[(size_t)r * d + c] += (float)(pad_dw[c] / n);
    free(sum_g);
}

const NsNormScheme ns_scheme_batch_official = {
    .name = "batch-official",
    .batch_stats = NS_STAT_MEAN | NS_STAT_VAR,
    .state = NS_STATE_RUNNING_MEAN | NS_STATE_RUNNING_VAR,
    .affine = 1,
    .groups = NS_GROUPS_LAYER,
    .exact_backward = 1,
    .bn_momentum = 0.05f, /* the release's MaskSyncBatchNorm */
    .release_bn_momentum = 0.05f,
    .stats_all_rows = 1,
    .forward = official_forward,
    .backward = official_backward,
};
