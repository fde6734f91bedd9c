/* Power Normalization as the authors' released code computes it, kept next to the paper's
 * version (norm_power.c) because the two differ and users ask which one produced a result:
 *  - the forward uses psi2_B while t <= pn_warmup and the running value after, like the paper,
 *    but running_psi2 receives BOTH the warm-up average (t < W) and the exponential update;
 *  - the backward divides by the batch statistic sqrt(psi2_B + eps) in every phase and at every
 *    row, padding included, with no gradient through psi2_B;
 *  - nu enters as (1 - alpha) * nu and is updated by the plain mean of g' * z over ALL rows. */
#include <math.h>

#include "norm.h"

static void official_forward(NsNormSite *s, const float *x, float *y, const uint8_t *mask, int N,
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
    ns_psi2_normalize(s, x, s->in_warmup ? s->batch_psi2 : s->running_psi2, N);
    if (t < s->warmup) {
        float keep = (float)(t - 1) / (float)t;
        for (int c = 0; c < d; c++)
            s->running_psi2[c] = s->running_psi2[c] * keep + s->batch_psi2[c] / (float)t;
    }
    for (int c = 0; c < d; c++)
        s->running_psi2[c] = s->alpha * s->running_psi2[c] + (1.0f - s->alpha) * s->batch_psi2[c];
    ns_affine_forward(s, y, N);
}

/* g' = g - (1 - alpha) * nu * z;  nu <- nu + mean over all N rows of g' * z;
 * dx = g' / sqrt(psi2_B + eps) at every row. */
static void official_backward(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask,
                              int N)
{
    (void)mask;
    int d = s->d;
    ns_affine_backward(s, dy, dx, N);
    ns_fill_nan(s->g_mean, d);
    ns_fill_nan(s->g_var, d);
    ns_fill_nan(s->g_psi2, d);
    double gz_sum[d + 1]; /* and the row count */
    float batch_inv[d];
    for (int c = 0; c < d; c++) {
        gz_sum[c] = 0.0;
        batch_inv[c] = 1.0f / sqrtf(s->batch_psi2[c] + s->eps);
    }
    float decay = 1.0f - s->alpha;
    for (int r = 0; r < N; r++) {
        float *g = dx + (size_t)r * d;
        const float *z = s->xhat + (size_t)r * d;
        for (int c = 0; c < d; c++) {
            float gp = g[c] - decay * s->nu[c] * z[c];
            gz_sum[c] += gp * z[c];
            g[c] = gp * batch_inv[c];
        }
    }
    gz_sum[d] = N;
    ns_norm_reduce(s, gz_sum, d + 1);
    N = (int)gz_sum[d];
    for (int c = 0; c < d; c++)
        s->nu[c] += N > 0 ? (float)(gz_sum[c] / N) : 0.0f;
}

/* (1 - alpha) * nu * z is subtracted in every phase. Computed in double, as the probes always
 * have, so recorded correction norms stay the same to the bit. */
static double official_correction_scale(const NsNormSite *s) { return 1.0 - s->alpha; }

const NsNormScheme ns_scheme_power_official = {
    .name = "power-official",
    .batch_stats = NS_STAT_PSI2,
    .state = NS_STATE_RUNNING_PSI2 | NS_STATE_NU | NS_STATE_STEP,
    .affine = 1,
    .groups = NS_GROUPS_OPTION,
    .exact_backward = 0,
    .correction_scale = official_correction_scale,
    .forward = official_forward,
    .backward = official_backward,
};
