/* Figures of the PowerNorm paper (Shen et al. 2020) drawn from normscope run logs with gnuplot.
 * Every figure is written as data (.dat), an editable self-contained gnuplot script (.gp) and
 * the images that script makes (.png via pngcairo, .svg, .pdf via pdfcairo). Plots read only the
 * run logs. A scheme has one colour, dash type and marker in every figure (palette.h). */
#ifndef NS_PLOT_H
#define NS_PLOT_H

#include <stddef.h>

#include "logread.h"

typedef struct {
    const char *out_dir;     /* where files go (created if missing); NULL = "figures" */
    const char *site;        /* norm site, e.g. "layers/0/norm1"; NULL = first site of the
                                first run that has norm sites */
    const char *stat;        /* fluctuation/boxes: "var" (dist_var) or "psi2" (dist_psi2); NULL =
                                "var" for batch/layer/rms/none runs, "psi2" for power*, per run */
    const char *layers_stat; /* layers heat map series name, default "dist_var" (--relative:
                                "rel_dist_var") */
    int relative;            /* fluctuation, boxes (forward) and layers: the scale-free
                                rel_dist_* = ||stat_B - running|| / ||running|| instead of the
                                paper's (1/d)||stat_B - running|| */
    int tid;                 /* fluctuation: the training-inference discrepancy tid_* with its
                                sampling floors instead of the distances */
    const char *prefix;      /* file-name prefix, default: the plot kind */
    /* How the images look (--format, --size, --font of plot and study); NULL = default. */
    const char *format;      /* comma list of png, svg, pdf; default "png,svg" */
    const char *size;        /* "WxH" in pixels (PDF: 72 pixels per inch); default 1200x800 */
    const char *font;        /* "Name,points" (gnuplot's font syntax); default "Sans,10" */
} NsPlotOptions;

/* Checks format, size, font and prefix of opt (what --format, --size, --font, --prefix were
 * given). Returns 0, or -1 with one line in err naming the flag. */
int ns_plot_style_check(const NsPlotOptions *opt, char *err);

/* The image style of every later figure whose options leave format, size or font NULL, taken
 * from a command's words (--format X, --size=X, --font X; other words are ignored; the values
 * must outlive the figures). For study, which draws many figures from its pass-on flags. Returns
 * 0, or -1 with err for a bad value (the default is then unchanged). */
int ns_plot_style_from_args(char *const *args, int n, char *err);
/* The same, and removes those words from args (*n shrinks): for a list of flags that goes on to
 * `train`, which has no figure flags. */
int ns_plot_style_take(char **args, int *n, char *err);

/* Draws plot `kind` ("fluctuation", "boxes", "gradients", "lipschitz", "training", "layers") of
 * n runs. Writes, per figure, <out_dir>/<prefix>[-<part>].dat (the data, gnuplot-readable with
 * comment headers naming columns and runs), .gp (a self-contained gnuplot script a user can edit
 * and re-run with `gnuplot X.gp`), and runs gnuplot to make the images of opt->format (default .png via pngcairo and .svg). Returns
 * the number of figures drawn (>= 1), or -1 with err. Runs lacking the data a plot needs are
 * skipped with a warning line on stderr naming the run and what is missing; if no run has the
 * data, it is an error. If gnuplot is not installed the .dat/.gp are still written and the error
 * says to install the Debian package gnuplot-nox (or gnuplot). */
int ns_plot(const char *kind, NsLog *logs, int n_logs, const NsPlotOptions *opt, char *err);

/* ns_plot, then the paths of the images drawn on stdout, one per line. */
int ns_plot_print(const char *kind, NsLog *logs, int n_logs, const NsPlotOptions *opt, char *err);

extern const char *const NS_PLOT_KINDS[]; /* NULL-terminated list of kinds */
/* What a kind shows (one or two lines for --help), or NULL for an unknown kind. */
const char *ns_plot_kind_description(const char *kind);
/* "fluctuation, boxes, ..." into buf. */
void ns_plot_kinds_list(char *buf, size_t len);

#endif
