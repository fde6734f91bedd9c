/* The Hessian's spectrum over training (PyHessian's three measures, recorded by the smoothness
 * probe under /lipschitz), three panels:
 *   the eigenvalue density at each run's last measurement: stochastic Lanczos quadrature nodes
 *     and weights (density_nodes, density_weights), each node spread into a Gaussian of width
 *     sigma = 1 % of the spread of all runs' nodes, averaged over the quadrature runs, so every
 *     curve integrates to 1 (log y axis over six decades: the bulk near 0 and the outliers
 *     both show);
 *   the top eigenvalue (largest magnitude, Lanczos) vs step;
 *   the trace (Hutchinson) vs step.
 * A run without the top eigenvalue is skipped; one without density or trace shows in the
 * other panels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "stats.h"
#include "util.h"

#define FIG "plot hessian"
#define GRID_POINTS 400

typedef struct {
    int ok, has_trace, density_runs;
    double density_peak;
    NsSeries eig, trace;
    float *nodes, *weights; /* the last row, cols of each */
    size_t cols;
    int eig_block, trace_block, density_block;
} Run;

/* The last row of the quadrature and the number of runs in it (cols / --density-steps). */
static void load_density(Run *r, const NsLog *log)
{
    char err[NS_ERRLEN], n[NS_RUNLOG_PATH_LEN], w[NS_RUNLOG_PATH_LEN];
    size_t rows = 0, cols = 0, wrows = 0, wcols = 0;
    long steps = 0;
    ns_runlog_path(n, sizeof n, NS_RUNLOG_LIPSCHITZ, "density_nodes");
    ns_runlog_path(w, sizeof w, NS_RUNLOG_LIPSCHITZ, "density_weights");
    if (!ns_log_has(log, n) || ns_log_attr_long(log, "density_steps", &steps) < 0)
        return;
    if (steps == 0 && ns_log_attr_long(log, "hessian_iters", &steps) < 0) /* 0: the same */
        return;
    if (steps < 1)
        return;
    float *nodes = ns_log_read_matrix(log, n, &rows, &cols, err);
    float *weights = ns_log_read_matrix(log, w, &wrows, &wcols, err);
    if (nodes && weights && rows > 0 && rows == wrows && cols == wcols && cols % steps == 0) {
        r->cols = cols;
        r->density_runs = (int)(cols / (size_t)steps);
        r->nodes = ns_xmalloc(sizeof(float) * cols);
        r->weights = ns_xmalloc(sizeof(float) * cols);
        memcpy(r->nodes, nodes + (rows - 1) * cols, sizeof(float) * cols);
        memcpy(r->weights, weights + (rows - 1) * cols, sizeof(float) * cols);
    } else {
        ns_plot_warn_skip(log, FIG " (density)", "its density_nodes/density_weights do not match");
    }
    free(nodes);
    free(weights);
}

static int load_run(Run *r, const NsLog *log)
{
    char x[NS_RUNLOG_PATH_LEN], y[NS_RUNLOG_PATH_LEN];
    ns_runlog_path(x, sizeof x, NS_RUNLOG_LIPSCHITZ, NS_RUNLOG_STEP);
    ns_runlog_path(y, sizeof y, NS_RUNLOG_LIPSCHITZ, "hessian_top_eig");
    if (!ns_series_load(&r->eig, log, x, y, FIG, NS_HINT_LIPSCHITZ))
        return 0;
    ns_runlog_path(y, sizeof y, NS_RUNLOG_LIPSCHITZ, "hessian_trace");
    r->has_trace = ns_log_has(log, y) &&
                   ns_series_load(&r->trace, log, x, y, FIG " (trace)",
                                  "--hutchinson-samples N > 0 records it");
    load_density(r, log);
    return 1;
}

/* The common lambda range of every run's nodes. */
static NsRange node_range(const Run *runs, int n)
{
    NsRange range;
    ns_range_init(&range);
    for (int i = 0; i < n; i++)
        for (size_t j = 0; runs[i].ok && j < runs[i].cols; j++) {
            double v = runs[i].nodes[j];
            ns_range_add(&range, &v, 1);
        }
    return range;
}

static void write_density(NsFig *f, int run, const NsLog *log, Run *r, const NsRange *range)
{
    double spread = range->max - range->min, sigma = 0.01 * (spread > 0 ? spread : 1.0);
    double lo = range->min - 5 * sigma, hi = range->max + 5 * sigma;
    r->density_block = ns_fig_block(f, run, log, "eigenvalue density at the last measurement "
                                    "(Gaussian-broadened quadrature)", "lambda density");
    for (int g = 0; g < GRID_POINTS; g++) {
        double lambda = lo + (hi - lo) * g / (GRID_POINTS - 1), d = 0.0;
        for (size_t j = 0; j < r->cols; j++) {
            double z = (lambda - r->nodes[j]) / sigma;
            if (isfinite(z))
                d += r->weights[j] * exp(-0.5 * z * z) / (sigma * sqrt(2.0 * M_PI));
        }
        double row[2] = {lambda, d / r->density_runs};
        r->density_peak = fmax(r->density_peak, row[1]);
        ns_fig_row(f, row, 2);
    }
    ns_fig_end_block(f);
}

static int write_series(NsFig *f, int run, const NsLog *log, const NsSeries *s, const char *cols)
{
    int block = ns_fig_block(f, run, log, NULL, cols);
    for (size_t i = 0; i < s->n; i++) {
        double row[2] = {s->x[i], s->y[i]};
        ns_fig_row(f, row, 2);
    }
    ns_fig_end_block(f);
    return block;
}

/* One panel: runs[i]'s block chosen by `which` (0 density, 1 eigenvalue, 2 trace). */
static void panel(FILE *gp, const Run *runs, const NsLog *logs, int n, int which)
{
    static const char *const title[3] = {
        "Hessian eigenvalue density at the last measurement (stochastic Lanczos quadrature)",
        "top Hessian eigenvalue (largest magnitude, Lanczos)",
        "Hessian trace (Hutchinson)"};
    static const char *const xlabel[3] = {"eigenvalue λ", "training step", "training step"};
    static const char *const ylabel[3] = {"density", "λ_max", "tr H"};
    const char *sep = "    plot ";
    char q[256], style[160];
    ns_gp_axes(gp, title[which], xlabel[which], ylabel[which], which == 0);
    fprintf(gp, "    %s\n", which ? "set xzeroaxis lt -1" : "unset xzeroaxis");
    double peak = 0.0; /* density: six decades below the highest peak, not the far tails */
    for (int i = 0; which == 0 && i < n; i++)
        peak = runs[i].ok ? fmax(peak, runs[i].density_peak) : peak;
    if (peak > 0)
        fprintf(gp, "    set yrange [%g:%g]\n", 1e-6 * peak, 3.0 * peak);
    else
        fprintf(gp, "    set autoscale y\n");
    int drawn = 0;
    for (int i = 0; i < n; i++) {
        const Run *r = &runs[i];
        int block = which == 0 ? r->density_block : which == 1 ? r->eig_block : r->trace_block;
        if (!r->ok || block < 0)
            continue;
        fprintf(gp, "%sdat index %d using 1:%s with %s lw 2 %s title %s", sep, block,
                which == 0 ? "(pos($2))" : "2", which == 0 ? "lines" : "linespoints",
                ns_gp_run_style(style, sizeof style, i, which == 0 ? 40 : 1),
                ns_gp_quote(q, sizeof q, logs[i].label));
        sep = ", \\\n         ";
        drawn++;
    }
    fprintf(gp, "\n");
    if (!drawn)
        ns_gp_empty_panel(gp, title[which], which == 0 ? "no run recorded a density "
                                                         "(--density-runs N > 0)"
                                                       : "no run recorded a trace "
                                                         "(--hutchinson-samples N > 0)");
}

static void free_run(Run *r)
{
    ns_series_free(&r->eig);
    ns_series_free(&r->trace);
    free(r->nodes);
    free(r->weights);
}

int ns_plot_hessian(NsPlotJob *job, NsLog *logs, int n, char *err)
{
    Run *runs = ns_xcalloc((size_t)n, sizeof(Run));
    int kept = 0, rc = -1;
    for (int i = 0; i < n; i++)
        kept += runs[i].ok = load_run(&runs[i], &logs[i]);
    NsFig f;
    if (kept == 0)
        ns_fail(err, "no run has the Hessian measures (/lipschitz; %s)", NS_HINT_LIPSCHITZ);
    else if (ns_fig_open(&f, job, NULL, "Hessian spectrum over training", err) == 0) {
        NsRange range = node_range(runs, n);
        for (int i = 0; i < n; i++) {
            Run *r = &runs[i];
            r->density_block = r->trace_block = r->eig_block = -1;
            if (!r->ok)
                continue;
            if (r->cols && range.count)
                write_density(&f, i, &logs[i], r, &range);
            r->eig_block = write_series(&f, i, &logs[i], &r->eig, "step hessian_top_eig");
            if (r->has_trace)
                r->trace_block = write_series(&f, i, &logs[i], &r->trace, "step hessian_trace");
        }
        fprintf(f.gp, "    set multiplot layout 3,1 title \"Hessian spectrum over training\"\n"
                      "    set key outside right top\n");
        for (int p = 0; p < 3; p++)
            panel(f.gp, runs, logs, n, p);
        rc = ns_fig_close(&f, err);
    }
    for (int i = 0; i < n; i++)
        free_run(&runs[i]);
    free(runs);
    return rc;
}
