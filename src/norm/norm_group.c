/* Group scaling in front of the PN schemes (model-spec.md): each row is divided, per group of
 * d/G consecutive channels, by sqrt(mean over the group of x^2 + eps). It is a per-row RMS
 * normalization without affine parameters, so its exact gradient has the RMSNorm form. */
#include <math.h>

#include "norm.h"

void ns_group_scale_forward(NsNormSite *s, const float *x, float *y, int N)
{
    int d = s->d, G = s->groups, w = d / G;
    for (int r = 0; r < N; r++) {
        for (int g = 0; g < G; g++) {
            const float *in = x + (size_t)r * d + (size_t)g * w;
            float *out = y + (size_t)r * d + (size_t)g * w;
            double ms = 0.0;
            for (int c = 0; c < w; c++)
                ms += (double)in[c] * in[c];
            float inv = (float)(1.0 / sqrt(ms / w + s->eps));
            s->group_inv[(size_t)r * G + g] = inv;
            for (int c = 0; c < w; c++)
                out[c] = in[c] * inv;
        }
    }
}

/* With u = x * inv (the scaled input, given as `u`): dx = inv * (du - u * mean_group(du * u)). */
void ns_group_scale_backward(NsNormSite *s, const float *du, const float *u, float *dx, int N)
{
    int d = s->d, G = s->groups, w = d / G;
    for (int r = 0; r < N; r++) {
        for (int g = 0; g < G; g++) {
            size_t off = (size_t)r * d + (size_t)g * w;
            double dot = 0.0;
            for (int c = 0; c < w; c++)
                dot += du[off + c] * u[off + c];
            float m = (float)(dot / w), inv = s->group_inv[(size_t)r * G + g];
            for (int c = 0; c < w; c++)
                dx[off + c] = inv * (du[off + c] - u[off + c] * m);
        }
    }
}
