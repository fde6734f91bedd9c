/* Evaluation with batch statistics (issue 13):
 *   1. `eval --norm-stats batch` equals, batch by batch, the loss of a training-mode forward
 *      without update: ns_model_loss_grad_at (the engine's side-effect-free training pass) on the
 *      same validation batches from the checkpoint's state, weighted by real positions;
 *   2. for a scheme without running statistics (layer) both modes give the same loss, for batch
 *      norm they differ, and `running` is what eval printed before the flag existed;
 *   3. the norm-gap probe records /norm_gap/{step,loss_running,loss_batch_stats,gap} at every
 *      validation pass for batch norm, loss_running equal to /eval/loss, and nothing for layer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "h5util.h"
#include "harness.h"
#include "model.h"

#define TRAIN_FLAGS "train " TINY_MODEL " --threads 1 --log-every 1000 --steps 12 --eval-every 6"

static int setup(void **state)
{
    (void)state;
    ns_h5_quiet();
    if (harness_setup() != 0)
        return -1;
    /* sentence batches: padding in the evaluation batches too */
    if (run(TRAIN_FLAGS " --norm batch --batching sentences --out bn.h5").code != 0 ||
        run(TRAIN_FLAGS " --norm layer --out ln.h5").code != 0)
        return -1;
    return 0;
}

/* The `loss` line of eval's output. */
static double eval_loss(const char *ckpt, const char *mode)
{
    Run r = run("eval --checkpoint %s --threads 1 --norm-stats %s", ckpt, mode);
    if (r.code != 0)
        fail_msg("eval --norm-stats %s: exit %d, %s", mode, r.code, r.err);
    const char *line = strstr(r.out, "\nloss ");
    assert_non_null(line);
    return strtod(line + 6, NULL);
}

/* The reference: ns_model_loss_grad_at on every validation batch of the checkpoint's run. */
static double reference_loss(const char *ckpt)
{
    char err[NS_ERRLEN] = "";
    NsCheckpointHeader h;
    ns_run_config_default(&h.cfg);
    if (ns_checkpoint_read_header(ckpt, &h, err) != 0)
        fail_msg("%s", err);
    NsDataSpec spec = ns_run_config_data_spec(&h.cfg);
    NsDataset ds;
    NsModel m;
    if (ns_dataset_load(&ds, &spec, h.vocab, h.vocab_n, err) != 0)
        fail_msg("%s", err);
    ns_model_init(&m, &h.cfg.model, h.cfg.seed);
    if (ns_checkpoint_load(ckpt, &m, NULL, NULL, NULL, NULL, err) != 0)
        fail_msg("%s", err);
    NsBatcher b;
    int B = h.cfg.model.batch_size, T = h.cfg.model.seq_len;
    assert_int_equal(ns_batcher_init(&b, &ds.valid, h.cfg.batching, B, T, h.cfg.seed, 0, err), 0);
    NsModelScratch scratch;
    ns_model_scratch_init(&scratch, &m);
    int32_t *tokens = calloc((size_t)B * (T + 1), sizeof *tokens);
    uint8_t *mask = calloc((size_t)B * T, 1);
    float *grad = malloc(sizeof(float) * m.layout.total);
    double total = 0.0;
    long count = 0;
    for (int i = 0, n = ns_batcher_epoch_batches(&b); i < n; i++) {
        int real = ns_batcher_next(&b, tokens, mask);
        if (real == 0)
            continue;
        ns_model_set_batch_shape(&m, B, T);
        total += ns_model_loss_grad_at(&m, NULL, m.params, tokens, mask, grad, &scratch) * real;
        count += real;
    }
    free(tokens);
    free(mask);
    free(grad);
    ns_model_scratch_free(&scratch);
    ns_batcher_free(&b);
    ns_model_free(&m);
    ns_dataset_free(&ds);
    ns_checkpoint_header_free(&h);
    return total / (double)count;
}

TEST(batch_stats_equal_training_forward_without_update)
{
    double reference = reference_loss(scratch("bn.ckpt.h5"));
    double batch = eval_loss("bn.ckpt.h5", "batch");
    double running = eval_loss("bn.ckpt.h5", "running");
    /* eval prints 6 decimals */
    SOFT(fabs(batch - reference) <= 1.5e-6, "batch norm: eval --norm-stats batch %.6f, training "
         "forward without update %.8f\n", batch, reference);
    SOFT(fabs(running - batch) > 1e-4, "batch norm: running %.6f and batch %.6f should differ\n",
         running, batch);
    double ln_batch = eval_loss("ln.ckpt.h5", "batch"), ln_running = eval_loss("ln.ckpt.h5", "running");
    SOFT(ln_batch == ln_running, "layer norm: batch %.6f != running %.6f\n", ln_batch, ln_running);
    Run plain = run("eval --checkpoint ln.ckpt.h5 --threads 1");
    SOFT(strstr(plain.out, fmt("\nloss %.6f\n", ln_running)), "default is not running: %s\n",
         plain.out);
    Run bad = run("eval --checkpoint ln.ckpt.h5 --norm-stats both");
    SOFT(bad.code == 2 && strstr(bad.err, "--norm-stats"), "--norm-stats both: exit %d %s\n",
         bad.code, bad.err);
}

static int n_rows(hid_t f, const char *path)
{
    if (!ns_h5_exists(f, path))
        return -1;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT), s = H5Dget_space(d);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(s, &n, NULL);
    H5Sclose(s);
    H5Dclose(d);
    return (int)n;
}

static void read_f64(hid_t f, const char *path, double *out)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Dclose(d);
}

TEST(norm_gap_probe_records_each_validation_pass)
{
    hid_t f = H5Fopen(scratch("bn.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    int n = n_rows(f, "norm_gap/loss_batch_stats");
    SOFT(n == 2 && n_rows(f, "norm_gap/step") == 2 && n_rows(f, "eval/loss") == 2,
         "norm_gap rows %d, eval rows %d (2 passes expected)\n", n, n_rows(f, "eval/loss"));
    if (n == 2) {
        double eval[2], running[2], batch[2], gap[2];
        read_f64(f, "eval/loss", eval);
        read_f64(f, "norm_gap/loss_running", running);
        read_f64(f, "norm_gap/loss_batch_stats", batch);
        read_f64(f, "norm_gap/gap", gap);
        for (int i = 0; i < 2; i++)
            SOFT(running[i] == eval[i] && isfinite(batch[i]) && batch[i] != running[i] &&
                 gap[i] == running[i] - batch[i], "pass %d: eval %g running %g batch %g gap %g\n",
                 i, eval[i], running[i], batch[i], gap[i]);
        /* the last pass is the final model's: what eval --norm-stats batch computes */
        double last = eval_loss("bn.ckpt.h5", "batch");
        SOFT(fabs(batch[1] - last) <= 1.5e-6, "final pass %.8f, eval %.6f\n", batch[1], last);
    }
    H5Fclose(f);
    f = H5Fopen(scratch("ln.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    SOFT(!ns_h5_exists(f, "norm_gap"), "layer norm has a norm_gap group\n");
    H5Fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_stats_equal_training_forward_without_update),
        cmocka_unit_test(norm_gap_probe_records_each_validation_pass),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, setup, group_teardown);
}
