/* Power Normalization as the paper states it (Shen et al. 2020, Algorithm 1).
 *
 * Warm-up (t <= pn_warmup): PN-V on the batch, with the exact gradient through psi2_B, while
 * running_psi2 becomes the plain average of the psi2_B seen so far.
 * After warm-up the forward pass divides by the running quadratic mean r (its value before this
 * step), so the batch's own statistics no longer enter the output. The backward pass is the
 * paper's approximation: it treats r as a constant but subtracts nu * xhat, where nu is a
 * running average of mean(xhat * g') — this stands in for the gradient that would flow through
 * the statistics and is what keeps the gradient bounded. */
#include <math.h>

#include "norm.h"

static void power_forward(NsNormSite *s, const float *x, float *y, const uint8_t *mask, int N,
                          int training)
{
    int d = s->d;
    if (!training) {
        ns_psi2_normalize(s, x, s->running_psi2, N);
        ns_affine_forward(s, y, N);
        return;
    }
    int64_t t = ++s->step;
    ns_psi2_batch(s, x, mask, N);
    s->in_warmup = t <= s->warmup;
    if (s->in_warmup) {
        ns_psi2_normalize(s, x, s->batch_psi2, N);
        float keep = (float)(t - 1) / (float)t;
        for (int c = 0; c < d; c++)
            s->running_psi2[c] = s->running_psi2[c] * keep + s->batch_psi2[c] / (float)t;
    } else {
        ns_psi2_normalize(s, x, s->running_psi2, N);
        for (int c = 0; c < d; c++)
            s->running_psi2[c] =
                s->alpha * s->running_psi2[c] + (1.0f - s->alpha) * s->batch_psi2[c];
    }
    ns_affine_forward(s, y, N);
}

/* After warm-up, with g = weight * dy and nu as it was before this step:
 *   g' = g - nu * xhat;  dx = g' / sqrt(r + eps) at real rows, 0 at padding;
 *   nu <- nu + (1 - alpha) * mean over real rows of xhat * g'. */
static void power_backward(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask, int N)
{
    int d = s->d;
    ns_affine_backward(s, dy, dx, N);
    ns_fill_nan(s->g_mean, d);
    ns_fill_nan(s->g_var, d);
    if (s->in_warmup) {
        ns_psi2_exact_backward(s, dx, mask, N);
        return;
    }
    ns_fill_nan(s->g_psi2, d);
    double gamma_sum[d + 1]; /* and the real row count */
    int n = 0;
    for (int c = 0; c < d; c++)
        gamma_sum[c] = 0.0;
    for (int r = 0; r < N; r++) {
        float *g = dx + (size_t)r * d;
        const float *xh = s->xhat + (size_t)r * d;
        if (!mask[r]) {
            for (int c = 0; c < d; c++)
                g[c] = 0.0f;
            continue;
        }
        n++;
        for (int c = 0; c < d; c++) {
            float gp = g[c] - s->nu[c] * xh[c];
            gamma_sum[c] += xh[c] * gp;
            g[c] = gp * s->inv_std[c];
        }
    }
    gamma_sum[d] = n;
    ns_norm_reduce(s, gamma_sum, d + 1);
    n = (int)gamma_sum[d];
    for (int c = 0; c < d; c++)
        s->nu[c] += (1.0f - s->alpha) * (n > 0 ? (float)(gamma_sum[c] / n) : 0.0f);
}

/* After warm-up the backward subtracts nu * xhat; in warm-up it is exact and subtracts nothing. */
static double power_correction_scale(const NsNormSite *s) { return s->in_warmup ? NAN : 1.0; }

const NsNormScheme ns_scheme_power = {
    .name = "power",
    .batch_stats = NS_STAT_PSI2,
    .state = NS_STATE_RUNNING_PSI2 | NS_STATE_NU | NS_STATE_STEP,
    .affine = 1,
    .groups = NS_GROUPS_OPTION,
    .exact_backward = 0,
    .correction_scale = power_correction_scale,
    .forward = power_forward,
    .backward = power_backward,
};
