/* Training curves: top, the training loss of every step (faint) with a trailing moving average
 * (bold, window stated in the title); bottom, the validation perplexity of each evaluation
 * (/eval). A run without /steps is skipped; a run without /eval appears in the top panel only,
 * with a warning. The perplexity axis is logarithmic when it spans a decade. */
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
    int loss_block, eval_block;
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
    double *avg = ns_xmalloc(sizeof(double) * (r->loss.n ? r->loss.n : 1));
    ns_moving_average(r->loss.y, r->loss.n, w, avg);
    for (size_t i = 0; i < r->loss.n; i++) {
        double row[3] = {r->loss.x[i], r->loss.y[i], avg[i]};
        ns_fig_row(f, row, 3);
    }
    free(avg);
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

static void loss_panel(FILE *gp, const Run *runs, const NsLog *logs, int n, size_t w)
{
    char title[200], q[256];
    snprintf(title, sizeof title,
             "training loss: faint = every step, bold = trailing mean over %zu steps", w);
    ns_gp_axes(gp, title, "training step", "cross-entropy (nats)", 0);
    const char *sep = "    plot ";
    for (int i = 0; i < n; i++) {
        if (!runs[i].ok)
            continue;
        fprintf(gp,
                "%sdat index %d using 1:2 with lines lw 1 lc rgb run_faint(%d) notitle, \\\n"
                "         dat index %d using 1:3 with lines lw 2.5 lc rgb run_color(%d) "
                "title %s",
                sep, runs[i].loss_block, i, runs[i].loss_block, i,
                ns_gp_quote(q, sizeof q, logs[i].label));
        sep = ", \\\n         ";
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
    const char *sep = "    plot ";
    char q[256];
    for (int i = 0; i < n; i++) {
        if (!runs[i].ok || !runs[i].has_eval)
            continue;
        fprintf(gp, "%sdat index %d using 1:%s with linespoints lw 2 pt 7 ps 0.8 "
                    "lc rgb run_color(%d) title %s",
                sep, runs[i].eval_block, logy ? "(pos($2))" : "2", i,
                ns_gp_quote(q, sizeof q, logs[i].label));
        sep = ", \\\n         ";
    }
    fprintf(gp, "\n");
}

int ns_plot_training(NsPlotJob *job, NsLog *logs, int n, char *err)
{
    Run *runs = ns_xcalloc((size_t)n, sizeof(Run));
    int kept = 0, rc = -1;
    size_t longest = 0;
    for (int i = 0; i < n; i++) {
        kept += runs[i].ok = load_run(&runs[i], &logs[i]);
        if (runs[i].ok && runs[i].loss.n > longest)
            longest = runs[i].loss.n;
    }
    NsFig f;
    if (kept == 0)
        ns_fail(err, "no run has a training loss (/steps/loss)");
    else if (ns_fig_open(&f, job, NULL, "training loss and validation perplexity", err) == 0) {
        size_t w = ns_smoothing_window(longest);
        for (int i = 0; i < n; i++)
            if (runs[i].ok)
                write_blocks(&f, i, &logs[i], &runs[i], w);
        fprintf(f.gp, "    set multiplot layout 2,1 title \"Training loss and validation "
                      "perplexity\"\n    set key outside right top\n");
        loss_panel(f.gp, runs, logs, n, w);
        ppl_panel(f.gp, runs, logs, n);
        rc = ns_fig_close(&f, err);
    }
    for (int i = 0; i < n; i++) {
        ns_series_free(&runs[i].loss);
        ns_series_free(&runs[i].ppl);
    }
    free(runs);
    return rc;
}
