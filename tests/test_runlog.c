/* Tests of the run log's life (probes/runlog.c) with the program NS_BINARY training in a
 * scratch directory, the log read with the plain HDF5 API:
 *  1 a live SWMR reader sees the steps grow, at most one flush behind, never a group's step row
 *    before its data
 *  2 kill -9 between flushes leaves a clean, complete file; inside a flush, a file SWMR readers
 *    open, holding whole steps, that --resume repairs and extends
 *  3 SIGTERM stops with one line naming the checkpoint, and --resume is bit for bit the
 *    uninterrupted run
 * SOFT checks report and go on, failing the test at its end, so one run shows every discrepancy
 * with its numbers. NS_TEST_FILTER='*sigkill*' runs one test. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

#include "harness.h"
#include "logs.h"

#define PARAMS_LAST "params/final_norm/bias/dist_init" /* the last series /params flushes */

/* ------------------------------------------------------------ plain HDF5 reading */

/* Polls a running log with a SWMR reader (retrying until the writer has started SWMR) until
 * `series` has at least `rows` rows. Returns the rows seen, or -1. */
static long wait_rows(const char *path, pid_t pid, const char *series, long rows, double timeout)
{
    double t0 = now();
    hid_t f = H5I_INVALID_HID;
    long n = -1;
    while (now() - t0 < timeout && waitpid(pid, NULL, WNOHANG) == 0 && n < rows)
        if (f >= 0 || (f = open_swmr(path)) >= 0)
            n = NROWS(f, series);
        else
            sleep_ms(5);
    if (f >= 0)
        H5Fclose(f);
    return n >= rows ? n : -1;
}

/* ------------------------------------------------------------ 1: live SWMR read */

static long printed_step(const char *errfile) /* last "step N/" the writer printed */
{
    FILE *fp = fopen(errfile, "r");
    long last = 0, s;
    char line[512];
    while (fp && fgets(line, sizeof line, fp))
        last = sscanf(line, "step %ld/", &s) == 1 ? s : last;
    if (fp)
        fclose(fp);
    return last;
}

TEST(test_live_swmr_read)
{
    const char *out = scratch("t5.h5"), *err = scratch("t5.err");
    double t0 = now(), first_seen = -1;
    hid_t f = H5I_INVALID_HID;
    long last = 0, max_lag = 0, growths = 0, polls = 0, ahead = 0, n;
    int running = 1;
    pid_t pid = spawn((Io){.err = err}, TINY_TRAIN " --steps 600 --flush-every 5 --eval-every 100 "
                      "--log-every 1 --probe-vectors-every 0 --out %s", out);
    while (now() - t0 < 25 && last < 150 && (running = waitpid(pid, NULL, WNOHANG) == 0)) {
        if (f < 0 && (f = open_swmr(out)) < 0) {
            sleep_ms(5);
            continue;
        }
        long printed = printed_step(err);
        n = upto(f, "steps/step"); /* the rows are there, not just the extent */
        assert_true(n >= 0);
        polls++;
        max_lag = printed - n > max_lag ? printed - n : max_lag;
        if (n > last) {
            growths += waitpid(pid, NULL, WNOHANG) == 0; /* counted while the run goes on */
            last = n;
            first_seen = first_seen < 0 ? now() - t0 : first_seen;
        }
        /* a reader that reads a group's step series and then its data must find the data */
        ahead += NROWS(f, "params/step") > NROWS(f, PARAMS_LAST);
    }
    if (f >= 0)
        H5Fclose(f);
    print_message("  SWMR: %ld polls; /steps/step grew %ld times to %ld rows while the run "
                  "trained; first rows %.2f s after start; lag behind the printed step <= %ld "
                  "steps; /params/step ahead of its data in %ld polls\n",
                  polls, growths, last, first_seen, max_lag, ahead);
    kill(pid, SIGTERM);
    int rc = wait_exit(pid, 30);
    assert_true(running && growths >= 3);
    assert_true(max_lag <= 5 + 1); /* at most one flush behind (+1: printed before the flush) */
    assert_true(rc == 130 || rc == 0);
    SOFT(ahead == 0, "BUG: SWMR readers see /params/step ahead of %s (ns_runlog_flush appends "
         "each group's step series before its data series)\n", PARAMS_LAST);
}

/* ------------------------------------------------------------ 2: SIGKILL */

/* The log is closed between flushes, so a run killed there leaves a clean file that any HDF5
 * reader opens; one killed inside a flush leaves the superblock marked "open for writing"
 * (SWMR readers, `h5clear -s` and --resume still get in) and may hold data rows whose step
 * rows were not written yet, never the reverse. */
static hid_t open_killed(const char *out, int plain_required)
{
    hid_t f = open_ro(out);
    if (plain_required)
        SOFT(f >= 0, "a log killed between flushes does not open with a plain H5Fopen\n");
    if (f < 0) { /* no SWMR read retries: the writer is gone */
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        H5Pset_metadata_read_attempts(fapl, 1);
        f = H5Fopen(out, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
        H5Pclose(fapl);
    }
    assert_true(f >= 0);
    return f;
}

static long inspect_killed(const char *out, int between_flushes, long min_rows)
{
    hid_t f = open_killed(out, between_flushes);
    long k = upto(f, "steps/step");
    SOFT(k >= min_rows, "/steps/step is not 1..k, k >= %ld (%ld)\n", min_rows, k);
    for (int i = -1; i < N_TINY_SITES; i++) { /* every group complete up to the same flush */
        const char *g = i < 0 ? "params" : fmt("norms/%s", TINY_SITES[i]);
        long n = upto(f, fmt("%s/step", g));
        SOFT(between_flushes ? n == k : (n >= 0 && n <= k), "%s/step is not 1..%s (%ld), /steps "
             "1..%ld\n", g, between_flushes ? "k" : "k' <= k", n, k);
    }
    SOFT(check_alignment_ex(f, !between_flushes) == 0, "after SIGKILL a group has a step row "
         "without its data%s\n", between_flushes ? " or data without a step row" : "");
    H5Fclose(f);
    return k;
}

/* Killed well after a flush has finished (flushes 100 steps apart): a clean, complete file. */
TEST(test_sigkill_between_flushes)
{
    const char *out = scratch("t6a.h5");
    pid_t pid = spawn((Io){0}, TINY_TRAIN " --flush-every 100 --eval-every 50 --norm batch "
                      "--steps 100000 --out %s", out);
    assert_true(wait_rows(out, pid, "steps/step", 200, 60) >= 200);
    sleep_ms(60); /* the flush that made row 200 visible has closed the file; the next is far */
    kill(pid, SIGKILL);
    assert_int_equal(wait_exit(pid, 10), -SIGKILL);
    long k = inspect_killed(out, 1, 200);
    SOFT(k % 100 == 0, "/steps holds %ld rows, not a whole number of flushes\n", k);
    print_message("  SIGKILL between flushes: a clean file holding /steps 1..%ld\n", k);
}

/* Killed at a moment a reader sees a flush under way: the file opens in SWMR mode, holds whole
 * steps, and --resume from an older checkpoint clears the writer's mark, drops the steps past
 * the checkpoint and appends. */
TEST(test_sigkill_mid_flush)
{
    const char *out = scratch("t6.h5"), *ckpt = scratch("t6.ckpt.h5");
    const char *args = TINY_TRAIN " --flush-every 5 --eval-every 10 --lipschitz-every 10 "
                       "--hessian-iters 2 --probe-vectors-every 10 --checkpoint-every 10 --norm batch";
    long seen = 0, mid_flush = 0, steps;
    double *s;
    pid_t pid = spawn((Io){0}, "%s --steps 5000 --out %s", args, out);
    assert_true(wait_rows(out, pid, "steps/step", 20, 30) >= 20);
    hid_t r = open_swmr(out);
    for (double t0 = now(); r >= 0 && seen < 60 && now() - t0 < 30 && !mid_flush;)
        seen = NROWS(r, "steps/step"), mid_flush = NROWS(r, PARAMS_LAST) > NROWS(r, "params/step");
    kill(pid, SIGKILL);
    H5Fclose(r);
    assert_int_equal(wait_exit(pid, 10), -SIGKILL);
    print_message("  kill -9 at %ld visible rows%s\n", seen, mid_flush ? ", mid-flush" : "");
    inspect_killed(out, 0, 20);
    hid_t c = open_ro(ckpt); /* the checkpoint is older than the log: resume truncates */
    assert_true(c >= 0 && rd(c, "step", &s, NULL) == 1);
    steps = (long)s[0] + 12;
    free(s);
    H5Fclose(c);
    int rc = run_io((Io){0}, "%s --steps %ld --resume %s --out %s", args, steps, ckpt, out);
    SOFT(rc == 0, "--resume after SIGKILL fails (exit %d)\n", rc);
    hid_t f = rc == 0 ? open_ro(out) : -1;
    SOFT(f >= 0, "the resumed log does not open normally\n");
    if (f >= 0) {
        SOFT(upto(f, "steps/step") == steps, "after resume /steps/step is not 1..%ld\n", steps);
        SOFT(check_alignment(f) == 0, "misaligned after resume\n");
        H5Fclose(f);
    }
}

/* ------------------------------------------------------------ 3: SIGTERM and resume */

/* The row of group's step series at the stop step k, in the uninterrupted run's log g, when the
 * resumed log f has none there: a signal inside the measurement or validation pass of step k
 * abandons it unrecorded (README, "What the flags do together"), and a resumed run starts after k. -1 when both
 * logs have the same steps, -2 when they differ in any other way. */
static long abandoned_row(hid_t f, hid_t g, const char *group, long k)
{
    double *a = NULL, *b = NULL;
    long na = rd(f, fmt("%s/step", group), &a, NULL), nb = rd(g, fmt("%s/step", group), &b, NULL);
    long row = na == nb ? -1 : -2;
    for (long t = 0; na == nb && t < na; t++)
        row = a[t] == b[t] ? row : -2;
    for (long t = 0; na + 1 == nb && t < nb; t++)
        if (b[t] == (double)k) /* f must be g without this row */
            row = t;
    for (long t = 0; row >= 0 && na + 1 == nb && t < na; t++)
        row = a[t] == b[t < row ? t : t + 1] ? row : -2;
    free(a), free(b);
    return row;
}

TEST(test_sigterm_and_resume)
{
    /* dist_psi2 of batch norm comes from the probe's own running averages, hessian_top_eig
     * from the smoothness probe's RNG: both are checkpointed state of the probes. */
    static const char *const same[] = {"eval/step", "lipschitz/step", "norms/final_norm/vectors/step",
                                       "steps/loss", "steps/grad_norm", "eval/loss",
                                       "norms/final_norm/dist_psi2", "lipschitz/hessian_top_eig"};
    const char *out = scratch("t7.h5"), *ckpt = scratch("t7.ckpt.h5"), *ref = scratch("t7ref.h5");
    const char *err = scratch("t7.err");
    const char *args = TINY_TRAIN " --flush-every 5 --eval-every 10 --lipschitz-every 10 "
                       "--hessian-iters 2 --probe-vectors-every 7 --norm batch --dropout 0.1";
    char line[1024];
    int stop_lines = 0, names_ckpt = 0;
    double *cs = NULL;
    pid_t pid = spawn((Io){.err = err}, "%s --steps 5000 --out %s", args, out);
    assert_true(wait_rows(out, pid, "steps/step", 20, 30) >= 20);
    kill(pid, SIGTERM);
    assert_int_equal(wait_exit(pid, 30), 130);
    FILE *fp = fopen(err, "r");
    while (fp && fgets(line, sizeof line, fp))
        if (strstr(line, "signal") || strstr(line, "stopped"))
            stop_lines++, names_ckpt += strstr(line, ckpt) != NULL;
    fclose(fp);
    assert_true(stop_lines == 1 && names_ckpt == 1); /* one line, naming the checkpoint */
    hid_t f = open_ro(out), c = open_ro(ckpt), g;
    assert_true(f >= 0 && c >= 0);
    long k = upto(f, "steps/step"), N = k + 23; /* every step up to the stop ... */
    assert_true(k >= 20 && rd(c, "step", &cs, NULL) == 1 && (long)cs[0] == k); /* == checkpoint */
    free(cs);
    H5Fclose(f), H5Fclose(c);
    assert_int_equal(run_io((Io){0}, "%s --steps %ld --resume %s --out %s", args, N, ckpt, out), 0);
    assert_int_equal(run_io((Io){0}, "%s --steps %ld --out %s", args, N, ref), 0);
    f = open_ro(out), g = open_ro(ref);
    assert_true(f >= 0 && g >= 0);
    for (int i = -2; i < N_TINY_SITES; i++) {
        const char *p = i >= 0 ? fmt("norms/%s/step", TINY_SITES[i]) : i == -2 ? "steps/step"
                                                                         : "params/step";
        SOFT(upto(f, p) == N, "resumed log: %s is not 1..%ld\n", p, N);
    }
    SOFT(check_alignment(f) == 0, "resumed log misaligned or not ascending\n");
    long skip[2] = {abandoned_row(f, g, "eval", k), abandoned_row(f, g, "lipschitz", k)};
    SOFT(skip[0] != -2 && skip[1] != -2, "resumed log: eval or lipschitz steps differ from the "
         "uninterrupted run's other than by the stop step %ld\n", k);
    if (skip[0] >= 0 || skip[1] >= 0)
        print_message("  the stop came inside step %ld's %s: abandoned, as documented\n", k,
                      skip[1] >= 0 ? "smoothness probe" : "validation pass");
    for (int i = 0; i < 8; i++) { /* the rows of the uninterrupted run, bit for bit */
        double *a, *b, worst = 0.0;
        long na = rd(f, same[i], &a, NULL), nb = rd(g, same[i], &b, NULL);
        long gone = strncmp(same[i], "eval/", 5) == 0        ? skip[0]
                    : strncmp(same[i], "lipschitz/", 10) == 0 ? skip[1]
                                                               : -1;
        if (gone >= 0 && nb == na + 1) /* the abandoned row: compare the rest */
            memmove(&b[gone], &b[gone + 1], sizeof(double) * (size_t)(nb - gone - 1)), nb--;
        int differ = na != nb;
        for (long t = 0; t < na && t < nb; t++)
            if (memcmp(&a[t], &b[t], sizeof(double)))
                differ = 1, worst = fmax(worst, fabs(a[t] - b[t]));
        SOFT(!differ, "%s: resumed (%ld rows) differs from uninterrupted (%ld rows), largest "
             "difference %g\n", same[i], na, nb, worst);
        if (i == 3)
            print_message("  resume: stopped at step %ld, resumed to %ld; /steps/loss %s the "
                          "uninterrupted run's (largest difference %g)\n", k, N,
                          differ ? "differs from" : "is bit for bit", worst);
        free(a), free(b);
    }
    H5Fclose(f), H5Fclose(g);
}

/* ------------------------------------------------------------ main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_swmr_read), cmocka_unit_test(test_sigkill_between_flushes),
        cmocka_unit_test(test_sigkill_mid_flush), cmocka_unit_test(test_sigterm_and_resume),
    };
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* expected failures (SWMR retries) stay quiet */
    test_filter_from_env();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
