/* Tests of `normscope watch` (the live view of a run) with the program under test (NS_BINARY)
 * in a scratch directory: --once on a finished log (the numbers recomputed from it with
 * logread), on a log without probes and bad input; a last loss that is NaN ends the watch as
 * diverged; Ctrl-C; a run that stopped short and stalled; a run being written, followed until
 * it finishes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "harness.h"
#include "logs.h"
#include "stats.h"
#include "util.h"

/* ------------------------------------------------------------------------------------------
 * Fixture: the logs, made once for all tests */

static int setup_logs(void **state)
{
    (void)state;
    return train_analysis_logs(LOG_BATCH | LOG_NONE);
}

/* ------------------------------------------------------------------------------------------
 * watch */

static void test_watch_once(void **state)
{
    (void)state;
    char out[PATH_MAX + 64], want[64];
    snprintf(out, sizeof out, "%s/watch.stdout", scratch_dir());
    assert_int_equal(run_io((Io){.out = out}, "watch %s --once", g_batch), 0);
    char *text = slurp(out, NULL);
    NsLog log;
    open_logs(&log, (const char *[]){g_batch}, 1);
    size_t n;
    double *loss = series(&log, "steps/loss", &n);
    snprintf(want, sizeof want, "loss %.4f (mean of last 50: %.4f)", loss[n - 1],
             ns_finite_mean(loss + n - 50, 50));
    free(loss);
    double *ppl = series(&log, "eval/ppl", &n);
    const char *phrases[] = {"batch (pre)", "step 60 / 60 (100 %)", want, "validation ppl",
                             "dist_mean", "dist_psi2", "grad_gain", "layers/0/norm1",
                             "layers/1/norm2", "final_norm", "status: finished"};
    for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++)
        if (!strstr(text, phrases[i]))
            fail_msg("watch --once output lacks '%s':\n%s", phrases[i], text);
    snprintf(want, sizeof want, "validation ppl %.2f (at step 60)", ppl[n - 1]);
    assert_non_null(strstr(text, want));
    free(ppl);
    free(text);
    ns_log_close(&log);
    assert_int_equal(run_io((Io){.out = out}, "watch %s --once", g_none), 0);
    text = slurp(out, NULL);
    assert_non_null(strstr(text, "no norm probes"));
    free(text);
    assert_int_equal(run_io((Io){0}, "watch /nonexistent.h5 --once"), 1);
    assert_int_equal(run_io((Io){0}, "watch %s --interval 0", g_batch), 2);
}

/* A last loss that is NaN ends the watch at once with the diverged code. */
static void test_watch_diverged(void **state)
{
    (void)state;
    char out[PATH_MAX + 64];
    snprintf(out, sizeof out, "%s/watchdiv.stdout", scratch_dir());
    craft_nan_loss(g_batch, g_nanlast, -1);
    assert_int_equal(run_io((Io){.out = out}, "watch %s --interval 0.1", g_nanlast),
                     NS_EXIT_DIVERGED);
    char *text = slurp(out, NULL);
    assert_non_null(strstr(text, "status: diverged"));
    free(text);
}

/* Ctrl-C while watching a run that stopped short but was written just now (so the watch
 * would wait at least 30 s before calling it stalled): exits 0 at once. */
static void test_watch_interrupt(void **state)
{
    (void)state;
    char out[PATH_MAX + 64], log[PATH_MAX + 32];
    snprintf(out, sizeof out, "%s/watchint.stdout", scratch_dir());
    snprintf(log, sizeof log, "%s/fresh.h5", scratch_dir());
    craft_unfinished(g_batch, log, 600);
    pid_t pid = spawn((Io){.out = out}, "watch %s --interval 0.1", log);
    struct timespec ts = {0, 600000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGINT);
    assert_int_equal(wait_exit(pid, 5.0), 0);
    char *text = slurp(out, NULL);
    assert_non_null(strstr(text, "status: stopped watching"));
    free(text);
}

/* A run that stopped short and was last written an hour ago has stalled: exit 1 after three
 * intervals; --once says so too (exit 0). */
static void test_watch_stalled(void **state)
{
    (void)state;
    char out[PATH_MAX + 64], errf[PATH_MAX + 64], log[PATH_MAX + 32];
    snprintf(out, sizeof out, "%s/stall.stdout", scratch_dir());
    snprintf(errf, sizeof errf, "%s/stall.stderr", scratch_dir());
    snprintf(log, sizeof log, "%s/old.h5", scratch_dir());
    craft_unfinished(g_batch, log, 600);
    struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    assert_int_equal(utimensat(AT_FDCWD, log, old, 0), 0);
    assert_int_equal(run_io((Io){.out = out, .err = errf}, "watch %s --interval 0.1", log),
                     NS_EXIT_ERROR);
    char *msg = slurp(errf, NULL), *text = slurp(out, NULL);
    assert_non_null(strstr(msg, "stopped growing at step 60 of 600"));
    assert_non_null(strstr(text, "status: stopped growing"));
    free(msg), free(text);
    assert_int_equal(run_io((Io){.out = out}, "watch %s --once", log), 0);
    text = slurp(out, NULL);
    assert_non_null(strstr(text, "status: stopped growing"));
    free(text);
}

/* A run being written: the watch sees the steps grow and ends when the run finishes. */
static void test_watch_live(void **state)
{
    (void)state;
    char log[PATH_MAX + 32], out[PATH_MAX + 64];
    snprintf(log, sizeof log, "%s/live.h5", scratch_dir());
    snprintf(out, sizeof out, "%s/live.stdout", scratch_dir());
    const char *extra = "--norm batch --eval-every 100 --probe-vectors-every 0";
    pid_t train = spawn((Io){0}, "train " TINY_LOGS " --steps 400 --out %s %s", log, extra);
    int rc = wait_exit(spawn((Io){.out = out}, "watch %s --interval 0.2", log), 60.0);
    assert_int_equal(wait_exit(train, 60.0), 0);
    assert_int_equal(rc, 0);
    char *text = slurp(out, NULL);
    double last = -1.0;
    int blocks = 0;
    for (const char *p = text; (p = strstr(p, "\nstep ")); p++) {
        double step = strtod(p + 6, NULL);
        if (!(step > last))
            fail_msg("steps do not increase (%g after %g):\n%s", step, last, text);
        last = step;
        blocks++;
    }
    if (blocks < 2)
        fail_msg("expected several snapshots of the growing run, got %d:\n%s", blocks, text);
    assert_true(last == 400.0);
    assert_non_null(strstr(text, "status: finished"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_once),
        cmocka_unit_test(test_watch_diverged),
        cmocka_unit_test(test_watch_interrupt),
        cmocka_unit_test(test_watch_stalled),
        cmocka_unit_test(test_watch_live),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, setup_logs, group_teardown);
}
