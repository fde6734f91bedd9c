/* Reading a run log by stretches of training: the values of a series whose step lies in a
 * fraction (lo, hi] of the run, pooled over one or more series. The comparison table, the study
 * report and the release report all summarise runs this way. */
#ifndef NS_WINDOW_H
#define NS_WINDOW_H

#include <stddef.h>

#include "logread.h"

/* A series that may legitimately be absent (a probe that was off): NULL and *n = 0, no error. */
double *ns_window_series(const NsLog *log, const char *path, size_t *n);

/* Appends to *pool (count values so far) the values of group/name whose step (group/step) lies
 * in (lo, hi] of max_step; every value instead when none does and all_if_empty is set. */
void ns_window_append(const NsLog *log, const char *group, const char *name, double max_step,
                      double lo, double hi, int all_if_empty, double **pool, size_t *count);

/* Quantile q of group/name over (lo, hi] of the run (see ns_window_append); NaN if empty. */
double ns_window_quantile(const NsLog *log, const char *group, const char *name,
                          double max_step, double lo, double hi, int all_if_empty, double q);

/* Median of norm site `site`'s series `name` over (lo, hi] of the run. */
double ns_window_site_median(const NsLog *log, const char *site, const char *name,
                             double max_step, double lo, double hi);
/* Median of series `name` over (lo, hi] of the run, pooled over the norm sites given. */
double ns_window_sites_median(const NsLog *log, char *const *sites, int n_sites,
                              const char *name, double max_step, double lo, double hi);

/* A number for a Markdown table: "n/a" for NaN, else 4 significant digits. */
const char *ns_window_num(char *buf, size_t len, double v);

#endif
