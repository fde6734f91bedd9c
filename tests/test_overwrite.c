/* Recorded data is never replaced silently (issue 13): `train` refuses an existing --out log or
 * checkpoint unless --overwrite (replace) or --resume (continue) is given, with one line naming
 * the file and both flags, exit 1, and the files left byte for byte as they were. Also the other
 * thing train now decides before it starts: the default --threads 0 follows the model size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"
#include "harness.h"
#include "run_config.h"

#define TRAIN "train " TINY " --probes none"

/* The one-line refusal naming `path`, exit 1. */
static void assert_refused(const Run *r, const char *path)
{
    assert_int_equal(r->code, 1);
    SOFT(strncmp(r->err, "normscope: ", 11) == 0 && strchr(r->err, '\n') &&
             strchr(r->err, '\n')[1] == '\0',
         "not one 'normscope: ' line: %s\n", r->err);
    SOFT(strstr(r->err, path) && strstr(r->err, "--overwrite") && strstr(r->err, "--resume"),
         "the line does not name '%s', --overwrite and --resume: %s\n", path, r->err);
}

static void assert_same_bytes(const char *path, const char *before, size_t n)
{
    size_t m;
    char *now = keep(slurp(path, &m));
    SOFT(m == n && memcmp(now, before, n) == 0, "%s changed (%zu bytes, was %zu)\n", path, m, n);
}

TEST(existing_log_refused_unchanged)
{
    assert_int_equal(run(TRAIN " --steps 4 --out a.h5").code, 0);
    size_t log_n, ckpt_n;
    char *log = keep(slurp(scratch("a.h5"), &log_n));
    char *ckpt = keep(slurp(scratch("a.ckpt.h5"), &ckpt_n));
    assert_true(log_n > 0 && ckpt_n > 0);

    Run again = run(TRAIN " --steps 2 --out a.h5");
    assert_refused(&again, "a.h5");
    assert_same_bytes(scratch("a.h5"), log, log_n);
    assert_same_bytes(scratch("a.ckpt.h5"), ckpt, ckpt_n);

    /* a new log, but the checkpoint of another run at --checkpoint: refused the same way */
    Run other = run(TRAIN " --steps 2 --out b.h5 --checkpoint a.ckpt.h5");
    assert_refused(&other, "a.ckpt.h5");
    SOFT(!file_exists(scratch("b.h5")), "b.h5 was created by a refused run\n");
    assert_same_bytes(scratch("a.ckpt.h5"), ckpt, ckpt_n);

    /* the default checkpoint (OUT.ckpt.h5) left by a run whose log was deleted */
    unlink(scratch("a.h5"));
    Run orphan = run(TRAIN " --steps 2 --out a.h5");
    assert_refused(&orphan, "a.ckpt.h5");
    assert_same_bytes(scratch("a.ckpt.h5"), ckpt, ckpt_n);
}

TEST(overwrite_replaces_resume_continues)
{
    assert_int_equal(run(TRAIN " --steps 4 --out c.h5").code, 0);
    Run replaced = run(TRAIN " --steps 2 --out c.h5 --overwrite");
    assert_int_equal(replaced.code, 0);
    SOFT(strstr(replaced.out, "done: 2 steps"), "--overwrite run: %s\n", replaced.out);
    /* a replaced log holds the new run only: resuming its checkpoint continues from step 2 */
    Run resumed = run(TRAIN " --steps 6 --out c.h5 --resume c.ckpt.h5");
    assert_int_equal(resumed.code, 0);
    SOFT(strstr(resumed.out, "done: 6 steps"), "resumed run: %s\n", resumed.out);
    SOFT(strstr(resumed.err, "(resumed)"), "resumed run's banner: %s\n", resumed.err);
}

TEST(default_threads_follow_model_size)
{
    NsModelConfig m;
    ns_model_config_default(&m); /* train's default: d=256, 4 layers, T=64, B=32, V=10000 */
    SOFT(ns_threads_for_model(&m, 2) == 2, "the default model should use the cores\n");
    m.d_model = 64, m.d_ff = 256, m.seq_len = 32, m.vocab_size = 2000; /* study's size */
    SOFT(ns_threads_for_model(&m, 2) == 1, "the study's model should use one thread\n");
    SOFT(ns_threads_for_model(&m, 0) == 1, "no cores known: one thread\n");
    /* a tiny run left at the default records the thread count it used */
    assert_int_equal(run("train " TINY_MODEL " --steps 2 --probes none --out t.h5").code, 0);
    hid_t f = H5Fopen(scratch("t.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t threads = -1;
    assert_true(f >= 0);
    ns_h5_attr_read_i64(f, "threads", &threads);
    H5Fclose(f);
    SOFT(threads == 1, "tiny run's threads attribute: %lld\n", (long long)threads);
    Run bad = run("train " TINY_MODEL " --threads -1 --out t2.h5");
    SOFT(bad.code == 2 && strstr(bad.err, "--threads"), "--threads -1: exit %d %s\n", bad.code,
         bad.err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(existing_log_refused_unchanged),
        cmocka_unit_test(overwrite_replaces_resume_continues),
        cmocka_unit_test(default_threads_follow_model_size),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
