/* Small statistics shared by the analysis programs. NaN marks a missing value in run logs;
 * every function here ignores NaNs. */
#ifndef NS_STATS_H
#define NS_STATS_H

#include <stddef.h>

/* Quantile q in [0,1] of the finite values of x[0..n) by linear interpolation between order
 * statistics (numpy's default); NaN if there are none. */
double ns_quantile(const double *x, size_t n, double q);
double ns_median(const double *x, size_t n);
double ns_finite_mean(const double *x, size_t n);
double ns_finite_max(const double *x, size_t n);
double ns_finite_min(const double *x, size_t n);
size_t ns_count_finite(const double *x, size_t n);

/* Rows [*begin, *end) of a series whose steps lie in the fraction (lo, hi] of training,
 * where progress = step / max_step. Steps must be ascending. */
void ns_progress_range(const double *steps, size_t n, double max_step, double lo, double hi,
                       size_t *begin, size_t *end);

#endif
