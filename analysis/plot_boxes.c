/* Paper Figs. 3-4 (BN vs PN-V): the spread of the batch-statistics noise over training. Training
 * is split into five buckets of 20 % progress (progress = step / last recorded step, so bucket
 * k holds the steps with k/5 < progress <= (k+1)/5); for each bucket and run a box shows the
 * minimum, first quartile, median, third quartile and maximum (whiskers at min and max, no
 * outlier rule), runs side by side within a bucket. Two figures:
 *   <prefix>-forward:  the forward distance dist_var (or dist_psi2 for power schemes;
 *                      --relative: rel_dist_var, rel_dist_psi2);
 *   <prefix>-backward: the gradient through the batch statistic, g_sigma2 (or g_psi2).
 * A figure no run has data for is skipped with a warning; if neither can be drawn it is an
 * error. With --relative only the forward figure is drawn (the backward one does not change). Quantiles are ns_quantile's (linear interpolation, NaN ignored). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "stats.h"
#include "util.h"

#define N_BUCKETS 5
#define N_COLS 10

typedef struct {
    int ok;
    const char *series; /* dist_var, dist_psi2, g_sigma2 or g_psi2 */
    double rows[N_BUCKETS][N_COLS];
} Run;

static const char *series_for(const NsLog *log, const NsPlotOptions *opt, int backward)
{
    int var = strcmp(ns_plot_stat(log, opt), "var") == 0;
    if (backward)
        return var ? "g_sigma2" : "g_psi2";
    if (opt->relative)
        return var ? "rel_dist_var" : "rel_dist_psi2";
    return var ? "dist_var" : "dist_psi2";
}

static const char *hint_for(const char *series)
{
    if (strcmp(series, "g_sigma2") == 0)
        return "the gradient through sigma2_B is recorded only for batch norm";
    if (strcmp(series, "g_psi2") == 0)
        return "the gradient through psi2_B is recorded only for power-v, and for power "
               "during its --pn-warmup";
    return NS_HINT_BATCH_STATS;
}

/* Row of bucket k: bucket, x (set later), n, min, q1, median, q3, max, lo %, hi %. */
static void bucket_row(const NsSeries *s, int k, double *row)
{
    double last = s->x[s->n - 1];
    size_t b, e;
    ns_progress_range(s->x, s->n, last, k / (double)N_BUCKETS, (k + 1) / (double)N_BUCKETS, &b,
                      &e);
    const double *y = s->y + b;
    size_t m = e - b;
    double r[N_COLS] = {k + 1,
                        NAN,
                        (double)ns_count_finite(y, m),
                        ns_finite_min(y, m),
                        ns_quantile(y, m, 0.25),
                        ns_median(y, m),
                        ns_quantile(y, m, 0.75),
                        ns_finite_max(y, m),
                        100.0 * k / N_BUCKETS,
                        100.0 * (k + 1) / N_BUCKETS};
    memcpy(row, r, sizeof r);
}

static int load_run(Run *r, const NsLog *log, const NsPlotOptions *opt, const char *site,
                    int backward, const char *figure)
{
    char x[600], y[600];
    NsSeries s;
    if (!ns_plot_site_check(log, site, figure))
        return 0;
    r->series = series_for(log, opt, backward);
    ns_runlog_site_path(x, sizeof x, site, NS_RUNLOG_STEP);
    ns_runlog_site_path(y, sizeof y, site, r->series);
    if (!ns_series_load(&s, log, x, y, figure, hint_for(r->series)))
        return 0;
    for (int k = 0; k < N_BUCKETS; k++)
        bucket_row(&s, k, r->rows[k]);
    ns_series_free(&s);
    return 1;
}

static void write_plot(NsFig *f, const Run *runs, const int *block, const NsLog *logs, int n,
                       int kept)
{
    char q[256];
    /* boxes of the kept runs share each bucket's unit width, with a gap between buckets */
    fprintf(f->gp,
            "    set xrange [0.5:%d.5]\n    # tic labels are formats: %%%% is a percent sign\n"
            "    set xtics (\"0-20%%%%\" 1, \"20-40%%%%\" 2, \"40-60%%%%\" 3, "
            "\"60-80%%%%\" 4, \"80-100%%%%\" 5)\n"
            "    set boxwidth %.4f absolute\n    set grid noxtics\n",
            N_BUCKETS, 0.8 / kept * 0.85);
    const char *sep = "    plot ";
    for (int i = 0; i < n; i++) {
        if (!runs[i].ok)
            continue;
        char title[200];
        snprintf(title, sizeof title, "%s: %s", logs[i].label, runs[i].series);
        fprintf(f->gp,
                "%sdat index %d using 2:(pos($5)):(pos($4)):(pos($8)):(pos($7)) with "
                "candlesticks whiskerbars 0.6 lw 1.5 lc rgb run_color(%d) fs solid 0.35 "
                "title %s, \\\n"
                "         dat index %d using 2:(pos($6)):(pos($6)):(pos($6)):(pos($6)) with "
                "candlesticks lw 3 lc rgb run_color(%d) notitle",
                sep, block[i], i, ns_gp_quote(q, sizeof q, title), block[i], i);
        sep = ", \\\n         ";
    }
    fprintf(f->gp, "\n");
}

/* Writes the figure of the kept runs; x offsets put their boxes side by side. */
static int draw(NsPlotJob *job, Run *runs, const NsLog *logs, int n, int kept, int backward,
                const char *site, char *err)
{
    NsFig f;
    char title[600], q[700];
    const char *what = backward ? "gradient through the batch statistic per 20% of training"
                                : "batch vs running statistic per 20% of training";
    if (ns_fig_open(&f, job, backward ? "backward" : "forward", what, err) < 0)
        return -1;
    int *block = ns_xcalloc((size_t)n, sizeof(int));
    NsRange range;
    ns_range_init(&range);
    for (int i = 0, pos = 0; i < n; i++) {
        if (!runs[i].ok)
            continue;
        char note[64];
        snprintf(note, sizeof note, "series %s", runs[i].series);
        block[i] = ns_fig_block(&f, i, &logs[i], note,
                                "bucket x n min q1 median q3 max progress_lo_% progress_hi_%");
        for (int k = 0; k < N_BUCKETS; k++) {
            runs[i].rows[k][1] = k + 1 + (pos - (kept - 1) / 2.0) * (0.8 / kept);
            ns_fig_row(&f, runs[i].rows[k], N_COLS);
            ns_range_add(&range, &runs[i].rows[k][3], 5);
        }
        ns_fig_end_block(&f);
        pos++;
    }
    snprintf(title, sizeof title,
             "%s at norm site %s, per 20%% of training (PowerNorm paper Figs. 3-4)\n"
             "box: quartiles, bold line: median, whiskers: minimum and maximum over the "
             "bucket's steps",
             backward ? "Backward: gradient through the batch statistic"
                      : "Forward: distance of batch from running statistic",
             site);
    fprintf(f.gp, "    set title %s\n", ns_gp_quote(q, sizeof q, title));
    int logy = ns_range_log(&range);
    fprintf(f.gp, "    set xlabel \"training progress (step / last step)\"\n"
                  "    set ylabel %s\n    %s logscale y\n    set format y \"%%g\"\n",
            backward          ? "\"(1/d)||∂L/∂σ²_B||₂  or  (1/d)||∂L/∂ψ²_B||₂ (see key)\""
            : job->opt.relative ? "\"||σ²_B − σ²_run|| / ||σ²_run||  or  ||ψ²_B − ψ²_run|| / "
                                  "||ψ²_run|| (see key)\""
                                : "\"(1/d)||σ²_B − σ²_run||₂  or  (1/d)||ψ²_B − ψ²_run||₂ (see key)\"",
            logy ? "set" : "unset");
    ns_gp_yrange(f.gp, &range, logy); /* every whisker inside the axes */
    write_plot(&f, runs, block, logs, n, kept);
    free(block);
    return ns_fig_close(&f, err);
}

/* One figure: 1 drawn, 0 no run has its data (warned), -1 error. */
static int box_figure(NsPlotJob *job, NsLog *logs, int n, const char *site, int backward,
                      char *err)
{
    const char *figure = backward ? "plot boxes (backward)" : "plot boxes (forward)";
    Run *runs = ns_xcalloc((size_t)n, sizeof(Run));
    int kept = 0, rc = 0;
    for (int i = 0; i < n; i++)
        kept += runs[i].ok = load_run(&runs[i], &logs[i], &job->opt, site, backward, figure);
    if (kept > 0)
        rc = draw(job, runs, logs, n, kept, backward, site, err) < 0 ? -1 : 1;
    else
        fprintf(stderr, "normscope: warning: %s: no run has the data; figure not drawn\n",
                figure);
    free(runs);
    return rc;
}

int ns_plot_boxes(NsPlotJob *job, NsLog *logs, int n, char *err)
{
    char site[512];
    if (ns_plot_resolve_site(logs, n, &job->opt, site, sizeof site, err) < 0)
        return -1;
    int fwd = box_figure(job, logs, n, site, 0, err);
    if (fwd < 0)
        return -1;
    /* --relative changes the forward distance only: its backward figure would be a copy of the
     * plain one, so it is not drawn twice */
    int bwd = job->opt.relative ? 0 : box_figure(job, logs, n, site, 1, err);
    if (bwd < 0)
        return -1;
    if (fwd + bwd == 0)
        return ns_fail(err, "no run has batch statistics or their gradients at norm site '%s' "
                            "(%s)", site, NS_HINT_BATCH_STATS);
    return 0;
}
