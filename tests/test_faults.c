/* Faults a long run meets, each asserting the exit code, the one line said, and what is left on
 * disk (issue 10):
 *  1 a full disk (RLIMIT_FSIZE, SIGXFSZ ignored) at several sizes, during a flush and during a
 *    checkpoint: exit 1, one line naming the file and the cause, the log readable up to its last
 *    good flush, the last good checkpoint intact, a new one saved where the limit allows, no
 *    temporary file left; --resume then completes the run
 *  2 two runs on one --out (or one --checkpoint): the second fails at once naming the first's
 *    pid, the first finishes untouched; a killed run's lock does not block the next
 *  3 SIGKILL at seeded random points, then --resume: the log holds every step once and equals an
 *    uninterrupted run's, every series but the timings, bit for bit.
 * NS_TEST_FILTER='*kill*' runs one test. */
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
#include <sys/resource.h>
#include <unistd.h>

#include <hdf5.h>

#include "harness.h"
#include "logs.h"

#define FLAGS TINY_TRAIN " --eval-every 10 --probe-vectors-every 5"

/* ------------------------------------------------------------ helpers */

/* Starts `normscope WORDS` with files limited to limit_kb kB and SIGXFSZ ignored (so a write
 * past the limit fails with EFBIG instead of killing), its stderr to err; waits for it. */
static int run_limited(long limit_kb, const char *err, const char *words)
{
    struct rlimit old, lim = {(rlim_t)limit_kb * 1024, (rlim_t)limit_kb * 1024};
    getrlimit(RLIMIT_FSIZE, &old);
    lim.rlim_max = old.rlim_max;
    struct sigaction ign = {.sa_handler = SIG_IGN}, prev;
    sigaction(SIGXFSZ, &ign, &prev);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    pid_t pid = spawn((Io){NULL, err, NULL}, "%s", words); /* forks with the limit */
    setrlimit(RLIMIT_FSIZE, &old);
    sigaction(SIGXFSZ, &prev, NULL);
    return wait_exit(pid, RUN_TIMEOUT);
}

/* Lines of text starting with "normscope:" (what the program says, beside progress). */
static int said_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, "normscope:")); p++) /* warnings are not errors */
        n += (p == text || p[-1] == '\n') && strncmp(p, "normscope: warning:", 19) != 0;
    return n;
}

/* The step dataset of a checkpoint, -1 if it does not open. */
static long checkpoint_step(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return -1;
    double *v = NULL;
    long n = rd(f, "step", &v, NULL), step = n == 1 ? (long)v[0] : -1;
    free(v);
    H5Fclose(f);
    return step;
}

/* The log opens with the ordinary (non-SWMR) API, is aligned, and /steps/step is 1..k. */
static long log_steps(const char *path)
{
    hid_t f = open_ro(path);
    if (f < 0)
        return -1;
    long k = upto(f, "steps/step");
    if (check_alignment(f) != 0)
        k = -3;
    H5Fclose(f);
    return k;
}

/* ------------------------------------------------------------ 1: a full disk */

/* Limits (kB) and where they bite with flushes every 20 steps and no periodic checkpoint: the
 * first flush, a later flush (the stop saves a checkpoint), and the checkpoint of a short run. */
static void disk_full_at(long limit_kb, int expect_checkpoint)
{
    const char *out = scratch(fmt("full%ld.h5", limit_kb));
    const char *ckpt = scratch(fmt("full%ld.ckpt.h5", limit_kb));
    const char *err = scratch(fmt("full%ld.err", limit_kb));
    int rc = run_limited(limit_kb, err, fmt(FLAGS " --steps 600 --flush-every 20 --out %s", out));
    char *text = keep(slurp(err, NULL));
    SOFT(rc == 1, "limit %ld kB: exit %d, want 1\n%s", limit_kb, rc, text);
    SOFT(said_lines(text) == 1, "limit %ld kB: not one line:\n%s", limit_kb, text);
    SOFT(strstr(text, "file size limit reached (EFBIG)") && strstr(text, out),
         "limit %ld kB: the line names neither the file nor the cause:\n%s", limit_kb, text);
    long steps = log_steps(out), saved = checkpoint_step(ckpt);
    SOFT(steps >= 0 && steps % 20 == 0, "limit %ld kB: log not readable up to a flush (%ld)\n",
         limit_kb, steps);
    SOFT(!file_exists(fmt("%s.tmp", ckpt)), "limit %ld kB: temporary checkpoint left\n", limit_kb);
    SOFT(!file_exists(fmt("%s.lock", out)), "limit %ld kB: lock file left\n", limit_kb);
    if (!expect_checkpoint) {
        SOFT(saved < 0 && strstr(text, "is kept"), "limit %ld kB: checkpoint %ld\n", limit_kb,
             saved);
        return;
    }
    SOFT(saved > steps && strstr(text, fmt("saved at step %ld", saved)),
         "limit %ld kB: checkpoint at %ld, log at %ld:\n%s", limit_kb, saved, steps, text);
    /* --resume completes the run; the steps never flushed are named, not silently lost */
    Run r = run(FLAGS " --steps 600 --flush-every 20 --out %s --resume %s", out, ckpt);
    SOFT(r.code == 0 && strstr(r.err, "were never written to the log"),
         "limit %ld kB: resume exit %d:\n%s", limit_kb, r.code, r.err);
}

TEST(test_disk_full_during_flush)
{
    /* the log grows by about 3 kB a step, the checkpoint is 0.7 MB */
    disk_full_at(250, 0);  /* a flush fails; no checkpoint fits */
    disk_full_at(1200, 1); /* a later flush fails; the stop saves a checkpoint */
    disk_full_at(1700, 1);
}

/* A checkpoint that cannot be written leaves the previous one and the log intact. */
TEST(test_disk_full_during_checkpoint)
{
    /* a wide feed-forward layer: the checkpoint (4.6 MB) is far larger than the log */
    const char *out = scratch("ck.h5"), *ckpt = scratch("ck.ckpt.h5"), *err = scratch("ck.err");
    assert_int_equal(run_io((Io){0}, FLAGS " --d-ff 2048 --steps 20 --out %s", out), 0);
    assert_int_equal(checkpoint_step(ckpt), 20);
    long before = file_size(ckpt), limit_kb = before / 2048; /* room for the log, not both */
    int rc = run_limited(limit_kb, err, fmt(FLAGS " --d-ff 2048 --steps 80 --checkpoint-every 10 "
                                            "--out %s --resume %s", out, ckpt));
    char *text = keep(slurp(err, NULL));
    SOFT(rc == 1, "exit %d, want 1\n%s", rc, text);
    SOFT(said_lines(text) == 1 && strstr(text, "cannot write checkpoint") &&
         strstr(text, "EFBIG") && strstr(text, ckpt), "not one line naming the checkpoint and "
         "the cause:\n%s", text);
    SOFT(checkpoint_step(ckpt) == 20 && file_size(ckpt) == before,
         "the previous checkpoint changed (step %ld)\n", checkpoint_step(ckpt));
    SOFT(!file_exists(fmt("%s.tmp", ckpt)), "temporary checkpoint left\n");
    long steps = log_steps(out);
    SOFT(steps == 30, "the log should reach the failed checkpoint's step 30: %ld\n", steps);
}

/* ------------------------------------------------------------ 2: one writer */

/* Starts a long run and waits for it to hold its locks. */
static pid_t start_long_run(const char *out, const char *extra)
{
    pid_t pid = spawn((Io){0}, FLAGS " --steps 100000 --out %s %s", out, extra);
    double t0 = now();
    while (!file_exists(fmt("%s.lock", out)) && now() - t0 < 30)
        sleep_ms(5);
    sleep_ms(300); /* both locks taken, the log created */
    return pid;
}

TEST(test_two_runs_one_out)
{
    const char *out = scratch("shared.h5");
    pid_t first = start_long_run(out, "");
    /* --overwrite: what is refused here is the second writer, not the existing log */
    Run second = run_ex(30, 0, FLAGS " --steps 50 --out %s --overwrite", out);
    SOFT(second.code == 1 && second.seconds < 10, "second run: exit %d after %.1f s\n",
         second.code, second.seconds);
    SOFT(strstr(second.err, fmt("pid %d", (int)first)) && strstr(second.err, "--out") &&
         said_lines(second.err) == 1, "second run does not name the first:\n%s", second.err);
    /* a shared --checkpoint with another --out is refused the same way */
    Run third = run_ex(30, 0, FLAGS " --steps 50 --out %s --checkpoint %s --overwrite",
                       scratch("other.h5"), scratch("shared.ckpt.h5"));
    SOFT(third.code == 1 && strstr(third.err, fmt("pid %d", (int)first)) &&
         strstr(third.err, "--checkpoint"), "shared checkpoint: exit %d\n%s", third.code,
         third.err);
    kill(first, SIGTERM);
    int rc = wait_exit(first, 60);
    SOFT(rc == 130, "the first run, stopped by SIGTERM: exit %d\n", rc);
    long steps = log_steps(out);
    SOFT(steps > 0, "the first run's log is not whole (%ld)\n", steps);
    /* a killed writer's lock is released by the kernel: the next run goes ahead */
    pid_t killed = start_long_run(out, fmt("--resume %s", scratch("shared.ckpt.h5")));
    kill(killed, SIGKILL);
    wait_exit(killed, 10);
    Run next = run(FLAGS " --steps 30 --out %s --overwrite", out);
    SOFT(next.code == 0, "a run after a killed one: exit %d\n%s", next.code, next.err);
}

/* ------------------------------------------------------------ 3: SIGKILL then --resume */

static int timing_series(const char *path)
{
    static const char *const timing[] = {"tokens_per_s", "step_seconds", "wall_time", "seconds",
                                         "probe_seconds"};
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    for (size_t i = 0; i < sizeof timing / sizeof timing[0]; i++)
        if (strcmp(name, timing[i]) == 0 || strcmp(name, "real_tokens_per_s") == 0)
            return 1;
    return 0;
}

/* Every dataset of a equals b's bit for bit (NaN equal to NaN), timings aside. */
static int compare_logs(const char *a_path, const char *b_path)
{
    hid_t a = open_ro(a_path), b = open_ro(b_path);
    assert_true(a >= 0 && b >= 0);
    PathList list = datasets(a);
    int differ = 0;
    for (int i = 0; i < list.n; i++) {
        const char *p = list.path[i];
        if (timing_series(p) || strncmp(p, "docs", 4) == 0)
            continue;
        double *x = NULL, *y = NULL;
        long cx = 0, cy = 0, nx = rd(a, p, &x, &cx), ny = rd(b, p, &y, &cy);
        int same = nx == ny && cx == cy && nx >= 0;
        for (long k = 0; same && k < nx * (cx ? cx : 1); k++)
            same = memcmp(&x[k], &y[k], sizeof x[k]) == 0 || (isnan(x[k]) && isnan(y[k]));
        if (!same && differ++ < 5)
            print_message("  %s differs (%ld vs %ld rows)\n", p, nx, ny);
        free(x), free(y);
    }
    free(list.path);
    H5Fclose(a), H5Fclose(b);
    return differ;
}

TEST(test_sigkill_then_resume)
{
    const char *args = FLAGS " --steps 60 --checkpoint-every 7 --flush-every 3";
    const char *whole = scratch("whole.h5");
    assert_int_equal(run_io((Io){0}, "%s --out %s", args, whole), 0);
    srand(10);
    for (int trial = 0; trial < 3; trial++) {
        const char *out = scratch(fmt("killed%d.h5", trial));
        const char *ckpt = scratch(fmt("killed%d.ckpt.h5", trial));
        pid_t pid = spawn((Io){0}, "%s --out %s", args, out);
        double t0 = now();
        while (!file_exists(ckpt) && now() - t0 < 60)
            sleep_ms(1);
        sleep_ms(rand() % 150); /* a seeded random point after the first checkpoint */
        kill(pid, SIGKILL);
        int rc = wait_exit(pid, 30);
        if (rc == 0) { /* it finished first: still a valid run, compared below */
            SOFT(compare_logs(whole, out) == 0, "trial %d (not killed) differs\n", trial);
            continue;
        }
        SOFT(rc == -SIGKILL, "trial %d: exit %d\n", trial, rc);
        print_message("  trial %d: killed after step %ld was checkpointed\n", trial,
                      checkpoint_step(ckpt));
        Run r = run("%s --out %s --resume %s", args, out, ckpt);
        SOFT(r.code == 0 && !strstr(r.err, "never written"), "trial %d: resume exit %d\n%s",
             trial, r.code, r.err);
        SOFT(log_steps(out) == 60, "trial %d: resumed log steps %ld\n", trial, log_steps(out));
        SOFT(compare_logs(whole, out) == 0, "trial %d: resumed log differs from the whole run\n",
             trial);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_full_during_flush),
        cmocka_unit_test(test_disk_full_during_checkpoint),
        cmocka_unit_test(test_two_runs_one_out),
        cmocka_unit_test(test_sigkill_then_resume),
    };
    test_filter_from_env();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* reading string datasets as numbers fails, quietly */
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
