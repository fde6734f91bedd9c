/* Paper Fig. 2: how far the statistics of each batch stray from the running statistics used at
 * inference, at one norm site, over training. Top panel: the mean, (1/d)||mu_B - mu_run||; bottom:
 * the variance (1/d)||sigma2_B - sigma2_run|| or, for the power schemes that normalize by the
 * quadratic mean, (1/d)||psi2_B - psi2_run|| (per run unless --stat says otherwise). Large,
 * spiky distances are the paper's argument against batch statistics in Transformers.
 *
 * Every step is drawn faintly and a trailing moving average boldly: the raw data stays visible
 * and the smoothing is stated in the title. Both y axes are logarithmic, as in the paper. */
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
    double *am = ns_xmalloc(sizeof(double) * (n ? n : 1));
    double *ad = ns_xmalloc(sizeof(double) * (n ? n : 1));
    ns_moving_average(r->mean.y, n, w, am);
    ns_moving_average(r->dist.y, n, w, ad);
    for (size_t i = 0; i < n; i++) {
        double row[5] = {r->mean.x[i], r->mean.y[i], r->dist.y[i], am[i], ad[i]};
        ns_fig_row(f, row, 5);
    }
    free(am);
    free(ad);
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

/* One panel: column `col` raw (faint) and column `col + 2` smoothed (bold), per run. */
static void plot_panel(FILE *gp, const Run *runs, const int *block, const NsLog *logs, int n,
                       int col, int stat_in_key)
{
    char q[256], title[200];
    const char *sep = "    plot ";
    for (int i = 0; i < n; i++) {
        if (!runs[i].ok)
            continue;
        snprintf(title, sizeof title, "%s%s%s", logs[i].label, stat_in_key ? ": " : "",
                 stat_in_key ? (strcmp(runs[i].stat, "var") == 0 ? "σ²" : "ψ²") : "");
        fprintf(gp,
                "%sdat index %d using 1:(pos($%d)) with lines lw 1 lc rgb run_faint(%d) "
                "notitle, \\\n"
                "         dat index %d using 1:(pos($%d)) with lines lw 2.5 lc rgb "
                "run_color(%d) title %s",
                sep, block[i], col, i, block[i], col + 2, i, ns_gp_quote(q, sizeof q, title));
        sep = ", \\\n         ";
    }
    fprintf(gp, "\n");
}

static void write_script(NsFig *f, const Run *runs, const int *block, const NsLog *logs, int n,
                         const char *site, size_t w, int relative)
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
    plot_panel(f->gp, runs, block, logs, n, 2, 0);
    ns_gp_axes(f->gp, "batch variance (or quadratic mean ψ² for power schemes) vs running value",
               "training step", dist_label(runs, n, relative), 1);
    plot_panel(f->gp, runs, block, logs, n, 3, 1);
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
    for (int i = 0; i < n; i++) {
        runs[i].ok = load_run(&runs[i], &logs[i], site, &job->opt);
        kept += runs[i].ok;
        if (runs[i].ok && runs[i].mean.n > longest)
            longest = runs[i].mean.n;
    }
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
        write_script(&f, runs, block, logs, n, site, w, job->opt.relative);
        rc = ns_fig_close(&f, err);
    }
    for (int i = 0; i < n; i++) {
        ns_series_free(&runs[i].mean);
        ns_series_free(&runs[i].dist);
    }
    free(runs);
    free(block);
    return rc;
}
