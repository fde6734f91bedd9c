/* Private to the plot family: the gnuplot driver (one figure = .dat + .gp + .png + .svg), the
 * series loading every plot shares (with the skip-a-run warnings), and one entry point per plot
 * kind. The public API is plot.h. */
#ifndef NS_GNUPLOT_H
#define NS_GNUPLOT_H

#include <stddef.h>
#include <stdio.h>

#include "logread.h"
#include "plot.h"
#include "sanitize.h" /* ns_gp_quote: every string in a script */

#define NS_PLOT_MAX_IMAGES 32
#define NS_PLOT_MAX_FORMATS 3 /* png, svg, pdf */
#define NS_PLOT_PATHLEN 1200                  /* <out_dir>/<name> */
#define NS_PLOT_FILELEN (NS_PLOT_PATHLEN + 8) /* ... plus an extension */

/* One invocation of ns_plot: resolved options and what was written. */
typedef struct {
    NsPlotOptions opt;      /* out_dir and prefix always set */
    const char *kind;
    int figures;            /* figures whose images were made */
    int scripts;            /* figures whose .dat/.gp were written */
    int no_gnuplot;         /* gnuplot is not installed: scripts written, images not */
    char first_script[NS_PLOT_FILELEN];
    char images[NS_PLOT_MAX_IMAGES][NS_PLOT_FILELEN];
    int n_images;
    /* The runs of the figure (legend labels, schemes: one style per scheme, palette.h); NULL:
     * colours by run index. Set by ns_plot. */
    const NsLog *logs;
    int n_logs;
    /* Resolved image style (from opt.format, .size, .font). */
    const char *formats[NS_PLOT_MAX_FORMATS]; /* "png", "svg", "pdf" in the order given */
    int n_formats;
    int width, height; /* pixels */
    char font[128];
} NsPlotJob;

/* One figure being written. Plot code writes rows with ns_fig_* and the plot commands straight
 * into `gp`, inside a loop that the script runs once per output format. */
typedef struct {
    NsPlotJob *job;
    char name[300];                /* file name without extension: <prefix>[-<part>] */
    char base[NS_PLOT_PATHLEN];    /* <out_dir>/<name> */
    FILE *dat, *gp;
    int blocks;                    /* data blocks written so far (gnuplot `index`) */
} NsFig;

/* Opens <out_dir>/<name>.dat and .gp; `what` (one line) heads both files. The script defines,
 * for run index i of job->logs: run_color(i) (its scheme's colour), run_faint(i) (the same,
 * translucent, for raw data), run_dt(i) (dash type), run_pt(i) (marker), and linetype
 * NS_GP_RUN_LT + i with all three (ns_gp_run_style). */
int ns_fig_open(NsFig *f, NsPlotJob *job, const char *part, const char *what, char *err);
/* Starts a data block for a run and returns its gnuplot index; `columns` names the columns. */
int ns_fig_block(NsFig *f, int run, const NsLog *log, const char *note, const char *columns);
void ns_fig_row(NsFig *f, const double *v, int n); /* NaN is written as NaN */
void ns_fig_end_block(NsFig *f);
/* Ends the script, closes both files and runs gnuplot on it. */
int ns_fig_close(NsFig *f, char *err);
void ns_fig_discard(NsFig *f);

/* `set title/xlabel/ylabel`, the y log scale of the next panel, and its y range and tics back
 * to automatic (ns_gp_yrange fits them to the data). */
void ns_gp_axes(FILE *gp, const char *title, const char *xlabel, const char *ylabel, int logy);
/* "lt L": run i's linetype (its scheme's colour, dash type and marker, NS_GP_RUN_LT + i, defined
 * by the script head), valid with any plot style (lines, linespoints, points, ...). `every` is
 * not used (markers of dense curves: ns_gp_run_points). */
#define NS_GP_RUN_LT 101
const char *ns_gp_run_style(char *buf, size_t len, int run, size_t every);
/* "lt L pi P": the same for `with linespoints`, a marker every `every` points, so a curve lying
 * exactly on another still shows its markers. */
const char *ns_gp_run_points(char *buf, size_t len, int run, size_t every);
/* A panel saying why it is empty (gnuplot refuses to plot no points at all). */
void ns_gp_empty_panel(FILE *gp, const char *title, const char *why);

/* Range of the values a panel shows, to choose a log axis only when values span decades. */
typedef struct {
    double lo, hi;   /* finite positive extremes */
    double min, max; /* finite extremes */
    int nonpos;    /* some finite value <= 0 */
    size_t count;  /* finite values */
} NsRange;
void ns_range_init(NsRange *r);
void ns_range_add(NsRange *r, const double *v, size_t n);
int ns_range_log(const NsRange *r); /* all positive and max/min >= 10 */
/* `set yrange` fitted to the values in r (5 % margin; on a log axis in log space), so nothing
 * is clipped and the axis does not stretch to whole decades. Nothing when r is empty. */
void ns_gp_yrange(FILE *gp, const NsRange *r, int logy);

/* x (steps) and y series of one run, same length. */
typedef struct {
    double *x, *y;
    size_t n;
} NsSeries;

/* Reads x and y (paths in the log). Returns 1 when y has a finite value; otherwise 0 after a
 * warning that the run is skipped in `figure` (naming run, path and `hint`). */
int ns_series_load(NsSeries *s, const NsLog *log, const char *xpath, const char *ypath,
                   const char *figure, const char *hint);
void ns_series_free(NsSeries *s);
/* Prints "normscope: warning: <figure>: skipping run '<path>' (<label>): <what>". */
void ns_plot_warn_skip(const NsLog *log, const char *figure, const char *what);

/* Trailing mean of the finite values among the last w. Over the first 2w points the window
 * grows smoothly from 1 to w (a smoothstep in the position, fractional windows weighting the
 * oldest value), so the curve has no kink where the window fills; NaN where no value is
 * finite. */
void ns_moving_average(const double *y, size_t n, size_t w, double *out);
size_t ns_smoothing_window(size_t n);

/* Runs that differ only in seed, drawn as one mean curve with a min-max band. For the runs
 * that are kept (ok[i]): lead[i] = the first kept run of i's seed group, size[i] = how many kept
 * runs that group has (so run i is drawn alone when size[i] == 1, as the band of its group
 * when i == lead[i] and size[i] > 1, and not at all otherwise). */
void ns_seed_bands(const NsLog *logs, int n, const int *ok, int *lead, int *size);
/* The legend label of a seed group: run's label without the " seed N" the legend adds to tell
 * runs of one scheme apart. */
const char *ns_group_label(char *buf, size_t len, const char *label);
/* Row-wise mean, minimum and maximum of the finite values of m series (ys[k] has ns[k] rows,
 * a missing row counts as missing) over n rows; NaN where none is finite. */
void ns_band(double *const *ys, const size_t *ns, int m, size_t n, double *mean, double *lo,
             double *hi);

/* Probe hints for warnings: which training flags record a path. */
extern const char NS_HINT_BATCH_STATS[], NS_HINT_GRADIENTS[], NS_HINT_LIPSCHITZ[];

/* The site a site-specific plot uses (opt->site or the first site of the first run with sites);
 * errors when no run has it. */
int ns_plot_resolve_site(NsLog *logs, int n, const NsPlotOptions *opt, char *site, size_t len,
                         char *err);
/* 1 if the run has norm site `site`; otherwise 0 after a warning listing the sites it has. */
int ns_plot_site_check(const NsLog *log, const char *site, const char *figure);
/* Short axis label of a site: "L0 norm1", "final". */
void ns_plot_site_label(const char *site, char *buf, size_t len);
/* "var" or "psi2" for a run: opt->stat, or what its scheme normalizes by (ns_log_scheme_stat). */
const char *ns_plot_stat(const NsLog *log, const NsPlotOptions *opt);

int ns_plot_fluctuation(NsPlotJob *job, NsLog *logs, int n, char *err);
int ns_plot_boxes(NsPlotJob *job, NsLog *logs, int n, char *err);
int ns_plot_gradients(NsPlotJob *job, NsLog *logs, int n, char *err);
int ns_plot_lipschitz(NsPlotJob *job, NsLog *logs, int n, char *err);
int ns_plot_training(NsPlotJob *job, NsLog *logs, int n, char *err);
int ns_plot_layers(NsPlotJob *job, NsLog *logs, int n, char *err);
int ns_plot_figure2(NsPlotJob *job, NsLog *logs, int n, char *err); /* plot_figure2.c */

#endif
