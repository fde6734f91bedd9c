/* Paper Fig. 2: how far the statistics of each batch stray from the running statistics used at
 * inference, at one norm site, over training. Top panel: the mean, (1/d)||mu_B - mu_run||; bottom:
 * the variance (1/d)||sigma2_B - sigma2_run|| or, for the power schemes that normalize by the
 * quadratic mean, (1/d)||psi2_B - psi2_run|| (per run unless --stat says otherwise). Large,
 * spiky distances are the paper's argument against batch statistics in Transformers.
 *
 * Every step is drawn faintly and a trailing moving average boldly: the raw data stays visible
 * and the smoothing is stated in the title. Both y axes are logarithmic, as in the paper, and
 * fitted to the data. Runs that differ only in seed are drawn as one curve, the mean of their
 * moving averages, with a band from their minimum to their maximum (the runs' own rows stay in
 * the data file). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "stats.h"
#include "util.h"

#define FIG "plot fluctuation"

typedef struct {
    int ok;
    const char *stat; /* "var" or "psi2" */
    const char *rel;  /* "rel_" with --relative, else "" */
    NsSeries mean, dist;
    double *avg[2];   /* moving averages of mean and dist */
    int lead, size;   /* seed group: ns_seed_bands */
    int band;         /* block of the group's band (lead only) */
} Run;

/* Loads a run's two distances at the site; 0 (after a warning) when it lacks them. */
static int load_run(Run *r, const NsLog *log, const char *site, const NsPlotOptions *opt)
{
    char x[600], y[600], dist[64];
    if (!ns_plot_site_check(log, site, FIG))
        return 0;
    r->stat = ns_plot_stat(log, opt);
    ns_runlog_site_path(x, sizeof x, site, NS_RUNLOG_STEP);
    r->rel = opt->relative ? "rel_" : "";
    snprintf(dist, sizeof dist, "%sdist_mean", r->rel);
    ns_runlog_site_path(y, sizeof y, site, dist);
    if (!ns_series_load(&r->mean, log, x, y, FIG, NS_HINT_BATCH_STATS))
        return 0;
    snprintf(dist, sizeof dist, "%sdist_%s", r->rel, r->stat);
    ns_runlog_site_path(y, sizeof y, site, dist);
    if (!ns_series_load(&r->dist, log, x, y, FIG, NS_HINT_BATCH_STATS)) {
        ns_series_free(&r->mean);
        return 0;
    }
    return 1;
}

/* One block per run: step, both distances, and their moving averages. Returns its index. */
static int write_block(NsFig *f, int run, const NsLog *log, Run *r, size_t w)
{
    char cols[200];
    snprintf(cols, sizeof cols, "step %sdist_mean %sdist_%s %sdist_mean_avg%zu %sdist_%s_avg%zu",
             r->rel, r->rel, r->stat, r->rel, w, r->rel, r->stat, w);
    int block = ns_fig_block(f, run, log, NULL, cols);
    size_t n = r->mean.n < r->dist.n ? r->mean.n : r->dist.n;
    r->mean.n = r->dist.n = n;
    r->avg[0] = ns_xmalloc(sizeof(double) * (n ? n : 1));
    r->avg[1] = ns_xmalloc(sizeof(double) * (n ? n : 1));
    ns_moving_average(r->mean.y, n, w, r->avg[0]);
    ns_moving_average(r->dist.y, n, w, r->avg[1]);
    for (size_t i = 0; i < n; i++) {
        double row[5] = {r->mean.x[i], r->mean.y[i], r->dist.y[i], r->avg[0][i], r->avg[1][i]};
        ns_fig_row(f, row, 5);
    }
    ns_fig_end_block(f);
    return block;
}

/* The band block of the seed group led by run `lead`: step, then mean, min, max of the moving
 * averages of dist_mean and of the distance, over the group's runs. */
static int write_band(NsFig *f, const NsLog *logs, Run *runs, int n, int lead)
{
    double *ys[2][64];
    size_t ns[64];
    int m = 0;
    for (int i = lead; i < n && m < 64; i++)
        if (runs[i].ok && runs[i].lead == lead)
            ys[0][m] = runs[i].avg[0], ys[1][m] = runs[i].avg[1], ns[m++] = runs[i].mean.n;
    const Run *r = &runs[lead];
    size_t rows = r->mean.n;
    char note[96];
    snprintf(note, sizeof note, "mean, min and max over %d runs that differ only in seed", m);
    int block = ns_fig_block(f, lead, &logs[lead], note,
                             "step mean_avg_mean mean_avg_min mean_avg_max dist_avg_mean "
                             "dist_avg_min dist_avg_max");
    double *b = ns_xmalloc(sizeof(double) * 6 * (rows ? rows : 1));
    ns_band(ys[0], ns, m, rows, b, b + rows, b + 2 * rows);
    ns_band(ys[1], ns, m, rows, b + 3 * rows, b + 4 * rows, b + 5 * rows);
    for (size_t i = 0; i < rows; i++) {
        double row[7] = {r->mean.x[i], b[i], b[rows + i], b[2 * rows + i], b[3 * rows + i],
                         b[4 * rows + i], b[5 * rows + i]};
        ns_fig_row(f, row, 7);
    }
    free(b);
    ns_fig_end_block(f);
    return block;
}

/* y label of the bottom panel: one statistic when every run uses the same, else both. */
static const char *dist_label(const Run *runs, int n, int relative)
{
    int var = 0, psi2 = 0;
    for (int i = 0; i < n; i++)
        if (runs[i].ok) {
            var |= strcmp(runs[i].stat, "var") == 0;
            psi2 |= strcmp(runs[i].stat, "psi2") == 0;
        }
    if (relative && var && psi2)
        return "||σ²_B − σ²_run|| / ||σ²_run||  or  ||ψ²_B − ψ²_run|| / ||ψ²_run|| (see key)";
    if (relative)
        return var ? "||σ²_B − σ²_run|| / ||σ²_run||" : "||ψ²_B − ψ²_run|| / ||ψ²_run||";
    if (var && psi2)
        return "(1/d)||σ²_B − σ²_run||₂  or  (1/d)||ψ²_B − ψ²_run||₂ (see key)";
    return var ? "(1/d)||σ²_B − σ²_run||₂" : "(1/d)||ψ²_B − ψ²_run||₂";
}

/* One panel: column `col` raw (faint) and column `col + 2` smoothed (bold), per run; a seed
 * group as its band (column `band_col`: mean, min, max) and mean. */
static void plot_panel(FILE *gp, const Run *runs, const int *block, const NsLog *logs, int n,
                       int col, int band_col, int stat_in_key, size_t every)
{
    char q[256], title[200], style[160];
    const char *sep = "    plot ";
    for (int i = 0; i < n; i++) {
        const Run *r = &runs[i];
        if (!r->ok || (r->size > 1 && r->lead != i))
            continue;
        char label[128];
        if (r->size > 1)
            ns_group_label(label, sizeof label, logs[i].label);
        else
            snprintf(label, sizeof label, "%s", logs[i].label);
        snprintf(title, sizeof title, "%s%s%s", label, stat_in_key ? ": " : "",
                 stat_in_key ? (strcmp(r->stat, "var") == 0 ? "σ²" : "ψ²") : "");
        ns_gp_run_points(style, sizeof style, i, every);
        if (r->size > 1) {
            snprintf(title + strlen(title), sizeof title - strlen(title),
                     ", mean of %d seeds (band: min-max)", r->size);
            fprintf(gp,
                    "%sdat index %d using 1:(pos($%d)):(pos($%d)) with filledcurves "
                    "fc rgb run_faint(%d) fs solid 0.5 noborder notitle, \\\n"
                    "         dat index %d using 1:(pos($%d)) with linespoints lw 2.5 %s "
                    "title %s",
                    sep, r->band, band_col + 1, band_col + 2, i, r->band, band_col, style,
                    ns_gp_quote(q, sizeof q, title));
        } else {
            fprintf(gp,
                    "%sdat index %d using 1:(pos($%d)) with lines lw 1 lc rgb run_faint(%d) "
                    "notitle, \\\n"
                    "         dat index %d using 1:(pos($%d)) with linespoints lw 2.5 %s "
                    "title %s",
                    sep, block[i], col, i, block[i], col + 2, style,
                    ns_gp_quote(q, sizeof q, title));
        }
        sep = ", \\\n         ";
    }
    fprintf(gp, "\n");
}

/* The range a panel shows: the smoothed curves (and bands) of the runs drawn, and their raw
 * values, so neither is clipped. */
static void panel_range(FILE *gp, const Run *runs, int n, int k)
{
    NsRange range;
    ns_range_init(&range);
    for (int i = 0; i < n; i++)
        if (runs[i].ok)
            ns_range_add(&range, k ? runs[i].dist.y : runs[i].mean.y, runs[i].mean.n);
    range.nonpos = 0; /* pos() drops values <= 0 from the log axis */
    ns_gp_yrange(gp, &range, 1);
}

static void write_script(NsFig *f, const Run *runs, const int *block, const NsLog *logs, int n,
                         const char *site, size_t w, int relative, size_t every)
{
    char q[1200], title[1000];
    snprintf(title, sizeof title,
             "Distance of batch statistics from running statistics at norm site %s "
             "(PowerNorm paper Fig. 2)\nfaint: every step; bold: trailing mean over %zu steps",
             site, w);
    fprintf(f->gp, "    set multiplot layout 2,1 title %s\n", ns_gp_quote(q, sizeof q, title));
    fprintf(f->gp, "    set key top right\n    set xtics format \"%%g\"\n");
    ns_gp_axes(f->gp, "batch mean vs running mean", "training step",
               relative ? "||μ_B − μ_run|| / ||μ_run||" : "(1/d)||μ_B − μ_run||₂", 1);
    panel_range(f->gp, runs, n, 0);
    plot_panel(f->gp, runs, block, logs, n, 2, 2, 0, every);
    ns_gp_axes(f->gp, "batch variance (or quadratic mean ψ² for power schemes) vs running value",
               "training step", dist_label(runs, n, relative), 1);
    panel_range(f->gp, runs, n, 1);
    plot_panel(f->gp, runs, block, logs, n, 3, 5, 1, every);
}

int ns_plot_fluctuation(NsPlotJob *job, NsLog *logs, int n, char *err)
{
    char site[512];
    if (ns_plot_resolve_site(logs, n, &job->opt, site, sizeof site, err) < 0)
        return -1;
    Run *runs = ns_xcalloc((size_t)n, sizeof(Run));
    int *block = ns_xcalloc((size_t)n, sizeof(int));
    int kept = 0;
    size_t longest = 0;
    int *ok = ns_xcalloc((size_t)n, sizeof(int)), *lead = ns_xcalloc((size_t)n, sizeof(int)),
        *size = ns_xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        ok[i] = runs[i].ok = load_run(&runs[i], &logs[i], site, &job->opt);
        kept += runs[i].ok;
        if (runs[i].ok && runs[i].mean.n > longest)
            longest = runs[i].mean.n;
    }
    ns_seed_bands(logs, n, ok, lead, size);
    for (int i = 0; i < n; i++)
        runs[i].lead = lead[i], runs[i].size = size[i];
    free(ok), free(lead), free(size);
    int rc = -1;
    NsFig f;
    if (kept == 0) {
        ns_fail(err, "no run has the batch-statistics distances at norm site '%s' (%s)", site,
                NS_HINT_BATCH_STATS);
    } else if (ns_fig_open(&f, job, NULL, "batch vs running statistics per step", err) == 0) {
        size_t w = ns_smoothing_window(longest); /* one window for all runs: comparable */
        for (int i = 0; i < n; i++)
            if (runs[i].ok)
                block[i] = write_block(&f, i, &logs[i], &runs[i], w);
        for (int i = 0; i < n; i++)
            if (runs[i].ok && runs[i].size > 1 && runs[i].lead == i)
                runs[i].band = write_band(&f, logs, runs, n, i);
        write_script(&f, runs, block, logs, n, site, w, job->opt.relative, longest / 10 + 1);
        rc = ns_fig_close(&f, err);
    }
    for (int i = 0; i < n; i++) {
        ns_series_free(&runs[i].mean);
        ns_series_free(&runs[i].dist);
        free(runs[i].avg[0]);
        free(runs[i].avg[1]);
    }
    free(runs);
    free(block);
    return rc;
}
