/* The paper's Figure 2 as it drew it: the first batch-norm site of a vision run (a CNN recorded
 * with the PyTorch recorder: examples/cnn_bn.py) beside the first site of a Transformer run,
 * how far each batch's statistics stray from the running ones over the percent of training.
 * Top row the mean, bottom row the variance; left the absolute distances (1/d)||stat_B - run||,
 * right the scale-free ||stat_B - run|| / ||run|| (absolute distances grow with the input's
 * scale, which differs between the two networks). Each run is drawn faintly at every step and
 * boldly as a trailing moving average; x is the percent of the run's recorded steps, so runs
 * of different lengths share the axis as the paper's panels do. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "util.h"

#define FIG "plot figure2"
#define N_STATS 4

static const char *const STAT[N_STATS] = {"dist_mean", "rel_dist_mean", "dist_var",
                                          "rel_dist_var"};

typedef struct {
    char site[NS_RUNLOG_PATH_LEN];
    NsSeries s[N_STATS];
    double *avg[N_STATS];
    size_t n;
} Run;

static void free_run(Run *r)
{
    for (int k = 0; k < N_STATS; k++) {
        ns_series_free(&r->s[k]);
        free(r->avg[k]);
    }
}

/* The run's first norm site (model order) and its four distances. */
static int load_run(Run *r, const NsLog *log, char *err)
{
    char **sites;
    int n = ns_log_sites(log, &sites);
    if (n > 0)
        snprintf(r->site, sizeof r->site, "%s", sites[0]);
    ns_log_free_sites(sites, n);
    if (n == 0)
        return ns_fail(err, "run log '%s' records no norm site (%s)", log->path,
                       NS_HINT_BATCH_STATS);
    char x[NS_RUNLOG_PATH_LEN], y[NS_RUNLOG_PATH_LEN];
    ns_runlog_site_path(x, sizeof x, r->site, NS_RUNLOG_STEP);
    r->n = (size_t)-1;
    for (int k = 0; k < N_STATS; k++) {
        ns_runlog_site_path(y, sizeof y, r->site, STAT[k]);
        if (!ns_series_load(&r->s[k], log, x, y, FIG, NS_HINT_BATCH_STATS))
            return ns_fail(err, "run log '%s' lacks %s at its first norm site '%s' (%s)",
                           log->path, STAT[k], r->site, NS_HINT_BATCH_STATS);
        if (r->s[k].n < r->n)
            r->n = r->s[k].n;
    }
    if (r->n == 0)
        return ns_fail(err, "run log '%s' has no step at norm site '%s'", log->path, r->site);
    return 0;
}

/* One block per run: percent of training, the four distances, their moving averages. */
static int write_block(NsFig *f, int run, const NsLog *log, Run *r)
{
    size_t w = ns_smoothing_window(r->n);
    char cols[300];
    snprintf(cols, sizeof cols, "percent dist_mean rel_dist_mean dist_var rel_dist_var "
                                "(then their trailing means over %zu steps)", w);
    int block = ns_fig_block(f, run, log, NULL, cols);
    for (int k = 0; k < N_STATS; k++) {
        r->avg[k] = ns_xmalloc(sizeof(double) * r->n);
        ns_moving_average(r->s[k].y, r->n, w, r->avg[k]);
    }
    double last = r->s[0].x[r->n - 1];
    for (size_t i = 0; i < r->n; i++) {
        double row[1 + 2 * N_STATS];
        row[0] = last > 0 ? 100.0 * r->s[0].x[i] / last : 0.0;
        for (int k = 0; k < N_STATS; k++) {
            row[1 + k] = r->s[k].y[i];
            row[1 + N_STATS + k] = r->avg[k][i];
        }
        ns_fig_row(f, row, 1 + 2 * N_STATS);
    }
    ns_fig_end_block(f);
    return block;
}

/* One panel: statistic k of both runs, raw faintly and smoothed boldly. */
static void panel(FILE *gp, const Run *runs, const int *block, const NsLog *logs, int k)
{
    static const char *const TITLE[N_STATS] = {
        "batch mean vs running mean", "batch mean vs running mean, relative",
        "batch variance vs running variance", "batch variance vs running variance, relative"};
    static const char *const YLABEL[N_STATS] = {
        "(1/d)||μ_B − μ_run||₂", "||μ_B − μ_run|| / ||μ_run||", "(1/d)||σ²_B − σ²_run||₂",
        "||σ²_B − σ²_run|| / ||σ²_run||"};
    ns_gp_axes(gp, TITLE[k], "percent of training", YLABEL[k], 1);
    NsRange range;
    ns_range_init(&range);
    for (int i = 0; i < 2; i++)
        ns_range_add(&range, runs[i].s[k].y, runs[i].n);
    range.nonpos = 0; /* pos() drops values <= 0 from the log axis */
    ns_gp_yrange(gp, &range, 1);
    char q[800], title[700], style[160];
    for (int i = 0; i < 2; i++) {
        snprintf(title, sizeof title, "%s %.200s: %.300s", i ? "Transformer" : "vision",
                 logs[i].label, runs[i].site);
        ns_gp_run_points(style, sizeof style, i, runs[i].n / 10 + 1);
        fprintf(gp, "%sdat index %d using 1:(pos($%d)) with lines lw 1 lc rgb run_faint(%d) "
                    "notitle, \\\n         dat index %d using 1:(pos($%d)) with linespoints "
                    "lw 2.5 %s title %s%s",
                i ? "         " : "    plot ", block[i], 2 + k, i, block[i], 2 + N_STATS + k,
                style, ns_gp_quote(q, sizeof q, title), i ? "\n" : ", \\\n");
    }
}

int ns_plot_figure2(NsPlotJob *job, NsLog *logs, int n, char *err)
{
    if (n != 2)
        return ns_fail(err, "plot figure2 takes two run logs, a vision run then a Transformer "
                            "run (normscope plot figure2 CNN.h5 LM.h5), not %d", n);
    Run runs[2];
    memset(runs, 0, sizeof runs);
    int rc = load_run(&runs[0], &logs[0], err) < 0 || load_run(&runs[1], &logs[1], err) < 0
                 ? -1 : 0;
    NsFig f;
    if (rc == 0 && ns_fig_open(&f, job, NULL, "first norm site of a vision and a Transformer "
                                              "run (paper Fig. 2)", err) == 0) {
        int block[2] = {write_block(&f, 0, &logs[0], &runs[0]),
                        write_block(&f, 1, &logs[1], &runs[1])};
        char q[800];
        fprintf(f.gp, "    set multiplot layout 2,2 title %s\n",
                ns_gp_quote(q, sizeof q, "Distance of batch statistics from running statistics "
                                         "at the first norm site (PowerNorm paper Fig. 2)\n"
                                         "faint: every step; bold: trailing mean"));
        fprintf(f.gp, "    set key top right\n    set xrange [0:100]\n");
        for (int k = 0; k < N_STATS; k++)
            panel(f.gp, runs, block, logs, k);
        rc = ns_fig_close(&f, err);
    } else {
        rc = -1;
    }
    free_run(&runs[0]);
    free_run(&runs[1]);
    return rc;
}
