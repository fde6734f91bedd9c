#include "sweep_summary.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sanitize.h"
#include "sites.h"
#include "table.h"
#include "util.h"
#include "window.h"

/* The first step whose value in group/name is not finite (or, with also, in group/also). */
static double first_nonfinite(const NsLog *log, const char *group, const char *name,
                              const char *also)
{
    char path[NS_RUNLOG_PATH_LEN];
    size_t n = 0, nv = 0, na = 0;
    double *step = ns_window_series(log, ns_runlog_path(path, sizeof path, group, NS_RUNLOG_STEP),
                                    &n);
    double *v = ns_window_series(log, ns_runlog_path(path, sizeof path, group, name), &nv);
    double *a = also ? ns_window_series(log, ns_runlog_path(path, sizeof path, group, also), &na)
                     : NULL;
    double first = NAN;
    for (size_t i = 0; i < n && i < nv && isnan(first); i++)
        if (!isfinite(v[i]) || (i < na && !isfinite(a[i])))
            first = step[i];
    free(step);
    free(v);
    free(a);
    return first;
}

/* Training wall time: steps/wall_time restarts in a resumed process, so each segment's last
 * value counts. */
static double wall_minutes(const NsLog *log)
{
    size_t n = 0;
    double *w = ns_window_series(log, "steps/wall_time", &n), sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (i + 1 == n || w[i + 1] < w[i])
            sum += isfinite(w[i]) ? w[i] : 0.0;
    free(w);
    return n > 0 ? sum / 60.0 : NAN;
}

void ns_run_outcome(const NsLog *log, NsRunOutcome *o)
{
    size_t n = 0;
    double *step = ns_window_series(log, "steps/step", &n);
    o->steps_done = n > 0 ? step[n - 1] : 0.0;
    free(step);
    if (ns_log_attr_long(log, "steps", &o->steps_planned) < 0)
        o->steps_planned = -1;
    double train = first_nonfinite(log, NS_RUNLOG_STEPS, "loss", "grad_norm");
    double eval = first_nonfinite(log, NS_RUNLOG_EVAL, "loss", NULL);
    o->diverged_at = isnan(train) || eval < train ? eval : train;
    size_t np = 0;
    double *ppl = ns_window_series(log, "eval/ppl", &np);
    o->final_ppl = np > 0 ? ppl[np - 1] : NAN;
    free(ppl);
    o->minutes = wall_minutes(log);
}

int ns_sweep_row(const char *log_path, NsSweepRow *row, char *err)
{
    NsLog log;
    memset(row, 0, sizeof *row);
    row->growth = row->last_dist = NAN;
    if (ns_log_open(&log, log_path, err) < 0)
        return -1;
    ns_run_outcome(&log, &row->outcome);
    snprintf(row->norm, sizeof row->norm, "%s", log.norm);
    snprintf(row->position, sizeof row->position, "%s", log.position);
    NsSiteGrowth *g;
    int n = ns_site_growths(&log, &g, err);
    ns_log_close(&log);
    if (n < 0)
        return -1;
    int best = ns_site_growth_max(g, n);
    if (best >= 0) {
        row->growth = g[best].growth;
        row->last_dist = g[best].late;
        snprintf(row->growth_site, sizeof row->growth_site, "%s", g[best].site);
    }
    free(g);
    return 0;
}

void ns_sweep_format(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "%s", "");
    else
        snprintf(buf, n, "%.6g", v);
}

static const char *const CSV_HEADER[] = {
    "# normscope sweep: one row per cell, read from its run log (DIR/runs/<cell>.h5).",
    "# final_ppl: the last validation perplexity recorded (eval/ppl).",
    "# diverged_at: the first step whose training loss or gradient norm, or validation loss, is",
    "#   not finite; empty if none.",
    "# growth: at growth_site, median over the last fifth of the run (steps in (0.8, 1] of the",
    "#   last step) of the distance between the batch statistic and its running value, divided",
    "#   by its median over the second fifth ((0.2, 0.4]); the distance is dist_var for",
    "#   mean-subtracting schemes, dist_psi2 for the PN family. Schemes without running",
    "#   statistics (layer, rms, none) are measured against the probe's own running average.",
    "# growth_site: the norm site where that ratio is largest; last_dist: its last-fifth median.",
    "# minutes: training wall time in the log (steps/wall_time, summed over resumed segments).",
};

/* One cell's columns after the keys, as text (CSV and Markdown show the same numbers). */
static void row_fields(const NsSweepRow *r, int ok, char f[5][64])
{
    for (int k = 0; k < 5; k++)
        f[k][0] = 0;
    if (!ok)
        return;
    ns_sweep_format(f[0], 64, r->outcome.final_ppl);
    ns_sweep_format(f[1], 64, r->outcome.diverged_at);
    ns_sweep_format(f[2], 64, r->growth);
    ns_sweep_format(f[3], 64, r->last_dist);
    ns_sweep_format(f[4], 64, r->outcome.minutes);
}

static void write_csv(FILE *f, const NsSweepTable *t)
{
    for (size_t i = 0; i < sizeof CSV_HEADER / sizeof CSV_HEADER[0]; i++)
        fprintf(f, "%s\n", CSV_HEADER[i]);
    for (int k = 0; k < t->n_keys; k++)
        fprintf(f, "%s,", t->keys[k]);
    fprintf(f, "final_ppl,diverged_at,growth,growth_site,last_dist,minutes\n");
    for (int c = 0; c < t->n_cells; c++) {
        char v[5][64];
        row_fields(&t->rows[c], t->ok[c], v);
        for (int k = 0; k < t->n_keys; k++) { /* a value may hold a comma or a quote */
            ns_csv_text(f, t->values[c * t->n_keys + k]);
            fputc(',', f);
        }
        fprintf(f, "%s,%s,%s,%s,%s,%s\n", v[0], v[1], v[2], t->rows[c].growth_site, v[3], v[4]);
    }
}

static void write_md(FILE *f, const NsSweepTable *t)
{
    char md[1024]; /* a grid value (a corpus file name...) or a path is text, not markup */
    fprintf(f, "# Sweep\n\n%d cells. growth = median distance between the batch statistic and its "
               "running value (dist_var; dist_psi2 for the PN family) over the last fifth of the "
               "run / over the second fifth, at growth_site, the site where it is largest; "
               "last_dist = that site's last-fifth median; minutes = training wall time.\n\n|",
            t->n_cells);
    for (int k = 0; k < t->n_keys; k++)
        fprintf(f, " %s |", t->keys[k]);
    fprintf(f, " final_ppl | diverged_at | growth | growth_site | last_dist | minutes |\n|");
    for (int k = 0; k < t->n_keys + 6; k++)
        fprintf(f, "---|");
    fprintf(f, "\n");
    for (int c = 0; c < t->n_cells; c++) {
        char v[5][64];
        row_fields(&t->rows[c], t->ok[c], v);
        fprintf(f, "|");
        for (int k = 0; k < t->n_keys; k++)
            fprintf(f, " %s |", ns_md_text(md, sizeof md, t->values[c * t->n_keys + k]));
        fprintf(f, " %s | %s | %s | %s | %s | %s |\n", v[0], v[1], v[2], t->rows[c].growth_site,
                v[3], v[4]);
    }
    for (int c = 0; c < t->n_cells; c++)
        if (!t->ok[c])
            fprintf(f, "\n- %s: the log could not be read (empty row)\n",
                    ns_md_text(md, sizeof md, t->log_paths[c]));
}

static int write_file(const char *path, void (*body)(FILE *, const NsSweepTable *),
                      const NsSweepTable *t, char *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ns_fail(err, "cannot write '%s': %s", path, strerror(errno));
    body(f, t);
    if (fclose(f) != 0)
        return ns_fail(err, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

int ns_sweep_summary(const char *dir, NsSweepTable *t, char *err)
{
    for (int c = 0; c < t->n_cells; c++) {
        char rerr[NS_ERRLEN];
        t->ok[c] = ns_sweep_row(t->log_paths[c], &t->rows[c], rerr) == 0;
        if (!t->ok[c])
            fprintf(stderr, "normscope: warning: %s\n", rerr);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/sweep.csv", dir);
    if (write_file(path, write_csv, t, err) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/sweep.md", dir);
    return write_file(path, write_md, t, err);
}
