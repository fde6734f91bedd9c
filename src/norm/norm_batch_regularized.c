/* Regularized BN (model-spec.md "batch-regularized"; Wang, Wu, Huang, NeurIPS 2022, the `diff`
 * penalty of their MaskBatchNorm3d): `batch` in every respect, plus a penalty on the gap between
 * this batch's statistics and the running ones, added to the training objective:
 *   P = (lm * sum_c (r_mean_c - mu_B,c)^2 + lv * sum_c |r_var_c - var_B,c|) / n
 * with the running values as stored after this step's update, and n the real rows the
 * cross-entropy's mean runs over (the whole batch's, over all ranks). The running values are
 * constants to the gradient, so P reaches x only through mu_B and var_B, along the same exact
 * path as the cross-entropy's gradient does in batch's backward. */
#include <math.h>
#include <stdlib.h>

#include "norm.h"
#include "util.h"

static int real_rows(const NsNormSite *s, const uint8_t *mask, int N)
{
    int n = 0;
    for (int r = 0; r < N; r++)
        n += mask[r] != 0;
    return ns_norm_reduce_count(s, n);
}

/* P and, per channel, the coefficients backward adds to a real row's dL/dx:
 *   dP/dx_rc = dP/dmu_c / n_S + dP/dvar_c * 2 (x_rc - mu_c) / n_S,  x_rc - mu_c = xhat_rc / inv_c
 * stored as penalty_grad[c] = dP/dmu_c / n_S and penalty_grad[d + c] = 2 dP/dvar_c / (n_S inv_c)
 * (the factor of xhat), with n_S the rows the statistics ran over (this rank's alone with
 * --batch-stats local) and inv_c = 1/sqrt(var_B + eps) from batch's forward. */
static void penalty_forward(NsNormSite *s, int stat_rows)
{
    int d = s->d, n = s->objective_rows > 0 ? s->objective_rows : stat_rows;
    double lm = s->penalty_mean, lv = s->penalty_var, sq = 0.0, abs_dev = 0.0;
    double per_row = stat_rows > 0 ? 1.0 / stat_rows : 0.0, inv_n = n > 0 ? 1.0 / n : 0.0;
    for (int c = 0; c < d; c++) {
        double dm = (double)s->running_mean[c] - s->batch_mean[c];
        double dv = (double)s->running_var[c] - s->batch_var[c];
        sq += dm * dm;
        abs_dev += fabs(dv);
        double sign = dv > 0 ? 1.0 : dv < 0 ? -1.0 : 0.0;
        s->penalty_grad[c] = (float)(-2.0 * lm * dm * inv_n * per_row);
        s->penalty_grad[d + c] = (float)(-lv * sign * inv_n * 2.0 * per_row / s->inv_std[c]);
    }
    s->penalty = (lm * sq + lv * abs_dev) * inv_n;
}

static void regularized_forward(NsNormSite *s, const float *x, float *y, const uint8_t *mask,
                                int N, int training)
{
    ns_batch_forward(s, x, y, mask, N, training);
    s->penalty = 0.0;
    if (training)
        penalty_forward(s, real_rows(s, mask, N));
}

/* batch's backward, then the penalty's part at the real rows. */
static void regularized_backward(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask,
                                 int N)
{
    ns_batch_backward(s, dy, dx, mask, N);
    int d = s->d;
    const float *by_mean = s->penalty_grad, *by_var = s->penalty_grad + d;
    for (int r = 0; r < N; r++) {
        if (!mask[r])
            continue;
        float *g = dx + (size_t)r * d;
        const float *xh = s->xhat + (size_t)r * d;
        for (int c = 0; c < d; c++)
            g[c] += by_mean[c] + by_var[c] * xh[c];
    }
}

const NsNormScheme ns_scheme_batch_regularized = {
    .name = "batch-regularized",
    .batch_stats = NS_STAT_MEAN | NS_STAT_VAR,
    .state = NS_STATE_RUNNING_MEAN | NS_STATE_RUNNING_VAR,
    .affine = 1,
    .exact_backward = 1,
    .bn_momentum = 0.1f,
    .release_bn_momentum = 0.05f, /* the release's IWSLT14 runs */
    .has_penalty = 1,
    /* the release's IWSLT14 settings: post lm 60, lv 0; pre lm 0.1, lv 0.01 */
    .penalty_defaults = {[NS_POS_POST] = {60.0f, 0.0f}, [NS_POS_PRE] = {0.1f, 0.01f}},
    .forward = regularized_forward,
    .backward = regularized_backward,
};
