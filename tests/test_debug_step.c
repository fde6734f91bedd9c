/* The files of `normscope debug-step` (the program NS_BINARY, run as a child process in a
 * scratch directory) against debug-state.md and model-spec.md: names, types and shapes of every
 * attribute and dataset, the learning-rate schedule, the mask and padding targets; then each of
 * the 3 steps recomputed in-process with the library from its recorded parameters and state
 * (loss, gradients, state after), and the AdamW chain between steps re-derived in double.
 * 19 configurations: 7 schemes x post/pre, and PN warm-up ending inside the run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "harness.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"

/* ------------------------------------------------------------------ fixture */

static NsModel dm, dm2; /* models of check_debug_file, freed in teardown if a check failed */
static int dm_live;

static int setup(void **state)
{
    (void)state;
    ns_h5_quiet();
    return harness_setup();
}

static int teardown(void **state)
{
    (void)state;
    if (dm_live)
        ns_model_free(&dm), ns_model_free(&dm2);
    return harness_teardown();
}

/* ------------------------------------------------------------------ debug-step files */

static char ctx[256]; /* the case being checked, for failure messages */
#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            print_error("%s: ", ctx);                                                        \
            fail_msg(__VA_ARGS__);                                                           \
        }                                                                                    \
    } while (0)

/* Type of a root attribute (is_attr) or dataset: class, byte size (strings: variable length;
 * integers: signed, except 1-byte ones unsigned), rank and dims (rank 0 = scalar). */
static void check_type(hid_t f, const char *name, int is_attr, H5T_class_t cls, size_t size,
                       int rank, const int *dims)
{
    CHECK(is_attr ? H5Aexists(f, name) > 0 : ns_h5_exists(f, name), "'%s' is missing", name);
    hid_t o = is_attr ? H5Aopen(f, name, H5P_DEFAULT) : H5Dopen2(f, name, H5P_DEFAULT);
    hid_t t = is_attr ? H5Aget_type(o) : H5Dget_type(o);
    hid_t s = is_attr ? H5Aget_space(o) : H5Dget_space(o);
    hsize_t got[4] = {0};
    int ok = H5Tget_class(t) == cls && H5Sget_simple_extent_ndims(s) == rank;
    ok = ok && (cls == H5T_STRING ? H5Tis_variable_str(t) > 0 : H5Tget_size(t) == size);
    if (cls == H5T_INTEGER)
        ok = ok && H5Tget_sign(t) == (size == 1 ? H5T_SGN_NONE : H5T_SGN_2);
    H5Sget_simple_extent_dims(s, got, NULL);
    for (int i = 0; i < rank && ok; i++)
        ok = got[i] == (hsize_t)dims[i];
    H5Sclose(s);
    H5Tclose(t);
    is_attr ? H5Aclose(o) : H5Dclose(o);
    CHECK(ok, "'%s' has the wrong type or shape", name);
}

static herr_t count_dataset(hid_t g, const char *name, const H5L_info_t *info, void *n)
{
    (void)info;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d >= 0)
        ++*(int *)n, H5Dclose(d);
    return 0;
}

static int n_datasets(hid_t f, const char *group) /* anywhere under group; 0 if absent */
{
    int n = 0;
    if (!ns_h5_exists(f, group))
        return 0;
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    H5Lvisit(g, H5_INDEX_NAME, H5_ITER_NATIVE, count_dataset, &n);
    H5Gclose(g);
    return n;
}

/* params/ or grads/: exactly the tensors of model-spec.md ("Parameter and state names"). */
static void check_params_layout(hid_t f, const char *group_, const NsModelConfig *c)
{
    char group[64]; /* group_ may be an fmt() buffer, which T() recycles */
    snprintf(group, sizeof group, "%s", group_);
    int n = 0, d = c->d_model, F = c->d_ff, affine = c->norm != NS_NORM_NONE;
#define T(name, r, a, b) (n++, check_type(f, fmt("%s/%s", group, name), 0, H5T_FLOAT, 4, r, (int[]){a, b}))
    T("embed", 2, c->vocab_size, d);
    for (int l = 0; l < c->n_layers; l++) {
        for (const char *w = "qkvo"; *w; w++)
            T(fmt("layers/%d/attn/w%c", l, *w), 2, d, d), T(fmt("layers/%d/attn/b%c", l, *w), 1, d, 0);
        T(fmt("layers/%d/ffn/w1", l), 2, F, d), T(fmt("layers/%d/ffn/b1", l), 1, F, 0);
        T(fmt("layers/%d/ffn/w2", l), 2, d, F), T(fmt("layers/%d/ffn/b2", l), 1, d, 0);
        for (int k = 1; k <= 2 && affine; k++)
            T(fmt("layers/%d/norm%d/weight", l, k), 1, d, 0), T(fmt("layers/%d/norm%d/bias", l, k), 1, d, 0);
    }
    if (affine && c->norm_position == NS_POS_PRE)
        T("final_norm/weight", 1, d, 0), T("final_norm/bias", 1, d, 0);
#undef T
    CHECK(n_datasets(f, group) == n, "%s holds %d datasets, model-spec.md names %d", group,
          n_datasets(f, group), n);
}

/* state_before/ or state_after/: per site, the state of model-spec.md for the scheme. */
static const char *STATE_NAMES[5] = {"running_mean", "running_var", "running_psi2", "nu", "step"};
static unsigned state_bits(int kind) /* which of STATE_NAMES the scheme keeps */
{
    return kind == NS_NORM_BATCH ? 0x3 : kind == NS_NORM_POWER_V ? 0x4
         : kind == NS_NORM_POWER || kind == NS_NORM_POWER_OFFICIAL ? 0x1c : 0;
}

static void check_state_layout(hid_t f, const char *group_, const NsModelConfig *c)
{
    char group[64];
    snprintf(group, sizeof group, "%s", group_);
    unsigned bits = state_bits(c->norm);
    int n_sites = 2 * c->n_layers + (c->norm_position == NS_POS_PRE), expected = 0;
    for (int s = 0; s < n_sites; s++)
        for (int i = 0; i < 5; i++) {
            if (!(bits >> i & 1))
                continue;
            const char *site = s < 2 * c->n_layers ? fmt("layers/%d/norm%d", s / 2, s % 2 + 1)
                                                   : "final_norm";
            const char *path = fmt("%s/%s/%s", group, site, STATE_NAMES[i]);
            expected++;
            if (i == 4)
                check_type(f, path, 0, H5T_INTEGER, 8, 0, NULL);
            else
                check_type(f, path, 0, H5T_FLOAT, 4, 1, (int[]){c->d_model});
        }
    CHECK(n_datasets(f, group) == expected, "%s holds %d datasets, expected %d", group,
          n_datasets(f, group), expected);
    CHECK(bits || !ns_h5_exists(f, group), "%s exists for a stateless scheme", group);
}

/* Compares the norm state of a and b: exactly (tol < 0) or relative to each tensor's max. */
static void compare_state(NsModel *a, NsModel *b, double tol, const char *what)
{
    for (int s = 0; s < a->n_sites; s++) {
        const char *na[4], *nb[4];
        float *pa[4], *pb[4];
        int n = ns_norm_state_tensors(&a->sites[s], na, pa), d = a->sites[s].d;
        assert_int_equal(ns_norm_state_tensors(&b->sites[s], nb, pb), n);
        for (int k = 0; k < n; k++) {
            double scale = fmax(max_abs(pb[k], d), 1e-30), diff = 0;
            for (int c = 0; c < d; c++)
                diff = fmax(diff, fabs((double)pa[k][c] - pb[k][c]));
            CHECK(tol < 0 ? diff == 0 : diff <= tol * scale, "%s: %s/%s differs by %g (max %g)",
                  what, a->sites[s].path, na[k], diff, scale);
        }
        CHECK(!ns_norm_has_step(&a->sites[s]) || a->sites[s].step == b->sites[s].step,
              "%s: %s step %lld vs %lld", what, a->sites[s].path, (long long)a->sites[s].step,
              (long long)b->sites[s].step);
    }
}

static double worst_adam, worst_grad, worst_loss;

static void read_ds(hid_t f, const char *path, hid_t type, void *out, size_t n)
{
    char err[NS_ERRLEN];
    CHECK(ns_h5_read(f, path, type, out, n, err) == 0, "%s", err);
}

static void check_debug_file(const char *path, const char *norm, const char *pos, int warmup)
{
    char err[NS_ERRLEN];
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "cannot open %s", path);
    static const char *INTS[] = {"vocab_size", "d_model", "n_heads", "d_ff", "n_layers", "seq_len",
                                 "batch_size", "pn_warmup", "pn_groups", "tie_embeddings"};
    static const char *FLOATS[] = {"eps", "bn_momentum", "pn_alpha", "lr", "weight_decay",
                                   "adam_beta1", "adam_beta2", "adam_eps"};
    for (size_t i = 0; i < sizeof INTS / sizeof INTS[0]; i++)
        check_type(f, INTS[i], 1, H5T_INTEGER, 8, 0, NULL);
    for (size_t i = 0; i < sizeof FLOATS / sizeof FLOATS[0]; i++)
        check_type(f, FLOATS[i], 1, H5T_FLOAT, 8, 0, NULL);
    check_type(f, "norm", 1, H5T_STRING, 0, 0, NULL);
    check_type(f, "norm_position", 1, H5T_STRING, 0, 0, NULL);
    NsModelConfig mc;
    NsOptimConfig oc;
    ns_model_config_default(&mc);
    ns_optim_config_default(&oc);
    CHECK(ns_read_config_attrs(f, &mc, &oc, err) == 0, "%s", err);
    CHECK(!strcmp(ns_norm_name(mc.norm), norm) && !strcmp(ns_position_name(mc.norm_position), pos),
          "attributes say norm %s at %s", ns_norm_name(mc.norm), ns_position_name(mc.norm_position));
    CHECK(mc.d_model == 16 && mc.n_heads == 2 && mc.d_ff == 32 && mc.n_layers == 2 &&
              mc.seq_len == 12 && mc.batch_size == 4 && mc.pn_warmup == warmup &&
              oc.lr == 1e-2f && oc.weight_decay == 0.01f && oc.warmup == 2,
          "root attributes do not match the flags");
    CHECK(ns_h5_exists(f, "step_2") && !ns_h5_exists(f, "step_3"), "not exactly 3 step groups");

    mc.dropout = 0.0f;
    if (dm_live)
        ns_model_free(&dm), ns_model_free(&dm2);
    ns_model_init(&dm, &mc, 7);
    ns_model_init(&dm2, &mc, 7);
    dm_live = 1;
    NsModel *m = &dm, *m2 = &dm2; /* m recomputes; m2 holds the recorded state_after */
    const NsParamLayout *L = &m->layout;
    int B = mc.batch_size, T = mc.seq_len, zeros = 0;
    int32_t *tokens = keep(malloc(sizeof(int32_t) * B * (T + 1)));
    uint8_t *mask = keep(malloc((size_t)B * T));
    float *p0 = keep(malloc(sizeof(float) * L->total)), *g0 = keep(malloc(sizeof(float) * L->total));
    float *p1 = keep(malloc(sizeof(float) * L->total));
    double *am = keep(calloc(L->total, sizeof(double))), *av = keep(calloc(L->total, sizeof(double)));
    double *pred = keep(malloc(sizeof(double) * L->total));
    for (int k = 0; k < 3; k++) {
        char g[16];
        snprintf(g, sizeof g, "step_%d", k);
        check_type(f, fmt("%s/tokens", g), 0, H5T_INTEGER, 4, 2, (int[]){B, T + 1});
        check_type(f, fmt("%s/mask", g), 0, H5T_INTEGER, 1, 2, (int[]){B, T});
        check_type(f, fmt("%s/loss", g), 0, H5T_FLOAT, 4, 0, NULL);
        check_type(f, fmt("%s/lr", g), 0, H5T_FLOAT, 4, 0, NULL);
        check_params_layout(f, fmt("%s/params", g), &mc);
        check_params_layout(f, fmt("%s/grads", g), &mc);
        check_state_layout(f, fmt("%s/state_before", g), &mc);
        check_state_layout(f, fmt("%s/state_after", g), &mc);
        float loss_rec, lr;
        read_ds(f, fmt("%s/tokens", g), H5T_NATIVE_INT32, tokens, (size_t)B * (T + 1));
        read_ds(f, fmt("%s/mask", g), H5T_NATIVE_UINT8, mask, (size_t)B * T);
        read_ds(f, fmt("%s/loss", g), H5T_NATIVE_FLOAT, &loss_rec, 1);
        read_ds(f, fmt("%s/lr", g), H5T_NATIVE_FLOAT, &lr, 1);
        for (int b = 0; b < B; b++) /* each row: real positions, then padding (target <pad>) */
            for (int t = 0; t < T; t++) {
                int mk = mask[b * T + t], tgt = tokens[b * (T + 1) + t + 1];
                CHECK(mk <= 1 && (t == 0 || mk <= mask[b * T + t - 1]), "%s: bad mask row %d", g, b);
                CHECK((tgt == 0) == (mk == 0) && tgt >= 0 && tgt < mc.vocab_size,
                      "%s: target %d where the mask is %d", g, tgt, mk);
                zeros += !mk;
            }
        double t1 = k + 1, want_lr = oc.lr * fmin(t1 / oc.warmup, sqrt(oc.warmup / t1));
        CHECK(fabs(lr - want_lr) <= 1e-6 * want_lr, "%s/lr %g, schedule says %g", g, lr, want_lr);

        /* Recompute the step in-process from params and state_before (dropout 0). */
        CHECK(ns_read_tensors(f, fmt("%s/params", g), L, m->params, err) == 0, "%s", err);
        memcpy(p0, m->params, sizeof(float) * L->total);
        CHECK(ns_read_norm_state(f, fmt("%s/state_before", g), m, err) == 0, "%s", err);
        if (k > 0) /* state_before of step k is state_after of step k-1, still in m2 */
            compare_state(m, m2, -1, "state carried between steps");
        if (state_bits(mc.norm) & 0x10)
            CHECK(m->sites[0].step == k, "%s/state_before step %lld", g, (long long)m->sites[0].step);
        double loss = ns_model_forward(m, tokens, mask, 1);
        ns_model_zero_grad(m);
        ns_model_backward(m);
        worst_loss = fmax(worst_loss, fabs(loss - loss_rec) / fabs(loss_rec));
        CHECK(fabs(loss - loss_rec) <= 1e-4 * fabs(loss_rec), "%s loss %.7g, recomputed %.7g", g,
              loss_rec, loss);
        CHECK(ns_read_tensors(f, fmt("%s/grads", g), L, g0, err) == 0, "%s", err);
        double gfloor = 1e-4 * max_abs(g0, L->total); /* the key bias has round-off gradients */
        for (int i = 0; i < L->n_tensors; i++) {
            const NsTensorInfo *ti = &L->tensors[i];
            double scale = fmax(max_abs(g0 + ti->offset, ti->size), gfloor), diff = 0;
            for (size_t j = ti->offset; j < ti->offset + ti->size; j++)
                diff = fmax(diff, fabs((double)m->grads[j] - g0[j]));
            worst_grad = fmax(worst_grad, diff / scale);
            CHECK(diff <= 2e-3 * scale, "%s/grads/%s: recomputed differs by %g of %g", g,
                  ti->name, diff, scale);
        }
        CHECK(ns_read_norm_state(f, fmt("%s/state_after", g), m2, err) == 0, "%s", err);
        compare_state(m, m2, 1e-3, "recomputed state_after");

        /* AdamW in double from the recorded gradient and lr, moments carried over, t = k + 1. */
        double b1 = oc.adam_beta1, b2 = oc.adam_beta2;
        for (size_t j = 0; j < L->total; j++) {
            am[j] = b1 * am[j] + (1 - b1) * g0[j];
            av[j] = b2 * av[j] + (1 - b2) * (double)g0[j] * g0[j];
            double mh = am[j] / (1 - pow(b1, t1)), vh = av[j] / (1 - pow(b2, t1));
            pred[j] = p0[j] - lr * (mh / (sqrt(vh) + oc.adam_eps)) - lr * oc.weight_decay * p0[j];
        }
        if (k == 2)
            break;
        CHECK(ns_read_tensors(f, fmt("step_%d/params", k + 1), L, p1, err) == 0, "%s", err);
        for (int i = 0; i < L->n_tensors; i++) {
            const NsTensorInfo *ti = &L->tensors[i];
            double scale = fmax(max_abs(p1 + ti->offset, ti->size), 1e-30), diff = 0;
            for (size_t j = ti->offset; j < ti->offset + ti->size; j++)
                diff = fmax(diff, fabs(p1[j] - pred[j]));
            worst_adam = fmax(worst_adam, diff / scale);
            CHECK(diff <= 1e-5 * scale, "step_%d/params/%s is not AdamW of step_%d: off by %g "
                  "(max %g)", k + 1, ti->name, k, diff, scale);
        }
    }
    CHECK(zeros > 0, "sentences batching produced no padding in 3 steps");
    H5Fclose(f);
}

static void test_debug_step(void **state)
{
    (void)state;
    static const char *SCHEMES[] = {"layer", "batch", "power-v", "power", "power-official",
                                    "rms", "none"};
    static const char *POS[] = {"post", "pre"};
    struct { const char *norm, *pos, *extra; int warmup; } cases[32];
    int n = 0;
    for (int s = 0; s < 7; s++)
        for (int p = 0; p < 2; p++)
            cases[n].norm = SCHEMES[s], cases[n].pos = POS[p], cases[n].extra = "--pn-warmup 0",
            cases[n++].warmup = 0;
    for (int k = 0; k < 5; k++) /* PN warm-up ending inside the run (t = 1 batch, 2-3 running) */
        cases[n].norm = k % 2 ? "power-official" : "power", cases[n].pos = POS[k / 2 % 2],
        cases[n].extra = k < 4 ? "--pn-warmup 1" : "--pn-warmup 1 --pn-groups 4",
        cases[n++].warmup = 1;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        snprintf(ctx, sizeof ctx, "debug-step --norm %s --norm-position %s %s", cases[i].norm,
                 cases[i].pos, cases[i].extra);
        Run r = run("debug-step --d-model 16 --heads 2 --d-ff 32 --layers 2 --seq-len 12 "
                    "--batch-size 4 --vocab-size 120 --synth-bytes 20000 --batching sentences "
                    "--threads 1 --steps 3 --lr 1e-2 --warmup 2 --weight-decay 0.01 --norm %s "
                    "--norm-position %s %s --out dbg.h5 --overwrite", cases[i].norm, cases[i].pos,
                    cases[i].extra);
        CHECK(r.code == 0 && strstr(r.out, "step_2 loss"), "exit %d, stderr %s", r.code, r.err);
        check_debug_file(scratch("dbg.h5"), cases[i].norm, cases[i].pos, cases[i].warmup);
    }
    print_message("%d debug states checked in %.2f s; worst relative error: AdamW chain %.2g, "
                  "loss %.2g, gradients %.2g\n", n, now() - t0, worst_adam, worst_loss, worst_grad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_debug_step),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, setup, teardown);
}
