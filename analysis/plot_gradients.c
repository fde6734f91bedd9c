/* Gradients at each norm site (x axis, model order), one line per run: the paper's account of
 * why batch statistics hurt is the backward pass through mu_B and sigma2_B, so the panels show
 * the gradient contributions through mu_B (g_mu), sigma2_B (g_sigma2) and psi2_B (g_psi2), the
 * layer's gradient gain ||dL/dx|| / ||dL/dy|| (an empirical Lipschitz constant) and the largest
 * input gradient. Each point is the median over all recorded steps, its bar the 25th to 75th
 * percentile: a per-layer summary stays readable with many sites and runs, where one line per
 * site over steps would not. The sites are the union over the runs (a post-norm run has no
 * final_norm: its point there is missing, with a warning). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "stats.h"
#include "util.h"

#define FIG "plot gradients"
#define N_SERIES 5
#define N_COLS (1 + 3 * N_SERIES)

static const struct {
    const char *name, *title, *ylabel, *absent;
} SERIES[N_SERIES] = {
    {"g_mu", "through the batch mean μ_B (batch)", "(1/d)||∂L/∂μ_B||₂",
     "g_mu is recorded only for batch norm"},
    {"g_sigma2", "through the batch variance σ²_B (batch)", "(1/d)||∂L/∂σ²_B||₂",
     "g_sigma2 is recorded only for batch norm"},
    {"g_psi2", "through ψ²_B (power-v; power in warm-up)", "(1/d)||∂L/∂ψ²_B||₂",
     "g_psi2 is recorded only for power-v,\nand for power during its warm-up"},
    {"grad_gain", "gradient gain of the norm layer", "||∂L/∂x||_F / ||∂L/∂y||_F", ""},
    {"grad_in_max", "largest gradient at the norm input", "max |∂L/∂x|", ""},
};

typedef struct {
    int ok;
    double (*rows)[N_COLS]; /* per union site: index, then median, q1, q3 per series */
} Run;

/* Model order: layers/L/norm1, layers/L/norm2, ..., then final_norm. */
static long site_order(const char *site)
{
    long layer;
    int k;
    if (sscanf(site, "layers/%ld/norm%d", &layer, &k) == 2)
        return layer * 4 + k;
    return strcmp(site, "final_norm") == 0 ? 1L << 40 : (1L << 40) + 1;
}

/* Adds the sites of every run to the union (kept sorted in model order). */
static char **union_sites(NsLog *logs, int n, int *count)
{
    char **all = NULL;
    *count = 0;
    for (int i = 0; i < n; i++) {
        char **sites;
        int m = ns_log_sites(&logs[i], &sites);
        for (int k = 0; k < m; k++) {
            int j = 0;
            while (j < *count && strcmp(all[j], sites[k]) != 0)
                j++;
            if (j < *count)
                continue;
            all = ns_xrealloc(all, sizeof(char *) * (size_t)(*count + 1));
            int at = *count; /* insertion keeps model order */
            while (at > 0 && site_order(all[at - 1]) > site_order(sites[k]))
                all[at] = all[at - 1], at--;
            all[at] = ns_xstrdup(sites[k]);
            (*count)++;
        }
        ns_log_free_sites(sites, m);
    }
    return all;
}

/* Median and quartiles of one series at one site (NaN when absent). */
static void summarize(const NsLog *log, const char *site, const char *name, double *out)
{
    char path[600], err[NS_ERRLEN];
    size_t m = 0;
    out[0] = out[1] = out[2] = NAN;
    ns_runlog_site_path(path, sizeof path, site, name);
    double *y = ns_log_has(log, path) ? ns_log_read_series(log, path, &m, err) : NULL;
    if (!y)
        return;
    out[0] = ns_median(y, m);
    out[1] = ns_quantile(y, m, 0.25);
    out[2] = ns_quantile(y, m, 0.75);
    free(y);
}

static int load_run(Run *r, const NsLog *log, char **sites, int n_sites)
{
    char path[600], missing[400] = "";
    int found = 0;
    r->rows = ns_xcalloc((size_t)n_sites, sizeof *r->rows);
    for (int s = 0; s < n_sites; s++) {
        r->rows[s][0] = s;
        ns_runlog_site_path(path, sizeof path, sites[s], "grad_gain");
        if (!ns_log_has(log, path)) {
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", sites[s]);
            for (int j = 1; j < N_COLS; j++)
                r->rows[s][j] = NAN;
            continue;
        }
        found++;
        for (int j = 0; j < N_SERIES; j++)
            summarize(log, sites[s], SERIES[j].name, &r->rows[s][1 + 3 * j]);
    }
    if (!found) {
        char what[200];
        snprintf(what, sizeof what, "no gradient probes under /norms (%s)", NS_HINT_GRADIENTS);
        ns_plot_warn_skip(log, FIG, what);
    } else if (missing[0]) {
        fprintf(stderr, "normscope: warning: %s: run '%s' (%s) has no norm site %s: its points "
                        "there are missing\n", FIG, log->path, log->label, missing);
    }
    return found > 0;
}

static int run_has(const Run *r, int n_sites, int j)
{
    for (int s = 0; r->ok && s < n_sites; s++)
        if (isfinite(r->rows[s][1 + 3 * j]))
            return 1;
    return 0;
}

/* One panel: series j of every run that has it, or a note saying why there is none. Keys are
 * left to the legend panel, so curves are never hidden behind one. */
static void panel(FILE *gp, const Run *runs, const int *block, int n, int kept, char **sites,
                  int n_sites, int j)
{
    NsRange range;
    ns_range_init(&range);
    for (int i = 0; i < n; i++)
        for (int s = 0; runs[i].ok && s < n_sites; s++)
            ns_range_add(&range, &runs[i].rows[s][1 + 3 * j], 3);
    char title[200];
    snprintf(title, sizeof title, "%s: %s", SERIES[j].name, SERIES[j].title);
    if (range.count == 0) {
        ns_gp_empty_panel(gp, title, SERIES[j].absent);
        return;
    }
    ns_gp_axes(gp, title, "norm site", SERIES[j].ylabel, ns_range_log(&range));
    /* every panel sets its site labels: an empty panel before it resets the tics */
    fprintf(gp, "    set xrange [-0.5:%d.5]\n    set xtics rotate by 45 right (", n_sites - 1);
    for (int s = 0; s < n_sites; s++) {
        char label[256], q[300];
        ns_plot_site_label(sites[s], label, sizeof label);
        fprintf(gp, "%s%s %d", s ? ", " : "", ns_gp_quote(q, sizeof q, label), s);
    }
    fprintf(gp, ")\n");
    const char *sep = "    plot ";
    double step = 0.6 / kept < 0.12 ? 0.6 / kept : 0.12; /* side by side, never overlapping */
    for (int i = 0, pos = 0; i < n; i++) {
        if (!runs[i].ok)
            continue;
        double off = (pos++ - (kept - 1) / 2.0) * step;
        if (!run_has(&runs[i], n_sites, j))
            continue;
        fprintf(gp,
                "%sdat index %d using ($1%+.3f):(pos($%d)):(pos($%d)):(pos($%d)) with "
                "yerrorlines lw 1.5 ps 0.8 lc rgb run_color(%d) dt run_dt(%d) pt run_pt(%d) notitle",
                sep, block[i], off, 2 + 3 * j, 3 + 3 * j, 4 + 3 * j, i, i, i);
        sep = ", \\\n         ";
    }
    fprintf(gp, "\n");
}

/* The sixth cell of the 2x3 layout: the key alone (panel titles say which schemes record which
 * series; a run without a series has no curve in that panel). */
static void legend_panel(FILE *gp, const Run *runs, const NsLog *logs, int n)
{
    char q[400];
    fprintf(gp, "    # legend cell: only the key, drawn from undefined points\n"
                "    unset title\n    unset border\n    unset tics\n    unset xlabel\n"
                "    unset ylabel\n    unset logscale y\n    set xrange [0:1]\n"
                "    set yrange [0:1]\n    set key center center reverse Left box "
                "title \"runs\"\n");
    const char *sep = "    plot ";
    for (int i = 0; i < n; i++) {
        if (!runs[i].ok)
            continue;
        fprintf(gp, "%sNaN with linespoints lw 1.5 ps 0.8 lc rgb run_color(%d) dt run_dt(%d) "
                    "pt run_pt(%d) title %s", sep, i, i, i, ns_gp_quote(q, sizeof q, logs[i].label));
        sep = ", \\\n         ";
    }
    fprintf(gp, "\n");
}

static void write_figure(NsFig *f, const Run *runs, const NsLog *logs, int n, int kept,
                         char **sites, int n_sites)
{
    int *block = ns_xcalloc((size_t)n, sizeof(int));
    char cols[400] = "site", note[1200] = "sites:";
    for (int j = 0; j < N_SERIES; j++)
        snprintf(cols + strlen(cols), sizeof cols - strlen(cols), " %s_median %s_q1 %s_q3",
                 SERIES[j].name, SERIES[j].name, SERIES[j].name);
    for (int s = 0; s < n_sites; s++)
        snprintf(note + strlen(note), sizeof note - strlen(note), " %d=%s", s, sites[s]);
    for (int i = 0; i < n; i++) {
        if (!runs[i].ok)
            continue;
        block[i] = ns_fig_block(f, i, &logs[i], note, cols);
        for (int s = 0; s < n_sites; s++)
            ns_fig_row(f, runs[i].rows[s], N_COLS);
        ns_fig_end_block(f);
    }
    fprintf(f->gp, "    set multiplot layout 2,3 title \"Gradients at each norm site: median "
                   "over all recorded steps, bars from the 25th to the 75th percentile\"\n");
    fprintf(f->gp, "    unset key\n");
    for (int j = 0; j < N_SERIES; j++)
        panel(f->gp, runs, block, n, kept, sites, n_sites, j);
    legend_panel(f->gp, runs, logs, n);
    free(block);
}

int ns_plot_gradients(NsPlotJob *job, NsLog *logs, int n, char *err)
{
    int n_sites = 0, kept = 0, rc = -1;
    char **sites = union_sites(logs, n, &n_sites);
    Run *runs = ns_xcalloc((size_t)n, sizeof(Run));
    for (int i = 0; i < n && n_sites > 0; i++)
        kept += runs[i].ok = load_run(&runs[i], &logs[i], sites, n_sites);
    NsFig f;
    if (n_sites == 0 || kept == 0)
        ns_fail(err, "no run has gradient probes at its norm sites (%s)", NS_HINT_GRADIENTS);
    else if (ns_fig_open(&f, job, NULL, "gradients at each norm site", err) == 0) {
        write_figure(&f, runs, logs, n, kept, sites, n_sites);
        rc = ns_fig_close(&f, err);
    }
    for (int i = 0; i < n; i++)
        free(runs[i].rows);
    free(runs);
    ns_log_free_sites(sites, n_sites);
    return rc;
}
