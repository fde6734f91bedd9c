/* The sweep's summary: one row per cell of a grid, read from the cells' run logs only.
 *
 *   DIR/sweep.csv   header comment with the definitions, then one row per cell
 *   DIR/sweep.md    the same as a Markdown table
 *
 * Columns: one per grid key (named as the train flag without dashes), then
 *   final_ppl    the last validation perplexity recorded (eval/ppl)
 *   diverged_at  the first step that diverged (analysis/outcome.h): a loss or gradient norm
 *                not finite, or a loss above the bound; empty if there is none
 *   unstable     1 when the run trained but got worse (analysis/outcome.h), else 0
 *   growth       at growth_site, the median distance between the batch statistic the scheme
 *                normalizes by and its running value (dist_var for mean-subtracting schemes,
 *                dist_psi2 for the PN family) over the last fifth of the run divided by its
 *                median over the second fifth (analysis/sites.h)
 *   rel_growth   the same ratio of the scale-free rel_dist_* at growth_site
 *   growth_site  the norm site where that ratio is largest
 *   last_dist    that site's last-fifth median
 *   minutes      training wall time in the log (steps/wall_time, summed over resumed segments)
 * The run's outcome (steps done, divergence) is also what the runner judges a cell finished by. */
#ifndef NS_SWEEP_SUMMARY_H
#define NS_SWEEP_SUMMARY_H

#include <stdio.h>

#include "logread.h"
#include "outcome.h"

/* One cell's row. */
typedef struct {
    NsRunOutcome outcome;
    double growth, last_dist; /* NaN when no site has a growth */
    double rel_growth;        /* growth of rel_dist_* at growth_site; NaN when absent */
    char growth_site[64];     /* "" when none */
    char norm[32], position[8];
} NsSweepRow;

/* The row of one cell's log. Returns 0, or -1 with one line in err (the log cannot be read). */
int ns_sweep_row(const char *log_path, NsSweepRow *row, char *err);

typedef struct {
    char *const *keys; /* grid keys, as given: "d-model", "lr" */
    int n_keys;
    int n_cells;
    char *const *values;      /* [n_cells][n_keys] row-major: the cell's value of each key */
    char *const *log_paths;   /* [n_cells] */
    NsSweepRow *rows;         /* [n_cells], filled by ns_sweep_summary */
    int *ok;                  /* [n_cells]: 1 when the row was read (else n/a in the tables) */
} NsSweepTable;

/* Reads every cell's row and writes <dir>/sweep.csv and <dir>/sweep.md. A cell whose log cannot
 * be read is listed with empty values and a note. Returns 0, or -1 with one line in err (an
 * output file that cannot be written). */
int ns_sweep_summary(const char *dir, NsSweepTable *t, char *err);

/* The onset map (analysis/plot_onset.c): <dir>/onset.dat, .gp and the images (png, svg). For
 * each scheme and position (and each combination of the other varying keys) a heat map of the
 * rows' growth over grid keys map_x x map_y (NULL: the first two varying keys other than norm
 * and norm-position), one logarithmic colour scale for every panel, diverged cells marked. The
 * rows must have been read (ns_sweep_summary). Returns 0, or -1 with one line in err (an
 * unknown map key; no gnuplot: the .dat and .gp are still written). */
int ns_plot_onset(const char *dir, const NsSweepTable *t, const char *map_x, const char *map_y,
                  char *err);

/* The CSV's number formats, shared with the onset map's data so both say the same numbers. */
void ns_sweep_format(char *buf, size_t n, double v); /* "" for NaN, else %.6g */

#endif
