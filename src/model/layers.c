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
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
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
    for (size_t i = 0; i < n; i++) {
        uint32_t r = (uint32_t)(ns_rng_next(rng) >> 40);
        keep[i] = r >= threshold ? scale : 0.0f;
        y[i] = x[i] * keep[i];
    }
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

static int count_real(const uint8_t *mask, size_t n)
{
    int count = 0;
    for (size_t i = 0; i < n; i++)
        count += mask[i] != 0;
    return count;
}

double ns_xent_forward(float *probs, const int32_t *tokens, const uint8_t *mask, int B, int T,
                       int V)
{
    double total = 0.0;
    int n_real = count_real(mask, (size_t)B * T);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            float *p = probs + r * V;
            float maxv = p[0];
            for (int j = 1; j < V; j++)
                maxv = p[j] > maxv ? p[j] : maxv;
            /* Loss from log-sum-exp of the logits, before they become probabilities, so a
             * tiny target probability does not underflow to log(0). */
            float target_logit = mask[r] ? p[tokens[b * (T + 1) + t + 1]] : 0.0f;
            double sum = 0.0;
            for (int j = 0; j < V; j++) {
                p[j] = expf(p[j] - maxv);
                sum += p[j];
            }
            float inv = (float)(1.0 / sum);
            for (int j = 0; j < V; j++)
                p[j] *= inv;
            if (mask[r])
                total += log(sum) - ((double)target_logit - maxv);
        }
    }
    return n_real > 0 ? total / n_real : 0.0;
}

void ns_xent_backward(float *dlogits, const int32_t *tokens, const uint8_t *mask, int B, int T,
                      int V)
{
    int n_real = count_real(mask, (size_t)B * T);
    float inv_n = n_real > 0 ? 1.0f / (float)n_real : 0.0f;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            float *g = dlogits + r * V;
            if (!mask[r]) {
                memset(g, 0, sizeof(float) * (size_t)V);
                continue;
            }
            for (int j = 0; j < V; j++)
                g[j] *= inv_n;
            g[tokens[b * (T + 1) + t + 1]] -= inv_n;
        }
    }
}
