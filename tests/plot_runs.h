/* The six short run logs the plot tests draw (test_plots.c, test_plot_images.c), and checks of
 * ns_plot and of the images it makes (beside harness.h and logs.h). */
#ifndef NS_TEST_PLOT_RUNS_H
#define NS_TEST_PLOT_RUNS_H

#include "logread.h"
#include "plot.h"

/* `train --steps 40` of a d_model 16 model with Lipschitz probes every 10 steps: batch,
 * power-v, power with a 10-step warm-up, layer (pre), batch (post), batch with --probes none,
 * and batch again with --seed 2 (the same configuration as BATCH but for the seed). */
enum { BATCH, PV, PW, LN, POST, NONE, SEED2, N_RUNS };
extern const char *RUN_PATH[N_RUNS];
extern int HAVE_GNUPLOT; /* gnuplot on PATH: images are drawn (else ns_plot says to install it) */

/* The group setup: the scratch directory and the six logs, trained at once. 0 or -1. */
int plot_runs_setup(void **state);

void open_runs(NsLog *logs, const int *which, int n); /* RUN_PATH[which[i]] */

/* ns_plot that must succeed with `figures` figures (or, without gnuplot, fail saying to
 * install it after writing the data). */
void plot_ok(const char *kind, NsLog *logs, int n, const NsPlotOptions *opt, int figures);

/* A real PNG (signature, > 5 kB) and a real SVG (> 2 kB, has <svg): base.png, base.svg. */
void assert_images(const char *base);

#endif
