/* Tests of the plots' data (analysis/plot*.c, gnuplot.c) through ns_plot(), on short real run
 * logs trained with the normscope program under test (NS_BINARY) in a scratch directory: every
 * figure's .dat values equal values recomputed from the logs (quantiles per 20 % of training,
 * NaN where a series is not recorded); missing probe data, bad options and missing gnuplot are
 * errors that still leave data and scripts. Images and `normscope plot` are tested in
 * test_plot_images.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "logs.h"
#include "plot_runs.h"
#include "stats.h"
#include "util.h"

/* ------------------------------------------------------------------------------ helpers */

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
    NsPlotOptions opt = {.out_dir = scratch("flu")};
    plot_ok("fluctuation", logs, 2, &opt, 1);
    int rows, cols;
    size_t n;
    const char *stats[2] = {"dist_var", "dist_psi2"}; /* batch: var, power-v: psi2 */
    for (int b = 0; b < 2; b++) {
        double *dat = dat_block(scratch("flu/fluctuation.dat"), b, &rows, &cols);
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
    assert_true(file_contains(scratch("flu/fluctuation.dat"), "dist_psi2"));
    assert_true(file_contains(scratch("flu/fluctuation.gp"), "set logscale y"));
    /* --stat var forces dist_var for power-v too */
    NsPlotOptions var = {.out_dir = scratch("flu"), .stat = "var", .prefix = "fvar",
                         .site = "final_norm"};
    plot_ok("fluctuation", logs, 2, &var, 1);
    double *dat = dat_block(scratch("flu/fvar.dat"), 1, &rows, &cols);
    double *dist = read_log(&logs[1], "norms/final_norm/dist_var", &n);
    assert_int_equal(rows, (int)n);
    for (size_t i = 0; i < n; i++)
        assert_close(dat[i * 5 + 2], dist[i]);
    free(dat), free(dist);
    close_logs(logs, 2);
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
    NsPlotOptions opt = {.out_dir = scratch("box"), .prefix = "bn-vs-pnv"};
    plot_ok("boxes", logs, 2, &opt, 2);
    check_boxes(scratch("box/bn-vs-pnv-forward.dat"), 0, &logs[0], "dist_var");
    check_boxes(scratch("box/bn-vs-pnv-forward.dat"), 1, &logs[1], "dist_psi2");
    check_boxes(scratch("box/bn-vs-pnv-backward.dat"), 0, &logs[0], "g_sigma2");
    check_boxes(scratch("box/bn-vs-pnv-backward.dat"), 1, &logs[1], "g_psi2");
    assert_true(file_contains(scratch("box/bn-vs-pnv-forward.gp"), "candlesticks"));
    close_logs(logs, 2);
}

/* power records g_psi2 only during its warm-up: later buckets are NaN, never 0. */
static void test_boxes_power_warmup_nan(void **state)
{
    (void)state;
    NsLog log;
    open_runs(&log, (int[]){PW}, 1);
    NsPlotOptions opt = {.out_dir = scratch("boxpw")};
    plot_ok("boxes", &log, 1, &opt, 2);
    int rows, cols;
    double *dat = dat_block(scratch("boxpw/boxes-backward.dat"), 0, &rows, &cols);
    assert_int_equal(rows, 5);
    assert_true(isfinite(dat[0 * cols + 5])); /* steps 1-8: in warm-up */
    assert_true(isnan(dat[4 * cols + 5]));    /* last 20 %: after it */
    assert_close(dat[4 * cols + 2], 0);       /* no finite value counted */
    free(dat);
    char *text = slurp(scratch("boxpw/boxes-backward.dat"), NULL);
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
    NsPlotOptions opt = {.out_dir = scratch("grad")};
    capture_stderr(scratch("grad.err"));
    plot_ok("gradients", logs, 3, &opt, 1);
    restore_stderr();
    /* the post-norm run has no final_norm: warned, and NaN there */
    assert_true(file_contains(scratch("grad.err"), "final_norm"));
    assert_true(file_contains(scratch("grad.err"), RUN_PATH[POST]));
    int rows, cols;
    size_t n;
    double *dat = dat_block(scratch("grad/gradients.dat"), 0, &rows, &cols);
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
    dat = dat_block(scratch("grad/gradients.dat"), 2, &rows, &cols);
    assert_true(isnan(dat[4 * cols + 10])); /* post: no final_norm */
    free(dat);
    close_logs(logs, 3);
}

static void test_lipschitz_and_training_values(void **state)
{
    (void)state;
    NsLog logs[2];
    open_runs(logs, (int[]){BATCH, NONE}, 2);
    NsPlotOptions opt = {.out_dir = scratch("lip")};
    capture_stderr(scratch("lip.err"));
    plot_ok("lipschitz", logs, 2, &opt, 1); /* the probes-none run is skipped, with a warning */
    restore_stderr();
    assert_true(file_contains(scratch("lip.err"), "skipping run"));
    assert_true(file_contains(scratch("lip.err"), RUN_PATH[NONE]));
    int rows, cols;
    size_t n;
    double *dat = dat_block(scratch("lip/lipschitz.dat"), 0, &rows, &cols);
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
    dat = dat_block(scratch("lip/training.dat"), 2, &rows, &cols);
    double *loss = read_log(&logs[1], "steps/loss", &n);
    assert_int_equal(rows, (int)n);
    for (size_t i = 0; i < n; i++)
        assert_close(dat[i * cols + 1], loss[i]);
    free(dat), free(loss);
    dat = dat_block(scratch("lip/training.dat"), 3, &rows, &cols);
    double *ppl = read_log(&logs[1], "eval/ppl", &n);
    assert_int_equal(rows, (int)n);
    assert_close(dat[(n - 1) * cols + 1], ppl[n - 1]);
    free(dat), free(ppl);
    /* two runs with one label are told apart by file name */
    assert_true(file_contains(scratch("lip/training.gp"), "none.h5]"));
    close_logs(logs, 2);
}

static void test_layers_values(void **state)
{
    (void)state;
    NsLog logs[2];
    open_runs(logs, (int[]){LN, POST}, 2);
    NsPlotOptions opt = {.out_dir = scratch("lay"), .layers_stat = "grad_gain"};
    plot_ok("layers", logs, 2, &opt, 1);
    int rows, cols;
    size_t n;
    double *dat = dat_block(scratch("lay/layers.dat"), 0, &rows, &cols);
    double *y = read_log(&logs[0], "norms/final_norm/grad_gain", &n);
    assert_int_equal(rows, 5 * (int)n); /* every (site, step) of the layer run */
    for (size_t i = 0; i < n; i++) {
        const double *r = dat + (4 * n + i) * (size_t)cols;
        assert_close(r[0], (double)(i + 1));
        assert_close(r[1], 4);
        assert_close(r[2], y[i]);
    }
    free(dat), free(y);
    assert_true(file_contains(scratch("lay/layers.gp"), "\"final\" 4"));
    assert_true(file_contains(scratch("lay/layers.gp"), "with image"));
    close_logs(logs, 2);
}

static void test_errors(void **state)
{
    (void)state;
    NsLog logs[2];
    open_runs(logs, (int[]){NONE, BATCH}, 2);
    NsPlotOptions opt = {.out_dir = scratch("err")};
    capture_stderr(scratch("err.err")); /* the expected skip warnings */
    /* missing probe data is an error, never an empty plot */
    const char *kinds[] = {"fluctuation", "boxes", "gradients", "lipschitz", "layers"};
    for (int k = 0; k < 5; k++)
        assert_non_null(strstr(plot_err(kinds[k], logs, 1, &opt), "probes"));
    assert_non_null(strstr(plot_err("contour", logs, 2, &opt), "unknown plot kind"));
    assert_non_null(strstr(plot_err("training", logs, 0, &opt), "no run"));
    NsPlotOptions bad_site = {.out_dir = scratch("err"), .site = "layers/7/norm1"};
    assert_non_null(strstr(plot_err("fluctuation", logs, 2, &bad_site), "layers/7/norm1"));
    NsPlotOptions bad_stat = {.out_dir = scratch("err"), .stat = "mean"};
    assert_non_null(strstr(plot_err("boxes", logs, 2, &bad_stat), "var or psi2"));
    NsPlotOptions bad_layers = {.out_dir = scratch("err"), .layers_stat = "no_such"};
    assert_non_null(strstr(plot_err("layers", logs, 2, &bad_layers), "no_such"));
    restore_stderr();
    close_logs(logs, 2);
    char err[NS_ERRLEN];
    NsLog log;
    FILE *f = fopen(scratch("text.h5"), "w");
    fputs("not hdf5\n", f);
    fclose(f);
    assert_int_equal(ns_log_open(&log, scratch("text.h5"), err), -1);
    assert_non_null(strstr(err, "not an HDF5"));
}

/* Without gnuplot the data and scripts are still written and the error says what to install. */
static void test_no_gnuplot(void **state)
{
    (void)state;
    NsLog log;
    open_runs(&log, (int[]){BATCH}, 1);
    char *saved = strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", scratch("no-such-dir"), 1);
    NsPlotOptions opt = {.out_dir = scratch("nognu")};
    char err[NS_ERRLEN] = "";
    int rc = ns_plot("boxes", &log, 1, &opt, err);
    setenv("PATH", saved, 1);
    free(saved);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "gnuplot-nox"));
    assert_true(file_size(scratch("nognu/boxes-forward.dat")) > 0);
    assert_true(file_size(scratch("nognu/boxes-backward.gp")) > 0);
    assert_int_equal(file_size(scratch("nognu/boxes-forward.png")), -1);
    ns_log_close(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fluctuation_values),
        cmocka_unit_test(test_boxes_values),
        cmocka_unit_test(test_boxes_power_warmup_nan),
        cmocka_unit_test(test_gradients_values),
        cmocka_unit_test(test_lipschitz_and_training_values),
        cmocka_unit_test(test_layers_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_no_gnuplot),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, plot_runs_setup, group_teardown);
}
