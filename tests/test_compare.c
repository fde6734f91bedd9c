/* Tests of the analysis commands compare, watch and export-notebook against real run logs made
 * by the normscope binary under test (env NS_BINARY, default build/normscope) in a temporary
 * directory: short runs of batch, power-v, layer (pre) and one with --probes none, a run the
 * engine stops as diverged, and logs crafted from them with the HDF5 API (a NaN loss, an
 * unknown format). Expected numbers are recomputed here from the logs with logread/stats. */
#define _XOPEN_SOURCE 700 /* nftw, to remove the temporary directory */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
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

#include "compare.h"
#include "h5util.h"
#include "logread.h"
#include "notebook.h"
#include "stats.h"
#include "util.h"

#define PY "/usr/bin/python3"

static char g_dir[PATH_MAX];
static const char *g_bin;
static char g_batch[PATH_MAX + 32], g_pv[PATH_MAX + 32], g_ln[PATH_MAX + 32];
static char g_none[PATH_MAX + 32], g_div[PATH_MAX + 32], g_nan[PATH_MAX + 32];
static char g_nanlast[PATH_MAX + 32], g_badver[PATH_MAX + 32], g_text[PATH_MAX + 32];
static const int NAN_INDEX = 20; /* row of /steps/loss set to NaN in g_nan */

static const char *const TINY[] = {
    "--d-model", "32", "--heads", "2", "--d-ff", "64", "--layers", "2", "--seq-len", "16",
    "--batch-size", "8", "--vocab-size", "500", "--synth-bytes", "100000", "--eval-every", "10",
    "--probe-vectors-every", "5", "--log-every", "1000", NULL};

/* A 1x1 RGBA PNG (chunk CRCs checked) and its base64. */
static const unsigned char PNG_1X1[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
    0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00,
    0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78,
    0xda, 0x63, 0x64, 0x60, 0xf8, 0x5f, 0x0f, 0x00, 0x02, 0x87, 0x01, 0x80, 0xeb, 0x47,
    0xba, 0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
static const char PNG_1X1_B64[] =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5Er"
    "kJggg==";

/* ------------------------------------------------------------------------------------------
 * Processes and files */

/* Starts argv with stdout and stderr sent to files (NULL: /dev/null). */
static pid_t spawn(char *const argv[], const char *out, const char *errf)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(errf ? errf : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Exit code, or -1 if it was killed or did not end within timeout seconds (then killed). */
static int wait_exit(pid_t pid, double timeout)
{
    int status = 0;
    for (double waited = 0.0; waited < timeout; waited += 0.01) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* Runs `normscope WORDS...` (NULL-terminated); returns its exit code. */
static int run_ns(const char *out, const char *errf, ...)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)g_bin;
    va_list ap;
    va_start(ap, errf);
    for (const char *w; n < 63 && (w = va_arg(ap, const char *));)
        argv[n++] = (char *)w;
    va_end(ap);
    argv[n] = NULL;
    return wait_exit(spawn(argv, out, errf), 60.0);
}

static pid_t start_train(const char *out, const char *steps, const char *const *extra)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)g_bin;
    argv[n++] = "train";
    for (int i = 0; TINY[i]; i++)
        argv[n++] = (char *)TINY[i];
    argv[n++] = "--steps";
    argv[n++] = (char *)steps;
    argv[n++] = "--out";
    argv[n++] = (char *)out;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    return spawn(argv, NULL, NULL);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ns_xstrdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = ns_xmalloc((size_t)n + 1);
    s[fread(s, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return s;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = ns_xmalloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    write_bytes(to, buf, (size_t)n);
    free(buf);
}

/* A copy of `from` whose /steps/loss row `index` (-1: the last) is NaN. */
static void craft_nan_loss(const char *from, const char *to, long index)
{
    copy_file(from, to);
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "steps/loss", H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    hsize_t dims[1];
    H5Sget_simple_extent_dims(space, dims, NULL);
    hsize_t start[1] = {index < 0 ? dims[0] - 1 : (hsize_t)index}, count[1] = {1};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t mem = H5Screate_simple(1, count, NULL);
    double nan = NAN;
    assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, &nan) >= 0);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
}

/* A copy of a finished log whose root attribute `steps` says more steps were planned: to a
 * watcher it is a run that stopped short without diverging. */
static void craft_unfinished(const char *from, const char *to, long planned)
{
    copy_file(from, to);
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(ns_h5_attr_write_i64(f, "steps", planned), 0);
    H5Fclose(f);
}

static void craft_format(const char *from, const char *to, const char *format)
{
    copy_file(from, to);
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(ns_h5_attr_write_str(f, "format", format), 0);
    H5Fclose(f);
}

static int python_has(const char *modules)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, PY " -c 'import %s' >/dev/null 2>&1", modules);
    return access(PY, X_OK) == 0 && system(cmd) == 0;
}

/* ------------------------------------------------------------------------------------------
 * Fixture: the logs, made once for all tests */

static int setup_logs(void **state)
{
    (void)state;
    ns_h5_quiet();
    g_bin = getenv("NS_BINARY") ? getenv("NS_BINARY") : "build/normscope";
    snprintf(g_dir, sizeof g_dir, "/tmp/ns_test_compare_XXXXXX");
    if (!mkdtemp(g_dir) || access(g_bin, X_OK) != 0) {
        fprintf(stderr, "test_compare: no temp dir or no binary '%s'\n", g_bin);
        return -1;
    }
#define P(buf, name) snprintf(buf, sizeof buf, "%s/%s", g_dir, name)
    P(g_batch, "batch.h5"), P(g_pv, "power-v.h5"), P(g_ln, "layer-pre.h5");
    P(g_none, "noprobes.h5"), P(g_div, "diverged.h5"), P(g_nan, "nan-loss.h5");
    P(g_nanlast, "nan-last.h5"), P(g_badver, "future.h5"), P(g_text, "notes.h5");
#undef P
    const char *batch[] = {"--norm", "batch", "--lipschitz-every", "10", "--hessian-iters", "3",
                           NULL};
    const char *pv[] = {"--norm", "power-v", "--lipschitz-every", "10", "--hessian-iters", "3",
                        NULL};
    const char *ln[] = {"--norm", "layer", "--norm-position", "pre", NULL};
    const char *none[] = {"--norm", "batch", "--probes", "none", NULL};
    const char *div[] = {"--norm", "batch", "--lr", "1e30", "--clip", "0", "--warmup", "1", NULL};
    pid_t pids[5] = {start_train(g_batch, "60", batch), start_train(g_pv, "60", pv),
                     start_train(g_ln, "60", ln), start_train(g_none, "60", none),
                     start_train(g_div, "60", div)};
    const int want[5] = {0, 0, 0, 0, NS_EXIT_DIVERGED};
    for (int i = 0; i < 5; i++)
        if (wait_exit(pids[i], 120.0) != want[i]) {
            fprintf(stderr, "test_compare: training run %d did not exit %d\n", i, want[i]);
            return -1;
        }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown_logs(void **state)
{
    (void)state;
    if (g_dir[0] && !getenv("NS_KEEP_TEST_DIR"))
        nftw(g_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Expected values, recomputed from the logs */

static double *series(const NsLog *log, const char *path, size_t *n)
{
    char err[NS_ERRLEN];
    double *v = ns_log_has(log, path) ? ns_log_read_series(log, path, n, err) : NULL;
    if (!v)
        *n = 0;
    return v;
}

static double steps_done(const NsLog *log)
{
    size_t n;
    double *s = series(log, "steps/step", &n), r = n ? s[n - 1] : 0.0;
    free(s);
    return r;
}

/* Quantile q of group/name over rows with step/S in (0.8, 1], S = steps done; over every row
 * when none (all_if_empty). Values are appended to *pool when pool is not NULL. */
static double late(const NsLog *log, const char *group, const char *name, double q,
                   int all_if_empty)
{
    char ps[256], pv[256];
    snprintf(ps, sizeof ps, "%s/step", group);
    snprintf(pv, sizeof pv, "%s/%s", group, name);
    size_t ns, nv;
    double *st = series(log, ps, &ns), *v = series(log, pv, &nv), S = steps_done(log);
    double *keep = ns_xmalloc(sizeof(double) * (nv + 1));
    size_t m = 0;
    for (size_t i = 0; i < ns && i < nv; i++)
        if (st[i] / S > 0.8 && st[i] / S <= 1.0)
            keep[m++] = v[i];
    if (m == 0 && all_if_empty)
        for (size_t i = 0; i < ns && i < nv; i++)
            keep[m++] = v[i];
    double r = ns_quantile(keep, m, q);
    free(st), free(v), free(keep);
    return r;
}

static double pooled_late_median(const NsLog *log, const char *name)
{
    char **sites;
    int n = ns_log_sites(log, &sites);
    double *pool = ns_xmalloc(sizeof(double) * 4096), S = steps_done(log);
    size_t m = 0;
    for (int s = 0; s < n; s++) {
        char ps[256], pv[256];
        snprintf(ps, sizeof ps, "norms/%s/step", sites[s]);
        snprintf(pv, sizeof pv, "norms/%s/%s", sites[s], name);
        size_t ns, nv;
        double *st = series(log, ps, &ns), *v = series(log, pv, &nv);
        for (size_t i = 0; i < ns && i < nv && m < 4096; i++)
            if (st[i] / S > 0.8 && st[i] / S <= 1.0)
                pool[m++] = v[i];
        free(st), free(v);
    }
    ns_log_free_sites(sites, n);
    double r = ns_median(pool, m);
    free(pool);
    return r;
}

/* ------------------------------------------------------------------------------------------
 * CSV */

typedef struct {
    char *text;
    char *field[16][32]; /* [row][column]; row 0 is the header */
    int rows, cols;
} Csv;

/* Splits on ',' keeping empty fields (the test's paths hold no commas or quotes). */
static void csv_load(Csv *c, const char *path)
{
    memset(c, 0, sizeof *c);
    c->text = slurp(path);
    char *rest = c->text;
    for (char *line; c->rows < 16 && (line = strsep(&rest, "\n")) && *line;) {
        int k = 0;
        for (char *f; k < 32 && (f = strsep(&line, ","));)
            c->field[c->rows][k++] = f;
        if (c->rows == 0)
            c->cols = k;
        assert_int_equal(k, c->cols);
        c->rows++;
    }
}

static const char *csv_get(const Csv *c, int row, const char *column)
{
    for (int k = 0; k < c->cols; k++)
        if (strcmp(c->field[0][k], column) == 0)
            return c->field[row][k];
    fail_msg("CSV has no column '%s'", column);
    return NULL;
}

/* A CSV number equals the expected one (to its 8 significant digits); NaN = empty field. */
static void check_num(const Csv *c, int row, const char *column, double want)
{
    const char *got = csv_get(c, row, column);
    if (isnan(want)) {
        if (got[0])
            fail_msg("row %d %s: expected empty (missing), got '%s'", row, column, got);
        return;
    }
    char *end;
    double v = strtod(got, &end);
    if (!got[0] || *end)
        fail_msg("row %d %s: expected %.10g, got '%s'", row, column, want, got);
    if (isinf(want) ? v != want : fabs(v - want) > 1e-7 * fabs(want) + 1e-300)
        fail_msg("row %d %s: expected %.10g, got %.10g", row, column, want, v);
}

/* The outcome and measurement columns of one CSV row against the log. */
static void check_row(const Csv *c, int row, const NsLog *log, const char *site)
{
    size_t ne, np;
    double *es = series(log, "eval/step", &ne), *ppl = series(log, "eval/ppl", &np);
    double best = NAN, best_step = NAN;
    for (size_t i = 0; i < ne; i++)
        if (!isnan(ppl[i]) && (isnan(best) || ppl[i] < best))
            best = ppl[i], best_step = es[i];
    check_num(c, row, "steps_done", steps_done(log));
    check_num(c, row, "final_ppl", ne ? ppl[ne - 1] : NAN);
    check_num(c, row, "best_ppl", best);
    check_num(c, row, "best_ppl_step", best_step);
    free(es), free(ppl);
    char group[128];
    snprintf(group, sizeof group, "norms/%s", site);
    const char *names[] = {"dist_mean", "dist_var", "dist_psi2"};
    for (int k = 0; k < 3; k++) {
        char col[64];
        snprintf(col, sizeof col, "%s_median", names[k]);
        check_num(c, row, col, late(log, group, names[k], 0.5, 0));
        snprintf(col, sizeof col, "%s_p95", names[k]);
        check_num(c, row, col, late(log, group, names[k], 0.95, 0));
    }
    check_num(c, row, "grad_gain_median", pooled_late_median(log, "grad_gain"));
    check_num(c, row, "beta_smoothness_median", late(log, "lipschitz", "beta_smoothness", 0.5, 1));
    check_num(c, row, "hessian_top_eig_median", late(log, "lipschitz", "hessian_top_eig", 0.5, 1));
    check_num(c, row, "tokens_per_s_median", late(log, "steps", "tokens_per_s", 0.5, 0));
}

static void open_logs(NsLog *logs, const char *const *paths, int n)
{
    char err[NS_ERRLEN];
    for (int i = 0; i < n; i++)
        if (ns_log_open(&logs[i], paths[i], err) != 0)
            fail_msg("%s", err);
}

static void close_logs(NsLog *logs, int n)
{
    for (int i = 0; i < n; i++)
        ns_log_close(&logs[i]);
}

/* ------------------------------------------------------------------------------------------
 * compare */

static void test_compare_values(void **state)
{
    (void)state;
    craft_nan_loss(g_batch, g_nan, NAN_INDEX);
    const char *paths[] = {g_batch, g_pv, g_ln, g_none, g_nan};
    NsLog logs[5];
    open_logs(logs, paths, 5);
    char prefix[PATH_MAX + 32], path[PATH_MAX + 64], err[NS_ERRLEN] = "";
    snprintf(prefix, sizeof prefix, "%s/table", g_dir);
    assert_int_equal(ns_compare(logs, 5, prefix, 0, err), 0);
    snprintf(path, sizeof path, "%s.csv", prefix);
    Csv c;
    csv_load(&c, path);
    assert_int_equal(c.rows, 6);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(csv_get(&c, i + 1, "run"), paths[i]);
        assert_string_equal(csv_get(&c, i + 1, "scheme"), logs[i].norm);
        check_row(&c, i + 1, &logs[i], "layers/0/norm1");
    }
    assert_string_equal(csv_get(&c, 2, "scheme"), "power-v");
    assert_string_equal(csv_get(&c, 3, "position"), "pre");
    assert_string_equal(csv_get(&c, 1, "site"), "layers/0/norm1");
    assert_string_equal(csv_get(&c, 4, "site"), ""); /* --probes none: no site, n/a */
    check_num(&c, 1, "divergence_step", NAN);
    size_t n;
    double *step = series(&logs[4], "steps/step", &n);
    check_num(&c, 5, "divergence_step", step[NAN_INDEX]);
    free(step);
    free(c.text);
    /* the Markdown: the site in the caption, n/a for missing, "-" for no divergence */
    snprintf(path, sizeof path, "%s.md", prefix);
    char *md = slurp(path);
    assert_non_null(strstr(md, "at norm site `layers/0/norm1`"));
    const char *none_row = strstr(md, "noprobes.h5 | batch | pre | 60 / 60 |");
    assert_non_null(none_row);
    assert_non_null(strstr(none_row, "| n/a | n/a |"));
    assert_non_null(strstr(strstr(md, "batch.h5 | batch"), "| - |"));
    assert_non_null(strstr(md, "Notes:"));
    free(md);
    close_logs(logs, 5);
}

/* The engine records the diverging step in /steps (non-finite loss or gradient norm) and
 * stops: compare names that step. */
static void test_compare_engine_divergence(void **state)
{
    (void)state;
    NsLog log;
    open_logs(&log, (const char *[]){g_div}, 1);
    char prefix[PATH_MAX + 32], path[PATH_MAX + 64], err[NS_ERRLEN] = "";
    snprintf(prefix, sizeof prefix, "%s/div", g_dir);
    assert_int_equal(ns_compare(&log, 1, prefix, 0, err), 0);
    snprintf(path, sizeof path, "%s.csv", prefix);
    Csv c;
    csv_load(&c, path);
    size_t n, nl, ng;
    double *step = series(&log, "steps/step", &n), *loss = series(&log, "steps/loss", &nl);
    double *gnorm = series(&log, "steps/grad_norm", &ng);
    assert_true(n > 0 && n == nl && n == ng);
    assert_true(!isfinite(loss[n - 1]) || !isfinite(gnorm[n - 1])); /* the last row diverged */
    double first = NAN;
    for (size_t i = 0; i < n && isnan(first); i++)
        if (!isfinite(loss[i]) || !isfinite(gnorm[i]))
            first = step[i];
    assert_true(step[n - 1] < 60);
    check_num(&c, 1, "steps_done", step[n - 1]);
    check_num(&c, 1, "steps_total", 60);
    check_num(&c, 1, "divergence_step", first);
    free(step), free(loss), free(gnorm);
    free(c.text);
    ns_log_close(&log);
}

static void test_compare_cli(void **state)
{
    (void)state;
    char prefix[PATH_MAX + 32], out[PATH_MAX + 64], errf[PATH_MAX + 64], path[PATH_MAX + 64];
    snprintf(prefix, sizeof prefix, "%s/cli", g_dir);
    snprintf(out, sizeof out, "%s/cli.stdout", g_dir);
    snprintf(errf, sizeof errf, "%s/cli.stderr", g_dir);
    assert_int_equal(run_ns(out, errf, "compare", g_batch, g_ln, g_none, "--out", prefix,
                            "--site", "final_norm", NULL), 0);
    char *text = slurp(out), *warn = slurp(errf);
    assert_non_null(strstr(text, "| run | scheme |"));
    assert_non_null(strstr(text, "at norm site `final_norm`"));
    assert_non_null(strstr(text, "layer-pre.h5 | layer | pre |"));
    assert_non_null(strstr(warn, "noprobes.h5"));  /* the warning names the run */
    assert_non_null(strstr(warn, "final_norm"));   /* and the site */
    free(text), free(warn);
    snprintf(path, sizeof path, "%s.csv", prefix);
    Csv c;
    csv_load(&c, path);
    NsLog logs[2];
    open_logs(logs, (const char *[]){g_batch, g_ln}, 2);
    check_row(&c, 1, &logs[0], "final_norm");
    check_row(&c, 2, &logs[1], "final_norm");
    close_logs(logs, 2);
    free(c.text);
}

static void test_compare_errors(void **state)
{
    (void)state;
    char errf[PATH_MAX + 64], prefix[PATH_MAX + 32], err[NS_ERRLEN] = "";
    snprintf(errf, sizeof errf, "%s/err.stderr", g_dir);
    snprintf(prefix, sizeof prefix, "%s/e", g_dir);
    write_bytes(g_text, "not a run log\n", 14);
    craft_format(g_batch, g_badver, "normscope-runlog-99");
    assert_int_equal(run_ns(NULL, errf, "compare", NULL), NS_EXIT_USAGE);
    assert_int_equal(run_ns(NULL, errf, "compare", g_batch, "--bogus", NULL), NS_EXIT_USAGE);
    struct {
        const char *file, *phrase;
    } cases[] = {{g_text, "not an HDF5 file"},
                 {g_badver, "unknown format 'normscope-runlog-99'"},
                 {"/nonexistent/run.h5", "no such file"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(run_ns(NULL, errf, "compare", g_batch, cases[i].file, "--out", prefix,
                                NULL), NS_EXIT_ERROR);
        char *msg = slurp(errf);
        assert_non_null(strstr(msg, cases[i].phrase));
        assert_non_null(strstr(msg, cases[i].file));
        assert_ptr_equal(strchr(msg, '\n'), msg + strlen(msg) - 1); /* one line */
        free(msg);
    }
    assert_int_equal(run_ns(NULL, errf, "compare", g_batch, "--site", "layers/9/norm1", "--out",
                            prefix, NULL), NS_EXIT_ERROR);
    NsLog log;
    assert_int_equal(ns_compare(&log, 0, prefix, 0, err), -1);
    assert_non_null(strstr(err, "at least one"));
    open_logs(&log, (const char *[]){g_batch}, 1);
    assert_int_equal(ns_compare(&log, 1, "/nonexistent-dir/t", 0, err), -1);
    assert_non_null(strstr(err, "cannot write"));
    ns_log_close(&log);
}

/* ------------------------------------------------------------------------------------------
 * watch */

static void test_watch_once(void **state)
{
    (void)state;
    char out[PATH_MAX + 64], want[64];
    snprintf(out, sizeof out, "%s/watch.stdout", g_dir);
    assert_int_equal(run_ns(out, NULL, "watch", g_batch, "--once", NULL), 0);
    char *text = slurp(out);
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
    assert_int_equal(run_ns(out, NULL, "watch", g_none, "--once", NULL), 0);
    text = slurp(out);
    assert_non_null(strstr(text, "no norm probes"));
    free(text);
    assert_int_equal(run_ns(NULL, NULL, "watch", "/nonexistent.h5", "--once", NULL), 1);
    assert_int_equal(run_ns(NULL, NULL, "watch", g_batch, "--interval", "0", NULL), 2);
}

/* A last loss that is NaN ends the watch at once with the diverged code. */
static void test_watch_diverged(void **state)
{
    (void)state;
    char out[PATH_MAX + 64];
    snprintf(out, sizeof out, "%s/watchdiv.stdout", g_dir);
    craft_nan_loss(g_batch, g_nanlast, -1);
    assert_int_equal(run_ns(out, NULL, "watch", g_nanlast, "--interval", "0.1", NULL),
                     NS_EXIT_DIVERGED);
    char *text = slurp(out);
    assert_non_null(strstr(text, "status: diverged"));
    free(text);
}

/* Ctrl-C while watching a run that stopped short but was written just now (so the watch
 * would wait at least 30 s before calling it stalled): exits 0 at once. */
static void test_watch_interrupt(void **state)
{
    (void)state;
    char out[PATH_MAX + 64], log[PATH_MAX + 32];
    snprintf(out, sizeof out, "%s/watchint.stdout", g_dir);
    snprintf(log, sizeof log, "%s/fresh.h5", g_dir);
    craft_unfinished(g_batch, log, 600);
    char *argv[] = {(char *)g_bin, "watch", log, "--interval", "0.1", NULL};
    pid_t pid = spawn(argv, out, NULL);
    struct timespec ts = {0, 600000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGINT);
    assert_int_equal(wait_exit(pid, 5.0), 0);
    char *text = slurp(out);
    assert_non_null(strstr(text, "status: stopped watching"));
    free(text);
}

/* A run that stopped short and was last written an hour ago has stalled: exit 1 after three
 * intervals; --once says so too (exit 0). */
static void test_watch_stalled(void **state)
{
    (void)state;
    char out[PATH_MAX + 64], errf[PATH_MAX + 64], log[PATH_MAX + 32];
    snprintf(out, sizeof out, "%s/stall.stdout", g_dir);
    snprintf(errf, sizeof errf, "%s/stall.stderr", g_dir);
    snprintf(log, sizeof log, "%s/old.h5", g_dir);
    craft_unfinished(g_batch, log, 600);
    struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    assert_int_equal(utimensat(AT_FDCWD, log, old, 0), 0);
    assert_int_equal(run_ns(out, errf, "watch", log, "--interval", "0.1", NULL), NS_EXIT_ERROR);
    char *msg = slurp(errf), *text = slurp(out);
    assert_non_null(strstr(msg, "stopped growing at step 60 of 600"));
    assert_non_null(strstr(text, "status: stopped growing"));
    free(msg), free(text);
    assert_int_equal(run_ns(out, NULL, "watch", log, "--once", NULL), 0);
    text = slurp(out);
    assert_non_null(strstr(text, "status: stopped growing"));
    free(text);
}

/* A run being written: the watch sees the steps grow and ends when the run finishes. */
static void test_watch_live(void **state)
{
    (void)state;
    char log[PATH_MAX + 32], out[PATH_MAX + 64];
    snprintf(log, sizeof log, "%s/live.h5", g_dir);
    snprintf(out, sizeof out, "%s/live.stdout", g_dir);
    const char *extra[] = {"--norm", "batch", "--eval-every", "100", "--probe-vectors-every", "0",
                           NULL};
    pid_t train = start_train(log, "400", extra);
    char *argv[] = {(char *)g_bin, "watch", log, "--interval", "0.2", NULL};
    int rc = wait_exit(spawn(argv, out, NULL), 60.0);
    assert_int_equal(wait_exit(train, 60.0), 0);
    assert_int_equal(rc, 0);
    char *text = slurp(out);
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

/* ------------------------------------------------------------------------------------------
 * export-notebook */

static json_t *cell_by_id(json_t *cells, const char *id)
{
    size_t i;
    json_t *cell;
    json_array_foreach(cells, i, cell)
        if (strcmp(json_string_value(json_object_get(cell, "id")), id) == 0)
            return cell;
    fail_msg("no cell '%s'", id);
    return NULL;
}

static char *joined_source(json_t *cell)
{
    size_t i, len = 0;
    json_t *line;
    char *s = ns_xcalloc(1, 1);
    json_array_foreach(json_object_get(cell, "source"), i, line) {
        const char *l = json_string_value(line);
        s = ns_xrealloc(s, len + strlen(l) + 1);
        strcpy(s + len, l);
        len += strlen(l);
    }
    return s;
}

/* Figures dir: a hand-made PNG, a gnuplot one when gnuplot exists, and a fake "PNG". */
static int make_figures(const char *dir)
{
    char path[PATH_MAX + 64], cmd[3 * PATH_MAX];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/boxes-forward.png", dir);
    write_bytes(path, PNG_1X1, sizeof PNG_1X1);
    snprintf(path, sizeof path, "%s/training-notes.png", dir);
    write_bytes(path, "text", 4);
    snprintf(cmd, sizeof cmd, "gnuplot -e \"set terminal png size 160,100; set output "
                              "'%s/fluctuation.png'; plot x\" >/dev/null 2>&1", dir);
    return system("command -v gnuplot >/dev/null 2>&1") == 0 && system(cmd) == 0;
}

static void test_notebook_contents(void **state)
{
    (void)state;
    char figs[PATH_MAX + 32], nb[PATH_MAX + 32], err[NS_ERRLEN] = "";
    snprintf(figs, sizeof figs, "%s/figs", g_dir);
    snprintf(nb, sizeof nb, "%s/study.ipynb", g_dir);
    int with_gnuplot = make_figures(figs);
    const char *paths[] = {g_batch, g_pv, g_ln, g_none};
    assert_int_equal(ns_export_notebook(paths, 4, figs, nb, err), 0);
    json_error_t jerr;
    json_t *root = json_load_file(nb, 0, &jerr);
    if (!root)
        fail_msg("notebook is not valid JSON: %s (line %d)", jerr.text, jerr.line);
    assert_int_equal(json_integer_value(json_object_get(root, "nbformat")), 4);
    assert_true(json_integer_value(json_object_get(root, "nbformat_minor")) >= 5);
    json_t *meta = json_object_get(root, "metadata");
    assert_string_equal(json_string_value(json_object_get(json_object_get(meta, "kernelspec"),
                                                          "name")), "python3");
    assert_non_null(json_object_get(meta, "language_info"));
    json_t *cells = json_object_get(root, "cells"), *cell;
    size_t i, n_md = 0, n_code = 0;
    json_array_foreach(cells, i, cell) {
        const char *type = json_string_value(json_object_get(cell, "cell_type"));
        n_md += strcmp(type, "markdown") == 0;
        n_code += strcmp(type, "code") == 0;
        assert_non_null(json_string_value(json_object_get(cell, "id")));
    }
    assert_true(n_md >= 7 && n_code >= 7);
    char *title = joined_source(json_array_get(cells, 0));
    assert_non_null(strstr(title, "power-v (pre)"));
    assert_non_null(strstr(title, "| d_model |"));
    free(title);
    char *setup = joined_source(cell_by_id(cells, "setup"));
    assert_non_null(strstr(setup, "\"batch.h5\"")); /* relative: the log is beside it */
    assert_non_null(strstr(setup, "import h5py"));
    free(setup);
    json_t *outs = json_object_get(cell_by_id(cells, "boxes-code"), "outputs");
    assert_int_equal(json_array_size(outs), 1);
    json_t *data = json_object_get(json_array_get(outs, 0), "data");
    assert_string_equal(json_string_value(json_object_get(data, "image/png")), PNG_1X1_B64);
    outs = json_object_get(cell_by_id(cells, "fluctuation-code"), "outputs");
    assert_int_equal(json_array_size(outs), with_gnuplot ? 1 : 0);
    outs = json_object_get(cell_by_id(cells, "training-code"), "outputs");
    assert_int_equal(json_array_size(outs), 0); /* not a PNG: not embedded */
    assert_true(json_is_null(json_object_get(cell_by_id(cells, "lipschitz-code"),
                                             "execution_count")));
    json_decref(root);
}

/* nbformat's own validator, and the code cells run against the logs when Python has the
 * libraries (skipped otherwise). */
static void test_notebook_python(void **state)
{
    (void)state;
    if (!python_has("nbformat"))
        skip();
    char nb[PATH_MAX + 32], script[PATH_MAX + 32], cmd[4 * PATH_MAX + 256];
    char err[NS_ERRLEN] = "";
    snprintf(nb, sizeof nb, "%s/sub/py.ipynb", g_dir);
    snprintf(cmd, sizeof cmd, "%s/sub", g_dir);
    mkdir(cmd, 0755);
    const char *paths[] = {g_pv, g_none, g_div}; /* PN-V, no probes, a diverged run */
    assert_int_equal(ns_export_notebook(paths, 3, NULL, nb, err), 0);
    snprintf(script, sizeof script, "%s/check_nb.py", g_dir);
    const char *py =
        "import json, os, sys\n"
        "import nbformat\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "nbformat.validate(nb)\n"
        "if len(sys.argv) > 2:\n"
        "    import matplotlib\n"
        "    matplotlib.use('Agg')\n"
        "    import matplotlib.pyplot as plt\n"
        "    plt.show = lambda *a, **k: plt.close('all')\n"
        "    os.chdir(os.path.dirname(os.path.abspath(sys.argv[1])))\n"
        "    env = {}\n"
        "    for cell in nb.cells:\n"
        "        if cell.cell_type == 'code':\n"
        "            exec(compile(cell.source, cell.id, 'exec'), env)\n";
    write_bytes(script, py, strlen(py));
    int run = python_has("matplotlib, h5py, numpy");
    snprintf(cmd, sizeof cmd, PY " %s %s %s >%s/py.out 2>&1", script, nb, run ? "run" : "",
             g_dir);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "%s/py.out", g_dir);
        char *out = slurp(cmd);
        fail_msg("notebook check failed:\n%s", out);
    }
}

static void test_notebook_errors(void **state)
{
    (void)state;
    char nb[PATH_MAX + 32], errf[PATH_MAX + 64], err[NS_ERRLEN] = "";
    snprintf(nb, sizeof nb, "%s/e.ipynb", g_dir);
    snprintf(errf, sizeof errf, "%s/nb.stderr", g_dir);
    write_bytes(g_text, "not a run log\n", 14);
    craft_format(g_batch, g_badver, "normscope-runlog-99");
    struct {
        const char *file, *phrase;
    } cases[] = {{"/nonexistent/run.h5", "no such file"},
                 {g_text, "not an HDF5 file"},
                 {g_badver, "unknown format"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *paths[] = {g_batch, cases[i].file};
        assert_int_equal(ns_export_notebook(paths, 2, NULL, nb, err), -1);
        assert_non_null(strstr(err, cases[i].phrase));
        assert_null(strchr(err, '\n'));
    }
    const char *ok[] = {g_batch};
    assert_int_equal(ns_export_notebook(ok, 1, NULL, "/nonexistent-dir/x.ipynb", err), -1);
    assert_non_null(strstr(err, "cannot write notebook"));
    assert_int_equal(ns_export_notebook(ok, 1, "/nonexistent-figs", nb, err), -1);
    assert_non_null(strstr(err, "figures directory"));
    /* the command line */
    assert_int_equal(run_ns(NULL, errf, "export-notebook", g_batch, NULL), NS_EXIT_USAGE);
    assert_int_equal(run_ns(NULL, errf, "export-notebook", g_text, "--out", nb, NULL),
                     NS_EXIT_ERROR);
    char *msg = slurp(errf);
    assert_non_null(strstr(msg, "normscope: "));
    free(msg);
    assert_int_equal(run_ns(NULL, errf, "export-notebook", g_batch, "--out", nb, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_values),
        cmocka_unit_test(test_compare_engine_divergence),
        cmocka_unit_test(test_compare_cli),
        cmocka_unit_test(test_compare_errors),
        cmocka_unit_test(test_watch_once),
        cmocka_unit_test(test_watch_diverged),
        cmocka_unit_test(test_watch_interrupt),
        cmocka_unit_test(test_watch_stalled),
        cmocka_unit_test(test_watch_live),
        cmocka_unit_test(test_notebook_contents),
        cmocka_unit_test(test_notebook_python),
        cmocka_unit_test(test_notebook_errors),
    };
    return cmocka_run_group_tests(tests, setup_logs, teardown_logs);
}
