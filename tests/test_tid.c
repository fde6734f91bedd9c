/* The training-inference discrepancy series (issue 24, docs/runlog.md "TID"), running NS_BINARY
 * in a scratch directory: for every scheme, at every site and every step of a padded run with
 * vectors every step, tid_mean, tid_var, tid_psi2 and their sampling floors equal their
 * definitions recomputed here from the logged batch and running vectors (and the real rows of
 * the step's batch). SOFT checks report and go on, failing the test at its end. */
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

#define D 32     /* TINY_MODEL's width */
#define STEPS 6
#define EPS 1e-5

/* The definitions of docs/runlog.md, from one step's vectors (b: batch mean, var, psi2; r: the
 * running values) and the statistic's real rows n. */
static void expected(double *const b[3], double *const r[3], int t, double n, double out[6])
{
    double sum[4] = {0.0, 0.0, 0.0, 0.0};
    for (int c = 0; c < D; c++) {
        double mu = b[0][D * t + c], var = b[1][D * t + c], psi2 = b[2][D * t + c];
        sum[0] += fabs(r[0][D * t + c] - mu) / sqrt(var + EPS);
        sum[1] += fabs(sqrt(r[1][D * t + c] + EPS) / sqrt(var + EPS) - 1.0);
        sum[2] += fabs(sqrt(r[2][D * t + c] + EPS) / sqrt(psi2 + EPS) - 1.0);
        sum[3] += sqrt((var * var + 2.0 * mu * mu * var) / (M_PI * n)) / (psi2 + EPS);
    }
    out[0] = sum[0] / D, out[1] = sum[1] / D, out[2] = sum[2] / D;
    out[3] = sqrt(2.0 / (M_PI * n)), out[4] = 1.0 / sqrt(M_PI * n), out[5] = sum[3] / D;
}

static void check_scheme(const char *norm)
{
    static const char *const stat[3] = {"mean", "var", "psi2"};
    static const char *const name[6] = {"tid_mean", "tid_var", "tid_psi2", "tid_mean_floor",
                                        "tid_var_floor", "tid_psi2_floor"};
    static int k; /* norm may hold spaces, which spawn splits at */
    const char *out = scratch(fmt("tid-%d.h5", k++));
    assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps %d --eval-every 0 --probe-vectors-every"
                            " 1 --pn-warmup 2 --batching sentences --norm-position pre --norm %s "
                            "--out %s", STEPS, norm, out), 0);
    hid_t f = open_ro(out);
    double *real, *all, *b[3], *r[3], *series[6];
    assert_int_equal(rd(f, "steps/real_tokens_per_s", &real, NULL), STEPS);
    assert_int_equal(rd(f, "steps/tokens_per_s", &all, NULL), STEPS);
    for (int s = 0; s < N_TINY_SITES; s++) {
        const char *site = TINY_SITES[s];
        for (int q = 0; q < 3; q++) {
            assert_int_equal(rd(f, fmt("norms/%s/vectors/batch_%s", site, stat[q]), &b[q], NULL),
                             STEPS);
            assert_int_equal(rd(f, fmt("norms/%s/vectors/running_%s", site, stat[q]), &r[q],
                                NULL), STEPS);
        }
        for (int q = 0; q < 6; q++)
            assert_int_equal(rd(f, fmt("norms/%s/%s", site, name[q]), &series[q], NULL), STEPS);
        for (int t = 0; t < STEPS; t++) {
            double want[6], n = round(128.0 * real[t] / all[t]); /* B x T = 128 positions */
            expected(b, r, t, n, want);
            for (int q = 0; q < 6; q++)
                SOFT(fabs(series[q][t] - want[q]) <= 1e-5 * want[q] + 1e-9,
                     "%s %s step %d %s %.9g, from the vectors %.9g\n", norm, site, t + 1,
                     name[q], series[q][t], want[q]);
        }
        for (int q = 0; q < 3; q++)
            free(b[q]), free(r[q]);
        for (int q = 0; q < 6; q++)
            free(series[q]);
    }
    free(real), free(all);
    H5Fclose(f);
}

/* Every scheme: those with running mean and variance (the scheme's own), with running psi2
 * (power: both phases, warm-up 2 of 6 steps; power-official's; group scaling), and those the
 * probe keeps running averages for. */
TEST(test_tid_from_vectors)
{
    static const char *const schemes[] = {"layer", "batch", "batch-regularized",
                                          "batch-official", "power-v", "power",
                                          "power-official --pn-groups 2", "rms", "none"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        check_scheme(schemes[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tid_from_vectors),
    };
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_filter_from_env();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
