/* Heat map of one per-site statistic (default dist_var) over (step, norm site), one panel per
 * run, sites labelled on the y axis in model order: where in depth and when in training the
 * batch statistics are noisiest. The colour scale is shared by all panels so runs compare, and
 * logarithmic when the values are positive and span a decade. Long runs are averaged into at
 * most MAX_BINS bins of K consecutive steps (K is stated in the title and the data file) so the
 * image and the data file stay small; with K = 1 the data are the logged values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "stats.h"
#include "util.h"

#define FIG "plot layers"
#define MAX_BINS 400

typedef struct {
    int ok;
    char **sites;
    int n_sites;
    NsSeries *s; /* per site */
} Run;

static int load_run(Run *r, const NsLog *log, const char *stat)
{
    char x[600], y[600];
    r->n_sites = ns_log_sites(log, &r->sites);
    if (r->n_sites == 0) {
        char what[200];
        snprintf(what, sizeof what, "no norm-site probes (/norms; %s)", NS_HINT_BATCH_STATS);
        ns_plot_warn_skip(log, FIG, what);
        return 0;
    }
    r->s = ns_xcalloc((size_t)r->n_sites, sizeof(NsSeries));
    int found = 0;
    for (int k = 0; k < r->n_sites; k++) {
        ns_runlog_site_path(x, sizeof x, r->sites[k], NS_RUNLOG_STEP);
        ns_runlog_site_path(y, sizeof y, r->sites[k], stat);
        if (!ns_log_has(log, y) || !ns_log_has(log, x))
            continue;
        char err[NS_ERRLEN];
        size_t nx = 0, ny = 0;
        r->s[k].x = ns_log_read_series(log, x, &nx, err);
        r->s[k].y = r->s[k].x ? ns_log_read_series(log, y, &ny, err) : NULL;
        r->s[k].n = r->s[k].x && r->s[k].y ? (nx < ny ? nx : ny) : 0;
        if (!r->s[k].x || !r->s[k].y) { /* a damaged site is left out, saying why */
            char line[2 * NS_ERRLEN + 1200], shown[sizeof line];
            snprintf(line, sizeof line, "%s: run '%s': site %s left out: %s", FIG, log->path,
                     r->sites[k], err);
            fprintf(stderr, "normscope: warning: %s\n",
                    ns_text_printable(shown, sizeof shown, line));
        }
        found += ns_count_finite(r->s[k].y, r->s[k].n) > 0;
    }
    if (!found) {
        char what[300];
        snprintf(what, sizeof what, "no recorded /norms/<site>/%s at any site", stat);
        ns_plot_warn_skip(log, FIG, what);
    }
    return found > 0;
}

static void free_run(Run *r)
{
    for (int k = 0; k < r->n_sites && r->s; k++)
        ns_series_free(&r->s[k]);
    free(r->s);
    ns_log_free_sites(r->sites, r->n_sites);
}

static double last_step(const Run *r)
{
    double last = 0;
    for (int k = 0; k < r->n_sites; k++)
        if (r->s[k].n > 0 && r->s[k].x[r->s[k].n - 1] > last)
            last = r->s[k].x[r->s[k].n - 1];
    return last;
}

/* Rows "step site value" site by site (one image scan line each); bin b covers steps
 * b*K+1 .. (b+1)*K and sits at their centre. */
static int write_block(NsFig *f, int run, const NsLog *log, const Run *r, const char *stat,
                       long K, NsRange *range)
{
    char note[1200], cols[200];
    long bins = ((long)last_step(r) + K - 1) / K;
    snprintf(note, sizeof note, "bins of %ld step(s), sites:", K);
    for (int k = 0; k < r->n_sites; k++)
        snprintf(note + strlen(note), sizeof note - strlen(note), " %d=%s", k, r->sites[k]);
    snprintf(cols, sizeof cols, "step site_index %s%s", stat, K > 1 ? "_bin_mean" : "");
    int block = ns_fig_block(f, run, log, note, cols);
    double *sum = ns_xmalloc(sizeof(double) * (size_t)(bins > 0 ? bins : 1));
    long *cnt = ns_xmalloc(sizeof(long) * (size_t)(bins > 0 ? bins : 1));
    for (int k = 0; k < r->n_sites; k++) {
        memset(sum, 0, sizeof(double) * (size_t)bins);
        memset(cnt, 0, sizeof(long) * (size_t)bins);
        for (size_t i = 0; i < r->s[k].n; i++) {
            long b = ((long)r->s[k].x[i] - 1) / K;
            if (b >= 0 && b < bins && isfinite(r->s[k].y[i]))
                sum[b] += r->s[k].y[i], cnt[b]++;
        }
        for (long b = 0; b < bins; b++) {
            double row[3] = {b * K + (K + 1) / 2.0, k, cnt[b] ? sum[b] / cnt[b] : NAN};
            ns_fig_row(f, row, 3);
            ns_range_add(range, &row[2], 1);
        }
        fputc('\n', f->dat); /* end of this scan line */
    }
    free(sum);
    free(cnt);
    ns_fig_end_block(f);
    return block;
}

static void panel(FILE *gp, const Run *r, int block, int run, const NsLog *log, int logcb)
{
    char q[256];
    fprintf(gp, "    set title %s\n    set ytics (", ns_gp_quote(q, sizeof q, log->label));
    for (int k = 0; k < r->n_sites; k++) {
        char label[256];
        ns_plot_site_label(r->sites[k], label, sizeof label);
        fprintf(gp, "%s%s %d", k ? ", " : "", ns_gp_quote(q, sizeof q, label), k);
    }
    fprintf(gp, ")\n    set yrange [-0.5:%d.5] reverse\n", r->n_sites - 1);
    fprintf(gp, "    plot dat index %d using 1:2:%s with image notitle  # run %d\n", block,
            logcb ? "(pos($3))" : "3", run);
}

/* Log colour tics at 1, 2 and 5 per decade: a range of one or two decades otherwise gets one
 * labelled tic. */
static void log_cbtics(FILE *gp, double lo, double hi)
{
    static const double mult[3] = {1, 2, 5};
    int count = 0;
    for (double p = pow(10, floor(log10(lo))); p <= hi; p *= 10)
        for (int k = 0; k < 3; k++)
            if (p * mult[k] >= lo && p * mult[k] <= hi)
                fprintf(gp, "%s%.3g", count++ ? ", " : "    set cbtics (", p * mult[k]);
    fprintf(gp, "%s\n", count ? ")" : "    set cbtics");
}

static void write_script(NsFig *f, const Run *runs, const int *block, const NsLog *logs, int n,
                         int kept, const char *stat, long K, long end, const NsRange *range)
{
    char title[300], q[400];
    int logcb = ns_range_log(range);
    int cols = kept > 3 ? 2 : 1, rows = (kept + cols - 1) / cols;
    snprintf(title, sizeof title, "%s at every norm site over training; colour on one scale "
             "for all panels", stat);
    if (K > 1)
        snprintf(title + strlen(title), sizeof title - strlen(title),
                 ", each pixel the mean over %ld steps", K);
    fprintf(f->gp, "    set multiplot layout %d,%d title %s\n", rows, cols,
            ns_gp_quote(q, sizeof q, title));
    fprintf(f->gp,
            "    # viridis-like, readable in grey; colour range shared so panels compare\n"
            "    set palette defined (0 \"#440154\", 1 \"#3b528b\", 2 \"#21918c\", "
            "3 \"#5ec962\", 4 \"#fde725\")\n    set style fill solid 1.0 noborder\n"
            "    unset key\n    %s logscale cb\n    unset cblabel  # named in the title\n"
            "    set format cb \"%%g\"\n    set xlabel \"training step\"\n"
            "    set xrange [0.5:%ld.5]\n    set ylabel \"norm site\"\n    set ytics font \",8\"\n"
            "    set grid noxtics noytics\n    set tics out\n",
            logcb ? "set" : "unset", end);
    double lo = logcb ? range->lo : range->min, hi = logcb ? range->hi : range->max;
    if (hi > lo)
        fprintf(f->gp, "    set cbrange [%.17g:%.17g]\n", lo, hi);
    if (logcb)
        log_cbtics(f->gp, lo, hi);
    for (int i = 0; i < n; i++)
        if (runs[i].ok)
            panel(f->gp, &runs[i], block[i], i, &logs[i], logcb);
}

int ns_plot_layers(NsPlotJob *job, NsLog *logs, int n, char *err)
{
    const char *stat = job->opt.layers_stat ? job->opt.layers_stat
                       : job->opt.relative      ? "rel_dist_var"
                                                : "dist_var";
    Run *runs = ns_xcalloc((size_t)n, sizeof(Run));
    int *block = ns_xcalloc((size_t)n, sizeof(int));
    int kept = 0, rc = -1;
    double last = 0;
    for (int i = 0; i < n; i++) {
        kept += runs[i].ok = load_run(&runs[i], &logs[i], stat);
        if (runs[i].ok && last_step(&runs[i]) > last)
            last = last_step(&runs[i]);
    }
    long K = (long)ceil(last / MAX_BINS);
    K = K < 1 ? 1 : K;
    NsFig f;
    NsRange range;
    ns_range_init(&range);
    int any_sites = 0;
    for (int i = 0; i < n; i++)
        any_sites |= runs[i].n_sites > 0;
    if (!any_sites)
        ns_fail(err, "no run has norm-site probes (/norms): %s", NS_HINT_BATCH_STATS);
    else if (kept == 0)
        ns_fail(err, "no run has /norms/<site>/%s (series there: dist_mean, dist_var, "
                     "dist_psi2, rel_dist_mean, rel_dist_var, rel_dist_psi2, g_mu, g_sigma2, g_psi2, nu_norm, correction_norm, "
                     "grad_out_norm, grad_in_norm, grad_gain, grad_in_max)", stat);
    else if (ns_fig_open(&f, job, NULL, "a statistic over norm site and step", err) == 0) {
        for (int i = 0; i < n; i++)
            if (runs[i].ok)
                block[i] = write_block(&f, i, &logs[i], &runs[i], stat, K, &range);
        long end = ((long)last + K - 1) / K * K; /* the last bin's last step */
        write_script(&f, runs, block, logs, n, kept, stat, K, end, &range);
        rc = ns_fig_close(&f, err);
    }
    for (int i = 0; i < n; i++)
        free_run(&runs[i]);
    free(runs);
    free(block);
    return rc;
}
