/* Command-line and end-to-end tests of the training engine. The `normscope` program (NS_BINARY)
 * runs as a child process in a scratch directory, with a timeout, and is judged by its exit code,
 * stdout, stderr and the files it writes:
 *   1. bad input: exactly one stderr line "normscope: ..." naming the flag or file, exit 2
 *      (command line) or 1 (data/files), never a signal death;
 *   2. divergence (exit 3), SIGINT (exit 130) and an exact --resume;
 *   3. --help of every engine command, --version;
 *   4. train -> eval round trip on the checkpoint; eval on another corpus;
 *   5. debug-step files against debug-state.md / model-spec.md (names, types, shapes, the AdamW
 *      chain between steps) and recomputed in-process with the library;
 *   6. learning on a real corpus (below the unigram entropy); 7. char tokenizer, stream batching. */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "h5util.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"

#define TINY "--d-model 32 --heads 2 --d-ff 64 --layers 2 --seq-len 16 --batch-size 8 " \
             "--vocab-size 500 --synth-bytes 100000 --eval-every 10 --log-every 10 --threads 1"

static char dir[256];       /* scratch directory, the child's working directory */
static char binary[4096];   /* NS_BINARY, absolute */
static char data_dir[4096]; /* NS_SHARED_DATA, absolute, or "" when absent */

/* Buffers live until teardown, so a failing assertion (which longjmps) leaks nothing. */
static void *pool[8192];
static int npool;
static void *keep(void *p)
{
    assert_true(npool < 8192);
    return pool[npool++] = p;
}

/* printf into one of 8 rotating buffers (paths, labels). */
static char *fmt(const char *f, ...)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf[k], sizeof buf[k], f, ap);
    va_end(ap);
    return buf[k];
}
#define scratch(name) fmt("%s/%s", dir, name)

/* ------------------------------------------------------------------ running the program */

typedef struct {
    int code; /* exit code; -signal if killed by a signal; -1000 on timeout */
    char *out, *err;
    double seconds;
} Run;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return calloc(1, 1);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        s[0] = '\0';
    fclose(f);
    return s;
}

/* Runs `normscope ARGS`, ARGS being the printf of f split at spaces (no path here has one).
 * With interrupt set, sends SIGINT once stderr shows a training step. */
static Run run_ex(double timeout, int interrupt, const char *f, ...)
{
    char line[8192], *argv[256];
    va_list ap;
    va_start(ap, f);
    vsnprintf(line, sizeof line, f, ap);
    va_end(ap);
    int argc = 0;
    argv[argc++] = binary;
    for (char *tok = strtok(line, " "); tok && argc < 255; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    Run r = {0};
    unlink(scratch(".stdout")); /* a stale file must never pass for this run's output */
    unlink(scratch(".stderr"));
    double t0 = now();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(dir) != 0)
            _exit(126);
        dup2(open(".stdout", O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
        dup2(open(".stderr", O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
        execv(binary, argv);
        _exit(127);
    }
    int status = 0, sent = 0;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (interrupt && !sent) {
            char *e = slurp(scratch(".stderr"));
            if (strstr(e, "\nstep "))
                sent = kill(pid, SIGINT) == 0;
            free(e);
        }
        if (now() - t0 > timeout) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            r.code = -1000;
            break;
        }
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    r.seconds = now() - t0;
    if (r.code != -1000)
        r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    r.out = keep(slurp(scratch(".stdout")));
    r.err = keep(slurp(scratch(".stderr")));
    return r;
}
#define run(...) run_ex(120.0, 0, __VA_ARGS__)

/* The number after the first occurrence of key in text; NAN if absent. */
static double number_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

static const char *last_line(const char *text)
{
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n')
        n--;
    while (n > 0 && text[n - 1] != '\n')
        n--;
    return text + n;
}

static int file_exists(const char *name)
{
    struct stat st;
    return stat(scratch(name), &st) == 0;
}

static void write_file(const char *name, const char *data, size_t n)
{
    FILE *f = fopen(scratch(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* ------------------------------------------------------------------ fixtures */

static Run base;           /* `train TINY --steps 40 --out base.h5`, run once in setup */
static NsModel dm, dm2;    /* models of check_debug_file, freed in teardown if a check failed */
static int dm_live;

static int setup(void **state)
{
    (void)state;
    ns_h5_quiet();
    const char *b = getenv("NS_BINARY"), *d = getenv("NS_SHARED_DATA");
    if (!b || !realpath(b, binary)) {
        fprintf(stderr, "NS_BINARY is not set or does not exist\n");
        return -1;
    }
    if (!d || !realpath(d, data_dir))
        data_dir[0] = '\0';
    snprintf(dir, sizeof dir, "/tmp/ns_cli_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    write_file("empty.txt", "", 0);
    write_file("bin.txt", "abc def\n\0\0\x01\x02 ghi\n", 17);
    write_file("three.txt", "one two three\nfour five\nsix seven\n", 34);
    char text[16384] = "";
    for (int i = 0; i < 25; i++) /* 25 lines of 3 words: 100 tokens with EOS */
        snprintf(text + strlen(text), sizeof text - strlen(text), "w%d x y\n", i);
    write_file("short.txt", text, strlen(text));
    text[0] = '\0';
    for (int i = 0; i < 400; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "w%d v%d x%d y\n", i % 37,
                 i % 11, i % 5);
    write_file("tc.txt", text, strlen(text));
    mkdir(scratch("adir"), 0755);
    base = run("train " TINY " --steps 40 --out base.h5");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < npool; i++)
        free(pool[i]);
    if (dm_live)
        ns_model_free(&dm), ns_model_free(&dm2);
    if (!getenv("NS_CLI_KEEP") && strncmp(dir, "/tmp/ns_cli_", 12) == 0 &&
        system(fmt("rm -rf '%s'", dir)) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}

/* ------------------------------------------------------------------ 1. bad input */

/* Checks the one-line error contract; returns NULL or what is wrong. */
static const char *error_problem(const Run *r, int code, const char *n1, const char *n2)
{
    const char *nl = strchr(r->err, '\n');
    if (r->code == -1000)
        return "timed out";
    if (r->code < 0)
        return fmt("died of signal %d", -r->code);
    if (r->code != code)
        return fmt("exit code %d, expected %d", r->code, code);
    if (strncmp(r->err, "normscope: ", 11) != 0 || !nl || nl[1] != '\0')
        return "stderr is not exactly one 'normscope: ' line";
    if (!strstr(r->err, n1) || (n2 && !strstr(r->err, n2)))
        return fmt("message does not name '%s'%s%s", n1, n2 ? " and " : "", n2 ? n2 : "");
    return NULL;
}

static const struct {
    const char *args;
    int code;
    const char *n1, *n2; /* what the message must name */
} BAD[] = {
    {"train " TINY " --corpus nope.txt", 1, "nope.txt", "no such file"},
    {"train " TINY " --corpus adir", 1, "adir", "directory"},
    {"train " TINY " --corpus empty.txt", 1, "empty.txt", "empty"},
    {"train " TINY " --corpus bin.txt", 1, "bin.txt", "binary"},
    {"train " TINY " --corpus base.ckpt.h5", 1, "base.ckpt.h5", "binary"},
    {"train " TINY " --corpus three.txt", 1, "three.txt", "--valid"},
    {"train " TINY " --valid nope.txt", 1, "nope.txt", NULL},
    {"train " TINY " --bogus 1", 2, "--bogus", NULL},
    {"frobnicate", 2, "frobnicate", NULL},
    {"train " TINY " --norm group", 2, "--norm", "group"},
    {"train " TINY " --norm-position sideways", 2, "--norm-position", "sideways"},
    {"train " TINY " --d-model 30 --heads 4", 2, "--d-model", "--heads"},
    {"train " TINY " --layers 0", 2, "--layers", NULL},
    {"train " TINY " --batch-size -1", 2, "--batch-size", NULL},
    {"train " TINY " --seq-len abc", 2, "--seq-len", "abc"},
    {"train " TINY " --layers=x2", 2, "--layers", "x2"},
    {"train " TINY " --seq-len 99999999999", 2, "--seq-len", NULL},
    {"train " TINY " --seq-len", 2, "--seq-len", "value"},
    {"train " TINY " --tokenizer bpe", 2, "--tokenizer", "bpe"},
    {"train " TINY " --batching foo", 2, "--batching", "foo"},
    {"train " TINY " --pn-groups 3 --d-model 32", 2, "--pn-groups", NULL},
    {"train " TINY " --steps 0", 2, "--steps", NULL},
    {"train " TINY " --lr 0", 2, "--lr", NULL},
    {"train " TINY " --dropout 1", 2, "--dropout", NULL},
    {"train " TINY " --pn-alpha 1.5", 2, "--pn-alpha", NULL},
    {"train " TINY " --vocab-size 3", 2, "--vocab-size", NULL},
    {"train " TINY " stray", 2, "stray", NULL},
    {"train " TINY " --out nodir/x.h5", 1, "nodir/x.h5", NULL},
    {"debug-step " TINY " --out nodir/x.h5", 1, "nodir/x.h5", NULL},
    {"debug-step " TINY " --probes all", 2, "--probes", NULL},
    {"eval", 2, "--checkpoint", NULL},
    {"eval --checkpoint bin.txt", 1, "bin.txt", "HDF5"},
    {"eval --checkpoint nope.ckpt.h5", 1, "nope.ckpt.h5", NULL},
    {"eval --checkpoint base.h5", 1, "base.h5", "not a normscope checkpoint"},
    {"eval --checkpoint base.ckpt.h5 --norm layer", 2, "--norm", NULL},
    {"eval --checkpoint base.ckpt.h5 --corpus nope.txt", 1, "nope.txt", NULL},
    {"train --resume base.ckpt.h5 --d-model 64 --out res.h5", 1, "d_model", NULL},
    {"train --resume nope.ckpt.h5 --out res.h5", 1, "nope.ckpt.h5", NULL},
    {"train " TINY " --corpus short.txt --valid short.txt --batching stream", 1, "stream",
     "--batch-size"},
};

static void test_bad_input(void **state)
{
    (void)state;
    assert_int_equal(base.code, 0);
    int failures = 0, n = (int)(sizeof BAD / sizeof BAD[0]);
    for (int i = 0; i < n; i++) {
        Run r = run(BAD[i].args);
        const char *why = error_problem(&r, BAD[i].code, BAD[i].n1, BAD[i].n2);
        if (why)
            print_error("normscope %s\n  -> %s\n  stderr: %s\n", BAD[i].args, why, r.err),
                failures++;
    }
    if (failures)
        fail_msg("%d of %d bad inputs broke the error contract", failures, n);
}

static void test_unreadable_corpus(void **state)
{
    (void)state;
    if (geteuid() == 0)
        skip(); /* root reads a mode-000 file anyway */
    write_file("locked.txt", "some text\n", 10);
    chmod(scratch("locked.txt"), 0);
    Run r = run("train " TINY " --corpus locked.txt");
    const char *why = error_problem(&r, 1, "locked.txt", NULL);
    if (why)
        fail_msg("%s; stderr: %s", why, r.err);
}

/* A text too short for stream batching must be named in the error whichever role it plays
 * (validation text of train, --corpus of eval), like every other file error; and train should
 * find it before training, not at the first validation pass (with --eval-every 0: after the
 * whole run, whose checkpoint is then never written). */
static void test_short_text_is_named(void **state)
{
    (void)state;
    Run r = run("train " TINY " --steps 30 --eval-every 0 --batching stream --valid short.txt "
                "--out sv.h5");
    const char *msg = last_line(r.err);
    int named = !strncmp(msg, "normscope: ", 11) && (strstr(msg, "short.txt") || strstr(msg, "valid"));
    int early = !strstr(r.err, "\nstep "), ok = r.code == 1 && named && early;
    if (!ok)
        print_error("train --valid short.txt --batching stream: exit %d, %s, %s; last line: %s\n",
                    r.code, named ? "names the file" : "does not name the file",
                    early ? "before training" : "after training", msg);
    r = run("eval --checkpoint base.ckpt.h5 --corpus short.txt --batching stream");
    const char *why = error_problem(&r, 1, "short.txt", NULL);
    if (why)
        print_error("eval --corpus short.txt --batching stream: %s; stderr: %s", why, r.err);
    if (!ok || why)
        fail_msg("a too-short stream text is reported late or without naming the file");
}

/* ------------------------------------------------------------------ 2. divergence, SIGINT */

static void test_divergence(void **state)
{
    (void)state;
    Run r = run("train " TINY " --steps 200 --lr 100 --clip 0 --warmup 1 --norm none --out div.h5");
    const char *msg = last_line(r.err), *want = "normscope: training diverged at step ";
    assert_int_equal(r.code, 3);
    if (strncmp(msg, want, strlen(want)) != 0)
        fail_msg("last stderr line: %s", msg);
    long step = strtol(msg + strlen(want), NULL, 10);
    assert_true(step >= 1 && step <= 200);
    hid_t f = H5Fopen(scratch("div.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    char format[64] = "";
    assert_int_equal(ns_h5_attr_read_str(f, "format", format, sizeof format), 0);
    assert_string_equal(format, "normscope-runlog-1");
    assert_true(ns_h5_exists(f, "steps"));
    H5Fclose(f);
    print_message("diverged at step %ld (%.2f s)\n", step, r.seconds);
}

static void test_interrupt_and_resume(void **state)
{
    (void)state;
    Run r = run_ex(120.0, 1, "train " TINY " --steps 1000000 --out sig.h5");
    const char *msg = last_line(r.err), *want = "normscope: stopped by signal after step ";
    assert_int_equal(r.code, 130);
    if (strncmp(msg, want, strlen(want)) != 0)
        fail_msg("last stderr line: %s", msg);
    long step = strtol(msg + strlen(want), NULL, 10);
    assert_true(step >= 10 && file_exists("sig.ckpt.h5"));
    r = run("train --resume sig.ckpt.h5 --steps %ld --out sig.h5", step + 15);
    if (r.code != 0 || !strstr(r.out, fmt("done: %ld steps", step + 15)) ||
        !strstr(r.err, "(resumed)"))
        fail_msg("resume: exit %d, stdout %s, stderr %s", r.code, r.out, r.err);
    /* Resuming is exact: the same final validation loss as a run that never stopped. */
    Run straight = run("train " TINY " --steps %ld --out straight.h5", step + 15);
    double a = number_after(r.out, "final validation loss ");
    double b = number_after(straight.out, "final validation loss ");
    print_message("stopped at step %ld; resumed to %ld: validation loss %.4f, unbroken run %.4f\n",
                  step, step + 15, a, b);
    assert_int_equal(straight.code, 0);
    assert_true(a == b);
}

/* ------------------------------------------------------------------ 3. help */

static void test_help(void **state)
{
    (void)state;
    static const struct { const char *args, *needles[6]; } H[] = {
        {"--help", {"train", "eval", "debug-step", NULL}},
        {"-h", {"train", "eval", "debug-step", NULL}},
        {"train --help", {"--norm", "--pn-warmup", "--probes", "--resume", "--tokenizer", NULL}},
        {"eval --help", {"--checkpoint", "--corpus", "--batching", NULL}},
        {"debug-step --help", {"--norm", "--pn-warmup", "--out", "--steps", "--batching", NULL}},
        {"--version", {"normscope 0.", NULL}},
    };
    for (size_t i = 0; i < sizeof H / sizeof H[0]; i++) {
        Run r = run(H[i].args);
        if (r.code != 0 || r.err[0])
            fail_msg("normscope %s: exit %d, stderr %s", H[i].args, r.code, r.err);
        for (int k = 0; H[i].needles[k]; k++)
            if (!strstr(r.out, H[i].needles[k]))
                fail_msg("normscope %s does not list %s", H[i].args, H[i].needles[k]);
    }
}

/* ------------------------------------------------------------------ 4. train + eval */

static void test_train_eval_roundtrip(void **state)
{
    (void)state;
    if (base.code != 0)
        fail_msg("train: exit %d, stderr %s", base.code, base.err);
    double final = number_after(base.out, "final validation loss ");
    assert_true(isfinite(final) && strstr(base.out, "done: 40 steps"));
    assert_true(file_exists("base.h5") && file_exists("base.ckpt.h5"));
    Run r = run("eval --checkpoint base.ckpt.h5");
    if (r.code != 0)
        fail_msg("eval: exit %d, stderr %s", r.code, r.err);
    double loss = number_after(r.out, "\nloss "), ppl = number_after(r.out, "\nperplexity ");
    print_message("train final validation loss %.4f, eval loss %.6f (%.2f s)\n", final, loss,
                  r.seconds);
    assert_true(fabs(loss - final) <= 1e-4);
    assert_true(fabs(ppl - exp(loss)) <= 1e-3 * ppl);

    /* Stream batching: eval with the run's batching gives the run's validation loss too. */
    r = run("train " TINY " --steps 20 --batching stream --out st.h5");
    final = number_after(r.out, "final validation loss ");
    assert_int_equal(r.code, 0);
    r = run("eval --checkpoint st.ckpt.h5 --batching stream");
    assert_int_equal(r.code, 0);
    assert_true(fabs(number_after(r.out, "\nloss ") - final) <= 1e-4);

    if (!data_dir[0])
        return;
    r = run("eval --checkpoint base.ckpt.h5 --corpus %s/ptb.valid.txt", data_dir);
    double unk = number_after(r.out, "unk rate ");
    loss = number_after(r.out, "\nloss ");
    if (r.code != 0 || !(unk >= 0 && unk <= 1) || !isfinite(loss) || !strstr(r.out, "perplexity"))
        fail_msg("eval on ptb.valid.txt: exit %d, stdout %s, stderr %s", r.code, r.out, r.err);
    print_message("ptb.valid.txt: unk rate %.4f, loss %.4f\n", unk, loss);
}

/* eval on another text needs the checkpoint (which holds the vocabulary), not the training
 * text: it must still work once that file has moved (or from another working directory). */
static void test_eval_without_training_text(void **state)
{
    (void)state;
    Run r = run("train " TINY " --steps 10 --corpus tc.txt --batching sentences --out tc.h5");
    assert_int_equal(r.code, 0);
    assert_int_equal(rename(scratch("tc.txt"), scratch("tc-moved.txt")), 0);
    r = run("eval --checkpoint tc.ckpt.h5 --corpus short.txt");
    if (r.code != 0 || !isfinite(number_after(r.out, "\nloss ")))
        fail_msg("eval --corpus short.txt after the training text moved: exit %d, stderr %s",
                 r.code, r.err);
}

/* ------------------------------------------------------------------ 5. debug-step */

static char ctx[256]; /* the case being checked, for failure messages */
#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            print_error("%s: ", ctx);                                                        \
            fail_msg(__VA_ARGS__);                                                           \
        }                                                                                    \
    } while (0)

/* Type of a root attribute (is_attr) or dataset: class, byte size (strings: variable length;
 * integers: signed, except 1-byte ones unsigned), rank and dims (rank 0 = scalar). */
static void check_type(hid_t f, const char *name, int is_attr, H5T_class_t cls, size_t size,
                       int rank, const int *dims)
{
    CHECK(is_attr ? H5Aexists(f, name) > 0 : ns_h5_exists(f, name), "'%s' is missing", name);
    hid_t o = is_attr ? H5Aopen(f, name, H5P_DEFAULT) : H5Dopen2(f, name, H5P_DEFAULT);
    hid_t t = is_attr ? H5Aget_type(o) : H5Dget_type(o);
    hid_t s = is_attr ? H5Aget_space(o) : H5Dget_space(o);
    hsize_t got[4] = {0};
    int ok = H5Tget_class(t) == cls && H5Sget_simple_extent_ndims(s) == rank;
    ok = ok && (cls == H5T_STRING ? H5Tis_variable_str(t) > 0 : H5Tget_size(t) == size);
    if (cls == H5T_INTEGER)
        ok = ok && H5Tget_sign(t) == (size == 1 ? H5T_SGN_NONE : H5T_SGN_2);
    H5Sget_simple_extent_dims(s, got, NULL);
    for (int i = 0; i < rank && ok; i++)
        ok = got[i] == (hsize_t)dims[i];
    H5Sclose(s);
    H5Tclose(t);
    is_attr ? H5Aclose(o) : H5Dclose(o);
    CHECK(ok, "'%s' has the wrong type or shape", name);
}

static herr_t count_dataset(hid_t g, const char *name, const H5L_info_t *info, void *n)
{
    (void)info;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d >= 0)
        ++*(int *)n, H5Dclose(d);
    return 0;
}

static int n_datasets(hid_t f, const char *group) /* anywhere under group; 0 if absent */
{
    int n = 0;
    if (!ns_h5_exists(f, group))
        return 0;
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    H5Lvisit(g, H5_INDEX_NAME, H5_ITER_NATIVE, count_dataset, &n);
    H5Gclose(g);
    return n;
}

/* params/ or grads/: exactly the tensors of model-spec.md ("Parameter and state names"). */
static void check_params_layout(hid_t f, const char *group_, const NsModelConfig *c)
{
    char group[64]; /* group_ may be an fmt() buffer, which T() recycles */
    snprintf(group, sizeof group, "%s", group_);
    int n = 0, d = c->d_model, F = c->d_ff, affine = c->norm != NS_NORM_NONE;
#define T(name, r, a, b) (n++, check_type(f, fmt("%s/%s", group, name), 0, H5T_FLOAT, 4, r, (int[]){a, b}))
    T("embed", 2, c->vocab_size, d);
    for (int l = 0; l < c->n_layers; l++) {
        for (const char *w = "qkvo"; *w; w++)
            T(fmt("layers/%d/attn/w%c", l, *w), 2, d, d), T(fmt("layers/%d/attn/b%c", l, *w), 1, d, 0);
        T(fmt("layers/%d/ffn/w1", l), 2, F, d), T(fmt("layers/%d/ffn/b1", l), 1, F, 0);
        T(fmt("layers/%d/ffn/w2", l), 2, d, F), T(fmt("layers/%d/ffn/b2", l), 1, d, 0);
        for (int k = 1; k <= 2 && affine; k++)
            T(fmt("layers/%d/norm%d/weight", l, k), 1, d, 0), T(fmt("layers/%d/norm%d/bias", l, k), 1, d, 0);
    }
    if (affine && c->norm_position == NS_POS_PRE)
        T("final_norm/weight", 1, d, 0), T("final_norm/bias", 1, d, 0);
#undef T
    CHECK(n_datasets(f, group) == n, "%s holds %d datasets, model-spec.md names %d", group,
          n_datasets(f, group), n);
}

/* state_before/ or state_after/: per site, the state of model-spec.md for the scheme. */
static const char *STATE_NAMES[5] = {"running_mean", "running_var", "running_psi2", "nu", "step"};
static unsigned state_bits(int kind) /* which of STATE_NAMES the scheme keeps */
{
    return kind == NS_NORM_BATCH ? 0x3 : kind == NS_NORM_POWER_V ? 0x4
         : kind == NS_NORM_POWER || kind == NS_NORM_POWER_OFFICIAL ? 0x1c : 0;
}

static void check_state_layout(hid_t f, const char *group_, const NsModelConfig *c)
{
    char group[64];
    snprintf(group, sizeof group, "%s", group_);
    unsigned bits = state_bits(c->norm);
    int n_sites = 2 * c->n_layers + (c->norm_position == NS_POS_PRE), expected = 0;
    for (int s = 0; s < n_sites; s++)
        for (int i = 0; i < 5; i++) {
            if (!(bits >> i & 1))
                continue;
            const char *site = s < 2 * c->n_layers ? fmt("layers/%d/norm%d", s / 2, s % 2 + 1)
                                                   : "final_norm";
            const char *path = fmt("%s/%s/%s", group, site, STATE_NAMES[i]);
            expected++;
            if (i == 4)
                check_type(f, path, 0, H5T_INTEGER, 8, 0, NULL);
            else
                check_type(f, path, 0, H5T_FLOAT, 4, 1, (int[]){c->d_model});
        }
    CHECK(n_datasets(f, group) == expected, "%s holds %d datasets, expected %d", group,
          n_datasets(f, group), expected);
    CHECK(bits || !ns_h5_exists(f, group), "%s exists for a stateless scheme", group);
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* Compares the norm state of a and b: exactly (tol < 0) or relative to each tensor's max. */
static void compare_state(NsModel *a, NsModel *b, double tol, const char *what)
{
    for (int s = 0; s < a->n_sites; s++) {
        const char *na[4], *nb[4];
        float *pa[4], *pb[4];
        int n = ns_norm_state_tensors(&a->sites[s], na, pa), d = a->sites[s].d;
        assert_int_equal(ns_norm_state_tensors(&b->sites[s], nb, pb), n);
        for (int k = 0; k < n; k++) {
            double scale = fmax(max_abs(pb[k], d), 1e-30), diff = 0;
            for (int c = 0; c < d; c++)
                diff = fmax(diff, fabs((double)pa[k][c] - pb[k][c]));
            CHECK(tol < 0 ? diff == 0 : diff <= tol * scale, "%s: %s/%s differs by %g (max %g)",
                  what, a->sites[s].path, na[k], diff, scale);
        }
        CHECK(!ns_norm_has_step(&a->sites[s]) || a->sites[s].step == b->sites[s].step,
              "%s: %s step %lld vs %lld", what, a->sites[s].path, (long long)a->sites[s].step,
              (long long)b->sites[s].step);
    }
}

static double worst_adam, worst_grad, worst_loss;

static void read_ds(hid_t f, const char *path, hid_t type, void *out, size_t n)
{
    char err[NS_ERRLEN];
    CHECK(ns_h5_read(f, path, type, out, n, err) == 0, "%s", err);
}

static void check_debug_file(const char *path, const char *norm, const char *pos, int warmup)
{
    char err[NS_ERRLEN];
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "cannot open %s", path);
    static const char *INTS[] = {"vocab_size", "d_model", "n_heads", "d_ff", "n_layers", "seq_len",
                                 "batch_size", "pn_warmup", "pn_groups", "tie_embeddings"};
    static const char *FLOATS[] = {"eps", "bn_momentum", "pn_alpha", "lr", "weight_decay",
                                   "adam_beta1", "adam_beta2", "adam_eps"};
    for (size_t i = 0; i < sizeof INTS / sizeof INTS[0]; i++)
        check_type(f, INTS[i], 1, H5T_INTEGER, 8, 0, NULL);
    for (size_t i = 0; i < sizeof FLOATS / sizeof FLOATS[0]; i++)
        check_type(f, FLOATS[i], 1, H5T_FLOAT, 8, 0, NULL);
    check_type(f, "norm", 1, H5T_STRING, 0, 0, NULL);
    check_type(f, "norm_position", 1, H5T_STRING, 0, 0, NULL);
    NsModelConfig mc;
    NsOptimConfig oc;
    ns_model_config_default(&mc);
    ns_optim_config_default(&oc);
    CHECK(ns_read_config_attrs(f, &mc, &oc, err) == 0, "%s", err);
    CHECK(!strcmp(ns_norm_name(mc.norm), norm) && !strcmp(ns_position_name(mc.norm_position), pos),
          "attributes say norm %s at %s", ns_norm_name(mc.norm), ns_position_name(mc.norm_position));
    CHECK(mc.d_model == 16 && mc.n_heads == 2 && mc.d_ff == 32 && mc.n_layers == 2 &&
              mc.seq_len == 12 && mc.batch_size == 4 && mc.pn_warmup == warmup &&
              oc.lr == 1e-2f && oc.weight_decay == 0.01f && oc.warmup == 2,
          "root attributes do not match the flags");
    CHECK(ns_h5_exists(f, "step_2") && !ns_h5_exists(f, "step_3"), "not exactly 3 step groups");

    mc.dropout = 0.0f;
    if (dm_live)
        ns_model_free(&dm), ns_model_free(&dm2);
    ns_model_init(&dm, &mc, 7);
    ns_model_init(&dm2, &mc, 7);
    dm_live = 1;
    NsModel *m = &dm, *m2 = &dm2; /* m recomputes; m2 holds the recorded state_after */
    const NsParamLayout *L = &m->layout;
    int B = mc.batch_size, T = mc.seq_len, zeros = 0;
    int32_t *tokens = keep(malloc(sizeof(int32_t) * B * (T + 1)));
    uint8_t *mask = keep(malloc((size_t)B * T));
    float *p0 = keep(malloc(sizeof(float) * L->total)), *g0 = keep(malloc(sizeof(float) * L->total));
    float *p1 = keep(malloc(sizeof(float) * L->total));
    double *am = keep(calloc(L->total, sizeof(double))), *av = keep(calloc(L->total, sizeof(double)));
    double *pred = keep(malloc(sizeof(double) * L->total));
    for (int k = 0; k < 3; k++) {
        char g[16];
        snprintf(g, sizeof g, "step_%d", k);
        check_type(f, fmt("%s/tokens", g), 0, H5T_INTEGER, 4, 2, (int[]){B, T + 1});
        check_type(f, fmt("%s/mask", g), 0, H5T_INTEGER, 1, 2, (int[]){B, T});
        check_type(f, fmt("%s/loss", g), 0, H5T_FLOAT, 4, 0, NULL);
        check_type(f, fmt("%s/lr", g), 0, H5T_FLOAT, 4, 0, NULL);
        check_params_layout(f, fmt("%s/params", g), &mc);
        check_params_layout(f, fmt("%s/grads", g), &mc);
        check_state_layout(f, fmt("%s/state_before", g), &mc);
        check_state_layout(f, fmt("%s/state_after", g), &mc);
        float loss_rec, lr;
        read_ds(f, fmt("%s/tokens", g), H5T_NATIVE_INT32, tokens, (size_t)B * (T + 1));
        read_ds(f, fmt("%s/mask", g), H5T_NATIVE_UINT8, mask, (size_t)B * T);
        read_ds(f, fmt("%s/loss", g), H5T_NATIVE_FLOAT, &loss_rec, 1);
        read_ds(f, fmt("%s/lr", g), H5T_NATIVE_FLOAT, &lr, 1);
        for (int b = 0; b < B; b++) /* each row: real positions, then padding (target <pad>) */
            for (int t = 0; t < T; t++) {
                int mk = mask[b * T + t], tgt = tokens[b * (T + 1) + t + 1];
                CHECK(mk <= 1 && (t == 0 || mk <= mask[b * T + t - 1]), "%s: bad mask row %d", g, b);
                CHECK((tgt == 0) == (mk == 0) && tgt >= 0 && tgt < mc.vocab_size,
                      "%s: target %d where the mask is %d", g, tgt, mk);
                zeros += !mk;
            }
        double t1 = k + 1, want_lr = oc.lr * fmin(t1 / oc.warmup, sqrt(oc.warmup / t1));
        CHECK(fabs(lr - want_lr) <= 1e-6 * want_lr, "%s/lr %g, schedule says %g", g, lr, want_lr);

        /* Recompute the step in-process from params and state_before (dropout 0). */
        CHECK(ns_read_tensors(f, fmt("%s/params", g), L, m->params, err) == 0, "%s", err);
        memcpy(p0, m->params, sizeof(float) * L->total);
        CHECK(ns_read_norm_state(f, fmt("%s/state_before", g), m, err) == 0, "%s", err);
        if (k > 0) /* state_before of step k is state_after of step k-1, still in m2 */
            compare_state(m, m2, -1, "state carried between steps");
        if (state_bits(mc.norm) & 0x10)
            CHECK(m->sites[0].step == k, "%s/state_before step %lld", g, (long long)m->sites[0].step);
        double loss = ns_model_forward(m, tokens, mask, 1);
        ns_model_zero_grad(m);
        ns_model_backward(m);
        worst_loss = fmax(worst_loss, fabs(loss - loss_rec) / fabs(loss_rec));
        CHECK(fabs(loss - loss_rec) <= 1e-4 * fabs(loss_rec), "%s loss %.7g, recomputed %.7g", g,
              loss_rec, loss);
        CHECK(ns_read_tensors(f, fmt("%s/grads", g), L, g0, err) == 0, "%s", err);
        double gfloor = 1e-4 * max_abs(g0, L->total); /* the key bias has round-off gradients */
        for (int i = 0; i < L->n_tensors; i++) {
            const NsTensorInfo *ti = &L->tensors[i];
            double scale = fmax(max_abs(g0 + ti->offset, ti->size), gfloor), diff = 0;
            for (size_t j = ti->offset; j < ti->offset + ti->size; j++)
                diff = fmax(diff, fabs((double)m->grads[j] - g0[j]));
            worst_grad = fmax(worst_grad, diff / scale);
            CHECK(diff <= 2e-3 * scale, "%s/grads/%s: recomputed differs by %g of %g", g,
                  ti->name, diff, scale);
        }
        CHECK(ns_read_norm_state(f, fmt("%s/state_after", g), m2, err) == 0, "%s", err);
        compare_state(m, m2, 1e-3, "recomputed state_after");

        /* AdamW in double from the recorded gradient and lr, moments carried over, t = k + 1. */
        double b1 = oc.adam_beta1, b2 = oc.adam_beta2;
        for (size_t j = 0; j < L->total; j++) {
            am[j] = b1 * am[j] + (1 - b1) * g0[j];
            av[j] = b2 * av[j] + (1 - b2) * (double)g0[j] * g0[j];
            double mh = am[j] / (1 - pow(b1, t1)), vh = av[j] / (1 - pow(b2, t1));
            pred[j] = p0[j] - lr * (mh / (sqrt(vh) + oc.adam_eps)) - lr * oc.weight_decay * p0[j];
        }
        if (k == 2)
            break;
        CHECK(ns_read_tensors(f, fmt("step_%d/params", k + 1), L, p1, err) == 0, "%s", err);
        for (int i = 0; i < L->n_tensors; i++) {
            const NsTensorInfo *ti = &L->tensors[i];
            double scale = fmax(max_abs(p1 + ti->offset, ti->size), 1e-30), diff = 0;
            for (size_t j = ti->offset; j < ti->offset + ti->size; j++)
                diff = fmax(diff, fabs(p1[j] - pred[j]));
            worst_adam = fmax(worst_adam, diff / scale);
            CHECK(diff <= 1e-5 * scale, "step_%d/params/%s is not AdamW of step_%d: off by %g "
                  "(max %g)", k + 1, ti->name, k, diff, scale);
        }
    }
    CHECK(zeros > 0, "sentences batching produced no padding in 3 steps");
    H5Fclose(f);
}

static void test_debug_step(void **state)
{
    (void)state;
    static const char *SCHEMES[] = {"layer", "batch", "power-v", "power", "power-official",
                                    "rms", "none"};
    static const char *POS[] = {"post", "pre"};
    struct { const char *norm, *pos, *extra; int warmup; } cases[32];
    int n = 0;
    for (int s = 0; s < 7; s++)
        for (int p = 0; p < 2; p++)
            cases[n].norm = SCHEMES[s], cases[n].pos = POS[p], cases[n].extra = "--pn-warmup 0",
            cases[n++].warmup = 0;
    for (int k = 0; k < 5; k++) /* PN warm-up ending inside the run (t = 1 batch, 2-3 running) */
        cases[n].norm = k % 2 ? "power-official" : "power", cases[n].pos = POS[k / 2 % 2],
        cases[n].extra = k < 4 ? "--pn-warmup 1" : "--pn-warmup 1 --pn-groups 4",
        cases[n++].warmup = 1;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        snprintf(ctx, sizeof ctx, "debug-step --norm %s --norm-position %s %s", cases[i].norm,
                 cases[i].pos, cases[i].extra);
        Run r = run("debug-step --d-model 16 --heads 2 --d-ff 32 --layers 2 --seq-len 12 "
                    "--batch-size 4 --vocab-size 120 --synth-bytes 20000 --batching sentences "
                    "--threads 1 --steps 3 --lr 1e-2 --warmup 2 --weight-decay 0.01 --norm %s "
                    "--norm-position %s %s --out dbg.h5", cases[i].norm, cases[i].pos,
                    cases[i].extra);
        CHECK(r.code == 0 && strstr(r.out, "step_2 loss"), "exit %d, stderr %s", r.code, r.err);
        check_debug_file(scratch("dbg.h5"), cases[i].norm, cases[i].pos, cases[i].warmup);
    }
    print_message("%d debug states checked in %.2f s; worst relative error: AdamW chain %.2g, "
                  "loss %.2g, gradients %.2g\n", n, now() - t0, worst_adam, worst_loss, worst_grad);
}

/* ------------------------------------------------------------------ 6, 7. real training */

/* Trains; checks exit 0 and that every reported loss is finite. */
static Run train_ok(const char *what, const char *args)
{
    Run r = run_ex(600.0, 0, "train %s", args);
    if (r.code != 0)
        fail_msg("%s: exit %d, stderr %s", what, r.code, r.err);
    for (const char *p = strstr(r.err, "loss "); p; p = strstr(p + 1, "loss "))
        if (!isfinite(strtod(p + 5, NULL)))
            fail_msg("%s: non-finite loss at '%.40s'", what, p);
    assert_true(isfinite(number_after(r.out, "final validation loss ")));
    return r;
}

static const char *shakespeare(void) /* path, or NULL when the shared data is missing */
{
    const char *path = fmt("%s/tinyshakespeare.txt", data_dir);
    return data_dir[0] && access(path, R_OK) == 0 ? path : NULL;
}

static void test_real_corpus(void **state)
{
    (void)state;
    if (!shakespeare())
        skip();
    static const char *NORMS[] = {"layer", "power --pn-warmup 50"};
    for (int i = 0; i < 2; i++) {
        Run r = train_ok(NORMS[i], fmt(
            "--corpus %s --tokenizer word --norm %s --d-model 64 --heads 4 --d-ff 128 --layers 2 "
            "--seq-len 32 --batch-size 24 --vocab-size 2000 --steps 300 --lr 6e-3 --warmup 30 "
            "--batching stream --eval-every 150 --eval-batches 30 --log-every 25 --probes none "
            "--dropout 0 --threads 1 --out real%d.h5", shakespeare(), NORMS[i], i));
        double H = number_after(r.err, "unigram entropy ");
        double train_loss = number_after(r.err, "step 300/300 loss "); /* steps 276-300 */
        double valid = number_after(r.out, "final validation loss ");
        print_message("%s: unigram entropy %.3f, final train loss %.3f, validation %.3f "
                      "(%.1f s)\n", NORMS[i], H, train_loss, valid, r.seconds);
        assert_true(H > 3.0);
        if (!(train_loss <= H - 0.5 && valid <= H - 0.5))
            fail_msg("%s did not learn: train %.3f, validation %.3f, unigram entropy %.3f",
                     NORMS[i], train_loss, valid, H);
    }
}

static void test_char_and_stream(void **state)
{
    (void)state;
    static const char *ARGS[] = {
        TINY " --steps 30 --tokenizer char --out c1.h5",
        TINY " --steps 30 --tokenizer char --batching stream --out c2.h5",
        TINY " --steps 30 --batching stream --out c3.h5",
    };
    for (int i = 0; i < 3; i++) {
        Run r = train_ok(ARGS[i], ARGS[i]);
        int V = (int)number_after(r.err, " V=");
        if (strstr(ARGS[i], "char") && !(V > 3 && V < 200))
            fail_msg("char tokenizer vocabulary V=%d", V);
    }
    if (!shakespeare())
        return;
    Run r = train_ok("char tinyshakespeare", fmt("%s --corpus %s --tokenizer char --vocab-size "
                     "10000 --steps 20 --eval-batches 5 --out c4.h5", TINY, shakespeare()));
    int V = (int)number_after(r.err, " V=");
    print_message("tinyshakespeare char vocabulary V=%d\n", V);
    assert_true(V > 40 && V < 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_unreadable_corpus),
        cmocka_unit_test(test_short_text_is_named),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_interrupt_and_resume),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_train_eval_roundtrip),
        cmocka_unit_test(test_eval_without_training_text),
        cmocka_unit_test(test_debug_step),
        cmocka_unit_test(test_real_corpus),
        cmocka_unit_test(test_char_and_stream),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
