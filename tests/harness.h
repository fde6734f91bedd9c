/* The test harness: what every cmocka executable of tests/ needs beside the library.
 *
 *  - a scratch directory per executable (harness_setup / harness_teardown in the group fixture),
 *    and paths in it;
 *  - the normscope program under test (NS_BINARY) as a child process: it runs in the scratch
 *    directory with stdout/stderr sent to files, and ends with a code that is its exit code,
 *    -signal when a signal killed it, or TIMED_OUT when it ran past its timeout (then killed);
 *  - files: slurp, write, copy, size, contains;
 *  - fmt, a printf into rotating buffers, and keep, a pool of allocations freed at teardown
 *    (so a failing assertion, which longjmps out of the test, leaks nothing);
 *  - the tiny run every end-to-end test trains, the shared data directories, soft checks,
 *    and small numeric and norm-state helpers the numeric tests share.
 *
 * SOFT, TEST and the helpers' failures use cmocka: include <cmocka.h> (after <setjmp.h>,
 * <stdarg.h>, <stddef.h>) before this. */
#ifndef NS_TEST_HARNESS_H
#define NS_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ the tiny run */

/* The model and synthetic corpus of every end-to-end test: a few ms a training step. */
#define TINY_MODEL "--d-model 32 --heads 2 --d-ff 64 --layers 2 --seq-len 16 --batch-size 8 " \
                   "--vocab-size 500 --synth-bytes 100000"
/* The command-line tests' flags: evaluation and a log line every 10 steps, one thread. */
#define TINY TINY_MODEL " --eval-every 10 --log-every 10 --threads 1"
/* The probe and run-log tests' training command: one thread, no log lines to speak of. */
#define TINY_TRAIN "train " TINY_MODEL " --log-every 1000 --threads 1"
/* The analysis tests' logs (compare, watch, export-notebook): evaluation every 10 steps,
 * probe vectors every 5. */
#define TINY_LOGS TINY_MODEL " --eval-every 10 --probe-vectors-every 5 --log-every 1000"
/* The norm sites of TINY_MODEL with the default pre-norm position. */
#define N_TINY_SITES 5
extern const char *const TINY_SITES[N_TINY_SITES];

/* ------------------------------------------------------------------ fixture */

/* For a group setup: creates the scratch directory /tmp/ns_<executable>_XXXXXX. Returns 0, or -1
 * after saying why not. */
int harness_setup(void);
/* For a group teardown: frees the pool and removes the scratch directory (kept when
 * NS_KEEP_TEST_DIR is set). Returns 0, or -1 if the directory could not be removed. */
int harness_teardown(void);
/* The two as cmocka group fixtures, for executables that need nothing more. */
int group_setup(void **state);
int group_teardown(void **state);

/* NS_TEST_FILTER (a cmocka pattern such as '*sigkill*') runs only the matching tests; call in
 * main before cmocka_run_group_tests. */
void test_filter_from_env(void);

const char *scratch_dir(void);
/* <scratch dir>/<name>; each of 16 rotating buffers lives until 16 more calls. */
const char *scratch(const char *name);
/* The program under test (NS_BINARY, else build/normscope), absolute; NULL when missing (then
 * spawn fails the test saying so). */
const char *ns_binary(void);

/* tests/data/corpora (tinyshakespeare, PTB valid/test), absolute; from NS_TEST_CORPORA. */
const char *test_corpora(void);
/* tests/data/debug-states (reference debug states of every scheme), absolute; from
 * NS_TEST_DEBUG_STATES. */
const char *test_debug_states(void);

/* ------------------------------------------------------------------ text and memory */

/* printf into one of 16 rotating 4 kB buffers (paths, labels, command words). */
char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
/* Registers p (malloc'd) to be freed at teardown; returns p. */
void *keep(void *p);
/* Where the last non-empty line of text starts (text itself if it has one line). */
const char *last_line(const char *text);
double now(void); /* monotonic seconds */
void sleep_ms(int ms);

/* ------------------------------------------------------------------ files */

/* The whole file, NUL-terminated, malloc'd (the caller frees or keeps it); "" when it cannot be
 * read. len (may be NULL) receives its length. */
char *slurp(const char *path, size_t *len);
void write_file(const char *path, const void *data, size_t n); /* asserts */
void copy_file(const char *from, const char *to);              /* asserts */
long file_size(const char *path); /* -1 when missing */
int file_exists(const char *path);
int file_contains(const char *path, const char *needle);
int on_path(const char *program); /* an executable of that name in a $PATH directory */

/* ------------------------------------------------------------------ the program as a child */

#define TIMED_OUT (-1000) /* the code of a child killed at its timeout */
#define RUN_TIMEOUT 120.0 /* seconds, unless a test says otherwise */

/* Where a child's stdout and stderr go (NULL: /dev/null), and its PATH (NULL: ours). */
typedef struct {
    const char *out, *err, *path;
} Io;

/* Starts `normscope WORDS`, WORDS being printf(f, ...) split at spaces (no path in the tests has
 * one), in the scratch directory. */
pid_t spawn(Io io, const char *f, ...) __attribute__((format(printf, 2, 3)));
/* Waits for a child: its exit code, -signal, or TIMED_OUT (then it is killed, and said so). */
int wait_exit(pid_t pid, double timeout);
/* spawn + wait_exit(RUN_TIMEOUT). */
int run_io(Io io, const char *f, ...) __attribute__((format(printf, 2, 3)));

typedef struct {
    int code;        /* as wait_exit */
    char *out, *err; /* what it wrote (in the pool) */
    double seconds;
} Run;

/* Runs `normscope WORDS` to its end, its output captured. With interrupt set, sends SIGINT
 * once stderr shows a training step ("\nstep "). */
Run run_ex(double timeout, int interrupt, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
#define run(...) run_ex(RUN_TIMEOUT, 0, __VA_ARGS__)
/* The same with the words as given (NULL-terminated): for arguments holding spaces, newlines or
 * any other byte. */
Run run_argv(double timeout, const char *const *words);

/* For a group setup: trains n run logs at once, `normscope train FLAGS --out <scratch>/<name[i]>
 * EXTRA[i]` (stderr to <name[i]>.err); path[i] (path may be NULL) receives the log's path, which
 * lives until teardown. Returns 0 when each exited with want[i] (want NULL: 0) and each log
 * written passes `normscope check-log`, else -1 after saying which did not. */
int train_logs(int n, const char *flags, const char *const *name, const char *const *extra,
               const int *want, const char **path);

/* ------------------------------------------------------------------ soft checks */

/* SOFT checks report (the first 12) and go on; a TEST(name) fails at its end if any failed, so
 * one run shows every discrepancy with its numbers. */
extern int soft_failures;
#define SOFT(cond, ...) \
    do { if (!(cond) && soft_failures++ < 12) print_message(__VA_ARGS__); } while (0)
#define TEST(name) \
    static void name##_(void); \
    static void name(void **state) \
    { \
        (void)state, soft_failures = 0, name##_(); \
        assert_int_equal(soft_failures, 0); \
    } \
    static void name##_(void)

/* ------------------------------------------------------------------ numbers, norm state */

double max_abs(const float *x, size_t n);

/* The state of a norm site (running arrays, nu, step), saved to put it back around forwards. */
typedef struct NsNormSite NsNormSite;
typedef struct {
    float *buf[4];
    int64_t step;
} NormState;
void norm_state_save(NsNormSite *s, NormState *st); /* allocates; norm_state_free frees */
void norm_state_restore(NsNormSite *s, const NormState *st);
int norm_state_equal(NsNormSite *s, const NormState *st); /* 1 if bit for bit */
void norm_state_free(NormState *st);

#endif
