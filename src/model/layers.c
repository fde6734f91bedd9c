#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void ns_positional_table(float *pe, int T, int d)
{
    for (int t = 0; t < T; t++) {
        for (int i = 0; 2 * i < d; i++) {
            double angle = t / pow(10000.0, (2.0 * i) / d);
            pe[(size_t)t * d + 2 * i] = (float)sin(angle);
            if (2 * i + 1 < d)
                pe[(size_t)t * d + 2 * i + 1] = (float)cos(angle);
        }
    }
}

void ns_embed_forward(float *x, const int32_t *tokens, const float *embed, const float *pe, int B,
                      int T, int d)
{
    float scale = sqrtf((float)d);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *e = embed + (size_t)tokens[b * (T + 1) + t] * d;
            const float *p = pe + (size_t)t * d;
            float *out = x + ((size_t)b * T + t) * d;
            for (int i = 0; i < d; i++)
                out[i] = scale * e[i] + p[i];
        }
    }
}

void ns_embed_backward(float *dembed, const float *dx, const int32_t *tokens, int B, int T, int d)
{
    float scale = sqrtf((float)d);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *de = dembed + (size_t)tokens[b * (T + 1) + t] * d;
            const float *g = dx + ((size_t)b * T + t) * d;
            for (int i = 0; i < d; i++)
                de[i] += scale * g[i];
        }
    }
}

void ns_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int in,
                       int out)
{
    float beta = 0.0f;
    if (b) {
        /* Start from the broadcast bias and let sgemm add x W^T: one pass over y. */
        for (int r = 0; r < N; r++)
            memcpy(y + (size_t)r * out, b, sizeof(float) * (size_t)out);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in, W, in, beta, y,
                out);
}

void ns_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                        const float *W, int N, int in, int out, int accumulate_dx)
{
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, W, in,
                    accumulate_dx ? 1.0f : 0.0f, dx, in);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x, in, 1.0f,
                dW, in);
    if (db) {
        for (int r = 0; r < N; r++) {
            const float *g = dy + (size_t)r * out;
            for (int j = 0; j < out; j++)
                db[j] += g[j];
        }
    }
}

void ns_relu_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void ns_relu_backward(float *dx, const float *dy, const float *y, size_t n)
{
    /* Load dy unconditionally: a conditional load kept GCC from vectorizing this loop, and
     * the branch on the sign of y mispredicted half the time (3 % of a step). */
    for (size_t i = 0; i < n; i++) {
        float g = dy[i];
        dx[i] = y[i] > 0.0f ? g : 0.0f;
    }
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* One xoshiro256** draw on a state held in locals (inlined, they stay in registers): the same
 * numbers as ns_rng_next without a call and a store of the state per element. */
static inline uint64_t xoshiro_draw(uint64_t *s0, uint64_t *s1, uint64_t *s2, uint64_t *s3)
{
    uint64_t r = rotl64(*s1 * 5, 7) * 9, t = *s1 << 17;
    *s2 ^= *s0;
    *s3 ^= *s1;
    *s1 ^= *s2;
    *s0 ^= *s3;
    *s2 ^= t;
    *s3 = rotl64(*s3, 45);
    return r;
}

/* Advances xoshiro256** by n draws (the masks of other ranks' elements). */
static void rng_skip(uint64_t *s, size_t n)
{
    uint64_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    for (size_t i = 0; i < n; i++)
        (void)xoshiro_draw(&s0, &s1, &s2, &s3);
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
}

void ns_dropout_forward_part(float *y, const float *x, float *keep, float p, size_t n,
                             size_t skip, size_t rest, NsRng *rng)
{
    if (p > 0.0f)
        rng_skip(rng->s, skip);
    ns_dropout_forward(y, x, keep, p, n, rng);
    if (p > 0.0f)
        rng_skip(rng->s, rest);
}

void ns_dropout_forward(float *y, const float *x, float *keep, float p, size_t n, NsRng *rng)
{
    if (p <= 0.0f) {
        if (y != x)
            memcpy(y, x, sizeof(float) * n);
        return;
    }
    float scale = 1.0f / (1.0f - p);
    /* Compare 24-bit integers instead of doubles: cheap and exactly reproducible. */
    uint32_t threshold = (uint32_t)(p * 16777216.0f);
    /* tests/test_kernels.c checks the masks against ns_rng_next */
    uint64_t s0 = rng->s[0], s1 = rng->s[1], s2 = rng->s[2], s3 = rng->s[3];
    for (size_t i = 0; i < n; i++) {
        uint64_t r = xoshiro_draw(&s0, &s1, &s2, &s3);
        keep[i] = (uint32_t)(r >> 40) >= threshold ? scale : 0.0f;
    }
    rng->s[0] = s0, rng->s[1] = s1, rng->s[2] = s2, rng->s[3] = s3;
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * keep[i];
}

void ns_dropout_backward(float *dx, const float *dy, const float *keep, float p, size_t n)
{
    if (p <= 0.0f) {
        if (dx != dy)
            memcpy(dx, dy, sizeof(float) * n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * keep[i];
}

void ns_add(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

void ns_add_inplace(float *y, const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a[i];
}
