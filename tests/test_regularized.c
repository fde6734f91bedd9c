/* Tests of `--norm batch-regularized` (issue 24, model-spec.md "batch-regularized"), running
 * NS_BINARY in a scratch directory (the reference debug states are test_debug_state's, the
 * finite-difference checks test_model_gradients'):
 *  1 --rbn-penalty-mean/-var: the release's defaults by position, explicit flags win, an error
 *    with other schemes (also on --resume of their checkpoints) and for a negative weight;
 *    --release-defaults' momentum 0.05
 *  2 with both penalties 0 it trains bit for bit as `batch` (loss, gradient norm, validation)
 *  3 the logged penalty: steps/penalty is the sum of the sites' norms/<site>/penalty, positive,
 *    and a resumed run logs what an unbroken one does
 *  4 a strong penalty lowers tid_mean against `batch` in a short deterministic run.
 * SOFT checks report and go on, failing the test at its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "harness.h"
#include "logs.h"
#include "util.h"

/* ------------------------------------------------------------ 1: settings */

TEST(test_penalty_flags)
{
    const char *rbn = "--norm batch-regularized", *post = "--norm batch-regularized "
                                                         "--norm-position post";
    SOFT(trained_attr(post, "rbn_penalty_mean") == 60.0f &&
             trained_attr(post, "rbn_penalty_var") == 0.0f, "post defaults 60 / 0\n");
    const char *pre = "--norm batch-regularized --norm-position pre";
    SOFT(trained_attr(pre, "rbn_penalty_mean") == 0.1f &&
             trained_attr(pre, "rbn_penalty_var") == 0.01f, "pre defaults 0.1 / 0.01\n");
    SOFT(trained_attr(fmt("%s --rbn-penalty-mean 3 --rbn-penalty-var 0.5", rbn),
                      "rbn_penalty_var") == 0.5f, "an explicit weight wins\n");
    SOFT(trained_attr("--norm batch", "rbn_penalty_mean") == 0.0f, "batch: no penalty\n");
    SOFT(trained_attr(rbn, "bn_momentum") == 0.1f, "momentum: batch's\n");
    SOFT(trained_attr(fmt("%s --release-defaults", rbn), "bn_momentum") == 0.05f,
         "--release-defaults: the release's momentum 0.05\n");
    SOFT(trained_attr(fmt("%s --release-defaults --bn-momentum 0.2", rbn), "bn_momentum") ==
             0.2f, "an explicit --bn-momentum wins\n");
    Run r = run(TINY_TRAIN " --steps 2 --norm batch --rbn-penalty-var 1 --out %s",
                scratch("x.h5"));
    SOFT(r.code == 2 && strstr(r.err, "--rbn-penalty-var applies to --norm batch-regularized"),
         "batch --rbn-penalty-var: exit %d, %s\n", r.code, r.err);
    r = run(TINY_TRAIN " --steps 2 %s --rbn-penalty-mean -1 --out %s", rbn, scratch("x.h5"));
    SOFT(r.code == 2 && strstr(r.err, "--rbn-penalty-mean must be"), "negative: exit %d, %s\n",
         r.code, r.err);
    /* resuming another scheme's checkpoint with a weight: the same error, nothing recorded */
    assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 2 --norm batch --out %s",
                            scratch("res.h5")), 0);
    r = run("train --resume %s --steps 3 --rbn-penalty-mean 3 --out %s",
            scratch("res.ckpt.h5"), scratch("res.h5"));
    SOFT(r.code == 2 && strstr(r.err, "--rbn-penalty-mean applies to --norm batch-regularized"),
         "resume with a weight: exit %d, %s\n", r.code, r.err);
    Run h = run("train --help");
    SOFT(strstr(h.out, "post 60, pre 0.1") && strstr(h.out, "post 0, pre 0.01"),
         "--help states the release's defaults\n");
}

/* ------------------------------------------------------------ 2: penalties 0 */

static void same_series(hid_t fa, hid_t fb, const char *path, long rows)
{
    double *a, *b;
    assert_int_equal(rd(fa, path, &a, NULL), rows);
    assert_int_equal(rd(fb, path, &b, NULL), rows);
    for (long t = 0; t < rows; t++)
        SOFT(memcmp(&a[t], &b[t], sizeof a[t]) == 0, "%s row %ld: %.17g vs batch %.17g\n", path,
             t, b[t], a[t]);
    free(a), free(b);
}

TEST(test_zero_penalty_is_batch)
{
    const char *flags = TINY_TRAIN " --steps 8 --eval-every 4 --batching sentences --dropout 0.1";
    const char *a = scratch("zero-batch.h5"), *b = scratch("zero-rbn.h5");
    for (int pos = 0; pos < 2; pos++) {
        const char *where = pos ? "pre" : "post";
        assert_int_equal(run_io((Io){0}, "%s --norm-position %s --norm batch --overwrite --out %s",
                                flags, where, a), 0);
        assert_int_equal(run_io((Io){0}, "%s --norm-position %s --norm batch-regularized "
                                "--rbn-penalty-mean 0 --rbn-penalty-var 0 --overwrite --out %s",
                                flags, where, b), 0);
        hid_t fa = open_ro(a), fb = open_ro(b);
        same_series(fa, fb, "steps/loss", 8);
        same_series(fa, fb, "steps/grad_norm", 8);
        same_series(fa, fb, "eval/loss", 2);
        same_series(fa, fb, "norms/layers/1/norm2/dist_var", 8);
        double *pen;
        assert_int_equal(rd(fb, "steps/penalty", &pen, NULL), 8);
        for (int t = 0; t < 8; t++)
            SOFT(pen[t] == 0.0, "penalty 0 at step %d: %g\n", t + 1, pen[t]);
        SOFT(!exists(fa, "steps/penalty"), "batch logs no penalty\n");
        free(pen);
        H5Fclose(fa), H5Fclose(fb);
    }
}

/* ------------------------------------------------------------ 3: the logged penalty */

static void check_penalty_sum(const char *path, long rows)
{
    hid_t f = open_ro(path);
    double *total;
    assert_int_equal(rd(f, "steps/penalty", &total, NULL), rows);
    double *sum = calloc((size_t)rows, sizeof(double));
    for (int s = 0; s < N_TINY_SITES; s++) { /* pre position (train's default) */
        double *site;
        assert_int_equal(rd(f, fmt("norms/%s/penalty", TINY_SITES[s]), &site, NULL), rows);
        for (long t = 0; t < rows; t++)
            sum[t] += site[t];
        free(site);
    }
    for (long t = 0; t < rows; t++)
        SOFT(total[t] > 0.0 && fabs(total[t] - sum[t]) <= 1e-12 + 1e-9 * total[t],
             "step %ld: penalty %.12g, sum over the sites %.12g\n", t + 1, total[t], sum[t]);
    free(total), free(sum);
    H5Fclose(f);
}

TEST(test_penalty_logged_and_resumed)
{
    const char *flags = TINY_TRAIN " --norm batch-regularized --eval-every 0 --dropout 0";
    const char *full = scratch("pen-full.h5"), *part = scratch("pen-part.h5");
    assert_int_equal(run_io((Io){0}, "%s --steps 6 --out %s", flags, full), 0);
    check_penalty_sum(full, 6);
    assert_int_equal(run_io((Io){0}, "%s --steps 3 --out %s", flags, part), 0);
    assert_int_equal(run_io((Io){0}, "train --resume %s --steps 6 --out %s",
                            scratch("pen-part.ckpt.h5"), part), 0);
    hid_t fa = open_ro(full), fb = open_ro(part);
    same_series(fa, fb, "steps/penalty", 6);
    same_series(fa, fb, "steps/loss", 6);
    H5Fclose(fa), H5Fclose(fb);
}

/* ------------------------------------------------------------ 4: the penalty's effect */

/* Median of a series over steps (from, to]. */
static double late_median(hid_t f, const char *path, int from, int to)
{
    double *v;
    assert_int_equal(rd(f, path, &v, NULL), to);
    double *late = v + from;
    int n = to - from;
    for (int i = 1; i < n; i++) /* insertion sort: a handful of values */
        for (int j = i; j > 0 && late[j] < late[j - 1]; j--) {
            double x = late[j];
            late[j] = late[j - 1], late[j - 1] = x;
        }
    double m = n % 2 ? late[n / 2] : 0.5 * (late[n / 2 - 1] + late[n / 2]);
    free(v);
    return m;
}

/* Mean over the sites of how far the median tid_mean of steps (from, to] exceeds its sampling
 * floor's median: the part of the discrepancy a running mean could remove. */
static double late_tid_excess(const char *path, int from, int to)
{
    hid_t f = open_ro(path);
    double total = 0.0;
    for (int s = 0; s < N_TINY_SITES; s++)
        total += late_median(f, fmt("norms/%s/tid_mean", TINY_SITES[s]), from, to) -
                 late_median(f, fmt("norms/%s/tid_mean_floor", TINY_SITES[s]), from, to);
    H5Fclose(f);
    return total / N_TINY_SITES;
}

TEST(test_strong_penalty_lowers_tid)
{
    /* 32 padded rows: about 300 real tokens a batch, so the floor (0.04) sits well below batch's
     * TID at this learning rate */
    const char *flags = TINY_TRAIN " --batch-size 32 --steps 40 --eval-every 0 --dropout 0 "
                                   "--batching sentences --lr 3e-3 --warmup 10";
    const char *a = scratch("tid-batch.h5"), *b = scratch("tid-rbn.h5");
    assert_int_equal(run_io((Io){0}, "%s --norm batch --out %s", flags, a), 0);
    assert_int_equal(run_io((Io){0}, "%s --norm batch-regularized --rbn-penalty-mean 2000 "
                            "--rbn-penalty-var 0 --out %s", flags, b), 0);
    double plain = late_tid_excess(a, 20, 40), regularized = late_tid_excess(b, 20, 40);
    print_message("tid_mean above its floor (medians over steps 21-40, mean over sites): batch "
                  "%.4f, batch-regularized (lm 2000) %.4f\n", plain, regularized);
    SOFT(plain > 0.01 && regularized < 0.5 * plain, "the penalty lowers tid_mean: %.4f vs batch "
         "%.4f above the floor\n", regularized, plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_penalty_flags),
        cmocka_unit_test(test_zero_penalty_is_batch),
        cmocka_unit_test(test_penalty_logged_and_resumed),
        cmocka_unit_test(test_strong_penalty_lowers_tid),
    };
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_filter_from_env();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
