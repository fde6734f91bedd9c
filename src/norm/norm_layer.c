/* LayerNorm: per row, (x - mean) / sqrt(var + eps), then the affine map. No state, and the
 * same computation in training and inference. Statistics are per position, so padding rows are
 * normalized like any other row but never mix with real ones. */
#include <math.h>

#include "norm.h"

static void layer_forward(NsNormSite *s, const float *x, float *y, const uint8_t *mask, int N,
                          int training)
{
    (void)mask;
    (void)training;
    int d = s->d;
    for (int r = 0; r < N; r++) {
        const float *row = x + (size_t)r * d;
        double mean = 0.0, var = 0.0;
        for (int c = 0; c < d; c++)
            mean += row[c];
        mean /= d;
        for (int c = 0; c < d; c++)
            var += (row[c] - mean) * (row[c] - mean);
        var /= d;
        float inv = (float)(1.0 / sqrt(var + s->eps));
        s->inv_std[r] = inv;
        float *xh = s->xhat + (size_t)r * d;
        for (int c = 0; c < d; c++)
            xh[c] = (float)(row[c] - mean) * inv;
    }
    ns_affine_forward(s, y, N);
}

/* dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)), per row, with g = weight * dy. */
static void layer_backward(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask, int N)
{
    (void)mask;
    int d = s->d;
    ns_affine_backward(s, dy, dx, N);
    for (int r = 0; r < N; r++) {
        float *g = dx + (size_t)r * d;
        const float *xh = s->xhat + (size_t)r * d;
        double g_mean = 0.0, gx_mean = 0.0;
        for (int c = 0; c < d; c++) {
            g_mean += g[c];
            gx_mean += g[c] * xh[c];
        }
        float gm = (float)(g_mean / d), gxm = (float)(gx_mean / d), inv = s->inv_std[r];
        for (int c = 0; c < d; c++)
            g[c] = inv * (g[c] - gm - xh[c] * gxm);
    }
}

const NsNormScheme ns_scheme_layer = {
    .name = "layer",
    .affine = 1,
    .exact_backward = 1,
    .forward = layer_forward,
    .backward = layer_backward,
};
