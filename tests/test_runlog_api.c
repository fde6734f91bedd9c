/* The run-log writer's stable C API (include/normscope_runlog.h, libnormscope-runlog): a log
 * written through it is one `normscope check-log` accepts and the reader reads back row for row;
 * every misuse (an undeclared or mistyped attribute, a path outside its group, a row of the
 * wrong type or width, appends before start, declarations after it, an existing file without
 * overwrite, a second writer) is refused with a one-line reason and leaves no corrupt file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "logread.h"
#include "normscope_runlog.h"

#define STEPS 7

static NsrlLog *new_log(const char *name, int overwrite)
{
    char err[512] = "";
    NsrlLog *l = nsrl_create(scratch(name), overwrite, 3, err, sizeof err);
    if (!l)
        print_message("nsrl_create: %s\n", err);
    return l;
}

/* A CNN-like log: one BN site of 4 channels, one tensor, STEPS steps. */
static void write_small_log(NsrlLog *l)
{
    assert_int_equal(nsrl_set_attr_str(l, "norm", "batch"), 0);
    assert_int_equal(nsrl_set_attr_i64(l, "steps", STEPS), 0);
    assert_int_equal(nsrl_set_attr_i64(l, "seed", 1), 0);
    assert_int_equal(nsrl_set_attr_str(l, "probes", "batch-stats,gradients,params"), 0);
    assert_int_equal(nsrl_set_attr_f64(l, "lr", 1e-3), 0);
    assert_int_equal(nsrl_add_group(l, "steps", "steps", 0, 0, 0, 0), 0);
    assert_int_equal(nsrl_add_group(l, "eval", "eval", 0, 0, 0, 0), 0);
    assert_int_equal(nsrl_add_group(l, "site", "norms/stem/bn", 0, 0, 0, 0), 0);
    assert_int_equal(nsrl_add_group(l, "vectors", "norms/stem/bn/vectors", 4, 0, 0, 0), 0);
    assert_int_equal(nsrl_add_group(l, "site_grads", "norms/stem/bn", 0, 0, 0, 0), 0);
    assert_int_equal(nsrl_add_group(l, "params", "params", 0, 0, 0, 0), 0);
    assert_int_equal(nsrl_add_group(l, "tensor", "params/stem/conv/weight", 0, 0, 0, 0), 0);
    assert_int_equal(nsrl_start(l), 0);
    int loss = nsrl_series(l, "steps/loss");
    int vec = nsrl_series(l, "norms/stem/bn/vectors/batch_mean");
    assert_true(loss >= 0 && vec >= 0 && nsrl_series(l, "norms/stem/bn/step") >= 0);
    assert_int_equal(nsrl_series_width(l, vec), 4);
    int vec_step = nsrl_series(l, "norms/stem/bn/vectors/step");
    for (int t = 1; t <= STEPS; t++) {
        /* every per-step series gets its row (steps in the int64 ones), loss 10 - t, 0.5 t */
        for (int s = 0; s < 200 && nsrl_series_dtype(l, s) >= 0; s++) {
            int dtype = nsrl_series_dtype(l, s);
            if (dtype == 1 && s != vec_step)
                assert_int_equal(nsrl_append_i64(l, s, t), 0);
            else if (dtype == 0)
                assert_int_equal(nsrl_append_f64(l, s, s == loss ? 10.0 - t : 0.5 * t), 0);
        }
        if (t == 1 || t == 5) { /* vectors on their own cadence */
            float row[4] = {(float)t, 1, 2, 3};
            assert_int_equal(nsrl_append_i64(l, vec_step, t), 0);
            for (int s = 0; s < 200 && nsrl_series_dtype(l, s) >= 0; s++)
                if (nsrl_series_dtype(l, s) == 2)
                    assert_int_equal(nsrl_append_f32(l, s, row, 4), 0);
        }
        if (t % 3 == 0)
            assert_int_equal(nsrl_flush(l), 0);
    }
}

TEST(api_log_passes_check_log_and_reads_back)
{
    assert_int_equal(nsrl_api_version(), NSRL_API_VERSION);
    NsrlLog *l = new_log("api.h5", 0);
    assert_non_null(l);
    write_small_log(l);
    char err[512] = "";
    assert_int_equal(nsrl_close(l, err, sizeof err), 0);

    Run check = run("check-log api.h5");
    SOFT(check.code == 0, "check-log on the API's log: %d\n%s%s\n", check.code, check.out,
         check.err);
    NsLog log;
    assert_int_equal(ns_log_open(&log, scratch("api.h5"), err), 0);
    size_t n = 0;
    double *loss = ns_log_read_series(&log, "steps/loss", &n, err);
    assert_non_null(loss);
    SOFT(n == STEPS, "steps/loss has %zu rows, not %d\n", n, STEPS);
    for (size_t i = 0; i < n; i++)
        SOFT(loss[i] == 10.0 - (double)(i + 1), "loss row %zu = %g\n", i, loss[i]);
    free(loss);
    double *dist = ns_log_read_series(&log, "norms/stem/bn/dist_var", &n, err);
    SOFT(dist && n == STEPS && dist[STEPS - 1] == 0.5 * STEPS, "dist_var not read back\n");
    free(dist);
    size_t rows = 0, cols = 0;
    float *mean = ns_log_read_matrix(&log, "norms/stem/bn/vectors/batch_mean", &rows, &cols, err);
    SOFT(mean && rows == 2 && cols == 4 && mean[4] == 5.0f, "vectors not read back\n");
    free(mean);
    char norm[32] = "";
    SOFT(ns_log_attr_str(&log, "norm", norm, sizeof norm) == 0 && strcmp(norm, "batch") == 0,
         "norm attribute '%s'\n", norm);
    ns_log_close(&log);
}

/* One misuse: the call fails, and the error names what is wrong. */
#define REFUSED(call, words) \
    do { \
        SOFT((call) < 0, #call " was accepted\n"); \
        SOFT(strstr(nsrl_error(l), words), #call ": error '%s' lacks '%s'\n", nsrl_error(l), \
             words); \
    } while (0)

TEST(api_refuses_misuse_with_one_line)
{
    NsrlLog *l = new_log("misuse.h5", 0);
    assert_non_null(l);
    REFUSED(nsrl_set_attr_str(l, "no_such_attribute", "x"), "not a root attribute");
    REFUSED(nsrl_set_attr_str(l, "steps", "7"), "int64");
    REFUSED(nsrl_set_attr_str(l, "format", "other"), "format");
    REFUSED(nsrl_add_group(l, "no_such_group", "x", 0, 0, 0, 0), "no schema group");
    REFUSED(nsrl_add_group(l, "steps", "norms/steps", 0, 0, 0, 0), "not of group");
    REFUSED(nsrl_add_group(l, "site", "params_extra/x", 0, 0, 0, 0), "not of group");
    REFUSED(nsrl_add_group(l, "site", "norms/", 0, 0, 0, 0), "not of group");
    REFUSED(nsrl_add_group(l, "site", "norms/a//b", 0, 0, 0, 0), "not of group");
    REFUSED(nsrl_add_group(l, "vectors", "norms/a", 4, 0, 0, 0), "not of group");
    assert_int_equal(nsrl_add_group(l, "steps", "steps", 0, 0, 0, 0), 0);
    int loss = nsrl_series(l, "steps/loss"), step = nsrl_series(l, "steps/step");
    REFUSED(nsrl_append_f64(l, loss, 1.0), "before start");
    assert_int_equal(nsrl_start(l), 0);
    REFUSED(nsrl_add_group(l, "eval", "eval", 0, 0, 0, 0), "after start");
    REFUSED(nsrl_set_attr_i64(l, "steps", 3), "after start");
    REFUSED(nsrl_append_i64(l, loss, 1), "float64");
    REFUSED(nsrl_append_f64(l, step, 1.0), "int64");
    float row[2] = {0, 0};
    REFUSED(nsrl_append_f32(l, loss, row, 2), "float64");
    REFUSED(nsrl_append_f64(l, 999, 1.0), "no series");
    SOFT(nsrl_series(l, "steps/nothing") == -1, "an undeclared series has a handle\n");

    /* a second writer of the same file is refused while the first holds it */
    char err[512] = "";
    NsrlLog *second = nsrl_create(scratch("misuse.h5"), 1, 3, err, sizeof err);
    SOFT(second == NULL && strstr(err, "misuse.h5"), "a second writer got the log: '%s'\n", err);
    nsrl_close(second, NULL, 0);
    assert_int_equal(nsrl_close(l, err, sizeof err), 0);

    /* an existing file without overwrite: refused, the file unchanged */
    size_t before_n, after_n;
    char *before = keep(slurp(scratch("misuse.h5"), &before_n));
    NsrlLog *again = nsrl_create(scratch("misuse.h5"), 0, 3, err, sizeof err);
    SOFT(again == NULL && strstr(err, "exists"), "an existing log was reopened: '%s'\n", err);
    nsrl_close(again, NULL, 0);
    char *after = keep(slurp(scratch("misuse.h5"), &after_n));
    SOFT(before_n == after_n && memcmp(before, after, before_n) == 0, "misuse.h5 changed\n");
    SOFT(nsrl_create(scratch("no/such/dir/x.h5"), 0, 3, err, sizeof err) == NULL &&
             strstr(err, "no/such/dir"), "a log in a missing directory: '%s'\n", err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(api_log_passes_check_log_and_reads_back),
        cmocka_unit_test(api_refuses_misuse_with_one_line),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
