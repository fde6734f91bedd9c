/* Reproduces the reference debug states in tests/data/debug-states (copies of the files computed
 * independently from the model spec in float64, one per scheme and position): for every step of every file, the loss, every gradient and the
 * norm state after the step, within debug-state.md's tolerances (relative to the largest
 * magnitude of each tensor: loss 1e-4, gradients 2e-3, state 1e-3; batch-regularized's penalty
 * like the loss). Steps are chained: the
 * parameters after our AdamW update must match the next step's recorded parameters, so the
 * optimizer and the norm state carried between steps are checked too. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "h5util.h"
#include "harness.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"

/* max |a - b| / max(max |b|, floor). The floor only matters for tensors whose exact value is 0
 * (the key bias: softmax ignores a constant shift of the scores), where the reference holds
 * float64 round-off of 1e-18 and "relative to the largest magnitude" would divide noise by
 * noise; for those, the scale is a 1e-4 fraction of the largest gradient of the step. */
static double rel_err_floor(const float *a, const float *b, size_t n, double floor)
{
    double diff = 0.0;
    for (size_t i = 0; i < n; i++)
        diff = fmax(diff, fabs((double)a[i] - b[i]));
    return diff / fmax(max_abs(b, n), fmax(floor, 1e-30));
}

static double rel_err(const float *a, const float *b, size_t n) { return rel_err_floor(a, b, n, 0); }

static double worst_grad, worst_state, worst_loss, worst_param, worst_penalty;

/* Tensors whose reference gradient is round-off (see rel_err_floor): Adam turns such a gradient
 * into a step of about lr in a random direction, in either implementation, so their updated
 * values are not comparable and the chained parameter check skips them. */
static unsigned char noise_grad[1024];

static void compare_tensors(hid_t f, const char *prefix, const NsParamLayout *L, const float *ours,
                            double tol, double *worst, const char *file, int is_grad)
{
    char err[NS_ERRLEN];
    float *ref = malloc(sizeof(float) * L->total);
    assert_true(L->n_tensors <= (int)sizeof noise_grad);
    assert_int_equal(ns_read_tensors(f, prefix, L, ref, err), 0);
    double floor = 1e-4 * max_abs(ref, L->total);
    for (int i = 0; i < L->n_tensors; i++) {
        const NsTensorInfo *t = &L->tensors[i];
        if (is_grad)
            noise_grad[i] = max_abs(ref + t->offset, t->size) < floor;
        else if (noise_grad[i])
            continue;
        double e = rel_err_floor(ours + t->offset, ref + t->offset, t->size, floor);
        *worst = fmax(*worst, e);
        if (!(e <= tol))
            fail_msg("%s: %s/%s relative error %.3g > %.3g", file, prefix, t->name, e, tol);
    }
    free(ref);
}

static void compare_state(hid_t f, const char *prefix, NsModel *m, const char *file)
{
    char err[NS_ERRLEN], path[512];
    for (int i = 0; i < m->n_sites; i++) {
        NsNormSite *s = &m->sites[i];
        const char *names[4];
        float *ptrs[4];
        int n = ns_norm_state_tensors(s, names, ptrs);
        float ref[4096];
        assert_true(s->d <= 4096);
        for (int k = 0; k < n; k++) {
            snprintf(path, sizeof path, "%s/%s/%s", prefix, s->path, names[k]);
            assert_int_equal(ns_h5_read(f, path, H5T_NATIVE_FLOAT, ref, (size_t)s->d, err), 0);
            double e = rel_err(ptrs[k], ref, (size_t)s->d);
            worst_state = fmax(worst_state, e);
            if (!(e <= 1e-3))
                fail_msg("%s: %s relative error %.3g > 1e-3", file, path, e);
        }
        if (ns_norm_has_step(s)) {
            int64_t step;
            snprintf(path, sizeof path, "%s/%s/step", prefix, s->path);
            assert_int_equal(ns_h5_read(f, path, H5T_NATIVE_INT64, &step, 1, err), 0);
            assert_int_equal(step, s->step);
        }
    }
}

/* batch-regularized's files hold each step's penalty (the sites' P summed), which our forward
 * leaves in m->penalty; every other scheme's file has none, and our penalty is 0 there. */
static void compare_penalty(hid_t f, int k, const NsModel *m, const char *name)
{
    char err[NS_ERRLEN], g[64];
    snprintf(g, sizeof g, "step_%d/penalty", k);
    int has = ns_norm_scheme_for(m->cfg.norm)->has_penalty;
    if (has != ns_h5_exists(f, g))
        fail_msg("%s step %d: penalty %s in the file", name, k, has ? "missing" : "unexpected");
    if (!has) {
        assert_true(m->penalty == 0.0);
        return;
    }
    float ref;
    assert_int_equal(ns_h5_read(f, g, H5T_NATIVE_FLOAT, &ref, 1, err), 0);
    double e = fabs(m->penalty - ref) / fmax(fabs(ref), 1e-30);
    worst_penalty = fmax(worst_penalty, e);
    if (!(e <= 1e-4) || !(ref > 0.0f))
        fail_msg("%s step %d: penalty %.7g vs reference %.7g", name, k, m->penalty, ref);
}

static void reproduce_file(const char *path, const char *name)
{
    char err[NS_ERRLEN], g[256];
    hid_t f = ns_h5_open(path, 0, err);
    assert_true(f >= 0);
    NsModelConfig mc;
    NsOptimConfig oc;
    ns_model_config_default(&mc);
    ns_optim_config_default(&oc);
    oc.clip = 0.0f;
    oc.warmup = 0; /* reference files carry no schedule: a constant lr, which `lr` records */
    assert_int_equal(ns_read_config_attrs(f, &mc, &oc, err), 0);
    mc.dropout = 0.0f;
    NsModel m;
    ns_model_init(&m, &mc, 1);
    NsAdamW opt;
    ns_adamw_init(&opt, &oc, m.layout.total);
    int B = mc.batch_size, T = mc.seq_len;
    int32_t *tokens = malloc(sizeof(int32_t) * B * (T + 1));
    uint8_t *mask = malloc((size_t)B * T);
    for (int k = 0;; k++) {
        snprintf(g, sizeof g, "step_%d", k);
        if (!ns_h5_exists(f, g))
            break;
        /* Each step starts from the reference parameters and state, so an error is pinned to
         * the step that made it; our own AdamW update is checked against them first. */
        snprintf(g, sizeof g, "step_%d/params", k);
        if (k > 0)
            compare_tensors(f, g, &m.layout, m.params, 1e-3, &worst_param, name, 0);
        assert_int_equal(ns_read_tensors(f, g, &m.layout, m.params, err), 0);
        snprintf(g, sizeof g, "step_%d/state_before", k);
        if (ns_norm_is_batch_type(mc.norm))
            assert_int_equal(ns_read_norm_state(f, g, &m, err), 0);
        snprintf(g, sizeof g, "step_%d/tokens", k);
        assert_int_equal(ns_h5_read(f, g, H5T_NATIVE_INT32, tokens, (size_t)B * (T + 1), err), 0);
        snprintf(g, sizeof g, "step_%d/mask", k);
        assert_int_equal(ns_h5_read(f, g, H5T_NATIVE_UINT8, mask, (size_t)B * T, err), 0);
        double loss = ns_model_forward(&m, tokens, mask, 1);
        ns_model_zero_grad(&m);
        ns_model_backward(&m);
        float ref_loss, lr;
        snprintf(g, sizeof g, "step_%d/loss", k);
        assert_int_equal(ns_h5_read(f, g, H5T_NATIVE_FLOAT, &ref_loss, 1, err), 0);
        double le = fabs(loss - ref_loss) / fmax(fabs(ref_loss), 1e-30);
        worst_loss = fmax(worst_loss, le);
        if (!(le <= 1e-4))
            fail_msg("%s step %d: loss %.7f vs reference %.7f", name, k, loss, ref_loss);
        compare_penalty(f, k, &m, name);
        snprintf(g, sizeof g, "step_%d/grads", k);
        compare_tensors(f, g, &m.layout, m.grads, 2e-3, &worst_grad, name, 1);
        snprintf(g, sizeof g, "step_%d/state_after", k);
        if (ns_norm_is_batch_type(mc.norm))
            compare_state(f, g, &m, name);
        snprintf(g, sizeof g, "step_%d/lr", k);
        assert_int_equal(ns_h5_read(f, g, H5T_NATIVE_FLOAT, &lr, 1, err), 0);
        assert_true(fabsf(lr - ns_lr_at(&oc, opt.t + 1)) <= 1e-6f * lr);
        ns_adamw_step(&opt, m.params, m.grads, lr);
    }
    free(tokens);
    free(mask);
    ns_adamw_free(&opt);
    ns_model_free(&m);
    H5Fclose(f);
}

static void test_reference_debug_states(void **state)
{
    (void)state;
    ns_h5_quiet();
    DIR *dir = opendir(test_debug_states());
    if (!dir)
        fail_msg("cannot read the reference debug states in %s", test_debug_states());
    int files = 0;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(dir))) {
        if (strncmp(e->d_name, "debug-state-", 12) != 0 || !strstr(e->d_name, ".h5"))
            continue;
        snprintf(path, sizeof path, "%s/%s", test_debug_states(), e->d_name);
        reproduce_file(path, e->d_name);
        files++;
    }
    closedir(dir);
    assert_int_equal(files, 2 * NS_NORM_COUNT); /* every scheme, post and pre */
    print_message("reproduced %d reference files: worst relative error loss %.2e, penalty "
                  "%.2e, gradients %.2e, state %.2e, parameters after update %.2e\n", files,
                  worst_loss, worst_penalty, worst_grad, worst_state, worst_param);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_debug_states),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
