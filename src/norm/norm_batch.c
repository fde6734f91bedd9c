/* BatchNorm over the real positions of the batch: per channel, mu_B and the biased var_B over
 * the rows with mask != 0, (x - mu_B) / sqrt(var_B + eps), with the exact gradient through both
 * statistics. Running statistics (momentum 0.1, variance stored unbiased) replace them at
 * inference. Padding rows are normalized with the same statistics but never enter them. */
#include <math.h>
#include <stdlib.h>

#include "norm.h"
#include "util.h"

static void normalize_rows(NsNormSite *s, const float *x, const float *mean, int N)
{
    int d = s->d;
    for (int r = 0; r < N; r++) {
        const float *row = x + (size_t)r * d;
        float *xh = s->xhat + (size_t)r * d;
        for (int c = 0; c < d; c++)
            xh[c] = (row[c] - mean[c]) * s->inv_std[c];
    }
}

void ns_batch_forward(NsNormSite *s, const float *x, float *y, const uint8_t *mask, int N,
                      int training)
{
    int d = s->d;
    if (!training) {
        for (int c = 0; c < d; c++)
            s->inv_std[c] = 1.0f / sqrtf(s->running_var[c] + s->eps);
        normalize_rows(s, x, s->running_mean, N);
        ns_affine_forward(s, y, N);
        return;
    }
    s->step++;
    double *mean = ns_xmalloc(sizeof(double) * 2 * (size_t)d), *var = mean + d;
    int n = ns_channel_mean_sqdev(s, mean, var, x, mask, N);
    /* n/(n-1) would divide by zero for a single real row; the biased value is the only one. */
    double unbias = n > 1 ? (double)n / (n - 1) : 1.0;
    for (int c = 0; c < d; c++) {
        var[c] = n > 0 ? var[c] / n : 0.0;
        s->batch_mean[c] = (float)mean[c];
        s->batch_var[c] = (float)var[c];
        s->inv_std[c] = (float)(1.0 / sqrt(var[c] + s->eps));
        s->running_mean[c] = (1.0f - s->momentum) * s->running_mean[c] + s->momentum * (float)mean[c];
        s->running_var[c] =
            (1.0f - s->momentum) * s->running_var[c] + s->momentum * (float)(var[c] * unbias);
    }
    ns_fill_nan(s->batch_psi2, d);
    free(mean);
    normalize_rows(s, x, s->batch_mean, N);
    ns_affine_forward(s, y, N);
}

/* With g = weight * dy and sums over all rows (padding rows use mu_B and var_B too):
 *   dL/dmu_B  = -inv * sum g          dL/dvar_B = -0.5 * inv^2 * sum g * xhat
 *   dx_i = inv * (g_i - sum(g)/n - xhat_i * sum(g*xhat)/n)   for real rows i
 *   dx_i = inv * g_i                                          for padding rows. */
void ns_batch_backward(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask, int N)
{
    int d = s->d;
    ns_affine_backward(s, dy, dx, N);
    /* sum_g, sum_gx and the real row count, summed over the site's ranks */
    double *sum_g = ns_xcalloc(2 * (size_t)d + 1, sizeof(double)), *sum_gx = sum_g + d;
    int n = 0;
    for (int r = 0; r < N; r++) {
        const float *g = dx + (size_t)r * d, *xh = s->xhat + (size_t)r * d;
        n += mask[r] != 0;
        for (int c = 0; c < d; c++) {
            sum_g[c] += g[c];
            sum_gx[c] += g[c] * xh[c];
        }
    }
    sum_g[2 * d] = n;
    ns_norm_reduce(s, sum_g, 2 * d + 1);
    n = (int)sum_g[2 * d];
    float *mean_g = ns_xmalloc(sizeof(float) * 2 * (size_t)d), *mean_gx = mean_g + d;
    for (int c = 0; c < d; c++) {
        float inv = s->inv_std[c];
        mean_g[c] = n > 0 ? (float)(sum_g[c] / n) : 0.0f;
        mean_gx[c] = n > 0 ? (float)(sum_gx[c] / n) : 0.0f;
        s->g_mean[c] = (float)(-inv * sum_g[c]);
        s->g_var[c] = (float)(-0.5 * inv * inv * sum_gx[c]);
    }
    ns_fill_nan(s->g_psi2, d);
    for (int r = 0; r < N; r++) {
        float *g = dx + (size_t)r * d;
        const float *xh = s->xhat + (size_t)r * d;
        if (mask[r])
            for (int c = 0; c < d; c++)
                g[c] = s->inv_std[c] * (g[c] - mean_g[c] - xh[c] * mean_gx[c]);
        else
            for (int c = 0; c < d; c++)
                g[c] = s->inv_std[c] * g[c];
    }
    free(sum_g);
    free(mean_g);
}

const NsNormScheme ns_scheme_batch = {
    .name = "batch",
    .batch_stats = NS_STAT_MEAN | NS_STAT_VAR,
    .state = NS_STATE_RUNNING_MEAN | NS_STATE_RUNNING_VAR,
    .affine = 1,
    .exact_backward = 1,
    .bn_momentum = 0.1f,
    .forward = ns_batch_forward,
    .backward = ns_batch_backward,
};
