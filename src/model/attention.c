#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>

/* Row-wise causal softmax of scores [T][T] in place: row t keeps keys 0..t. */
static void causal_softmax(float *s, int T)
{
    for (int t = 0; t < T; t++) {
        float *row = s + (size_t)t * T;
        float maxv = row[0];
        for (int k = 1; k <= t; k++)
            maxv = row[k] > maxv ? row[k] : maxv;
        float sum = 0.0f;
        for (int k = 0; k <= t; k++) {
            row[k] = expf(row[k] - maxv);
            sum += row[k];
        }
        float inv = 1.0f / sum;
        for (int k = 0; k <= t; k++)
            row[k] *= inv;
        for (int k = t + 1; k < T; k++)
            row[k] = 0.0f;
    }
}

void ns_attention_forward(float *ctx, float *probs, const float *qkv, int B, int T, int d, int H)
{
    int dk = d / H, ld = 3 * d;
    float scale = 1.0f / sqrtf((float)dk);
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * ld;
        for (int h = 0; h < H; h++) {
            const float *q = base + h * dk, *k = base + d + h * dk, *v = base + 2 * d + h * dk;
            float *p = probs + ((size_t)b * H + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dk, scale, q, ld, k, ld,
                        0.0f, p, T);
            causal_softmax(p, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dk, T, 1.0f, p, T, v, ld,
                        0.0f, ctx + (size_t)b * T * d + h * dk, d);
        }
    }
}

/* dS = P * (dP - rowsum(dP * P)) * scale, in place over dP. Masked entries have P = 0 and so
 * get dS = 0 with no special case. */
static void softmax_backward(float *dp, const float *p, int T, float scale)
{
    for (int t = 0; t < T; t++) {
        float *g = dp + (size_t)t * T;
        const float *pr = p + (size_t)t * T;
        float dot = 0.0f;
        for (int k = 0; k <= t; k++)
            dot += g[k] * pr[k];
        for (int k = 0; k < T; k++)
            g[k] = pr[k] * (g[k] - dot) * scale;
    }
}

void ns_attention_backward(float *dqkv, const float *dctx, const float *qkv, const float *probs,
                           float *scratch, int B, int T, int d, int H)
{
    int dk = d / H, ld = 3 * d;
    float scale = 1.0f / sqrtf((float)dk);
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * ld;
        float *dbase = dqkv + (size_t)b * T * ld;
        const float *dc_b = dctx + (size_t)b * T * d;
        for (int h = 0; h < H; h++) {
            const float *q = base + h * dk, *k = base + d + h * dk, *v = base + 2 * d + h * dk;
            float *dq = dbase + h * dk, *dk_ = dbase + d + h * dk, *dv = dbase + 2 * d + h * dk;
            const float *p = probs + ((size_t)b * H + h) * T * T;
            const float *dc = dc_b + h * dk;
            /* dP = dctx V^T ; dV = P^T dctx */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dk, 1.0f, dc, d, v, ld,
                        0.0f, scratch, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dk, T, 1.0f, p, T, dc, d, 0.0f,
                        dv, ld);
            softmax_backward(scratch, p, T, scale);
            /* dQ = dS K ; dK = dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dk, T, 1.0f, scratch, T, k,
                        ld, 0.0f, dq, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dk, T, 1.0f, scratch, T, q, ld,
                        0.0f, dk_, ld);
        }
    }
}
