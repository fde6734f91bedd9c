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

#include "gnuplot.h"
#include "harness.h"
#include "logs.h"
#include "palette.h"
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

/* --tid: the training-inference discrepancy instead of the distances (tid_var for batch,
 * tid_psi2 for power-v), and the smoothed sampling floors, which stay within the floor
 * series' range, drawn dashed. */
static void test_fluctuation_tid(void **state)
{
    (void)state;
    NsLog logs[2];
    open_runs(logs, (int[]){BATCH, PV}, 2);
    NsPlotOptions opt = {.out_dir = scratch("flu"), .tid = 1, .prefix = "tid"};
    plot_ok("fluctuation", logs, 2, &opt, 1);
    const char *stats[2] = {"tid_var", "tid_psi2"};
    for (int b = 0; b < 2; b++) {
        int rows, cols;
        size_t n;
        char path[128];
        double *dat = dat_block(scratch("flu/tid.dat"), b, &rows, &cols);
        double *mean = read_log(&logs[b], "norms/layers/0/norm1/tid_mean", &n);
        snprintf(path, sizeof path, "norms/layers/0/norm1/%s", stats[b]);
        double *tid = read_log(&logs[b], path, &n);
        snprintf(path, sizeof path, "norms/layers/0/norm1/%s_floor", stats[b]);
        double *floor = read_log(&logs[b], path, &n);
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < n; i++)
            lo = fmin(lo, floor[i]), hi = fmax(hi, floor[i]);
        assert_int_equal(rows, (int)n);
        assert_int_equal(cols, 7);
        for (size_t i = 0; i < n; i++) {
            assert_close(dat[i * 7 + 1], mean[i]);
            assert_close(dat[i * 7 + 2], tid[i]);
            assert_true(dat[i * 7 + 6] >= lo * (1 - 1e-9) && dat[i * 7 + 6] <= hi * (1 + 1e-9));
        }
        free(dat), free(mean), free(tid), free(floor);
    }
    assert_true(file_contains(scratch("flu/tid.gp"), "dt 2"));
    assert_true(file_contains(scratch("flu/tid.gp"), "assumes independent normal rows"));
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


/* ------------------------------------------------------------------------------ style */

/* Word k of the script's `name = "..."` line (run styles), into buf. */
static const char *gp_word(const char *gp_path, const char *name, int k, char *buf, size_t len)
{
    char *text = slurp(gp_path, NULL), head[64];
    assert_non_null(text);
    snprintf(head, sizeof head, "\n%s = \"", name);
    char *p = strstr(text, head);
    assert_non_null(p);
    p += strlen(head);
    for (int i = 0; i < k; i++) {
        p = strchr(p, ' ');
        assert_non_null(p);
        p++;
    }
    size_t n = strcspn(p, " \"");
    snprintf(buf, len, "%.*s", (int)n, p);
    free(text);
    return buf;
}

/* One colour per scheme: the same in two figures whatever the order of the runs, a fixed one
 * for the paper's schemes, a further run of a scheme another dash and marker; unknown names
 * get a colour of their own, the same every time. */
static void test_palette_stable(void **state)
{
    (void)state;
    NsLog ab[2], ba[2], bp[2];
    open_runs(ab, (int[]){BATCH, LN}, 2);
    open_runs(ba, (int[]){LN, BATCH}, 2);
    open_runs(bp, (int[]){BATCH, POST}, 2);
    NsPlotOptions o1 = {.out_dir = scratch("pal"), .prefix = "one"};
    NsPlotOptions o2 = {.out_dir = scratch("pal"), .prefix = "two"};
    NsPlotOptions o3 = {.out_dir = scratch("pal"), .prefix = "three"};
    plot_ok("training", ab, 2, &o1, 1);
    plot_ok("fluctuation", ba, 2, &o2, 1);
    plot_ok("training", bp, 2, &o3, 1);
    char a[32], b[32], c[32], d[32];
    NsSchemeStyle bn, ln;
    ns_scheme_style("batch", 0, &bn);
    ns_scheme_style("layer", 0, &ln);
    assert_string_equal(gp_word(scratch("pal/one.gp"), "run_rgb", 0, a, sizeof a), bn.rgb);
    assert_string_equal(gp_word(scratch("pal/two.gp"), "run_rgb", 1, b, sizeof b), bn.rgb);
    assert_string_equal(gp_word(scratch("pal/one.gp"), "run_rgb", 1, c, sizeof c), ln.rgb);
    assert_string_equal(gp_word(scratch("pal/two.gp"), "run_rgb", 0, d, sizeof d), ln.rgb);
    assert_string_not_equal(bn.rgb, ln.rgb);
    /* two batch runs: one colour, told apart by dash type and marker */
    assert_string_equal(gp_word(scratch("pal/three.gp"), "run_rgb", 1, a, sizeof a), bn.rgb);
    assert_string_not_equal(gp_word(scratch("pal/three.gp"), "run_dts", 0, b, sizeof b),
                            gp_word(scratch("pal/three.gp"), "run_dts", 1, c, sizeof c));
    assert_string_not_equal(gp_word(scratch("pal/three.gp"), "run_pts", 0, b, sizeof b),
                            gp_word(scratch("pal/three.gp"), "run_pts", 1, c, sizeof c));
    /* LN and PN-V differ in dash type, so one curve lying on the other still shows */
    NsSchemeStyle pv, x1, x2;
    ns_scheme_style("power-v", 0, &pv);
    assert_int_not_equal(pv.dash, ln.dash);
    assert_int_not_equal(pv.point, ln.point);
    const char *known[] = {"layer", "batch", "batch-official", "power", "power-v",
                           "power-official", "rms", "none", "batch-regularized"};
    for (int i = 0; i < 9; i++) {
        assert_true(ns_scheme_style_known(known[i]));
        for (int j = 0; j < i; j++) {
            NsSchemeStyle si, sj;
            ns_scheme_style(known[i], 0, &si);
            ns_scheme_style(known[j], 0, &sj);
            assert_string_not_equal(si.rgb, sj.rgb);
        }
    }
    assert_false(ns_scheme_style_known("group-norm"));
    ns_scheme_style("group-norm", 0, &x1);
    ns_scheme_style("group-norm", 0, &x2);
    assert_memory_equal(&x1, &x2, sizeof x1);
    assert_int_equal(strlen(x1.rgb), 7);
    close_logs(ab, 2), close_logs(ba, 2), close_logs(bp, 2);
}

/* The trailing mean grows its window without a kink: on a straight line, the smoothed curve's
 * slope changes by little anywhere (a window that jumps or stops growing abruptly bends it by
 * half the slope), and from 2w on it is exactly the mean of the last w values. */
static void test_smoothing_no_kink(void **state)
{
    (void)state;
    enum { N = 400, W = 32 };
    double y[N], out[N];
    for (int i = 0; i < N; i++)
        y[i] = -2.0 * i;
    ns_moving_average(y, N, W, out);
    assert_close(out[0], y[0]);
    for (int i = 1; i + 1 < N; i++) {
        double bend = fabs(out[i + 1] - 2 * out[i] + out[i - 1]);
        if (bend > 0.1 * 2.0)
            fail_msg("smoothed line bends by %g at %d (slope 2)", bend, i);
    }
    for (int i = 2 * W; i < N; i++) {
        double sum = 0;
        for (int k = 0; k < W; k++)
            sum += y[i - k];
        assert_close(out[i], sum / W);
    }
    /* NaN is skipped, not averaged in */
    y[100] = NAN;
    ns_moving_average(y, N, W, out);
    double sum = 0;
    for (int k = 0; k < W; k++)
        sum += k == 10 ? 0 : y[110 - k];
    assert_close(out[110], sum / (W - 1));
}

/* Runs that differ only in seed: one curve, the mean, with a band from the minimum to the
 * maximum, recomputed here from the runs' own blocks; the legend says so. */
static void test_seed_band(void **state)
{
    (void)state;
    NsLog logs[3];
    open_runs(logs, (int[]){BATCH, SEED2, LN}, 3);
    NsPlotOptions opt = {.out_dir = scratch("band")};
    plot_ok("training", logs, 3, &opt, 1);
    const char *dat = scratch("band/training.dat");
    int r0, r1, rb, c0, c1, cb;
    /* blocks: loss and eval of each run (0-5), then the batch group's loss and eval bands */
    double *a = dat_block(dat, 0, &r0, &c0), *b = dat_block(dat, 2, &r1, &c1);
    double *band = dat_block(dat, 6, &rb, &cb);
    assert_int_equal(r0, r1);
    assert_int_equal(rb, r0);
    assert_int_equal(cb, 4);
    for (int i = 0; i < rb; i++) {
        double x = a[i * c0 + 2], y = b[i * c1 + 2];
        assert_close(band[i * cb + 0], a[i * c0]);
        assert_close(band[i * cb + 1], (x + y) / 2);
        assert_close(band[i * cb + 2], fmin(x, y));
        assert_close(band[i * cb + 3], fmax(x, y));
    }
    free(a), free(b), free(band);
    size_t n0, n1;
    double *p0 = read_log(&logs[0], "eval/ppl", &n0), *p1 = read_log(&logs[1], "eval/ppl", &n1);
    band = dat_block(dat, 7, &rb, &cb);
    assert_int_equal(rb, (int)n0);
    for (int i = 0; i < rb; i++)
        assert_close(band[i * cb + 1], (p0[i] + p1[i]) / 2);
    free(p0), free(p1), free(band);
    const char *gp = scratch("band/training.gp");
    assert_true(file_contains(gp, "batch (pre), mean of 2 seeds (band: min-max)"));
    assert_true(file_contains(gp, "filledcurves"));
    assert_true(file_contains(gp, "title \"layer (pre)\""));
    /* drawn one by one (boxes), the seed tells the two batch runs apart */
    NsPlotOptions box = {.out_dir = scratch("band")};
    plot_ok("boxes", logs, 2, &box, 2);
    assert_true(file_contains(scratch("band/boxes-forward.gp"), "batch (pre) seed 1"));
    assert_true(file_contains(scratch("band/boxes-forward.gp"), "batch (pre) seed 2"));
    close_logs(logs, 3);
}

/* Axes fit the data: the perplexity range is the runs' (not whole decades), every box-plot
 * whisker lies inside the y range. */
static void test_axes_fit(void **state)
{
    (void)state;
    NsLog logs[2];
    open_runs(logs, (int[]){BATCH, LN}, 2);
    NsPlotOptions opt = {.out_dir = scratch("axes")};
    plot_ok("training", logs, 2, &opt, 1);
    plot_ok("boxes", logs, 2, &opt, 2);
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < 2; i++) {
        size_t n;
        double *p = read_log(&logs[i], "eval/ppl", &n);
        lo = fmin(lo, ns_finite_min(p, n)), hi = fmax(hi, ns_finite_max(p, n));
        free(p);
    }
    char *gp = slurp(scratch("axes/training.gp"), NULL);
    const char *ppl = strstr(gp, "set title \"validation perplexity");
    assert_non_null(ppl);
    double ylo, yhi;
    const char *yr = strstr(ppl, "set yrange [");
    assert_non_null(yr);
    assert_int_equal(sscanf(yr, "set yrange [%lf:%lf]", &ylo, &yhi), 2);
    assert_true(ylo <= lo && yhi >= hi);
    assert_true(yhi < hi * 1.5 && ylo > lo / 1.5); /* not stretched to 10 .. 10,000 */
    free(gp);
    int rows, cols;
    gp = slurp(scratch("axes/boxes-forward.gp"), NULL);
    yr = strstr(gp, "set yrange [");
    assert_non_null(yr);
    assert_int_equal(sscanf(yr, "set yrange [%lf:%lf]", &ylo, &yhi), 2);
    for (int b = 0; b < 2; b++) {
        double *d = dat_block(scratch("axes/boxes-forward.dat"), b, &rows, &cols);
        for (int k = 0; k < rows; k++)
            assert_true(d[k * cols + 3] >= ylo && d[k * cols + 7] <= yhi);
        free(d);
    }
    free(gp);
    close_logs(logs, 2);
}

/* --format, --size, --font reach the script; bad values are one-line errors naming the flag. */
static void test_style_options(void **state)
{
    (void)state;
    NsLog log;
    open_runs(&log, (int[]){BATCH}, 1);
    NsPlotOptions opt = {.out_dir = scratch("style"), .format = "pdf,svg,pdf",
                         .size = "720x500", .font = "Serif,8"};
    plot_ok("training", &log, 1, &opt, 1);
    const char *gp = scratch("style/training.gp");
    assert_true(file_contains(gp, "do for [fmt in \"pdf svg\"]")); /* each format once */
    assert_true(file_contains(gp, "set terminal pdfcairo size 10.000in,6.944in noenhanced font "
                                  "\"Serif,8\""));
    assert_true(file_contains(gp, "set terminal svg size 720,500"));
    assert_false(file_contains(gp, "pngcairo"));
    char err[NS_ERRLEN];
    NsPlotOptions bad[] = {{.format = "gif"}, {.format = ""}, {.size = "big"},
                           {.size = "10x10"}, {.font = ""}};
    const char *flag[] = {"--format", "--format", "--size", "--size", "--font"};
    for (int i = 0; i < 5; i++) {
        bad[i].out_dir = scratch("style");
        assert_int_equal(ns_plot("training", &log, 1, &bad[i], err), -1);
        assert_non_null(strstr(err, flag[i]));
        assert_int_equal(ns_plot_style_check(&bad[i], err), -1);
    }
    /* study's way: the style from its flags, taken out of the list that goes to train */
    char *words[] = {"--steps", "5", "--format=pdf", "--size", "640x480", "--seed", "3"};
    int n = 7;
    assert_int_equal(ns_plot_style_take(words, &n, err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(words[2], "--seed");
    NsPlotOptions def = {.out_dir = scratch("style"), .prefix = "default"};
    plot_ok("training", &log, 1, &def, 1);
    assert_true(file_contains(scratch("style/default.gp"), "pdfcairo size 8.889in,6.667in"));
    char *reset[] = {"--format", "png,svg", "--size", "1200x800"};
    assert_int_equal(ns_plot_style_from_args(reset, 4, err), 0);
    ns_log_close(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fluctuation_values),
        cmocka_unit_test(test_fluctuation_tid),
        cmocka_unit_test(test_boxes_values),
        cmocka_unit_test(test_boxes_power_warmup_nan),
        cmocka_unit_test(test_gradients_values),
        cmocka_unit_test(test_lipschitz_and_training_values),
        cmocka_unit_test(test_layers_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_no_gnuplot),
        cmocka_unit_test(test_palette_stable),
        cmocka_unit_test(test_smoothing_no_kink),
        cmocka_unit_test(test_seed_band),
        cmocka_unit_test(test_axes_fit),
        cmocka_unit_test(test_style_options),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, plot_runs_setup, group_teardown);
}
