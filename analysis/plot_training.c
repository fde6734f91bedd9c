/* Training curves: top, the training loss of every step (faint) with a trailing moving average
 * (bold, window stated in the title); bottom, the validation perplexity of each evaluation
 * (/eval). A run without /steps is skipped; a run without /eval appears in the top panel only,
 * with a warning. The perplexity axis is logarithmic when it spans a decade, and both axes fit
 * the runs' values. Runs that differ only in seed are drawn as the mean of their curves with a
 * band from their minimum to their maximum. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "stats.h"
#include "util.h"

#define FIG "plot training"

typedef struct {
    int ok, has_eval;
    NsSeries loss, ppl;
    double *avg;              /* moving average of the loss */
    int loss_block, eval_block;
    int lead, size;           /* seed group: ns_seed_bands */
    int band_loss, band_eval; /* the group's band blocks (lead only; -1: none) */
} Run;

static int load_run(Run *r, const NsLog *log)
{
    if (!ns_series_load(&r->loss, log, "steps/step", "steps/loss", FIG,
                        "every normscope train writes it"))
        return 0;
    r->has_eval = ns_log_has(log, "eval/ppl") &&
                  ns_series_load(&r->ppl, log, "eval/step", "eval/ppl", FIG " (perplexity)",
                                 "validation runs every --eval-every N steps");
    if (!r->has_eval && !ns_log_has(log, "eval/ppl"))
        fprintf(stderr, "normscope: warning: %s: run '%s' (%s) has no /eval/ppl: no "
                        "validation perplexity for it\n", FIG, log->path, log->label);
    return 1;
}

static void write_blocks(NsFig *f, int run, const NsLog *log, Run *r, size_t w)
{
    char cols[64];
    snprintf(cols, sizeof cols, "step loss loss_avg%zu", w);
    r->loss_block = ns_fig_block(f, run, log, "training loss per step, /steps", cols);
    r->avg = ns_xmalloc(sizeof(double) * (r->loss.n ? r->loss.n : 1));
    ns_moving_average(r->loss.y, r->loss.n, w, r->avg);
    for (size_t i = 0; i < r->loss.n; i++) {
        double row[3] = {r->loss.x[i], r->loss.y[i], r->avg[i]};
        ns_fig_row(f, row, 3);
    }
    ns_fig_end_block(f);
    if (!r->has_eval)
        return;
    r->eval_block = ns_fig_block(f, run, log, "validation, /eval", "step ppl");
    for (size_t i = 0; i < r->ppl.n; i++) {
        double row[2] = {r->ppl.x[i], r->ppl.y[i]};
        ns_fig_row(f, row, 2);
    }
    ns_fig_end_block(f);
}

/* A band block of the seed group led by `lead`: x of the lead, then mean, min, max over the
 * group of the loss's moving average (eval = 0) or of the validation perplexity (eval = 1). */
static int write_band(NsFig *f, const NsLog *logs, const Run *runs, int n, int lead, int eval)
{
    double *ys[64];
    size_t ns[64];
    int m = 0;
    for (int i = lead; i < n && m < 64; i++)
        if (runs[i].ok && runs[i].lead == lead && (!eval || runs[i].has_eval)) {
            ys[m] = eval ? runs[i].ppl.y : runs[i].avg;
            ns[m++] = eval ? runs[i].ppl.n : runs[i].loss.n;
        }
    const NsSeries *x = eval ? &runs[lead].ppl : &runs[lead].loss;
    if (m < 2 || (eval && !runs[lead].has_eval))
        return -1;
    char note[96];
    snprintf(note, sizeof note, "mean, min and max over %d runs that differ only in seed", m);
    int block = ns_fig_block(f, lead, &logs[lead], note,
                             eval ? "step ppl_mean ppl_min ppl_max"
                                  : "step loss_avg_mean loss_avg_min loss_avg_max");
    double *b = ns_xmalloc(sizeof(double) * 3 * (x->n ? x->n : 1));
    ns_band(ys, ns, m, x->n, b, b + x->n, b + 2 * x->n);
    for (size_t i = 0; i < x->n; i++) {
        double row[4] = {x->x[i], b[i], b[x->n + i], b[2 * x->n + i]};
        ns_fig_row(f, row, 4);
    }
    free(b);
    ns_fig_end_block(f);
    return block;
}

/* One curve per run, or per seed group its band and mean: `block`/`col` are the run's own,
 * `band` its group's (columns 2-4); `yfmt` turns a column number into gnuplot's y ("%d",
 * "(pos($%d))"). */
static void curve(FILE *gp, const char **sep, int i, const Run *r, int block, int col, int band,
                  const char *label, const char *style, const char *with, const char *yfmt)
{
    char q[256], title[200], y[3][32];
    for (int k = 0; k < 3; k++)
        snprintf(y[k], sizeof y[k], yfmt, k + 2);
    if (r->size > 1 && band >= 0) {
        char group[128];
        snprintf(title, sizeof title, "%s, mean of %d seeds (band: min-max)",
                 ns_group_label(group, sizeof group, label), r->size);
        fprintf(gp, "%sdat index %d using 1:%s:%s with filledcurves fc rgb run_faint(%d) "
                    "fs solid 0.5 noborder notitle, \\\n         dat index %d using 1:%s "
                    "with %s %s title %s",
                *sep, band, y[1], y[2], i, band, y[0], with, style,
                ns_gp_quote(q, sizeof q, title));
    } else {
        snprintf(y[0], sizeof y[0], yfmt, col);
        fprintf(gp, "%sdat index %d using 1:%s with %s %s title %s", *sep, block, y[0], with,
                style, ns_gp_quote(q, sizeof q, label));
    }
    *sep = ", \\\n         ";
}

static void loss_panel(FILE *gp, const Run *runs, const NsLog *logs, int n, size_t w,
                       size_t every)
{
    char title[200], style[160];
    snprintf(title, sizeof title,
             "training loss: faint = every step, bold = trailing mean over %zu steps", w);
    ns_gp_axes(gp, title, "training step", "cross-entropy (nats)", 0);
    NsRange range;
    ns_range_init(&range);
    for (int i = 0; i < n; i++)
        if (runs[i].ok)
            ns_range_add(&range, runs[i].loss.y, runs[i].loss.n);
    ns_gp_yrange(gp, &range, 0);
    const char *sep = "    plot ";
    for (int i = 0; i < n; i++) {
        const Run *r = &runs[i];
        if (!r->ok || (r->size > 1 && r->lead != i))
            continue;
        if (r->size < 2 || r->band_loss < 0) {
            fprintf(gp, "%sdat index %d using 1:2 with lines lw 1 lc rgb run_faint(%d) notitle",
                    sep, r->loss_block, i);
            sep = ", \\\n         ";
        }
        ns_gp_run_points(style, sizeof style, i, every);
        curve(gp, &sep, i, r, r->loss_block, 3, r->band_loss, logs[i].label, style,
              "linespoints lw 2.5", "%d");
    }
    fprintf(gp, "\n");
}

static void ppl_panel(FILE *gp, const Run *runs, const NsLog *logs, int n)
{
    NsRange range;
    ns_range_init(&range);
    for (int i = 0; i < n; i++)
        if (runs[i].ok && runs[i].has_eval)
            ns_range_add(&range, runs[i].ppl.y, runs[i].ppl.n);
    const char *title = "validation perplexity exp(validation loss)";
    if (range.count == 0) {
        ns_gp_empty_panel(gp, title, "no run has /eval/ppl (validation runs every "
                                     "--eval-every N steps of normscope train)");
        return;
    }
    int logy = ns_range_log(&range);
    ns_gp_axes(gp, title, "training step", "perplexity", logy);
    ns_gp_yrange(gp, &range, logy); /* from the runs: a few points apart stay apart */
    const char *sep = "    plot ";
    char style[160];
    for (int i = 0; i < n; i++) {
        const Run *r = &runs[i];
        if (!r->ok || !r->has_eval || (r->size > 1 && r->lead != i))
            continue;
        ns_gp_run_points(style, sizeof style, i, 1);
        curve(gp, &sep, i, r, r->eval_block, 2, r->band_eval, logs[i].label, style,
              "linespoints lw 2 ps 0.8", logy ? "(pos($%d))" : "%d");
    }
    fprintf(gp, "\n");
}

int ns_plot_training(NsPlotJob *job, NsLog *logs, int n, char *err)
{
    Run *runs = ns_xcalloc((size_t)n, sizeof(Run));
    int kept = 0, rc = -1;
    size_t longest = 0;
    int *ok = ns_xcalloc((size_t)n, sizeof(int)), *lead = ns_xcalloc((size_t)n, sizeof(int)),
        *size = ns_xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        kept += ok[i] = runs[i].ok = load_run(&runs[i], &logs[i]);
        if (runs[i].ok && runs[i].loss.n > longest)
            longest = runs[i].loss.n;
    }
    ns_seed_bands(logs, n, ok, lead, size);
    for (int i = 0; i < n; i++)
        runs[i].lead = lead[i], runs[i].size = size[i], runs[i].band_loss = -1,
        runs[i].band_eval = -1;
    free(ok), free(lead), free(size);
    NsFig f;
    if (kept == 0)
        ns_fail(err, "no run has a training loss (/steps/loss)");
    else if (ns_fig_open(&f, job, NULL, "training loss and validation perplexity", err) == 0) {
        size_t w = ns_smoothing_window(longest);
        for (int i = 0; i < n; i++)
            if (runs[i].ok)
                write_blocks(&f, i, &logs[i], &runs[i], w);
        for (int i = 0; i < n; i++)
            if (runs[i].ok && runs[i].size > 1 && runs[i].lead == i) {
                runs[i].band_loss = write_band(&f, logs, runs, n, i, 0);
                runs[i].band_eval = write_band(&f, logs, runs, n, i, 1);
            }
        fprintf(f.gp, "    set multiplot layout 2,1 title \"Training loss and validation "
                      "perplexity\"\n    set key outside right top\n");
        loss_panel(f.gp, runs, logs, n, w, longest / 10 + 1);
        ppl_panel(f.gp, runs, logs, n);
        rc = ns_fig_close(&f, err);
    }
    for (int i = 0; i < n; i++) {
        ns_series_free(&runs[i].loss);
        ns_series_free(&runs[i].ppl);
        free(runs[i].avg);
    }
    free(runs);
    return rc;
}
