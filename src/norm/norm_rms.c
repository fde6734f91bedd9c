/* RMSNorm: per row, x / sqrt(mean(x^2) + eps), then the affine map (with bias, as in the other
 * schemes, so the comparison isolates the normalization). No state. */
#include <math.h>

#include "norm.h"

static void rms_forward(NsNormSite *s, const float *x, float *y, const uint8_t *mask, int N,
                        int training)
{
    (void)mask;
    (void)training;
    int d = s->d;
    for (int r = 0; r < N; r++) {
        const float *row = x + (size_t)r * d;
        double ms = 0.0;
        for (int c = 0; c < d; c++)
            ms += (double)row[c] * row[c];
        float inv = (float)(1.0 / sqrt(ms / d + s->eps));
        s->inv_std[r] = inv;
        float *xh = s->xhat + (size_t)r * d;
        for (int c = 0; c < d; c++)
            xh[c] = row[c] * inv;
    }
    ns_affine_forward(s, y, N);
}

/* dx = inv * (g - xhat * mean(g * xhat)) per row. */
static void rms_backward(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask, int N)
{
    (void)mask;
    int d = s->d;
    ns_affine_backward(s, dy, dx, N);
    for (int r = 0; r < N; r++) {
        float *g = dx + (size_t)r * d;
        const float *xh = s->xhat + (size_t)r * d;
        double gx = 0.0;
        for (int c = 0; c < d; c++)
            gx += g[c] * xh[c];
        float gxm = (float)(gx / d), inv = s->inv_std[r];
        for (int c = 0; c < d; c++)
            g[c] = inv * (g[c] - xh[c] * gxm);
    }
}

const NsNormScheme ns_scheme_rms = {
    .name = "rms",
    .affine = 1,
    .exact_backward = 1,
    .forward = rms_forward,
    .backward = rms_backward,
};
