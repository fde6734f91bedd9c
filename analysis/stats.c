#include "stats.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ns_quantile(const double *x, size_t n, double q)
{
    double *v = ns_xmalloc(sizeof(double) * (n ? n : 1));
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]))
            v[m++] = x[i];
    double result = NAN;
    if (m > 0) {
        qsort(v, m, sizeof(double), cmp_double);
        double pos = q * (double)(m - 1);
        size_t lo = (size_t)floor(pos), hi = lo + 1 < m ? lo + 1 : lo;
        result = v[lo] + (pos - (double)lo) * (v[hi] - v[lo]);
    }
    free(v);
    return result;
}

double ns_median(const double *x, size_t n) { return ns_quantile(x, n, 0.5); }

double ns_finite_mean(const double *x, size_t n)
{
    double s = 0.0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) {
            s += x[i];
            m++;
        }
    return m ? s / (double)m : NAN;
}

double ns_finite_max(const double *x, size_t n)
{
    double r = NAN;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && (isnan(r) || x[i] > r))
            r = x[i];
    return r;
}

double ns_finite_min(const double *x, size_t n)
{
    double r = NAN;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && (isnan(r) || x[i] < r))
            r = x[i];
    return r;
}

size_t ns_count_finite(const double *x, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += isfinite(x[i]) != 0;
    return m;
}

void ns_progress_range(const double *steps, size_t n, double max_step, double lo, double hi,
                       size_t *begin, size_t *end)
{
    size_t b = 0;
    while (b < n && steps[b] / max_step <= lo)
        b++;
    size_t e = b;
    while (e < n && steps[e] / max_step <= hi)
        e++;
    *begin = b;
    *end = e;
}
