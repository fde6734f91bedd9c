/* Run logs as the tests read and edit them (beside harness.h):
 *  - with the plain HDF5 API, so the probe and run-log tests check the format independently of
 *    the library's reader (test_probes.c, test_runlog.c);
 *  - with logread, and edited copies (a NaN loss, another format, an unfinished run), for the
 *    analysis tests (test_compare.c, test_watch.c, test_notebook.c, the plot tests);
 *  - the analysis tests' run logs, trained in their group setup. */
#ifndef NS_TEST_LOGS_H
#define NS_TEST_LOGS_H

#include <stddef.h>

#include <hdf5.h>

#include "logread.h"

/* ------------------------------------------------------------------ plain HDF5 */

hid_t open_ro(const char *path);
hid_t open_swmr(const char *path);
int exists(hid_t f, const char *path);

/* Rows of a dataset (refreshed, for SWMR readers), -1 if missing; with data, the whole dataset
 * as doubles (malloc'd, NULL if missing); with cols, its columns. */
long rd(hid_t f, const char *path, double **data, long *cols);
#define NROWS(f, path) rd(f, path, NULL, NULL)

long upto(hid_t f, const char *path); /* k if the series is 1, 2, ..., k, else -2 */

typedef struct { char (*path)[192]; int n, cap; } PathList;
PathList datasets(hid_t f); /* every dataset of the file; free(.path) */

/* Every series has as many rows as its group's step series (data_may_lead: at least as many,
 * for a file killed inside a flush, which writes data rows before step rows), and every step
 * series ascends strictly. Returns the number of violations (the first few reported). */
int check_alignment_ex(hid_t f, int data_may_lead);
int check_alignment(hid_t f);

/* ------------------------------------------------------------------ logread */

/* A series of the log (malloc'd); NULL and *n = 0 when the log does not have it. */
double *series(const NsLog *log, const char *path, size_t *n);
/* Median (own sort, independent of analysis/) of the finite values of group/name whose step /
 * last is in (lo, hi]; last <= 0: the group's own last step. NaN when none. */
double window_median_of(const NsLog *log, const char *group, const char *name, double last,
                        double lo, double hi);
void open_logs(NsLog *logs, const char *const *paths, int n); /* fails the test on an error */
void close_logs(NsLog *logs, int n);

/* Trains 2 steps of TINY_TRAIN with `flags` (no probes) and returns the log's root attribute
 * `name` (NaN if absent): what a run records of its settings. */
double trained_attr(const char *flags, const char *name);

/* ------------------------------------------------------------------ edited copies */

/* A copy of `from` whose /steps/loss row `index` (-1: the last) is NaN. */
void craft_nan_loss(const char *from, const char *to, long index);
/* A copy of a finished log whose root attribute `steps` says more steps were planned: to a
 * watcher it is a run that stopped short without diverging. */
void craft_unfinished(const char *from, const char *to, long planned);
/* Rewrites the 1-D dataset `path` of the log `file` in place: edit(values, steps, n, ctx) gets
 * its values as doubles and the step of each row (from the group's `step`; NULL when the group
 * has none) and changes the values. */
void edit_series(const char *file, const char *path,
                 void (*edit)(double *v, const double *step, size_t n, void *ctx), void *ctx);
/* A copy whose root attribute `format` is another. */
void craft_format(const char *from, const char *to, const char *format);

/* ------------------------------------------------------------------ the analysis tests' logs */

/* `train TINY_LOGS --steps 60` into the scratch directory: batch.h5 and power-v.h5 with
 * Lipschitz probes, layer-pre.h5, noprobes.h5 (batch, --probes none) and diverged.h5 (a run
 * the engine stops as diverged); and where the tests put crafted copies: nan-loss.h5,
 * nan-last.h5, future.h5 (another format) and notes.h5 (not HDF5). */
enum { LOG_BATCH = 1, LOG_PV = 2, LOG_LN = 4, LOG_NONE = 8, LOG_DIV = 16 };
extern const char *g_batch, *g_pv, *g_ln, *g_none, *g_div;
extern const char *g_nan, *g_nanlast, *g_badver, *g_text;
/* For a group setup: harness_setup() and the logs of the `which` bits, trained at once; sets
 * every path above. Returns 0 or -1. */
int train_analysis_logs(unsigned which);

#endif
