/* Finite-difference checks of every backward pass against its forward pass.
 *
 * Each check uses a scalar objective L = sum(w .* out) with fixed random weights w (so dL/dout = w
 * is what the backward receives; the whole-model checks use the loss itself), perturbs one input
 * or parameter coordinate at a time (float32 values, objective summed in double), estimates the
 * derivative with a central stencil and requires |a - n| <= 1e-2 * max(|n|, scale), scale = the
 * RMS of the analytic gradient over the tensor. Coordinates are drawn with a seeded RNG, so a
 * failure is reproducible. In the whole model ReLU kinks make some difference quotients
 * meaningless; the objective reports when a ReLU changed side, and fd_estimate avoids that side.
 *
 * Batch-type norm schemes update running statistics in every training forward and PN advances
 * its step counter, so every forward of a finite difference starts from the same saved state.
 * Forward passes are also compared with the definitions (float64) where FD would not notice a
 * consistent error in both directions. The approximate (non-gradient) backward passes of PN are
 * checked against an independent reimplementation of model-spec.md in test_norm_spec.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "attention.h"
#include "layers.h"
#include "model.h"
#include "norm.h"
#include "util.h"

#define TOL 1e-2

/* ------------------------------------------------------------------ helpers */

static float *falloc(size_t n) { return ns_xcalloc(n, sizeof(float)); }

static void fill_normal(float *x, size_t n, double mean, double std, NsRng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(mean + std * ns_rng_normal(rng));
}

static void fill_uniform(float *x, size_t n, double lo, double hi, NsRng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * ns_rng_uniform(rng));
}

static double wsum(const float *w, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)w[i] * y[i];
    return s;
}

static double rms(const float *g, size_t n)
{
    return n ? sqrt(ns_sumsq(g, n) / (double)n) : 0.0;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* mask[b][t] = t < len[b]: padding at the tail of each sequence, as the batcher makes it. */
static void make_mask(uint8_t *mask, const int *len, int B, int T)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            mask[b * T + t] = t < len[b];
}

typedef double (*ObjFn)(void *ctx);

/* Set by an objective whose evaluation put some ReLU input on the other side of 0 than at the
 * unperturbed point: the objective is not smooth between the two points, so that side's
 * difference quotient says nothing about the gradient. */
static int fd_crossed;

/* f'(0) from f at 0, d1, d2 (same sign): the slope of the quadratic through the three points. */
static double one_sided(double f0, double d1, double f1, double d2, double f2)
{
    return ((f1 - f0) * d2 * d2 - (f2 - f0) * d1 * d1) / (d1 * d2 * (d2 - d1));
}

/* dL/dx[i] from f at x[i] + {-2h, -h, +h, +2h}. The fourth-order central stencil cancels the
 * curvature error. Where a ReLU kink lies inside the stencil (fd_crossed) it falls back to the
 * plain central difference over +-h if those two points are clean, else to the clean side's
 * second-order one-sided stencil (returns 1: its rounding noise is 2.5x the central one's).
 * Returns -1 if both sides cross a kink. */
static int fd_estimate(ObjFn f, void *ctx, float *x, size_t i, float h, double l0, double *num)
{
    float save = x[i];
    double d[4], l[4];
    int crossed[4];
    for (int s = 0; s < 4; s++) {
        x[i] = save + (float)(s - 2 + (s >= 2)) * h;
        d[s] = (double)x[i] - save;
        fd_crossed = 0;
        l[s] = f(ctx);
        crossed[s] = fd_crossed;
    }
    x[i] = save;
    double c1 = (l[2] - l[1]) / (d[2] - d[1]), c2 = (l[3] - l[0]) / (d[3] - d[0]);
    int left = !crossed[0] && !crossed[1], right = !crossed[2] && !crossed[3];
    if (left && right)
        *num = (4 * c1 - c2) / 3;
    else if (!crossed[1] && !crossed[2])
        *num = c1;
    else if (right)
        *num = one_sided(l0, d[2], l[2], d[3], l[3]);
    else if (left)
        *num = one_sided(l0, d[1], l[1], d[0], l[0]);
    else
        return -1;
    return !(left && right) && !(!crossed[1] && !crossed[2]);
}

/* Compares grad[i] with fd_estimate for `samples` coordinates drawn without replacement (all if
 * samples >= n); scale <= 0 means the RMS of grad. A coordinate with kinks on both sides is
 * retried with h/4; noisier estimates (one-sided, or h/4) are allowed 2 TOL, i.e. their errors
 * count half; at most half of the coordinates may remain unchecked. Returns the worst relative
 * error |a - n| / max(|n|, scale) and fails the test if it exceeds TOL. */
static double fd_check(const char *what, ObjFn f, void *ctx, float *x, size_t n,
                       const float *grad, size_t samples, float h, double scale, NsRng *rng)
{
    if (scale <= 0.0)
        scale = rms(grad, n);
    scale = fmax(scale, 1e-12);
    size_t count = samples < n ? samples : n, *idx = malloc(sizeof(size_t) * n), wi = 0;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t k = 0; k < count && samples < n; k++) { /* partial Fisher-Yates */
        size_t j = k + (size_t)ns_rng_below(rng, n - k), t = idx[k];
        idx[k] = idx[j], idx[j] = t;
    }
    fd_crossed = 0;
    double worst = -1.0, wa = 0.0, wn = 0.0, l0 = f(ctx), num = 0.0;
    size_t noisy = 0, skipped = 0;
    for (size_t k = 0; k < count; k++) {
        size_t i = idx[k];
        int r = fd_estimate(f, ctx, x, i, h, l0, &num);
        if (r < 0)
            r = fd_estimate(f, ctx, x, i, h / 4, l0, &num) < 0 ? -1 : 1;
        if (r < 0) {
            skipped++;
            continue;
        }
        noisy += r;
        double err = (r ? 0.5 : 1.0) * fabs(grad[i] - num) / fmax(fabs(num), scale);
        if (!isfinite(err) || !isfinite(grad[i]))
            err = INFINITY;
        if (err > worst)
            worst = err, wi = i, wa = grad[i], wn = num;
    }
    free(idx);
    f(ctx); /* leave the outputs of the unperturbed point behind */
    printf("    %-34s worst rel err %.2e  (coord %zu: analytic % .6e numeric % .6e)", what, worst,
           wi, wa, wn);
    if (noisy || skipped)
        printf("  [kinks: %zu one-sided or h/4, %zu skipped]", noisy, skipped);
    printf("\n");
    if (!(worst <= TOL) || 2 * skipped > count)
        fail_msg("%s: gradient mismatch at coord %zu: analytic %.7g, numeric %.7g (rel %.3g), "
                 "%zu of %zu coordinates skipped", what, wi, wa, wn, worst, skipped, count);
    return worst;
}

/* Norm state of a site (running arrays, nu, step), saved and restored around forwards. */
typedef struct {
    float *buf[4];
    int64_t step;
} NormState;

static float **state_ptr(NsNormSite *s, int k)
{
    float **p[4] = {&s->running_mean, &s->running_var, &s->running_psi2, &s->nu};
    return p[k];
}

static void state_save(NsNormSite *s, NormState *st)
{
    for (int k = 0; k < 4; k++) {
        float *src = *state_ptr(s, k);
        if (!st->buf[k] && src)
            st->buf[k] = falloc((size_t)s->d);
        if (src)
            memcpy(st->buf[k], src, sizeof(float) * (size_t)s->d);
    }
    st->step = s->step;
}

static void state_restore(NsNormSite *s, const NormState *st)
{
    for (int k = 0; k < 4; k++)
        if (*state_ptr(s, k))
            memcpy(*state_ptr(s, k), st->buf[k], sizeof(float) * (size_t)s->d);
    s->step = st->step;
}

static void state_free(NormState *st)
{
    for (int k = 0; k < 4; k++)
        free(st->buf[k]);
    memset(st, 0, sizeof *st);
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

/* ------------------------------------------------------------------ norm schemes */

typedef struct {
    NsNormSite site;
    NormState st;
    float *x, *y, *w, *weight, *bias, *dweight, *dbias;
    uint8_t *mask;
    int N, d;
} NormCtx;

static double norm_obj(void *p)
{
    NormCtx *c = p;
    state_restore(&c->site, &c->st);
    ns_norm_forward(&c->site, c->x, c->y, c->mask, c->N, 1);
    return wsum(c->w, c->y, (size_t)c->N * c->d);
}

/* One configuration of a norm or model test, passed as cmocka's initial state. */
typedef struct {
    NsNormKind kind;
    NsNormPosition pos; /* model tests */
    int warmup, groups; /* PN options */
    int presteps;       /* training steps before the one checked (norm tests) */
} Case;

/* Per-channel offsets and scales, so that batch statistics differ from channel to channel. */
static void norm_input(float *x, int N, int d, NsRng *rng)
{
    for (int r = 0; r < N; r++)
        for (int ch = 0; ch < d; ch++)
            x[r * d + ch] = (float)(0.3 * ch - 1.0 + (0.5 + 0.2 * ch) * ns_rng_normal(rng));
}

/* FD check of dx, dweight, dbias of one exact-gradient scheme, on 3 sequences of 4 positions
 * (lengths 4, 3, 2) after `presteps` training steps have moved the state off its init. */
static void test_norm(void **state)
{
    const Case *k = *state;
    NsRng rng;
    ns_rng_seed(&rng, 100 + (uint64_t)k->kind * 7 + (uint64_t)k->groups);
    NsModelConfig cfg;
    ns_model_config_default(&cfg);
    cfg.norm = k->kind;
    cfg.d_model = 8;
    cfg.pn_warmup = k->warmup;
    cfg.pn_groups = k->groups;
    NormCtx c = {.N = 12, .d = 8};
    int B = 3, T = 4, lens[3] = {4, 3, 2}, d = c.d;
    size_t n = (size_t)c.N * d;
    ns_norm_site_init(&c.site, "test/norm", &cfg, c.N);
    c.x = falloc(n), c.y = falloc(n), c.w = falloc(n);
    c.mask = malloc((size_t)c.N);
    make_mask(c.mask, lens, B, T);
    int affine = ns_norm_has_affine(k->kind);
    if (affine) {
        c.weight = falloc((size_t)d), c.bias = falloc((size_t)d);
        c.dweight = falloc((size_t)d), c.dbias = falloc((size_t)d);
        fill_uniform(c.weight, (size_t)d, 0.5, 1.5, &rng);
        fill_normal(c.bias, (size_t)d, 0, 0.5, &rng);
    }
    ns_norm_site_bind(&c.site, c.weight, c.bias, c.dweight, c.dbias);
    float *dx = falloc(n);
    for (int s = 0; s <= k->presteps; s++) {
        norm_input(c.x, c.N, d, &rng);
        fill_normal(c.w, n, 0, 1, &rng);
        if (s == k->presteps)
            break;
        ns_norm_forward(&c.site, c.x, c.y, c.mask, c.N, 1);
        ns_norm_backward(&c.site, c.w, dx, c.mask, c.N);
    }
    state_save(&c.site, &c.st);
    norm_obj(&c);
    if (k->kind == NS_NORM_POWER) { /* the phase under test is warm-up */
        assert_int_equal(c.site.step, k->presteps + 1);
        assert_true(c.site.in_warmup);
    }
    if (affine) {
        memset(c.dweight, 0, sizeof(float) * (size_t)d);
        memset(c.dbias, 0, sizeof(float) * (size_t)d);
    }
    ns_norm_backward(&c.site, c.w, dx, c.mask, c.N);
    float *dw = affine ? falloc((size_t)d) : NULL, *db = affine ? falloc((size_t)d) : NULL;
    if (affine) {
        memcpy(dw, c.dweight, sizeof(float) * (size_t)d);
        memcpy(db, c.dbias, sizeof(float) * (size_t)d);
    }
    fd_check("dx", norm_obj, &c, c.x, n, dx, n, 2e-3f, 0, &rng);
    if (affine) {
        fd_check("dweight", norm_obj, &c, c.weight, (size_t)d, dw, (size_t)d, 1e-2f, 0, &rng);
        fd_check("dbias", norm_obj, &c, c.bias, (size_t)d, db, (size_t)d, 1e-2f, 0, &rng);
    }
    ns_norm_site_free(&c.site);
    state_free(&c.st);
    free(c.x), free(c.y), free(c.w), free(c.mask), free(dx), free(dw), free(db);
    free(c.weight), free(c.bias), free(c.dweight), free(c.dbias);
}

/* ------------------------------------------------------------------ whole model */

typedef struct {
    NsModel m;
    NormState st[8];
    int32_t *tokens;
    uint8_t *mask;
    uint8_t *relu_on; /* which ReLUs were active at the unperturbed point */
    size_t n_relu;
} ModelCtx;

static double model_obj(void *p)
{
    ModelCtx *c = p;
    for (int i = 0; i < c->m.n_sites; i++)
        state_restore(&c->m.sites[i], &c->st[i]);
    double loss = ns_model_forward(&c->m, c->tokens, c->mask, 1);
    /* padded positions never reach the loss, so their ReLUs are not looked at */
    size_t per = c->n_relu / (size_t)c->m.cfg.n_layers, F = (size_t)c->m.cfg.d_ff;
    for (int l = 0; l < c->m.cfg.n_layers; l++)
        for (size_t k = 0; k < per; k++)
            if (c->mask[k / F])
                fd_crossed |= (c->m.acts[l].ffh[k] > 0.0f) != c->relu_on[l * per + k];
    return loss;
}

static void test_model(void **state)
{
    const Case *k = *state;
    NsModelConfig cfg;
    ns_model_config_default(&cfg);
    cfg.vocab_size = 13, cfg.d_model = 8, cfg.n_heads = 2, cfg.d_ff = 12, cfg.n_layers = 2;
    cfg.seq_len = 5, cfg.batch_size = 3, cfg.dropout = 0.0f;
    cfg.norm = k->kind, cfg.norm_position = k->pos;
    cfg.pn_warmup = k->warmup, cfg.pn_groups = k->groups;
    ModelCtx c;
    memset(c.st, 0, sizeof c.st);
    ns_model_init(&c.m, &cfg, 42);
    assert_true(c.m.n_sites <= 8);
    NsRng rng;
    ns_rng_seed(&rng, 7 + (uint64_t)k->kind * 2 + (uint64_t)k->pos);
    int B = cfg.batch_size, T = cfg.seq_len, lens[3] = {5, 5, 3};
    c.tokens = calloc((size_t)B * (T + 1), sizeof(int32_t)); /* 0 = <pad> after the real ones */
    c.mask = malloc((size_t)B * T);
    make_mask(c.mask, lens, B, T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= lens[b]; t++)
            c.tokens[b * (T + 1) + t] = 3 + (int32_t)ns_rng_below(&rng, 10);
    /* move biases and norm weights off their init so every gradient path is generic */
    const NsParamLayout *L = &c.m.layout;
    for (int i = 0; i < L->n_tensors; i++) {
        const NsTensorInfo *t = &L->tensors[i];
        if (t->ndim == 1)
            fill_normal(c.m.params + t->offset, t->size, strstr(t->name, "weight") ? 1.0 : 0.0,
                        0.2, &rng);
    }
    for (int i = 0; i < c.m.n_sites; i++)
        state_save(&c.m.sites[i], &c.st[i]);
    size_t per = (size_t)B * T * cfg.d_ff;
    c.n_relu = per * (size_t)cfg.n_layers;
    c.relu_on = calloc(c.n_relu, 1);
    model_obj(&c);
    for (int l = 0; l < cfg.n_layers; l++)
        for (size_t k = 0; k < per; k++)
            c.relu_on[l * per + k] = c.m.acts[l].ffh[k] > 0.0f;
    ns_model_zero_grad(&c.m);
    ns_model_backward(&c.m);
    float *grad = falloc(L->total);
    memcpy(grad, c.m.grads, sizeof(float) * L->total);
    /* Scale floor: a quarter of the model's RMS gradient, so the key biases (exact gradient 0:
     * softmax ignores a shift of the scores) are judged against the model's scale. */
    double floor = 0.25 * rms(grad, L->total), worst = 0.0;
    for (int i = 0; i < L->n_tensors; i++) {
        const NsTensorInfo *t = &L->tensors[i];
        double scale = fmax(rms(grad + t->offset, t->size), floor);
        worst = fmax(worst, fd_check(t->name, model_obj, &c, c.m.params + t->offset, t->size,
                                     grad + t->offset, 40, 2e-3f, scale, &rng));
    }
    printf("  worst over the model: %.2e\n", worst);
    for (int i = 0; i < c.m.n_sites; i++)
        state_free(&c.st[i]);
    ns_model_free(&c.m);
    free(c.tokens), free(c.mask), free(c.relu_on), free(grad);
}

#define NORM_TEST(name, ...) {name, test_norm, NULL, NULL, &(Case){__VA_ARGS__}}
#define MODEL_TEST(name, ...) {name, test_model, NULL, NULL, &(Case){__VA_ARGS__}}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_xent),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_attention),
        NORM_TEST("norm layer", .kind = NS_NORM_LAYER),
        NORM_TEST("norm rms", .kind = NS_NORM_RMS),
        NORM_TEST("norm none", .kind = NS_NORM_NONE),
        NORM_TEST("norm batch", .kind = NS_NORM_BATCH, .presteps = 2),
        NORM_TEST("norm power-v", .kind = NS_NORM_POWER_V, .presteps = 2),
        NORM_TEST("norm power warm-up t=3 W=5", .kind = NS_NORM_POWER, .warmup = 5, .presteps = 2),
        NORM_TEST("norm power warm-up G=2", .kind = NS_NORM_POWER, .warmup = 5, .groups = 2,
                  .presteps = 2),
        MODEL_TEST("model layer post", .kind = NS_NORM_LAYER, .pos = NS_POS_POST),
        MODEL_TEST("model layer pre", .kind = NS_NORM_LAYER, .pos = NS_POS_PRE),
        MODEL_TEST("model batch post", .kind = NS_NORM_BATCH, .pos = NS_POS_POST),
        MODEL_TEST("model batch pre", .kind = NS_NORM_BATCH, .pos = NS_POS_PRE),
        MODEL_TEST("model rms post", .kind = NS_NORM_RMS, .pos = NS_POS_POST),
        MODEL_TEST("model rms pre", .kind = NS_NORM_RMS, .pos = NS_POS_PRE),
        MODEL_TEST("model none post", .kind = NS_NORM_NONE, .pos = NS_POS_POST),
        MODEL_TEST("model none pre", .kind = NS_NORM_NONE, .pos = NS_POS_PRE),
        MODEL_TEST("model power warm-up G=2 pre", .kind = NS_NORM_POWER, .pos = NS_POS_PRE,
                   .warmup = 1000, .groups = 2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
