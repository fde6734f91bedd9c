/* Finite-difference checks (fdcheck.h) of every exact-gradient norm scheme (layer, rms, none,
 * batch, batch-regularized with its penalty in the objective, batch-official, power-v, power in
 * warm-up, with group scaling) on sequences with padding rows, after
 * training steps have moved the state off its init, and of the whole model in both positions
 * (the objective is the loss itself; ReLU kinks are avoided). Batch-type norm schemes update
 * running statistics in every training forward and PN advances its step counter, so every
 * forward of a finite difference starts from the same saved state. The approximate
 * (non-gradient) backward passes of PN are checked against an independent reimplementation of
 * model-spec.md in test_norm_spec.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdcheck.h"
#include "harness.h"
#include "model.h"
#include "norm.h"
#include "util.h"

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
    norm_state_restore(&c->site, &c->st);
    ns_norm_forward(&c->site, c->x, c->y, c->mask, c->N, 1);
    /* batch-regularized's objective has its penalty too (0 for every other scheme) */
    return wsum(c->w, c->y, (size_t)c->N * c->d) + c->site.penalty;
}

/* One configuration of a norm or model test, passed as cmocka's initial state. */
typedef struct {
    NsNormKind kind;
    NsNormPosition pos; /* model tests */
    int warmup, groups; /* PN options */
    int presteps;       /* training steps before the one checked (norm tests) */
    int mostly_padding; /* norm tests: 3 real rows of 12 instead of 9 */
    float lm, lv;       /* batch-regularized's penalty weights */
} Case;

/* batch-regularized's gradient treats the running values in its penalty as constants
 * (model-spec.md), while they move with mu_B and var_B through the running update; a finite
 * difference sees that too. So its checks run with momentum 0, the running values set off
 * their init here (the reference debug states check momentum 0.1). */
static void freeze_running(NsNormSite *s, NsRng *rng)
{
    fill_normal(s->running_mean, (size_t)s->d, 0, 0.5, rng);
    fill_uniform(s->running_var, (size_t)s->d, 0.5, 2.0, rng);
}

static int has_penalty(const Case *k) { return k->lm > 0 || k->lv > 0; }

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
    cfg.rbn_penalty_mean = k->lm, cfg.rbn_penalty_var = k->lv;
    if (has_penalty(k))
        cfg.bn_momentum = 0.0f;
    NormCtx c = {.N = 12, .d = 8};
    int B = 3, T = 4, d = c.d;
    int lens[3] = {k->mostly_padding ? 1 : 4, k->mostly_padding ? 1 : 3, k->mostly_padding ? 1 : 2};
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
    if (has_penalty(k))
        freeze_running(&c.site, &rng);
    norm_state_save(&c.site, &c.st);
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
    norm_state_free(&c.st);
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
        norm_state_restore(&c->m.sites[i], &c->st[i]);
    double loss = ns_model_forward(&c->m, c->tokens, c->mask, 1);
    /* padded positions never reach the loss, so their ReLUs are not looked at */
    size_t per = c->n_relu / (size_t)c->m.cfg.n_layers, F = (size_t)c->m.cfg.d_ff;
    for (int l = 0; l < c->m.cfg.n_layers; l++)
        for (size_t k = 0; k < per; k++)
            if (c->mask[k / F])
                fd_crossed |= (c->m.acts[l].ffh[k] > 0.0f) != c->relu_on[l * per + k];
    return loss + c->m.penalty; /* the objective (batch-regularized: with its penalty) */
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
    cfg.rbn_penalty_mean = k->lm, cfg.rbn_penalty_var = k->lv;
    if (has_penalty(k))
        cfg.bn_momentum = 0.0f;
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
    for (int i = 0; i < c.m.n_sites; i++) {
        if (has_penalty(k))
            freeze_running(&c.m.sites[i], &rng);
        norm_state_save(&c.m.sites[i], &c.st[i]);
    }
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
        norm_state_free(&c.st[i]);
    ns_model_free(&c.m);
    free(c.tokens), free(c.mask), free(c.relu_on), free(grad);
}

#define NORM_TEST(name, ...) {name, test_norm, NULL, NULL, &(Case){__VA_ARGS__}}
#define MODEL_TEST(name, ...) {name, test_model, NULL, NULL, &(Case){__VA_ARGS__}}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NORM_TEST("norm layer", .kind = NS_NORM_LAYER),
        NORM_TEST("norm rms", .kind = NS_NORM_RMS),
        NORM_TEST("norm none", .kind = NS_NORM_NONE),
        NORM_TEST("norm batch", .kind = NS_NORM_BATCH, .presteps = 2),
        NORM_TEST("norm batch-official", .kind = NS_NORM_BATCH_OFFICIAL, .presteps = 2),
        NORM_TEST("norm batch-official mostly padding", .kind = NS_NORM_BATCH_OFFICIAL,
                  .presteps = 2, .mostly_padding = 1),
        NORM_TEST("norm batch-regularized", .kind = NS_NORM_BATCH_REGULARIZED, .presteps = 2,
                  .lm = 0.7f, .lv = 0.4f),
        NORM_TEST("norm batch-regularized mostly padding", .kind = NS_NORM_BATCH_REGULARIZED,
                  .presteps = 2, .mostly_padding = 1, .lm = 0.7f, .lv = 0.4f),
        NORM_TEST("norm power-v", .kind = NS_NORM_POWER_V, .presteps = 2),
        NORM_TEST("norm power warm-up t=3 W=5", .kind = NS_NORM_POWER, .warmup = 5, .presteps = 2),
        NORM_TEST("norm power warm-up G=2", .kind = NS_NORM_POWER, .warmup = 5, .groups = 2,
                  .presteps = 2),
        MODEL_TEST("model layer post", .kind = NS_NORM_LAYER, .pos = NS_POS_POST),
        MODEL_TEST("model layer pre", .kind = NS_NORM_LAYER, .pos = NS_POS_PRE),
        MODEL_TEST("model batch post", .kind = NS_NORM_BATCH, .pos = NS_POS_POST),
        MODEL_TEST("model batch pre", .kind = NS_NORM_BATCH, .pos = NS_POS_PRE),
        MODEL_TEST("model batch-official post", .kind = NS_NORM_BATCH_OFFICIAL, .pos = NS_POS_POST),
        MODEL_TEST("model batch-official pre", .kind = NS_NORM_BATCH_OFFICIAL, .pos = NS_POS_PRE),
        MODEL_TEST("model batch-regularized post", .kind = NS_NORM_BATCH_REGULARIZED,
                   .pos = NS_POS_POST, .lm = 60.0f, .lv = 0.4f),
        MODEL_TEST("model batch-regularized pre", .kind = NS_NORM_BATCH_REGULARIZED,
                   .pos = NS_POS_PRE, .lm = 0.7f, .lv = 0.4f),
        MODEL_TEST("model rms post", .kind = NS_NORM_RMS, .pos = NS_POS_POST),
        MODEL_TEST("model rms pre", .kind = NS_NORM_RMS, .pos = NS_POS_PRE),
        MODEL_TEST("model none post", .kind = NS_NORM_NONE, .pos = NS_POS_POST),
        MODEL_TEST("model none pre", .kind = NS_NORM_NONE, .pos = NS_POS_PRE),
        MODEL_TEST("model power warm-up G=2 pre", .kind = NS_NORM_POWER, .pos = NS_POS_PRE,
                   .warmup = 1000, .groups = 2),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
