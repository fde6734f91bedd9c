/* Finite-difference checks (fdcheck.h) of every layer's backward pass against its forward pass:
 * linear (and its accumulating second call), ReLU (in place too), embedding with repeated ids,
 * cross-entropy with padded and fully padded rows, dropout, causal attention. Forward passes
 * are also compared with the definitions (float64) where FD would not notice a consistent error
 * in both directions. The norm schemes and the whole model are in test_model_gradients.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "fdcheck.h"
#include "harness.h"
#include "layers.h"
#include "util.h"

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ------------------------------------------------------------------ layers */

typedef struct {
    float *x, *W, *b, *y, *w;
    int N, in, out;
} LinCtx;

static double lin_obj(void *p)
{
    LinCtx *c = p;
    ns_linear_forward(c->y, c->x, c->W, c->b, c->N, c->in, c->out);
    return wsum(c->w, c->y, (size_t)c->N * c->out);
}

static void test_linear(void **state)
{
    (void)state;
    NsRng rng;
    ns_rng_seed(&rng, 11);
    LinCtx c = {.N = 5, .in = 7, .out = 6};
    size_t nx = (size_t)c.N * c.in, nw = (size_t)c.out * c.in, ny = (size_t)c.N * c.out;
    c.x = falloc(nx), c.W = falloc(nw), c.b = falloc((size_t)c.out), c.y = falloc(ny);
    c.w = falloc(ny);
    fill_normal(c.x, nx, 0, 1, &rng);
    fill_normal(c.W, nw, 0, 0.5, &rng);
    fill_normal(c.b, (size_t)c.out, 0, 1, &rng);
    fill_normal(c.w, ny, 0, 1, &rng);
    /* forward against the definition y = x W^T + b (W is [out][in]) */
    lin_obj(&c);
    for (int r = 0; r < c.N; r++)
        for (int j = 0; j < c.out; j++) {
            double ref = c.b[j];
            for (int i = 0; i < c.in; i++)
                ref += (double)c.x[r * c.in + i] * c.W[j * c.in + i];
            assert_float_equal(c.y[r * c.out + j], ref, 1e-5 * (1 + fabs(ref)));
        }
    float *dx = falloc(nx), *dW = falloc(nw), *db = falloc((size_t)c.out);
    fill_normal(dx, nx, 0, 9, &rng); /* garbage: dx must be overwritten */
    ns_linear_backward(dx, dW, db, c.w, c.x, c.W, c.N, c.in, c.out, 0);
    fd_check("linear dx", lin_obj, &c, c.x, nx, dx, nx, 1e-2f, 0, &rng);
    fd_check("linear dW", lin_obj, &c, c.W, nw, dW, nw, 1e-2f, 0, &rng);
    fd_check("linear db", lin_obj, &c, c.b, (size_t)c.out, db, (size_t)c.out, 1e-2f, 0, &rng);
    /* a second call accumulates: dx (accumulate_dx), dW and db all double */
    float *dx1 = falloc(nx), *dW1 = falloc(nw), *db1 = falloc((size_t)c.out);
    memcpy(dx1, dx, sizeof(float) * nx);
    memcpy(dW1, dW, sizeof(float) * nw);
    memcpy(db1, db, sizeof(float) * (size_t)c.out);
    ns_linear_backward(dx, dW, db, c.w, c.x, c.W, c.N, c.in, c.out, 1);
    for (size_t i = 0; i < nx; i++)
        assert_float_equal(dx[i], 2 * dx1[i], 1e-5 * (1 + fabs(dx1[i])));
    for (size_t i = 0; i < nw; i++)
        assert_float_equal(dW[i], 2 * dW1[i], 1e-5 * (1 + fabs(dW1[i])));
    for (int j = 0; j < c.out; j++)
        assert_float_equal(db[j], 2 * db1[j], 1e-5 * (1 + fabs(db1[j])));
    free(c.x), free(c.W), free(c.b), free(c.y), free(c.w), free(dx), free(dW), free(db);
    free(dx1), free(dW1), free(db1);
}

typedef struct {
    float *x, *y, *w;
    size_t n;
} ReluCtx;

static double relu_obj(void *p)
{
    ReluCtx *c = p;
    ns_relu_forward(c->y, c->x, c->n);
    return wsum(c->w, c->y, c->n);
}

static void test_relu(void **state)
{
    (void)state;
    NsRng rng;
    ns_rng_seed(&rng, 12);
    ReluCtx c = {.n = 64};
    c.x = falloc(c.n), c.y = falloc(c.n), c.w = falloc(c.n);
    for (size_t i = 0; i < c.n; i++) /* keep |x| >= 0.05 so the kink is never crossed */
        c.x[i] = (float)((ns_rng_uniform(&rng) < 0.5 ? -1 : 1) * (0.05 + ns_rng_uniform(&rng)));
    fill_normal(c.w, c.n, 0, 1, &rng);
    relu_obj(&c);
    float *dx = falloc(c.n), *inplace = falloc(c.n);
    ns_relu_backward(dx, c.w, c.y, c.n);
    fd_check("relu dx", relu_obj, &c, c.x, c.n, dx, c.n, 1e-2f, 0, &rng);
    memcpy(inplace, c.w, sizeof(float) * c.n);
    ns_relu_backward(inplace, inplace, c.y, c.n);
    assert_memory_equal(inplace, dx, sizeof(float) * c.n);
    free(c.x), free(c.y), free(c.w), free(dx), free(inplace);
}

typedef struct {
    float *x, *embed, *pe, *w;
    int32_t *tokens;
    int B, T, d;
} EmbedCtx;

static double embed_obj(void *p)
{
    EmbedCtx *c = p;
    ns_embed_forward(c->x, c->tokens, c->embed, c->pe, c->B, c->T, c->d);
    return wsum(c->w, c->x, (size_t)c->B * c->T * c->d);
}

static void test_embed(void **state)
{
    (void)state;
    NsRng rng;
    ns_rng_seed(&rng, 13);
    int V = 6;
    EmbedCtx c = {.B = 3, .T = 4, .d = 8};
    size_t nx = (size_t)c.B * c.T * c.d, ne = (size_t)V * c.d;
    /* 12 input positions over 6 ids: repeats are certain, id 5 only appears as a target. */
    int32_t tokens[3][5] = {{3, 4, 3, 0, 2}, {0, 0, 1, 3, 5}, {4, 4, 4, 2, 0}};
    c.tokens = &tokens[0][0];
    c.x = falloc(nx), c.embed = falloc(ne), c.pe = falloc((size_t)c.T * c.d), c.w = falloc(nx);
    ns_positional_table(c.pe, c.T, c.d);
    for (int t = 0; t < c.T; t++)
        for (int i = 0; 2 * i < c.d; i++) {
            double a = t / pow(10000.0, 2.0 * i / c.d);
            assert_float_equal(c.pe[t * c.d + 2 * i], sin(a), 1e-6);
            assert_float_equal(c.pe[t * c.d + 2 * i + 1], cos(a), 1e-6);
        }
    fill_normal(c.embed, ne, 0, 0.4, &rng);
    fill_normal(c.w, nx, 0, 1, &rng);
    embed_obj(&c);
    for (int b = 0; b < c.B; b++) /* forward: sqrt(d) * embed[token] + PE[t] */
        for (int t = 0; t < c.T; t++)
            for (int i = 0; i < c.d; i++)
                assert_float_equal(c.x[(b * c.T + t) * c.d + i],
                                   sqrt(c.d) * c.embed[tokens[b][t] * c.d + i] + c.pe[t * c.d + i],
                                   1e-5);
    float *de = falloc(ne);
    ns_embed_backward(de, c.w, c.tokens, c.B, c.T, c.d);
    fd_check("embed dembed (repeated ids)", embed_obj, &c, c.embed, ne, de, ne, 1e-2f, 0, &rng);
    for (int i = 0; i < c.d; i++) /* id 5 is never an input */
        assert_true(de[5 * c.d + i] == 0.0f);
    free(c.x), free(c.embed), free(c.pe), free(c.w), free(de);
}

typedef struct {
    float *logits, *probs;
    int32_t *tokens;
    uint8_t *mask;
    int B, T, V;
} XentCtx;

static double xent_obj(void *p)
{
    XentCtx *c = p;
    memcpy(c->probs, c->logits, sizeof(float) * (size_t)c->B * c->T * c->V);
    return ns_xent_forward(c->probs, c->tokens, c->mask, c->B, c->T, c->V);
}

static void test_xent(void **state)
{
    (void)state;
    NsRng rng;
    ns_rng_seed(&rng, 14);
    XentCtx c = {.B = 3, .T = 4, .V = 7};
    int N = c.B * c.T, lens[3] = {4, 2, 0}; /* a padded tail and a fully padded row */
    size_t n = (size_t)N * c.V;
    c.logits = falloc(n), c.probs = falloc(n);
    c.tokens = malloc(sizeof(int32_t) * c.B * (c.T + 1));
    c.mask = malloc((size_t)N);
    make_mask(c.mask, lens, c.B, c.T);
    for (int i = 0; i < c.B * (c.T + 1); i++)
        c.tokens[i] = (int32_t)ns_rng_below(&rng, (uint64_t)c.V);
    fill_normal(c.logits, n, 0, 2, &rng);
    double loss = xent_obj(&c), ref = 0.0;
    int real = 0;
    for (int b = 0; b < c.B; b++)
        for (int t = 0; t < c.T; t++) {
            if (!c.mask[b * c.T + t])
                continue;
            const float *z = c.logits + (size_t)(b * c.T + t) * c.V;
            double s = 0.0;
            for (int j = 0; j < c.V; j++)
                s += exp(z[j]);
            ref += log(s) - z[c.tokens[b * (c.T + 1) + t + 1]];
            real++;
        }
    ref /= real;
    assert_float_equal(loss, ref, 1e-5 * fabs(ref));
    float *g = c.probs; /* backward in place over the probabilities of the forward above */
    ns_xent_backward(g, c.tokens, c.mask, c.B, c.T, c.V);
    float *grad = falloc(n);
    memcpy(grad, g, sizeof(float) * n);
    for (int r = 0; r < N; r++)
        for (int j = 0; j < c.V; j++)
            if (!c.mask[r])
                assert_true(grad[(size_t)r * c.V + j] == 0.0f);
    fd_check("xent dlogits (masked rows)", xent_obj, &c, c.logits, n, grad, n, 1e-2f, 0, &rng);
    /* no real row at all: loss 0, gradient 0 */
    memset(c.mask, 0, (size_t)N);
    assert_true(xent_obj(&c) == 0.0);
    ns_xent_backward(c.probs, c.tokens, c.mask, c.B, c.T, c.V);
    for (size_t i = 0; i < n; i++)
        assert_true(c.probs[i] == 0.0f);
    free(c.logits), free(c.probs), free(c.tokens), free(c.mask), free(grad);
}

static void test_dropout(void **state)
{
    (void)state;
    NsRng rng, drng;
    ns_rng_seed(&rng, 15);
    ns_rng_seed(&drng, 16);
    size_t n = 20000;
    float *x = falloc(n), *y = falloc(n), *keep = falloc(n), *dy = falloc(n), *dx = falloc(n);
    fill_normal(x, n, 0, 1, &rng);
    fill_normal(dy, n, 0, 1, &rng);
    ns_dropout_forward(y, x, keep, 0.0f, n, &drng); /* p = 0: identity both ways */
    assert_memory_equal(y, x, sizeof(float) * n);
    ns_dropout_backward(dx, dy, keep, 0.0f, n);
    assert_memory_equal(dx, dy, sizeof(float) * n);
    float p = 0.3f, scale = 1.0f / (1.0f - p);
    ns_dropout_forward(y, x, keep, p, n, &drng);
    ns_dropout_backward(dx, dy, keep, p, n);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(keep[i] == 0.0f || keep[i] == scale);
        kept += keep[i] != 0.0f;
        assert_true(y[i] == x[i] * keep[i]);
        assert_true(dx[i] == dy[i] * keep[i]);
    }
    double frac = (double)kept / n; /* 1 - p, sd = sqrt(p(1-p)/n) = 0.0032 */
    printf("    dropout p=0.3 kept fraction %.4f (expected 0.7)\n", frac);
    assert_true(fabs(frac - (1.0 - p)) < 0.015);
    free(x), free(y), free(keep), free(dy), free(dx);
}

typedef struct {
    float *qkv, *ctx, *probs, *w;
    int B, T, d, H;
} AttnCtx;

static double attn_obj(void *p)
{
    AttnCtx *c = p;
    ns_attention_forward(c->ctx, c->probs, c->qkv, c->B, c->T, c->d, c->H);
    return wsum(c->w, c->ctx, (size_t)c->B * c->T * c->d);
}

static void test_attention(void **state)
{
    (void)state;
    NsRng rng;
    ns_rng_seed(&rng, 17);
    AttnCtx c = {.B = 2, .T = 5, .d = 8, .H = 2};
    int N = c.B * c.T, d = c.d, T = c.T, dk = d / c.H;
    size_t nq = (size_t)N * 3 * d, nc = (size_t)N * d;
    c.qkv = falloc(nq), c.ctx = falloc(nc), c.w = falloc(nc);
    c.probs = falloc((size_t)c.B * c.H * T * T);
    fill_normal(c.qkv, nq, 0, 1, &rng);
    fill_normal(c.w, nc, 0, 1, &rng);
    attn_obj(&c);
    /* forward against a float64 evaluation of the definition */
    for (int b = 0; b < c.B; b++)
        for (int h = 0; h < c.H; h++)
            for (int t = 0; t < T; t++) {
                const float *q = c.qkv + (size_t)(b * T + t) * 3 * d + h * dk;
                double s[16], mx = -1e300, sum = 0.0;
                for (int u = 0; u <= t; u++) {
                    const float *k = c.qkv + (size_t)(b * T + u) * 3 * d + d + h * dk;
                    s[u] = 0.0;
                    for (int i = 0; i < dk; i++)
                        s[u] += (double)q[i] * k[i] / sqrt(dk);
                    mx = fmax(mx, s[u]);
                }
                for (int u = 0; u <= t; u++)
                    sum += (s[u] = exp(s[u] - mx));
                const float *prow = c.probs + (((size_t)b * c.H + h) * T + t) * T;
                for (int u = 0; u < T; u++)
                    assert_float_equal(prow[u], u <= t ? s[u] / sum : 0.0, 1e-6);
                for (int i = 0; i < dk; i++) {
                    double ref = 0.0;
                    for (int u = 0; u <= t; u++)
                        ref += s[u] / sum * c.qkv[(size_t)(b * T + u) * 3 * d + 2 * d + h * dk + i];
                    assert_float_equal(c.ctx[(size_t)(b * T + t) * d + h * dk + i], ref, 1e-5);
                }
            }
    float *dqkv = falloc(nq), *scratch = falloc((size_t)T * T);
    ns_attention_backward(dqkv, c.w, c.qkv, c.probs, scratch, c.B, T, d, c.H);
    fd_check("attention dqkv", attn_obj, &c, c.qkv, nq, dqkv, nq, 1e-2f, 0, &rng);
    /* causality: changing k and v of position t0 of batch row 0 leaves earlier positions and
     * the other batch row bit-identical, and does change position t0 */
    float *before = falloc(nc);
    memcpy(before, c.ctx, sizeof(float) * nc);
    int t0 = 2;
    for (int i = d; i < 3 * d; i++)
        c.qkv[(size_t)t0 * 3 * d + i] += 3.0f;
    attn_obj(&c);
    assert_memory_equal(c.ctx, before, sizeof(float) * (size_t)t0 * d);
    assert_memory_equal(c.ctx + (size_t)T * d, before + (size_t)T * d, sizeof(float) * T * d);
    assert_true(max_abs_diff(c.ctx + (size_t)t0 * d, before + (size_t)t0 * d, (size_t)d) > 1e-3);
    free(c.qkv), free(c.ctx), free(c.w), free(c.probs), free(dqkv), free(scratch), free(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_xent),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_attention),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
