/* The test harness (harness.h): scratch directory, the program under test as a child process,
 * files, rotating buffers, the allocation pool, soft checks and shared numeric helpers. */
#define _GNU_SOURCE /* nftw, realpath, program_invocation_short_name */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "norm.h"

const char *const TINY_SITES[N_TINY_SITES] = {"layers/0/norm1", "layers/0/norm2",
                                              "layers/1/norm1", "layers/1/norm2", "final_norm"};
int soft_failures;

static char dir[256];         /* the scratch directory; "" before harness_setup */
static char binary[PATH_MAX]; /* the program, absolute; "" until found */

/* ------------------------------------------------------------------ pool, buffers, time */

static void *pool[8192];
static int npool;

void *keep(void *p)
{
    assert_true(npool < 8192);
    return pool[npool++] = p;
}

char *fmt(const char *f, ...)
{
    static char buf[16][4096];
    static int k;
    k = (k + 1) % 16;
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf[k], sizeof buf[k], f, ap);
    va_end(ap);
    return buf[k];
}

const char *scratch(const char *name)
{
    static char buf[16][PATH_MAX + 256];
    static int k;
    if (!dir[0])
        fail_msg("scratch(\"%s\") before harness_setup()", name);
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

const char *scratch_dir(void) { return dir; }

const char *ns_binary(void)
{
    const char *b = getenv("NS_BINARY");
    if (!binary[0] && (!realpath(b ? b : "build/normscope", binary) || access(binary, X_OK) != 0))
        binary[0] = '\0';
    return binary[0] ? binary : NULL;
}

const char *last_line(const char *text)
{
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n')
        n--;
    while (n > 0 && text[n - 1] != '\n')
        n--;
    return text + n;
}

double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void sleep_ms(int ms) { nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL); }

/* ------------------------------------------------------------------ environment */

/* The folder named by an environment variable, made absolute. The suite carries its data in
 * tests/data, so a missing folder is a broken checkout or build: fail, never skip. */
static const char *data_dir(const char *var, char *path)
{
    const char *d = getenv(var);
    if (!d || !*d || !realpath(d, path))
        fail_msg("%s is unset or names no folder ('%s'): run the tests with meson test", var,
                 d ? d : "");
    return path;
}

const char *test_corpora(void)
{
    static char path[PATH_MAX];
    return data_dir("NS_TEST_CORPORA", path);
}

const char *test_debug_states(void)
{
    static char path[PATH_MAX];
    return data_dir("NS_TEST_DEBUG_STATES", path);
}

void test_filter_from_env(void)
{
    if (getenv("NS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("NS_TEST_FILTER"));
}

/* ------------------------------------------------------------------ fixture */

int harness_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ns_%.64s_XXXXXX", program_invocation_short_name);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "cannot create a scratch directory %s: %s\n", dir, strerror(errno));
        dir[0] = '\0';
        return -1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int harness_teardown(void)
{
    for (int i = 0; i < npool; i++)
        free(pool[i]);
    npool = 0;
    if (!dir[0] || getenv("NS_KEEP_TEST_DIR"))
        return 0;
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
        return -1;
    }
    return 0;
}

int group_setup(void **state)
{
    (void)state;
    return harness_setup();
}

int group_teardown(void **state)
{
    (void)state;
    return harness_teardown();
}

/* ------------------------------------------------------------------ files */

char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0)
        n = ftell(f), fseek(f, 0, SEEK_SET);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    assert_non_null(s);
    size_t got = n > 0 ? fread(s, 1, (size_t)n, f) : 0;
    s[got] = '\0';
    if (f)
        fclose(f);
    if (len)
        *len = got;
    return s;
}

void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

void copy_file(const char *from, const char *to)
{
    size_t n;
    char *buf = slurp(from, &n);
    long size = file_size(from);
    if (size < 0 || (size_t)size != n) {
        free(buf);
        fail_msg("cannot read %s", from);
    }
    write_file(to, buf, n);
    free(buf);
}

long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

int file_exists(const char *path) { return file_size(path) >= 0; }

int file_contains(const char *path, const char *needle)
{
    char *text = slurp(path, NULL);
    int found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

int on_path(const char *program)
{
    const char *path = getenv("PATH");
    char buf[4096], full[4200];
    snprintf(buf, sizeof buf, "%s", path ? path : "");
    for (char *d = strtok(buf, ":"); d; d = strtok(NULL, ":")) {
        snprintf(full, sizeof full, "%s/%s", d, program);
        if (access(full, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ the program as a child */

static pid_t spawn_words(Io io, char *const *argv);

static pid_t vspawn(Io io, const char *f, va_list ap)
{
    char line[8192], *argv[256];
    if (!ns_binary())
        fail_msg("NS_BINARY must name the normscope program (meson test sets it)");
    vsnprintf(line, sizeof line, f, ap);
    int argc = 0;
    argv[argc++] = binary;
    for (char *tok = strtok(line, " "); tok && argc < 255; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    return spawn_words(io, argv);
}

/* Starts the program with argv as it is (argv[0] the binary). */
static pid_t spawn_words(Io io, char *const *argv)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(io.out ? io.out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(io.err ? io.err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 || chdir(dir) != 0)
            _exit(126);
        close(o), close(e);
        if (io.path)
            setenv("PATH", io.path, 1);
        execv(binary, argv);
        _exit(127);
    }
    assert_true(pid > 0);
    return pid;
}

pid_t spawn(Io io, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    pid_t pid = vspawn(io, f, ap);
    va_end(ap);
    return pid;
}

/* Polls the child every 2 ms; with sigint_file, sends SIGINT once that file shows a training
 * step. */
static int await(pid_t pid, double timeout, const char *sigint_file)
{
    double t0 = now();
    int status = 0, sent = 0;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (sigint_file && !sent) {
            char *e = slurp(sigint_file, NULL);
            if (strstr(e, "\nstep "))
                sent = kill(pid, SIGINT) == 0;
            free(e);
        }
        if (now() - t0 > timeout) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            print_message("process %d killed after a %.0f s timeout\n", (int)pid, timeout);
            return TIMED_OUT;
        }
        sleep_ms(2);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

int wait_exit(pid_t pid, double timeout) { return await(pid, timeout, NULL); }

int run_io(Io io, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    pid_t pid = vspawn(io, f, ap);
    va_end(ap);
    return await(pid, RUN_TIMEOUT, NULL);
}

Run run_argv(double timeout, const char *const *words)
{
    char out[PATH_MAX + 256], err[PATH_MAX + 256], *argv[256];
    if (!ns_binary())
        fail_msg("NS_BINARY must name the normscope program (meson test sets it)");
    int argc = 0;
    argv[argc++] = binary;
    for (; *words && argc < 255; words++)
        argv[argc++] = (char *)*words;
    argv[argc] = NULL;
    snprintf(out, sizeof out, "%s", scratch(".stdout"));
    snprintf(err, sizeof err, "%s", scratch(".stderr"));
    unlink(out);
    unlink(err);
    Run r = {0};
    double t0 = now();
    r.code = await(spawn_words((Io){out, err, NULL}, argv), timeout, NULL);
    r.seconds = now() - t0;
    r.out = keep(slurp(out, NULL));
    r.err = keep(slurp(err, NULL));
    return r;
}

Run run_ex(double timeout, int interrupt, const char *f, ...)
{
    char out[PATH_MAX + 256], err[PATH_MAX + 256];
    snprintf(out, sizeof out, "%s", scratch(".stdout"));
    snprintf(err, sizeof err, "%s", scratch(".stderr"));
    unlink(out); /* a stale file must never pass for this run's output */
    unlink(err);
    Run r = {0};
    double t0 = now();
    va_list ap;
    va_start(ap, f);
    pid_t pid = vspawn((Io){out, err, NULL}, f, ap);
    va_end(ap);
    r.code = await(pid, timeout, interrupt ? err : NULL);
    r.seconds = now() - t0;
    r.out = keep(slurp(out, NULL));
    r.err = keep(slurp(err, NULL));
    return r;
}

int train_logs(int n, const char *flags, const char *const *name, const char *const *extra,
               const int *want, const char **path)
{
    pid_t pid[64];
    int failed = 0;
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        const char *log = keep(strdup(scratch(name[i])));
        if (path)
            path[i] = log;
        pid[i] = spawn((Io){.err = scratch(fmt("%s.err", name[i]))}, "train %s --out %s %s", flags,
                       log, extra[i]);
    }
    for (int i = 0; i < n; i++) {
        int code = wait_exit(pid[i], RUN_TIMEOUT), expected = want ? want[i] : 0;
        if (code != expected) {
            fprintf(stderr, "training %s exited %d, not %d (see %s.err)\n", scratch(name[i]),
                    code, expected, scratch(name[i]));
            failed = 1;
        }
    }
    /* Every log the suite trains meets the run-log schema (docs/runlog.md). */
    for (int i = 0; i < n && !failed; i++) {
        const char *log = scratch(name[i]), *out = scratch(fmt("%s.check", name[i]));
        if (file_exists(log) && run_io((Io){.out = out}, "check-log %s", log) != 0) {
            fprintf(stderr, "check-log %s: %s\n", log, (char *)keep(slurp(out, NULL)));
            failed = 1;
        }
    }
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------ numbers, norm state */

double max_abs(const float *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)x[i]));
    return m;
}

static float **state_ptr(NsNormSite *s, int k)
{
    float **p[4] = {&s->running_mean, &s->running_var, &s->running_psi2, &s->nu};
    return p[k];
}

void norm_state_save(NsNormSite *s, NormState *st)
{
    for (int k = 0; k < 4; k++) {
        float *src = *state_ptr(s, k);
        st->buf[k] = src ? malloc(sizeof(float) * (size_t)s->d) : NULL;
        if (src) {
            assert_non_null(st->buf[k]);
            memcpy(st->buf[k], src, sizeof(float) * (size_t)s->d);
        }
    }
    st->step = s->step;
}

void norm_state_restore(NsNormSite *s, const NormState *st)
{
    for (int k = 0; k < 4; k++)
        if (st->buf[k] && *state_ptr(s, k))
            memcpy(*state_ptr(s, k), st->buf[k], sizeof(float) * (size_t)s->d);
    s->step = st->step;
}

int norm_state_equal(NsNormSite *s, const NormState *st)
{
    for (int k = 0; k < 4; k++)
        if (st->buf[k] && memcmp(*state_ptr(s, k), st->buf[k], sizeof(float) * (size_t)s->d))
            return 0;
    return s->step == st->step;
}

void norm_state_free(NormState *st)
{
    for (int k = 0; k < 4; k++)
        free(st->buf[k]);
    memset(st, 0, sizeof *st);
}
