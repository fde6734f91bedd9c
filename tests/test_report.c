/* Tests of `normscope report` (the study's analysis from existing logs) and of the one outcome
 * verdict (analysis/outcome.h) that the report, compare and the sweep share:
 *   - report on a finished study's logs writes the study's report.md byte for byte;
 *   - logs of two model sizes and a log from "another writer" (no d_model, n_layers, no
 *     /lipschitz, no /norm_gap, no vectors, a site named conv1/bn) mixed: report runs and
 *     names what it compared and left out; two such logs alone get the claims at conv1/bn;
 *   - a synthetic unstable log (training loss rising 4.5 -> 5.7 -> 5.4, BN's distance growing
 *     900-fold) is reported as unstable in the verdict, compare.csv, the sweep's row and the
 *     report's claims; the stable original is not; a gradient norm growing 1000-fold too;
 *   - divergence: a finite loss of 1.6e12 diverges, a loss just under 10 ln(V) does not, and a
 *     log without vocab_size is bounded by 100x its first loss;
 *   - every expected value is recomputed here from the logs with plain reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "harness.h"
#include "logs.h"
#include "outcome.h"
#include "sweep_summary.h"
#include "util.h"

#define STUDY_FLAGS TINY_MODEL " --steps 30 --eval-every 10 --lipschitz-every 15 " \
                    "--hessian-iters 3 --probe-vectors-every 10"

/* ------------------------------------------------------------------------------------------
 * Expected values */

/* Median of group/name over the fifth k of the run (steps in (k/5, (k+1)/5] of the last). */
static double fifth_median(const NsLog *log, const char *group, const char *name, int k)
{
    return window_median_of(log, group, name, 0, k / 5.0, (k + 1) / 5.0);
}

static NsRunOutcome outcome_of(const char *path)
{
    NsLog log;
    NsRunOutcome o;
    open_logs(&log, &path, 1);
    ns_run_outcome(&log, &o);
    close_logs(&log, 1);
    return o;
}

/* The last field of the CSV row whose first field is `run` ("" when none). */
static const char *csv_last_field(const char *csv_path, const char *run)
{
    char *csv = slurp(csv_path, NULL);
    static char last[64];
    last[0] = 0;
    for (char *line = strtok(csv, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, run, strlen(run)) == 0 && line[strlen(run)] == ',')
            snprintf(last, sizeof last, "%s", strrchr(line, ',') + 1);
    free(csv);
    return last;
}

/* ------------------------------------------------------------------------------------------
 * Crafted logs */

/* The reference run's training loss: medians 4.5 over the first fifth, 5.7 over the second,
 * 5.4 after (docs/onset.md: the unstable d=512 run). */
static void rising_loss(double *v, const double *step, size_t n, void *ctx)
{
    (void)ctx;
    double last = step[n - 1];
    for (size_t i = 0; i < n; i++)
        v[i] = step[i] / last <= 0.2 ? 4.5 : step[i] / last <= 0.4 ? 5.7 : 5.4;
}

/* BN's distance grows with training: x 10^(6 p), p = step / last (about 2500-fold from the
 * second fifth to the last). */
static void growing(double *v, const double *step, size_t n, void *ctx)
{
    (void)ctx;
    double last = step[n - 1];
    for (size_t i = 0; i < n; i++)
        v[i] *= pow(10.0, 6.0 * step[i] / last);
}

/* The gradient norm x1000 over the last fifth. */
static void exploding(double *v, const double *step, size_t n, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        v[i] *= step[i] / step[n - 1] > 0.8 ? 1000.0 : 1.0;
}

/* Row *ctx (index, value) set. */
typedef struct {
    size_t index;
    double value;
} SetRow;
static void set_row(double *v, const double *step, size_t n, void *ctx)
{
    (void)step;
    const SetRow *s = ctx;
    assert_true(s->index < n);
    v[s->index] = s->value;
}

static void craft_unstable(const char *to)
{
    copy_file(g_batch, to);
    edit_series(to, "steps/loss", rising_loss, NULL);
    for (int i = 0; i < N_TINY_SITES; i++)
        edit_series(to, fmt("norms/%s/dist_var", TINY_SITES[i]), growing, NULL);
}

static void delete_attr(const char *file, const char *name)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Adelete(f, name) >= 0);
    H5Fclose(f);
}

/* "Another writer" (a convolutional network's recorder): no d_model and n_layers, no
 * smoothness or norm-gap groups, no statistic vectors, and one norm site named conv1/bn (the
 * first layer's site moved there; the other sites gone). */
static void craft_foreign(const char *from, const char *to)
{
    copy_file(from, to);
    delete_attr(to, "d_model");
    delete_attr(to, "n_layers");
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    static const char *const GROUPS[] = {"lipschitz", "norm_gap"};
    for (int i = 0; i < 2; i++)
        if (exists(f, GROUPS[i]))
            assert_true(H5Ldelete(f, GROUPS[i], H5P_DEFAULT) >= 0);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    assert_true(H5Lmove(f, "norms/layers/0/norm1", f, "norms/conv1/bn", lcpl, H5P_DEFAULT) >= 0);
    assert_true(H5Ldelete(f, "norms/layers", H5P_DEFAULT) >= 0);
    assert_true(H5Ldelete(f, "norms/final_norm", H5P_DEFAULT) >= 0);
    if (exists(f, "norms/conv1/bn/vectors"))
        assert_true(H5Ldelete(f, "norms/conv1/bn/vectors", H5P_DEFAULT) >= 0);
    H5Pclose(lcpl);
    H5Fclose(f);
}

/* ------------------------------------------------------------------------------------------
 * report = the study's analysis */

TEST(test_report_equals_study)
{
    Run s = run("study --schemes batch,power-v --out st " STUDY_FLAGS);
    SOFT(s.code == 0, "study: exit %d: %s", s.code, last_line(s.err));
    Run r = run("report st/runs/batch.h5 st/runs/power-v.h5 --out rp");
    SOFT(r.code == 0, "report: exit %d: %s", r.code, last_line(r.err));
    static const char *const FILES[] = {"report.md", "compare.md", "compare.csv"};
    for (int i = 0; i < 3; i++) {
        size_t a_len = 0, b_len = 0;
        char *a = slurp(scratch(fmt("st/%s", FILES[i])), &a_len);
        char *b = slurp(scratch(fmt("rp/%s", FILES[i])), &b_len);
        SOFT(a && b && a_len == b_len && memcmp(a, b, a_len) == 0, "%s differs", FILES[i]);
        free(a), free(b);
    }
    SOFT(file_exists(scratch("rp/study.ipynb")) && file_exists(scratch("rp/figures/training.png")),
         "report: no notebook or figures");
    SOFT(file_contains(scratch("rp/report.md"), "## Stability") &&
         file_contains(scratch("rp/report.md"), "| batch (pre) | stable |"), "stability section");
    Run none = run("report --out rp2");
    SOFT(none.code == 2 && strstr(none.err, "no run logs"), "no logs: exit %d: %s", none.code,
         none.err);
    Run missing = run("report nosuch.h5 --out rp3");
    SOFT(missing.code == 1 && strstr(missing.err, "nosuch.h5") && !strchr(missing.err, '\n')[1],
         "missing log: exit %d: %s", missing.code, missing.err);
}

TEST(test_report_mixed_models)
{
    const char *small;
    SOFT(train_logs(1, "--d-model 16 --heads 2 --d-ff 32 --layers 1 --seq-len 16 --batch-size 8 "
                       "--vocab-size 500 --synth-bytes 100000 --eval-every 10 --steps 30",
                    (const char *[]){"small.h5"}, (const char *[]){"--norm batch"}, NULL,
                    &small) == 0, "training the small model");
    craft_foreign(g_pv, scratch("foreign.h5"));
    Run r = run("report %s %s small.h5 foreign.h5 --out mixed", g_batch, g_pv);
    SOFT(r.code == 0, "mixed report: exit %d: %s", r.code, last_line(r.err));
    const char *md = scratch("mixed/report.md");
    SOFT(file_contains(md, "compared: 2 runs with d_model=32, 2 layers; left out: small.h5 "
                           "(d_model=16, 1 layer), foreign.h5 (no d_model or n_layers recorded)"),
         "report.md does not say what it compared");
    SOFT(file_contains(scratch("mixed/compare.md"), "the distance columns need runs of one "
                                                    "model shape; compared: 2 runs"),
         "compare.md does not say what it compared");
    SOFT(!file_contains(md, "nan") && !file_contains(md, "inf |"), "nonsense in the report");

    /* a left-out run first: the distance columns still take a site of the compared runs */
    Run first = run("report foreign.h5 %s %s --out mixed2", g_batch, g_pv);
    SOFT(first.code == 0 && file_contains(scratch("mixed2/compare.md"), "at norm site "
                                                                        "`layers/0/norm1`"),
         "left-out run first: exit %d, site of the distance columns", first.code);

    /* the other writer's logs alone: their sites are found and judged by their names */
    craft_foreign(g_batch, scratch("foreign-bn.h5"));
    Run alone = run("report foreign-bn.h5 foreign.h5 --out alone");
    SOFT(alone.code == 0, "foreign logs: exit %d: %s", alone.code, last_line(alone.err));
    const char *amd = scratch("alone/report.md");
    SOFT(file_contains(amd, "| `conv1/bn` |") &&
         !file_contains(amd, "No run records norm-site probes"), "conv1/bn not judged");
    SOFT(!file_contains(amd, "nan") && !file_contains(amd, "layers/0"), "nonsense in the report");
}

/* ------------------------------------------------------------------------------------------
 * Instability */

TEST(test_unstable_run)
{
    const char *bad = scratch("unstable.h5");
    craft_unstable(bad);
    NsRunOutcome o = outcome_of(bad), ok = outcome_of(g_batch);
    SOFT(o.stab.unstable == NS_UNSTABLE_LOSS && o.stab.rise_from == 0 && o.stab.rise_to == 1,
         "unstable: bits %d, rise %d -> %d", o.stab.unstable, o.stab.rise_from, o.stab.rise_to);
    SOFT(isnan(o.diverged_at), "a finite loss of 5.7 diverged at %g", o.diverged_at);
    NsLog log;
    open_logs(&log, &bad, 1);
    for (int k = 0; k < 5; k++) {
        double want = fifth_median(&log, "steps", "loss", k);
        SOFT(fabs(o.stab.loss_fifth[k] - want) < 1e-12, "fifth %d: %g, want %g", k,
             o.stab.loss_fifth[k], want);
    }
    close_logs(&log, 1);
    SOFT(ok.stab.unstable == 0, "the trained run is unstable: bits %d", ok.stab.unstable);
    char why[300];
    ns_stability_text(&o.stab, why, sizeof why);
    SOFT(strstr(why, "rose from 4.5 (median of the first fifth) to 5.7 (the second fifth; 5.4 in "
                     "the last)"), "why: %s", why);

    NsSweepRow row;
    char err[NS_ERRLEN];
    SOFT(ns_sweep_row(bad, &row, err) == 0 && row.outcome.stab.unstable && row.growth > 100,
         "sweep row: unstable %d, growth %g", row.outcome.stab.unstable, row.growth);

    Run r = run("report unstable.h5 %s --out un", g_pv);
    SOFT(r.code == 0, "report: exit %d: %s", r.code, last_line(r.err));
    const char *md = scratch("un/report.md");
    SOFT(file_contains(md, "-fold while its training loss rose from 4.5 (median of the first "
                           "fifth) to 5.7 (the second fifth; 5.4 in the last): unstable run, not "
                           "the paper's effect"), "the forward claim does not name it");
    SOFT(file_contains(md, "| unstable run |"), "claim 1's table does not say unstable run");
    SOFT(file_contains(md, "| batch (pre) | unstable: its training loss rose"), "stability row");
    SOFT(strcmp(csv_last_field(scratch("un/compare.csv"), "unstable.h5"), "1") == 0,
         "compare.csv unstable column");
    Run s = run("report %s %s --out st_ok", g_batch, g_pv);
    SOFT(s.code == 0 && !file_contains(scratch("st_ok/report.md"), "unstable run, not") &&
         !file_contains(scratch("st_ok/report.md"), "| unstable"),
         "the stable runs' report says unstable");
    SOFT(strcmp(csv_last_field(scratch("st_ok/compare.csv"), g_batch), "0") == 0,
         "compare.csv unstable column of a stable run");
}

TEST(test_unstable_gradient)
{
    const char *bad = scratch("grad.h5");
    copy_file(g_batch, bad);
    edit_series(bad, "steps/grad_norm", exploding, NULL);
    NsRunOutcome o = outcome_of(bad), ok = outcome_of(g_batch);
    NsLog log;
    open_logs(&log, &bad, 1);
    double want = fifth_median(&log, "steps", "grad_norm", 4) /
                  fifth_median(&log, "steps", "grad_norm", 1);
    close_logs(&log, 1);
    SOFT(o.stab.unstable == NS_UNSTABLE_GRAD && fabs(o.stab.grad_growth - want) < 1e-9 * want,
         "gradient: bits %d, growth %g, want %g", o.stab.unstable, o.stab.grad_growth, want);
    SOFT(ok.stab.grad_growth < 100, "the trained run's gradient grew %g-fold",
         ok.stab.grad_growth);
}

/* ------------------------------------------------------------------------------------------
 * Divergence: non-finite, or above the bound */

TEST(test_divergence_bound)
{
    NsLog trained;
    open_logs(&trained, &g_batch, 1);
    long vocab = 0;
    ns_log_attr_long(&trained, "vocab_size", &vocab);
    size_t n;
    double *step = series(&trained, "steps/step", &n), *loss = series(&trained, "steps/loss", &n);
    close_logs(&trained, 1);
    double bound = 10.0 * log((double)vocab);

    const char *huge = scratch("huge.h5");
    copy_file(g_batch, huge);
    edit_series(huge, "steps/loss", set_row, &(SetRow){12, 1.6e12});
    NsRunOutcome o = outcome_of(huge);
    SOFT(o.diverged_at == step[12] && fabs(o.loss_bound - bound) < 1e-12,
         "loss 1.6e12: diverged at %g (want %g), bound %g (want %g)", o.diverged_at, step[12],
         o.loss_bound, bound);
    Run r = run("compare huge.h5 --out huge");
    SOFT(r.code == 0 && strstr(r.out, fmt("| %.0f |", step[12])), "compare's diverged at: %s",
         r.out);

    const char *under = scratch("under.h5");
    copy_file(g_batch, under);
    edit_series(under, "steps/loss", set_row, &(SetRow){12, bound - 0.01});
    SOFT(isnan(outcome_of(under).diverged_at), "a loss under the bound diverged");

    const char *other = scratch("other.h5"); /* another writer: no vocab_size */
    copy_file(g_batch, other);
    delete_attr(other, "vocab_size");
    edit_series(other, "steps/loss", set_row, &(SetRow){12, 100.0 * loss[0] * 1.01});
    o = outcome_of(other);
    SOFT(o.diverged_at == step[12] && fabs(o.loss_bound - 100.0 * loss[0]) < 1e-9,
         "without vocab_size: diverged at %g, bound %g (first loss %g)", o.diverged_at,
         o.loss_bound, loss[0]);
    free(step), free(loss);
}

/* ------------------------------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    return train_analysis_logs(LOG_BATCH | LOG_PV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_equals_study),
        cmocka_unit_test(test_report_mixed_models),
        cmocka_unit_test(test_unstable_run),
        cmocka_unit_test(test_unstable_gradient),
        cmocka_unit_test(test_divergence_bound),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, setup, group_teardown);
}
