/* Softmax cross-entropy over the vocabulary: after the sgemms, the largest cost of a step
 * (N x V exponentials, V = 10000 on `small`). The row kernels (max, exp-and-sum, scale) have an
 * AVX2+FMA version chosen at run time with __builtin_cpu_supports, so the shipped build runs on
 * any x86-64 (no -march=native) and uses 8-wide vectors where the CPU has them.
 *
 * Round-off: the AVX2 exp is a degree-5 polynomial (Cephes expf, within 2 ulp of libm's expf)
 * and the row sum is taken in 8 double lanes instead of one, so results differ from the scalar
 * path in the last bits of the float (never beyond round-off; the debug states are reproduced
 * by both). Padded rows are skipped in training: their gradient is 0 and they are not in the
 * loss, so their exponentials were never needed. */
#include "layers.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NS_HAVE_AVX2_PATH 1
#endif

/* ------------------------------------------------------------------ scalar row kernels */

static float row_max_scalar(const float *p, int V)
{
    float m = p[0];
    for (int j = 1; j < V; j++)
        m = p[j] > m ? p[j] : m;
    return m;
}

/* p[j] = exp(p[j] - maxv); returns the sum in double (10^4 terms of very different size). */
static double row_exp_sum_scalar(float *p, int V, float maxv)
{
    double sum = 0.0;
    for (int j = 0; j < V; j++) {
        p[j] = expf(p[j] - maxv);
        sum += p[j];
    }
    return sum;
}

static void row_scale_scalar(float *p, int V, float s)
{
    for (int j = 0; j < V; j++)
        p[j] *= s;
}

/* ------------------------------------------------------------------ AVX2 row kernels */

#ifdef NS_HAVE_AVX2_PATH
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static float row_max_avx2(const float *p, int V)
{
    int j = 0;
    float m = p[0];
    if (V >= 8) {
        __m256 vm = _mm256_loadu_ps(p);
        for (j = 8; j + 8 <= V; j += 8)
            vm = _mm256_max_ps(vm, _mm256_loadu_ps(p + j));
        float lanes[8];
        _mm256_storeu_ps(lanes, vm);
        m = lanes[0];
        for (int k = 1; k < 8; k++)
            m = lanes[k] > m ? lanes[k] : m;
    }
    for (; j < V; j++)
        m = p[j] > m ? p[j] : m;
    return m;
}

/* exp(x) for x <= 0 (arguments are logits minus their row maximum): x = n ln2 + r, |r| <= ln2/2,
 * exp(r) by Cephes' polynomial, 2^n through the exponent bits. Below -87.3 the result is 0
 * (libm gives 0 or a denormal there; either is nothing next to the row's maximum term 1). */
AVX2 static inline __m256 exp256_nonpos(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.3365478515625f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(x, lo);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127));
    __m256 pow2n = _mm256_castsi256_ps(_mm256_slli_epi32(n, 23));
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, pow2n));
}

AVX2 static double row_exp_sum_avx2(float *p, int V, float maxv)
{
    __m256 vmax = _mm256_set1_ps(maxv);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int j = 0;
    for (; j + 8 <= V; j += 8) {
        __m256 e = exp256_nonpos(_mm256_sub_ps(_mm256_loadu_ps(p + j), vmax));
        _mm256_storeu_ps(p + j, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; j < V; j++) {
        p[j] = expf(p[j] - maxv);
        sum += p[j];
    }
    return sum;
}

AVX2 static void row_scale_avx2(float *p, int V, float s)
{
    __m256 vs = _mm256_set1_ps(s);
    int j = 0;
    for (; j + 8 <= V; j += 8)
        _mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), vs));
    for (; j < V; j++)
        p[j] *= s;
}
#endif

/* ------------------------------------------------------------------ dispatch */

typedef struct {
    float (*max)(const float *, int);
    double (*exp_sum)(float *, int, float);
    void (*scale)(float *, int, float);
} RowKernels;

static const RowKernels *kernels(void)
{
    static const RowKernels scalar = {row_max_scalar, row_exp_sum_scalar, row_scale_scalar};
#ifdef NS_HAVE_AVX2_PATH
    static const RowKernels avx2 = {row_max_avx2, row_exp_sum_avx2, row_scale_avx2};
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &avx2;
#endif
    return &scalar;
}

int ns_count_real(const uint8_t *mask, size_t n)
{
    int count = 0;
    for (size_t i = 0; i < n; i++)
        count += mask[i] != 0;
    return count;
}

/* ------------------------------------------------------------------ cross-entropy */

double ns_xent_forward(float *probs, const int32_t *tokens, const uint8_t *mask, int B, int T,
                       int V)
{
    return ns_xent_forward_n(probs, tokens, mask, B, T, V, ns_count_real(mask, (size_t)B * T));
}

double ns_xent_forward_backward(float *logits, const int32_t *tokens, const uint8_t *mask, int B,
                                int T, int V)
{
    return ns_xent_forward_backward_n(logits, tokens, mask, B, T, V,
                                      ns_count_real(mask, (size_t)B * T));
}

void ns_xent_backward(float *dlogits, const int32_t *tokens, const uint8_t *mask, int B, int T,
                      int V)
{
    ns_xent_backward_n(dlogits, tokens, mask, B, T, V, ns_count_real(mask, (size_t)B * T));
}

double ns_xent_forward_n(float *probs, const int32_t *tokens, const uint8_t *mask, int B, int T,
                         int V, int n_real)
{
    const RowKernels *k = kernels();
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            float *p = probs + r * V;
            float maxv = k->max(p, V);
            /* Loss from log-sum-exp of the logits, before they become probabilities, so a
             * tiny target probability does not underflow to log(0). */
            float target_logit = mask[r] ? p[tokens[b * (T + 1) + t + 1]] : 0.0f;
            double sum = k->exp_sum(p, V, maxv);
            k->scale(p, V, (float)(1.0 / sum));
            if (mask[r])
                total += log(sum) - ((double)target_logit - maxv);
        }
    }
    return n_real > 0 ? total / n_real : 0.0;
}

double ns_xent_forward_backward_n(float *logits, const int32_t *tokens, const uint8_t *mask,
                                  int B, int T, int V, int n_real)
{
    const RowKernels *k = kernels();
    double total = 0.0;
    double inv_n = n_real > 0 ? 1.0 / n_real : 0.0;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            float *g = logits + r * V;
            if (!mask[r]) {
                memset(g, 0, sizeof(float) * (size_t)V);
                continue;
            }
            int target = tokens[b * (T + 1) + t + 1];
            float maxv = k->max(g, V);
            float target_logit = g[target];
            double sum = k->exp_sum(g, V, maxv);
            /* (softmax - onehot) / n_real in one pass over the row. */
            k->scale(g, V, (float)(inv_n / sum));
            g[target] -= (float)inv_n;
            total += log(sum) - ((double)target_logit - maxv);
        }
    }
    return n_real > 0 ? total / n_real : 0.0;
}

void ns_xent_backward_n(float *dlogits, const int32_t *tokens, const uint8_t *mask, int B, int T,
                        int V, int n_real)
{
    float inv_n = n_real > 0 ? 1.0f / (float)n_real : 0.0f;
    const RowKernels *k = kernels();
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            float *g = dlogits + r * V;
            if (!mask[r]) {
                memset(g, 0, sizeof(float) * (size_t)V);
                continue;
            }
            k->scale(g, V, inv_n);
            g[tokens[b * (T + 1) + t + 1]] -= inv_n;
        }
    }
}
