/* PN-V: divide by the quadratic mean of the batch, psi2_B = mean over real rows of x^2, with no
 * mean subtraction, and take the exact gradient through psi2_B. A running psi2 (momentum
 * 1 - pn_alpha) replaces psi2_B at inference. The helpers here are also the warm-up phase of
 * the paper's PN (norm_power.c). */
#include <math.h>
#include <stdlib.h>

#include "norm.h"
#include "util.h"

int ns_psi2_batch(NsNormSite *s, const float *x, const uint8_t *mask, int N)
{
    int d = s->d;
    double *sq = ns_xmalloc(sizeof(double) * (size_t)d);
    int n = ns_channel_sq_mean(s, sq, x, mask, N);
    for (int c = 0; c < d; c++)
        s->batch_psi2[c] = (float)sq[c];
    free(sq);
    ns_fill_nan(s->batch_mean, d);
    ns_fill_nan(s->batch_var, d);
    return n;
}

void ns_psi2_normalize(NsNormSite *s, const float *x, const float *psi2, int N)
{
    int d = s->d;
    for (int c = 0; c < d; c++)
        s->inv_std[c] = 1.0f / sqrtf(psi2[c] + s->eps);
    for (int r = 0; r < N; r++) {
        const float *row = x + (size_t)r * d;
        float *xh = s->xhat + (size_t)r * d;
        for (int c = 0; c < d; c++)
            xh[c] = row[c] * s->inv_std[c];
    }
}

/* dL/dpsi2_B = -0.5 * inv^2 * sum over all rows of g * xhat (padding rows are scaled by psi2_B
 * too), and dx_i = inv * (g_i - xhat_i * sum(g*xhat)/n) for real rows, inv * g_i for padding. */
void ns_psi2_exact_backward(NsNormSite *s, float *g, const uint8_t *mask, int N)
{
    int d = s->d, n = 0;
    double *sum_gx = ns_xcalloc((size_t)d + 1, sizeof(double)); /* and the real row count */
    for (int r = 0; r < N; r++) {
        const float *gr = g + (size_t)r * d, *xh = s->xhat + (size_t)r * d;
        n += mask[r] != 0;
        for (int c = 0; c < d; c++)
            sum_gx[c] += gr[c] * xh[c];
    }
    sum_gx[d] = n;
    ns_norm_reduce(s, sum_gx, d + 1);
    n = (int)sum_gx[d];
    float *mean_gx = ns_xmalloc(sizeof(float) * (size_t)d);
    for (int c = 0; c < d; c++) {
        float inv = s->inv_std[c];
        mean_gx[c] = n > 0 ? (float)(sum_gx[c] / n) : 0.0f;
        s->g_psi2[c] = (float)(-0.5 * inv * inv * sum_gx[c]);
    }
    for (int r = 0; r < N; r++) {
        float *gr = g + (size_t)r * d;
        const float *xh = s->xhat + (size_t)r * d;
        if (mask[r])
            for (int c = 0; c < d; c++)
                gr[c] = s->inv_std[c] * (gr[c] - xh[c] * mean_gx[c]);
        else
            for (int c = 0; c < d; c++)
                gr[c] = s->inv_std[c] * gr[c];
    }
    free(sum_gx);
    free(mean_gx);
}

static void power_v_forward(NsNormSite *s, const float *x, float *y, const uint8_t *mask, int N,
                            int training)
{
    if (!training) {
        ns_psi2_normalize(s, x, s->running_psi2, N);
        ns_affine_forward(s, y, N);
        return;
    }
    s->step++;
    ns_psi2_batch(s, x, mask, N);
    ns_psi2_normalize(s, x, s->batch_psi2, N);
    for (int c = 0; c < s->d; c++)
        s->running_psi2[c] = s->alpha * s->running_psi2[c] + (1.0f - s->alpha) * s->batch_psi2[c];
    ns_affine_forward(s, y, N);
}

static void power_v_backward(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask, int N)
{
    ns_affine_backward(s, dy, dx, N);
    ns_psi2_exact_backward(s, dx, mask, N);
    ns_fill_nan(s->g_mean, s->d);
    ns_fill_nan(s->g_var, s->d);
}

const NsNormScheme ns_scheme_power_v = {
    .name = "power-v",
    .batch_stats = NS_STAT_PSI2,
    .state = NS_STATE_RUNNING_PSI2,
    .affine = 1,
    .exact_backward = 1,
    .forward = power_v_forward,
    .backward = power_v_backward,
};
