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
 * the data file).
 *
 * --tid draws the training-inference discrepancy instead (Wang, Wu, Huang, NeurIPS 2022:
 * tid_mean and tid_var or tid_psi2, in units of the batch's own spread), each run with its
 * sampling floor dashed: what a perfect running value leaves if the rows were independent normal
 * draws (docs/runlog.md), so a reader sees whether a discrepancy exceeds the batch's noise. */
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
    char name[2][40]; /* the two series: [rel_]dist_mean and [rel_]dist_<stat>, or tid_* */
    NsSeries mean, dist;
    NsSeries floor[2]; /* --tid: the two series' sampling floors */
    double *avg[2];   /* moving averages of mean and dist */
    double *floor_avg[2]; /* --tid: moving averages of the floors */
    int lead, size;   /* seed group: ns_seed_bands */
    int band;         /* block of the group's band (lead only) */
} Run;

/* Loads series `name` of the site into *out (after a warning when the run lacks it). */
static int load_site_series(NsSeries *out, const NsLog *log, const char *site, const char *name)
{
    char x[600], y[600];
    ns_runlog_site_path(x, sizeof x, site, NS_RUNLOG_STEP);
    ns_runlog_site_path(y, sizeof y, site, name);
    return ns_series_load(out, log, x, y, FIG, NS_HINT_BATCH_STATS);
}

/* Loads a run's two distances (and with --tid their floors) at the site; 0 (after a warning)
 * when it lacks them. */
static int load_run(Run *r, const NsLog *log, const char *site, const NsPlotOptions *opt)
{
    if (!ns_plot_site_check(log, site, FIG))
        return 0;
    r->stat = ns_plot_stat(log, opt);
    const char *rel = opt->relative ? "rel_" : "";
    if (opt->tid) {
        snprintf(r->name[0], sizeof r->name[0], "tid_mean");
        snprintf(r->name[1], sizeof r->name[1], "tid_%s", r->stat);
    } else {
        snprintf(r->name[0], sizeof r->name[0], "%sdist_mean", rel);
        snprintf(r->name[1], sizeof r->name[1], "%sdist_%s", rel, r->stat);
    }
    int ok = load_site_series(&r->mean, log, site, r->name[0]) &&
             load_site_series(&r->dist, log, site, r->name[1]);
    for (int k = 0; ok && opt->tid && k < 2; k++) {
        char floor[48];
        snprintf(floor, sizeof floor, "%s_floor", r->name[k]);
        ok = load_site_series(&r->floor[k], log, site, floor);
    }
    return ok;
}

/* One block per run: step, both distances, their moving averages, and with --tid the moving
 * averages of the two floors. Returns its index. */
static int write_block(NsFig *f, int run, const NsLog *log, Run *r, size_t w, int tid)
{
    char cols[300];
    snprintf(cols, sizeof cols, "step %s %s %s_avg%zu %s_avg%zu", r->name[0], r->name[1],
             r->name[0], w, r->name[1], w);
    if (tid)
        snprintf(cols + strlen(cols), sizeof cols - strlen(cols), " %s_floor_avg%zu "
                 "%s_floor_avg%zu", r->name[0], w, r->name[1], w);
    int block = ns_fig_block(f, run, log, NULL, cols);
    size_t n = r->mean.n < r->dist.n ? r->mean.n : r->dist.n;
    for (int k = 0; tid && k < 2; k++)
        n = r->floor[k].n < n ? r->floor[k].n : n;
    r->mean.n = r->dist.n = n;
    for (int k = 0; k < 2; k++) {
        r->avg[k] = ns_xmalloc(sizeof(double) * (n ? n : 1));
        ns_moving_average(k ? r->dist.y : r->mean.y, n, w, r->avg[k]);
        if (!tid)
            continue;
        r->floor_avg[k] = ns_xmalloc(sizeof(double) * (n ? n : 1));
        ns_moving_average(r->floor[k].y, n, w, r->floor_avg[k]);
    }
    for (size_t i = 0; i < n; i++) {
        double row[7] = {r->mean.x[i], r->mean.y[i], r->dist.y[i], r->avg[0][i], r->avg[1][i],
                         tid ? r->floor_avg[0][i] : 0.0, tid ? r->floor_avg[1][i] : 0.0};
        ns_fig_row(f, row, tid ? 7 : 5);
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
static const char *dist_label(const Run *runs, int n, int relative, int tid)
{
    int var = 0, psi2 = 0;
    for (int i = 0; i < n; i++)
        if (runs[i].ok) {
            var |= strcmp(runs[i].stat, "var") == 0;
            psi2 |= strcmp(runs[i].stat, "psi2") == 0;
        }
    if (tid && var && psi2)
        return "mean_c |σ_run/σ_B − 1|  or  mean_c |ψ_run/ψ_B − 1| (see key)";
    if (tid)
        return var ? "mean_c |σ_run/σ_B − 1|" : "mean_c |ψ_run/ψ_B − 1|";
    if (relative && var && psi2)
        return "||σ²_B − σ²_run|| / ||σ²_run||  or  ||ψ²_B − ψ²_run|| / ||ψ²_run|| (see key)";
    if (relative)
        return var ? "||σ²_B − σ²_run|| / ||σ²_run||" : "||ψ²_B − ψ²_run|| / ||ψ²_run||";
    if (var && psi2)
        return "(1/d)||σ²_B − σ²_run||₂  or  (1/d)||ψ²_B − ψ²_run||₂ (see key)";
    return var ? "(1/d)||σ²_B − σ²_run||₂" : "(1/d)||ψ²_B − ψ²_run||₂";
}

/* One panel: column `col` raw (faint) and column `col + 2` smoothed (bold), per run; a seed
 * group as its band (column `band_col`: mean, min, max) and mean; with floor_col > 0, each
 * run's (a seed group's first run's) smoothed floor in that column, dashed. */
static void plot_panel(FILE *gp, const Run *runs, const int *block, const NsLog *logs, int n,
                       int col, int band_col, int floor_col, int stat_in_key, size_t every)
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
        if (floor_col > 0)
            fprintf(gp, ", \\\n         dat index %d using 1:(pos($%d)) with lines lw 1.5 dt 2 "
                        "lc rgb run_faint(%d) notitle", block[i], floor_col, i);
        sep = ", \\\n         ";
    }
    fprintf(gp, "\n");
}

/* The range a panel shows: the smoothed curves (and bands) of the runs drawn, their raw values
 * and the floors, so none is clipped. */
static void panel_range(FILE *gp, const Run *runs, int n, int k)
{
    NsRange range;
    ns_range_init(&range);
    for (int i = 0; i < n; i++)
        if (runs[i].ok) {
            ns_range_add(&range, k ? runs[i].dist.y : runs[i].mean.y, runs[i].mean.n);
            if (runs[i].floor_avg[k]) /* --tid: the dashed floor stays in view too */
                ns_range_add(&range, runs[i].floor_avg[k], runs[i].mean.n);
        }
    range.nonpos = 0; /* pos() drops values <= 0 from the log axis */
    ns_gp_yrange(gp, &range, 1);
}

static void write_script(NsFig *f, const Run *runs, const int *block, const NsLog *logs, int n,
                         const char *site, size_t w, const NsPlotOptions *opt, size_t every)
{
    char q[1200], title[1000];
    int relative = opt->relative, tid = opt->tid;
    if (tid)
        snprintf(title, sizeof title,
                 "Training-inference discrepancy at norm site %s (Wang et al. 2022)\nfaint: "
                 "every step; bold: trailing mean over %zu steps; dashed: sampling floor "
                 "(assumes independent normal rows)", site, w);
    else
        snprintf(title, sizeof title,
                 "Distance of batch statistics from running statistics at norm site %s "
                 "(PowerNorm paper Fig. 2)\nfaint: every step; bold: trailing mean over %zu "
                 "steps", site, w);
    fprintf(f->gp, "    set multiplot layout 2,1 title %s\n", ns_gp_quote(q, sizeof q, title));
    fprintf(f->gp, "    set key top right\n    set xtics format \"%%g\"\n");
    ns_gp_axes(f->gp, "batch mean vs running mean", "training step",
               tid        ? "mean_c |μ_run − μ_B| / σ_B"
               : relative ? "||μ_B − μ_run|| / ||μ_run||"
                          : "(1/d)||μ_B − μ_run||₂", 1);
    panel_range(f->gp, runs, n, 0);
    plot_panel(f->gp, runs, block, logs, n, 2, 2, tid ? 6 : 0, 0, every);
    ns_gp_axes(f->gp, "batch variance (or quadratic mean ψ² for power schemes) vs running value",
               "training step", dist_label(runs, n, relative, tid), 1);
    panel_range(f->gp, runs, n, 1);
    plot_panel(f->gp, runs, block, logs, n, 3, 5, tid ? 7 : 0, 1, every);
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
                block[i] = write_block(&f, i, &logs[i], &runs[i], w, job->opt.tid);
        for (int i = 0; i < n; i++)
            if (runs[i].ok && runs[i].size > 1 && runs[i].lead == i)
                runs[i].band = write_band(&f, logs, runs, n, i);
        write_script(&f, runs, block, logs, n, site, w, &job->opt, longest / 10 + 1);
        rc = ns_fig_close(&f, err);
    }
    for (int i = 0; i < n; i++) {
        ns_series_free(&runs[i].mean);
        ns_series_free(&runs[i].dist);
        for (int k = 0; k < 2; k++) {
            ns_series_free(&runs[i].floor[k]);
            free(runs[i].avg[k]);
            free(runs[i].floor_avg[k]);
        }
    }
    free(runs);
    free(block);
    return rc;
}
