/* Smoothness of the loss landscape over training (the paper's Lipschitz argument for PN): three
 * panels vs step, each probe measured along the update direction -g0 on a grid of step sizes r:
 *   beta-smoothness        max_r ||g(theta + r u) - g0|| / r,
 *   gradient predictiveness max_r ||g(theta + r u) - g0||,
 *   top Hessian eigenvalue (largest magnitude, power iteration; may be negative).
 * A y axis is logarithmic only when its values are positive and span a decade or more; the
 * eigenvalue panel draws the zero line. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "stats.h"
#include "util.h"

#define FIG "plot lipschitz"

static const struct {
    const char *name, *title, *ylabel;
} PANELS[3] = {
    {"beta_smoothness", "β-smoothness: max over r of ||g(θ + r·u) − g(θ)||₂ / r along u = −g/||g||",
     "β (1/length)"},
    {"grad_predictiveness", "gradient predictiveness: max over r of ||g(θ + r·u) − g(θ)||₂",
     "||Δg||₂"},
    {"hessian_top_eig", "largest-magnitude Hessian eigenvalue (power iteration)", "λ_max"},
};

typedef struct {
    int ok;
    NsSeries s[3];
} Run;

static int load_run(Run *r, const NsLog *log)
{
    char x[NS_RUNLOG_PATH_LEN], y[NS_RUNLOG_PATH_LEN];
    ns_runlog_path(x, sizeof x, NS_RUNLOG_LIPSCHITZ, NS_RUNLOG_STEP);
    for (int p = 0; p < 3; p++) {
        ns_runlog_path(y, sizeof y, NS_RUNLOG_LIPSCHITZ, PANELS[p].name);
        if (!ns_series_load(&r->s[p], log, x, y, FIG, NS_HINT_LIPSCHITZ)) {
            for (int k = 0; k < p; k++)
                ns_series_free(&r->s[k]);
            return 0;
        }
    }
    return 1;
}

static int write_block(NsFig *f, int run, const NsLog *log, const Run *r)
{
    int block = ns_fig_block(f, run, log, NULL,
                             "step beta_smoothness grad_predictiveness hessian_top_eig");
    size_t n = r->s[0].n;
    for (int p = 1; p < 3; p++)
        n = r->s[p].n < n ? r->s[p].n : n;
    for (size_t i = 0; i < n; i++) {
        double row[4] = {r->s[0].x[i], r->s[0].y[i], r->s[1].y[i], r->s[2].y[i]};
        ns_fig_row(f, row, 4);
    }
    ns_fig_end_block(f);
    return block;
}

static void panel(FILE *gp, const Run *runs, const int *block, const NsLog *logs, int n, int p)
{
    NsRange range;
    ns_range_init(&range);
    for (int i = 0; i < n; i++)
        if (runs[i].ok)
            ns_range_add(&range, runs[i].s[p].y, runs[i].s[p].n);
    int logy = ns_range_log(&range);
    ns_gp_axes(gp, PANELS[p].title, "training step", PANELS[p].ylabel, logy);
    ns_gp_yrange(gp, &range, logy);
    fprintf(gp, "    %s\n", p == 2 ? "set xzeroaxis lt -1" : "unset xzeroaxis");
    const char *sep = "    plot ";
    char q[256];
    for (int i = 0; i < n; i++) {
        if (!runs[i].ok)
            continue;
        fprintf(gp, "%sdat index %d using 1:(%s$%d%s) with linespoints lw 2 ps 0.7 "
                    "lc rgb run_color(%d) dt run_dt(%d) pt run_pt(%d) title %s",
                sep, block[i], logy ? "pos(" : "", p + 2, logy ? ")" : "", i, i, i,
                ns_gp_quote(q, sizeof q, logs[i].label));
        sep = ", \\\n         ";
    }
    fprintf(gp, "\n");
}

int ns_plot_lipschitz(NsPlotJob *job, NsLog *logs, int n, char *err)
{
    Run *runs = ns_xcalloc((size_t)n, sizeof(Run));
    int *block = ns_xcalloc((size_t)n, sizeof(int));
    int kept = 0, rc = -1;
    for (int i = 0; i < n; i++)
        kept += runs[i].ok = load_run(&runs[i], &logs[i]);
    NsFig f;
    if (kept == 0)
        ns_fail(err, "no run has the loss-smoothness probes (/lipschitz; %s)", NS_HINT_LIPSCHITZ);
    else if (ns_fig_open(&f, job, NULL, "loss smoothness along the update direction", err) == 0) {
        for (int i = 0; i < n; i++)
            if (runs[i].ok)
                block[i] = write_block(&f, i, &logs[i], &runs[i]);
        fprintf(f.gp, "    set multiplot layout 3,1 title \"Smoothness of the loss landscape "
                      "along the update direction\"\n    set key outside right top\n");
        for (int p = 0; p < 3; p++)
            panel(f.gp, runs, block, logs, n, p);
        rc = ns_fig_close(&f, err);
    }
    for (int i = 0; i < n; i++)
        for (int p = 0; p < 3; p++)
            ns_series_free(&runs[i].s[p]);
    free(runs);
    free(block);
    return rc;
}
