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

int ns_sweep_row(const char *log_path, NsSweepRow *row, char *err)
{
    NsLog log;
    memset(row, 0, sizeof *row);
    row->growth = row->rel_growth = row->last_dist = NAN;
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
        row->rel_growth = g[best].rel_growth;
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
    "#   not finite, or whose training or validation loss is above 10 ln(V), V the log's",
    "#   vocab_size (without it: above 100x the first training loss); empty if none.",
    "# unstable: 1 when the run trained but got worse: the median training loss of a fifth of",
    "#   the run is more than 5 % above the lowest median of the fifths before it, or the median",
    "#   gradient norm of the last fifth is at least 100x that of the second fifth; else 0.",
    "#   An unstable run's growth shows instability, not the paper's effect.",
    "# growth: at growth_site, median over the last fifth of the run (steps in (0.8, 1] of the",
    "#   last step) of the distance between the batch statistic and its running value, divided",
    "#   by its median over the second fifth ((0.2, 0.4]); the distance is dist_var for",
    "#   mean-subtracting schemes, dist_psi2 for the PN family. Schemes without running",
    "#   statistics (layer, rms, none) are measured against the probe's own running average.",
    "# rel_growth: the same ratio at growth_site of the scale-free rel_dist_var (rel_dist_psi2)",
    "#   = ||stat_B - running|| / ||running||: growth with rel_growth near 1 is a growth of the",
    "#   input's scale, not of the statistic's fluctuation.",
    "# growth_site: the norm site where growth is largest; last_dist: its last-fifth median.",
    "# minutes: training wall time in the log (steps/wall_time, summed over resumed segments).",
};

#define N_FIELDS 8
static const char *const FIELD_NAMES[N_FIELDS] = {"final_ppl", "diverged_at", "unstable",
                                                  "growth", "rel_growth", "growth_site",
                                                  "last_dist", "minutes"};

/* One cell's columns after the keys, as text (CSV and Markdown show the same numbers). */
static void row_fields(const NsSweepRow *r, int ok, char f[N_FIELDS][64])
{
    for (int k = 0; k < N_FIELDS; k++)
        f[k][0] = 0;
    if (!ok)
        return;
    ns_sweep_format(f[0], 64, r->outcome.final_ppl);
    ns_sweep_format(f[1], 64, r->outcome.diverged_at);
    snprintf(f[2], 64, "%d", r->outcome.stab.unstable ? 1 : 0);
    ns_sweep_format(f[3], 64, r->growth);
    ns_sweep_format(f[4], 64, r->rel_growth);
    snprintf(f[5], 64, "%s", r->growth_site);
    ns_sweep_format(f[6], 64, r->last_dist);
    ns_sweep_format(f[7], 64, r->outcome.minutes);
}

static void write_csv(FILE *f, const NsSweepTable *t)
{
    for (size_t i = 0; i < sizeof CSV_HEADER / sizeof CSV_HEADER[0]; i++)
        fprintf(f, "%s\n", CSV_HEADER[i]);
    for (int k = 0; k < t->n_keys; k++)
        fprintf(f, "%s,", t->keys[k]);
    for (int k = 0; k < N_FIELDS; k++)
        fprintf(f, "%s%s", FIELD_NAMES[k], k + 1 < N_FIELDS ? "," : "\n");
    for (int c = 0; c < t->n_cells; c++) {
        char v[N_FIELDS][64];
        row_fields(&t->rows[c], t->ok[c], v);
        for (int k = 0; k < t->n_keys; k++) { /* a value may hold a comma or a quote */
            ns_csv_text(f, t->values[c * t->n_keys + k]);
            fputc(',', f);
        }
        for (int k = 0; k < N_FIELDS; k++) { /* growth_site is a name from the log */
            ns_csv_text(f, v[k]);
            fputc(k + 1 < N_FIELDS ? ',' : '\n', f);
        }
    }
}

static void write_md(FILE *f, const NsSweepTable *t)
{
    char md[1024]; /* a grid value (a corpus file name...) or a path is text, not markup */
    fprintf(f, "# Sweep\n\n%d cells. growth = median distance between the batch statistic and its "
               "running value (dist_var; dist_psi2 for the PN family) over the last fifth of the "
               "run / over the second fifth, at growth_site, the site where it is largest; "
               "rel_growth = the same of the scale-free rel_dist_* there; last_dist = that "
               "site's last-fifth median; minutes = training wall time. diverged_at: a loss or "
               "gradient norm not finite, or a loss above 10 ln(V). unstable = 1: the training "
               "loss's median over a fifth of the run rose more than 5 %% above an earlier "
               "fifth's, or the gradient norm grew 100-fold (sweep.csv's header has the "
               "definitions); its growth is instability, not the paper's effect.\n\n|",
            t->n_cells);
    for (int k = 0; k < t->n_keys; k++)
        fprintf(f, " %s |", t->keys[k]);
    for (int k = 0; k < N_FIELDS; k++)
        fprintf(f, " %s |", FIELD_NAMES[k]);
    fprintf(f, "\n|");
    for (int k = 0; k < t->n_keys + N_FIELDS; k++)
        fprintf(f, "---|");
    fprintf(f, "\n");
    for (int c = 0; c < t->n_cells; c++) {
        char v[N_FIELDS][64];
        row_fields(&t->rows[c], t->ok[c], v);
        fprintf(f, "|");
        for (int k = 0; k < t->n_keys; k++)
            fprintf(f, " %s |", ns_md_text(md, sizeof md, t->values[c * t->n_keys + k]));
        for (int k = 0; k < N_FIELDS; k++)
            fprintf(f, " %s |", ns_md_text(md, sizeof md, v[k]));
        fprintf(f, "\n");
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
