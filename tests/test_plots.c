/* Tests of the plot family (analysis/plot*.c, gnuplot.c, cmd_plot.c). Short real run logs are
 * trained with the normscope program under test (NS_BINARY; during development build/normscope),
 * then every plot is drawn through ns_plot() and through `normscope plot`. The .dat values are
 * checked against values recomputed from the logs; images are checked for being real PNG/SVG
 * files when gnuplot is on PATH (those tests skip otherwise; the data tests still run). */
#define _XOPEN_SOURCE 700 /* nftw, to remove the temporary directory */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "h5util.h"
#include "logread.h"
#include "plot.h"
#include "stats.h"
#include "util.h"

static char DIR_[256];
static char BIN[4096];
static int HAVE_GNUPLOT;

enum { BATCH, PV, PW, LN, POST, NONE, N_RUNS };
static const char *const RUN_ARGS[N_RUNS] = {
    "--norm batch", "--norm power-v", "--norm power --pn-warmup 10",
    "--norm layer --norm-position pre", "--norm batch --norm-position post",
    "--norm batch --probes none"};
static const char *const RUN_NAMES[N_RUNS] = {"batch", "pv", "pw", "ln", "post", "none"};
static char RUN_PATH[N_RUNS][512];

/* ------------------------------------------------------------------------------ helpers */

static const char *path_in(const char *name)
{
    static char buf[8][768];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 768, "%s/%s", DIR_, name);
    return p;
}

/* Runs BIN with the space-separated words of `words`; stdout/stderr to files (or /dev/null);
 * path_env replaces PATH in the child when set. Returns the exit code. */
static int run_bin(const char *outfile, const char *errfile, const char *path_env,
                   const char *words)
{
    char line[4096], *argv[64];
    snprintf(line, sizeof line, "%s", words);
    int n = 0;
    argv[n++] = BIN;
    for (char *tok = strtok(line, " "); tok && n < 63; tok = strtok(NULL, " "))
        argv[n++] = tok;
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int out = open(outfile ? outfile : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(errfile ? errfile : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1);
        dup2(err, 2);
        if (path_env)
            setenv("PATH", path_env, 1);
        execv(BIN, argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = '\0';
    if (len)
        *len = got;
    return buf;
}

static int file_contains(const char *path, const char *needle)
{
    char *text = slurp(path, NULL);
    int found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096], full[4200];
    snprintf(buf, sizeof buf, "%s", path ? path : "");
    for (char *dir = strtok(buf, ":"); dir; dir = strtok(NULL, ":")) {
        snprintf(full, sizeof full, "%s/%s", dir, prog);
        if (access(full, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* A real PNG (signature, > 5 kB) and a real SVG (> 2 kB, has <svg). */
static void assert_images(const char *base)
{
    char png[800], svg[800];
    snprintf(png, sizeof png, "%s.png", base);
    snprintf(svg, sizeof svg, "%s.svg", base);
    size_t n = 0;
    char *bytes = slurp(png, &n);
    assert_non_null(bytes);
    assert_true(n > 5000);
    assert_memory_equal(bytes, "\x89PNG\r\n\x1a\n", 8);
    free(bytes);
    assert_true(file_size(svg) > 2000);
    assert_true(file_contains(svg, "<svg"));
}

static void open_runs(NsLog *logs, const int *which, int n)
{
    char err[NS_ERRLEN];
    for (int i = 0; i < n; i++)
        if (ns_log_open(&logs[i], RUN_PATH[which[i]], err) != 0)
            fail_msg("ns_log_open: %s", err);
}

static void close_runs(NsLog *logs, int n)
{
    for (int i = 0; i < n; i++)
        ns_log_close(&logs[i]);
}

/* ns_plot that must succeed with `figures` figures (or, without gnuplot, fail saying to
 * install it after writing the data). */
static void plot_ok(const char *kind, NsLog *logs, int n, const NsPlotOptions *opt, int figures)
{
    char err[NS_ERRLEN] = "";
    int rc = ns_plot(kind, logs, n, opt, err);
    if (HAVE_GNUPLOT) {
        if (rc != figures)
            fail_msg("ns_plot(%s) = %d (want %d): %s", kind, rc, figures, err);
    } else {
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err, "gnuplot-nox"));
    }
}

/* ns_plot that must fail; returns the error line. */
static const char *plot_err(const char *kind, NsLog *logs, int n, const NsPlotOptions *opt)
{
    static char err[NS_ERRLEN];
    err[0] = '\0';
    assert_int_equal(ns_plot(kind, logs, n, opt, err), -1);
    assert_true(err[0] != '\0');
    assert_null(strchr(err, '\n'));
    return err;
}

/* Rows of data block `index` of a .dat file ("# index K:" heads each block); malloc'd. */
static double *dat_block(const char *path, int index, int *rows, int *cols)
{
    char *text = slurp(path, NULL), head[32];
    assert_non_null(text);
    snprintf(head, sizeof head, "# index %d:", index);
    char *p = strstr(text, head);
    assert_non_null(p);
    double *v = NULL;
    int n = 0, cap = 0;
    *rows = *cols = 0;
    for (p = strchr(p, '\n'); p && *++p;) {
        char *end = strchr(p, '\n');
        if (end)
            *end = '\0';
        if (strncmp(p, "# index", 7) == 0)
            break;
        if (*p != '#' && *p != '\0') {
            int c = 0;
            for (char *tok = strtok(p, " "); tok; tok = strtok(NULL, " "), c++) {
                if (n == cap)
                    v = realloc(v, sizeof(double) * (size_t)(cap = cap ? 2 * cap : 256));
                v[n++] = strtod(tok, NULL);
            }
            *cols = c;
            (*rows)++;
        }
        p = end;
    }
    free(text);
    return v;
}

static double *read_log(const NsLog *log, const char *path, size_t *n)
{
    char err[NS_ERRLEN];
    double *v = ns_log_read_series(log, path, n, err);
    if (!v)
        fail_msg("%s", err);
    return v;
}

/* Equal as printed with %.12g, NaN equal to NaN. */
static void assert_close(double got, double want)
{
    if (isnan(want)) {
        assert_true(isnan(got));
        return;
    }
    if (fabs(got - want) > 1e-10 * fmax(1.0, fabs(want)))
        fail_msg("got %.15g, want %.15g", got, want);
}

/* Sends this process's stderr (ns_plot's warnings) to a file until restore_stderr(). */
static int stderr_saved = -1;
static void capture_stderr(const char *file)
{
    fflush(stderr);
    stderr_saved = dup(2);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
}

static void restore_stderr(void)
{
    fflush(stderr);
    dup2(stderr_saved, 2);
    close(stderr_saved);
}

/* ------------------------------------------------------------------------------ ns_plot data */

static void test_fluctuation_values(void **state)
{
    (void)state;
    NsLog logs[2];
    open_runs(logs, (int[]){BATCH, PV}, 2);
    NsPlotOptions opt = {.out_dir = path_in("flu")};
    plot_ok("fluctuation", logs, 2, &opt, 1);
    int rows, cols;
    size_t n;
    const char *stats[2] = {"dist_var", "dist_psi2"}; /* batch: var, power-v: psi2 */
    for (int b = 0; b < 2; b++) {
        double *dat = dat_block(path_in("flu/fluctuation.dat"), b, &rows, &cols);
        double *step = read_log(&logs[b], "norms/layers/0/norm1/step", &n);
        double *mean = read_log(&logs[b], "norms/layers/0/norm1/dist_mean", &n);
        char path[128];
        snprintf(path, sizeof path, "norms/layers/0/norm1/%s", stats[b]);
        double *dist = read_log(&logs[b], path, &n);
        assert_int_equal(rows, (int)n);
        assert_int_equal(cols, 5);
        for (size_t i = 0; i < n; i++) {
            assert_close(dat[i * 5 + 0], step[i]);
            assert_close(dat[i * 5 + 1], mean[i]);
            assert_close(dat[i * 5 + 2], dist[i]);
        }
        free(dat), free(step), free(mean), free(dist);
    }
    assert_true(file_contains(path_in("flu/fluctuation.dat"), "dist_psi2"));
    assert_true(file_contains(path_in("flu/fluctuation.gp"), "set logscale y"));
    /* --stat var forces dist_var for power-v too */
    NsPlotOptions var = {.out_dir = path_in("flu"), .stat = "var", .prefix = "fvar",
                         .site = "final_norm"};
    plot_ok("fluctuation", logs, 2, &var, 1);
    double *dat = dat_block(path_in("flu/fvar.dat"), 1, &rows, &cols);
    double *dist = read_log(&logs[1], "norms/final_norm/dist_var", &n);
    assert_int_equal(rows, (int)n);
    for (size_t i = 0; i < n; i++)
        assert_close(dat[i * 5 + 2], dist[i]);
    free(dat), free(dist);
    close_runs(logs, 2);
}

/* The bucket row must equal the quantiles of the log series in that 20 % of training. */
static void check_boxes(const char *dat_path, int block, const NsLog *log, const char *series)
{
    int rows, cols;
    size_t n;
    char path[128];
    double *dat = dat_block(dat_path, block, &rows, &cols);
    double *step = read_log(log, "norms/layers/0/norm1/step", &n);
    snprintf(path, sizeof path, "norms/layers/0/norm1/%s", series);
    double *y = read_log(log, path, &n);
    assert_int_equal(rows, 5);
    assert_int_equal(cols, 10);
    for (int k = 0; k < 5; k++) {
        size_t b, e;
        ns_progress_range(step, n, step[n - 1], k / 5.0, (k + 1) / 5.0, &b, &e);
        assert_true(e > b);
        const double *r = dat + k * cols;
        assert_close(r[2], (double)ns_count_finite(y + b, e - b));
        assert_close(r[3], ns_finite_min(y + b, e - b));
        assert_close(r[4], ns_quantile(y + b, e - b, 0.25));
        assert_close(r[5], ns_median(y + b, e - b));
        assert_close(r[6], ns_quantile(y + b, e - b, 0.75));
        assert_close(r[7], ns_finite_max(y + b, e - b));
    }
    free(dat), free(step), free(y);
}

static void test_boxes_values(void **state)
{
    (void)state;
    NsLog logs[2];
    open_runs(logs, (int[]){BATCH, PV}, 2);
    NsPlotOptions opt = {.out_dir = path_in("box"), .prefix = "bn-vs-pnv"};
    plot_ok("boxes", logs, 2, &opt, 2);
    check_boxes(path_in("box/bn-vs-pnv-forward.dat"), 0, &logs[0], "dist_var");
    check_boxes(path_in("box/bn-vs-pnv-forward.dat"), 1, &logs[1], "dist_psi2");
    check_boxes(path_in("box/bn-vs-pnv-backward.dat"), 0, &logs[0], "g_sigma2");
    check_boxes(path_in("box/bn-vs-pnv-backward.dat"), 1, &logs[1], "g_psi2");
    assert_true(file_contains(path_in("box/bn-vs-pnv-forward.gp"), "candlesticks"));
    close_runs(logs, 2);
}

/* power records g_psi2 only during its warm-up: later buckets are NaN, never 0. */
static void test_boxes_power_warmup_nan(void **state)
{
    (void)state;
    NsLog log;
    open_runs(&log, (int[]){PW}, 1);
    NsPlotOptions opt = {.out_dir = path_in("boxpw")};
    plot_ok("boxes", &log, 1, &opt, 2);
    int rows, cols;
    double *dat = dat_block(path_in("boxpw/boxes-backward.dat"), 0, &rows, &cols);
    assert_int_equal(rows, 5);
    assert_true(isfinite(dat[0 * cols + 5])); /* steps 1-8: in warm-up */
    assert_true(isnan(dat[4 * cols + 5]));    /* last 20 %: after it */
    assert_close(dat[4 * cols + 2], 0);       /* no finite value counted */
    free(dat);
    char *text = slurp(path_in("boxpw/boxes-backward.dat"), NULL);
    assert_null(strstr(text, "nan")); /* written as NaN, which gnuplot reads */
    assert_non_null(strstr(text, "NaN"));
    free(text);
    ns_log_close(&log);
}

static void test_gradients_values(void **state)
{
    (void)state;
    NsLog logs[3];
    open_runs(logs, (int[]){BATCH, PV, POST}, 3);
    NsPlotOptions opt = {.out_dir = path_in("grad")};
    capture_stderr(path_in("grad.err"));
    plot_ok("gradients", logs, 3, &opt, 1);
    restore_stderr();
    /* the post-norm run has no final_norm: warned, and NaN there */
    assert_true(file_contains(path_in("grad.err"), "final_norm"));
    assert_true(file_contains(path_in("grad.err"), RUN_PATH[POST]));
    int rows, cols;
    size_t n;
    double *dat = dat_block(path_in("grad/gradients.dat"), 0, &rows, &cols);
    assert_int_equal(rows, 5); /* 2 layers x 2 + final_norm */
    assert_int_equal(cols, 16);
    double *g = read_log(&logs[0], "norms/layers/1/norm2/g_mu", &n);
    assert_close(dat[3 * cols + 1], ns_median(g, n));
    assert_close(dat[3 * cols + 2], ns_quantile(g, n, 0.25));
    free(g);
    g = read_log(&logs[0], "norms/final_norm/grad_gain", &n);
    assert_close(dat[4 * cols + 10], ns_median(g, n));
    free(g);
    assert_true(isnan(dat[0 * cols + 7])); /* batch has no g_psi2 */
    free(dat);
    dat = dat_block(path_in("grad/gradients.dat"), 2, &rows, &cols);
    assert_true(isnan(dat[4 * cols + 10])); /* post: no final_norm */
    free(dat);
    close_runs(logs, 3);
}

static void test_lipschitz_and_training_values(void **state)
{
    (void)state;
    NsLog logs[2];
    open_runs(logs, (int[]){BATCH, NONE}, 2);
    NsPlotOptions opt = {.out_dir = path_in("lip")};
    capture_stderr(path_in("lip.err"));
    plot_ok("lipschitz", logs, 2, &opt, 1); /* the probes-none run is skipped, with a warning */
    restore_stderr();
    assert_true(file_contains(path_in("lip.err"), "skipping run"));
    assert_true(file_contains(path_in("lip.err"), RUN_PATH[NONE]));
    int rows, cols;
    size_t n;
    double *dat = dat_block(path_in("lip/lipschitz.dat"), 0, &rows, &cols);
    double *beta = read_log(&logs[0], "lipschitz/beta_smoothness", &n);
    double *eig = read_log(&logs[0], "lipschitz/hessian_top_eig", &n);
    assert_int_equal(rows, (int)n);
    for (size_t i = 0; i < n; i++) {
        assert_close(dat[i * cols + 1], beta[i]);
        assert_close(dat[i * cols + 3], eig[i]);
    }
    free(dat), free(beta), free(eig);
    /* training works without probes: loss of every step and the validation perplexity */
    plot_ok("training", logs, 2, &opt, 1);
    dat = dat_block(path_in("lip/training.dat"), 2, &rows, &cols);
    double *loss = read_log(&logs[1], "steps/loss", &n);
    assert_int_equal(rows, (int)n);
    for (size_t i = 0; i < n; i++)
        assert_close(dat[i * cols + 1], loss[i]);
    free(dat), free(loss);
    dat = dat_block(path_in("lip/training.dat"), 3, &rows, &cols);
    double *ppl = read_log(&logs[1], "eval/ppl", &n);
    assert_int_equal(rows, (int)n);
    assert_close(dat[(n - 1) * cols + 1], ppl[n - 1]);
    free(dat), free(ppl);
    /* two runs with one label are told apart by file name */
    assert_true(file_contains(path_in("lip/training.gp"), "none.h5]"));
    close_runs(logs, 2);
}

static void test_layers_values(void **state)
{
    (void)state;
    NsLog logs[2];
    open_runs(logs, (int[]){LN, POST}, 2);
    NsPlotOptions opt = {.out_dir = path_in("lay"), .layers_stat = "grad_gain"};
    plot_ok("layers", logs, 2, &opt, 1);
    int rows, cols;
    size_t n;
    double *dat = dat_block(path_in("lay/layers.dat"), 0, &rows, &cols);
    double *y = read_log(&logs[0], "norms/final_norm/grad_gain", &n);
    assert_int_equal(rows, 5 * (int)n); /* every (site, step) of the layer run */
    for (size_t i = 0; i < n; i++) {
        const double *r = dat + (4 * n + i) * (size_t)cols;
        assert_close(r[0], (double)(i + 1));
        assert_close(r[1], 4);
        assert_close(r[2], y[i]);
    }
    free(dat), free(y);
    assert_true(file_contains(path_in("lay/layers.gp"), "\"final\" 4"));
    assert_true(file_contains(path_in("lay/layers.gp"), "with image"));
    close_runs(logs, 2);
}

static void test_errors(void **state)
{
    (void)state;
    NsLog logs[2];
    open_runs(logs, (int[]){NONE, BATCH}, 2);
    NsPlotOptions opt = {.out_dir = path_in("err")};
    capture_stderr(path_in("err.err")); /* the expected skip warnings */
    /* missing probe data is an error, never an empty plot */
    const char *kinds[] = {"fluctuation", "boxes", "gradients", "lipschitz", "layers"};
    for (int k = 0; k < 5; k++)
        assert_non_null(strstr(plot_err(kinds[k], logs, 1, &opt), "probes"));
    assert_non_null(strstr(plot_err("contour", logs, 2, &opt), "unknown plot kind"));
    assert_non_null(strstr(plot_err("training", logs, 0, &opt), "no run"));
    NsPlotOptions bad_site = {.out_dir = path_in("err"), .site = "layers/7/norm1"};
    assert_non_null(strstr(plot_err("fluctuation", logs, 2, &bad_site), "layers/7/norm1"));
    NsPlotOptions bad_stat = {.out_dir = path_in("err"), .stat = "mean"};
    assert_non_null(strstr(plot_err("boxes", logs, 2, &bad_stat), "var or psi2"));
    NsPlotOptions bad_layers = {.out_dir = path_in("err"), .layers_stat = "no_such"};
    assert_non_null(strstr(plot_err("layers", logs, 2, &bad_layers), "no_such"));
    restore_stderr();
    close_runs(logs, 2);
    char err[NS_ERRLEN];
    NsLog log;
    FILE *f = fopen(path_in("text.h5"), "w");
    fputs("not hdf5\n", f);
    fclose(f);
    assert_int_equal(ns_log_open(&log, path_in("text.h5"), err), -1);
    assert_non_null(strstr(err, "not an HDF5"));
}

/* Without gnuplot the data and scripts are still written and the error says what to install. */
static void test_no_gnuplot(void **state)
{
    (void)state;
    NsLog log;
    open_runs(&log, (int[]){BATCH}, 1);
    char *saved = strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", path_in("no-such-dir"), 1);
    NsPlotOptions opt = {.out_dir = path_in("nognu")};
    char err[NS_ERRLEN] = "";
    int rc = ns_plot("boxes", &log, 1, &opt, err);
    setenv("PATH", saved, 1);
    free(saved);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "gnuplot-nox"));
    assert_true(file_size(path_in("nognu/boxes-forward.dat")) > 0);
    assert_true(file_size(path_in("nognu/boxes-backward.gp")) > 0);
    assert_int_equal(file_size(path_in("nognu/boxes-forward.png")), -1);
    ns_log_close(&log);
}

/* ------------------------------------------------------------------------------ images */

static void test_images_every_kind(void **state)
{
    (void)state;
    if (!HAVE_GNUPLOT)
        skip();
    NsLog logs[4];
    open_runs(logs, (int[]){BATCH, PV, PW, LN}, 4);
    NsPlotOptions opt = {.out_dir = path_in("img")};
    for (int k = 0; NS_PLOT_KINDS[k]; k++)
        plot_ok(NS_PLOT_KINDS[k], logs, 4, &opt, strcmp(NS_PLOT_KINDS[k], "boxes") ? 1 : 2);
    const char *bases[] = {"fluctuation", "boxes-forward", "boxes-backward", "gradients",
                           "lipschitz",   "training",      "layers"};
    for (int i = 0; i < 7; i++) {
        char base[800];
        snprintf(base, sizeof base, "%s/%s", path_in("img"), bases[i]);
        assert_images(base);
    }
    close_runs(logs, 4);
}

/* The script is self-contained: it re-draws its images when run from another directory. */
static void test_script_reruns(void **state)
{
    (void)state;
    if (!HAVE_GNUPLOT)
        skip();
    NsLog log;
    open_runs(&log, (int[]){BATCH}, 1);
    NsPlotOptions opt = {.out_dir = path_in("rerun")};
    plot_ok("lipschitz", &log, 1, &opt, 1);
    ns_log_close(&log);
    char png[800], gp[800];
    snprintf(png, sizeof png, "%s", path_in("rerun/lipschitz.png"));
    snprintf(gp, sizeof gp, "%s", path_in("rerun/lipschitz.gp"));
    assert_int_equal(unlink(png), 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir("/") != 0)
            _exit(126);
        execlp("gnuplot", "gnuplot", gp, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_images(path_in("rerun/lipschitz"));
}

/* ------------------------------------------------------------------------------ command line */

static void test_cli_every_kind(void **state)
{
    (void)state;
    char words[4096], out[800], err[800];
    snprintf(out, sizeof out, "%s", path_in("cli.out"));
    snprintf(err, sizeof err, "%s", path_in("cli.err"));
    for (int k = 0; NS_PLOT_KINDS[k]; k++) {
        snprintf(words, sizeof words, "plot %s %s %s %s %s --out %s", NS_PLOT_KINDS[k],
                 RUN_PATH[BATCH], RUN_PATH[PV], RUN_PATH[PW], RUN_PATH[LN], path_in("cli"));
        int rc = run_bin(out, err, NULL, words);
        char dat[800];
        snprintf(dat, sizeof dat, "%s/%s%s.dat", path_in("cli"), NS_PLOT_KINDS[k],
                 strcmp(NS_PLOT_KINDS[k], "boxes") ? "" : "-forward");
        assert_true(file_size(dat) > 0);
        if (!HAVE_GNUPLOT) {
            assert_int_equal(rc, 1);
            assert_true(file_contains(err, "gnuplot-nox"));
            continue;
        }
        if (rc != 0)
            fail_msg("normscope %s exited %d", words, rc);
        /* every printed path is an image that exists */
        char *text = slurp(out, NULL);
        int images = 0;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), images++) {
            char base[800];
            snprintf(base, sizeof base, "%.*s", (int)(strlen(line) - 4), line);
            assert_images(base);
        }
        free(text);
        assert_int_equal(images, strcmp(NS_PLOT_KINDS[k], "boxes") ? 2 : 4);
    }
}

static void test_cli_errors(void **state)
{
    (void)state;
    char out[800], err[800], words[4096];
    snprintf(out, sizeof out, "%s", path_in("clie.out"));
    snprintf(err, sizeof err, "%s", path_in("clie.err"));
    FILE *f = fopen(path_in("plain.txt"), "w");
    fputs("hello\n", f);
    fclose(f);
    snprintf(words, sizeof words, "plot training %s", path_in("plain.txt"));
    assert_int_equal(run_bin(out, err, NULL, words), 1);
    assert_true(file_contains(err, "not an HDF5 file"));
    snprintf(words, sizeof words, "plot histogram %s", RUN_PATH[BATCH]);
    assert_int_equal(run_bin(out, err, NULL, words), 2);
    assert_true(file_contains(err, "fluctuation, boxes, gradients"));
    assert_int_equal(run_bin(out, err, NULL, "plot training"), 2);
    assert_true(file_contains(err, "no run"));
    snprintf(words, sizeof words, "plot training %s --colour red", RUN_PATH[BATCH]);
    assert_int_equal(run_bin(out, err, NULL, words), 2);
    assert_true(file_contains(err, "--colour"));
    snprintf(words, sizeof words, "plot fluctuation %s --site layers/5/norm2 --out %s",
             RUN_PATH[BATCH], path_in("clie"));
    assert_int_equal(run_bin(out, err, NULL, words), 1);
    assert_true(file_contains(err, "layers/5/norm2"));
    snprintf(words, sizeof words, "plot boxes %s --out %s", RUN_PATH[NONE], path_in("clie"));
    assert_int_equal(run_bin(out, err, NULL, words), 1);
    assert_true(file_contains(err, "probes"));
    /* site sets differ: the post-norm run has no final_norm and is skipped, by name */
    snprintf(words, sizeof words, "plot fluctuation %s %s --site final_norm --out %s",
             RUN_PATH[BATCH], RUN_PATH[POST], path_in("clie"));
    assert_int_equal(run_bin(out, err, NULL, words), HAVE_GNUPLOT ? 0 : 1);
    assert_true(file_contains(err, RUN_PATH[POST]));
    assert_true(file_contains(err, "final_norm"));
    assert_int_equal(run_bin(out, err, NULL, "plot --help"), 0);
    for (int k = 0; NS_PLOT_KINDS[k]; k++)
        assert_true(file_contains(out, NS_PLOT_KINDS[k]));
    /* no gnuplot on PATH: data and script written, the error names the package */
    snprintf(words, sizeof words, "plot training %s --out %s", RUN_PATH[BATCH],
             path_in("clie-nognu"));
    assert_int_equal(run_bin(out, err, path_in("empty-path"), words), 1);
    assert_true(file_contains(err, "gnuplot-nox"));
    assert_true(file_size(path_in("clie-nognu/training.gp")) > 0);
}

/* ------------------------------------------------------------------------------ set-up */

static int setup(void **state)
{
    (void)state;
    snprintf(DIR_, sizeof DIR_, "/tmp/ns_test_plots_XXXXXX");
    if (!mkdtemp(DIR_))
        return -1;
    for (int r = 0; r < N_RUNS; r++) {
        char words[8192];
        snprintf(RUN_PATH[r], sizeof RUN_PATH[r], "%s/%s.h5", DIR_, RUN_NAMES[r]);
        snprintf(words, sizeof words,
                 "train %s --steps 40 --d-model 16 --heads 2 --d-ff 32 --layers 2 --seq-len 12 "
                 "--batch-size 8 --vocab-size 300 --synth-bytes 60000 --eval-every 10 "
                 "--lipschitz-every 10 --hessian-iters 2 --probe-vectors-every 0 "
                 "--log-every 100 --threads 1 --out %s",
                 RUN_ARGS[r], RUN_PATH[r]);
        if (run_bin(NULL, path_in("train.err"), NULL, words) != 0) {
            fprintf(stderr, "training the %s log failed (see %s)\n", RUN_NAMES[r],
                    path_in("train.err"));
            return -1;
        }
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    return nftw(DIR_, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const char *bin = getenv("NS_BINARY");
    if (!realpath(bin ? bin : "build/normscope", BIN) || access(BIN, X_OK) != 0) {
        fprintf(stderr, "set NS_BINARY to the normscope program (meson test does)\n");
        return 1;
    }
    ns_h5_quiet();
    HAVE_GNUPLOT = on_path("gnuplot");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fluctuation_values),
        cmocka_unit_test(test_boxes_values),
        cmocka_unit_test(test_boxes_power_warmup_nan),
        cmocka_unit_test(test_gradients_values),
        cmocka_unit_test(test_lipschitz_and_training_values),
        cmocka_unit_test(test_layers_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_no_gnuplot),
        cmocka_unit_test(test_images_every_kind),
        cmocka_unit_test(test_script_reruns),
        cmocka_unit_test(test_cli_every_kind),
        cmocka_unit_test(test_cli_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
