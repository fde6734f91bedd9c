/* The plots' smoothing and seed bands (declared in gnuplot.h): a trailing mean that starts
 * without a kink, and the mean, minimum and maximum over runs that differ only in seed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "seeds.h"
#include "util.h"

/* The window at index i: grows from 1 to w over the first 2w points along a smoothstep, whose
 * slope is 0 where it reaches w, so the smoothed curve bends nowhere (a window that jumps to w,
 * or grows linearly and then stops, puts a kink in the curve where it stops growing). */
static double window_at(size_t i, size_t w)
{
    double t = (i + 1.0) / (2.0 * (double)w);
    if (t >= 1.0)
        return (double)w;
    return 1.0 + ((double)w - 1.0) * t * t * (3.0 - 2.0 * t); /* flat at both ends */
}

void ns_moving_average(const double *y, size_t n, size_t w, double *out)
{
    w = w < 1 ? 1 : w;
    for (size_t i = 0; i < n; i++) {
        double len = window_at(i, w), sum = 0.0, weight = 0.0;
        size_t whole = (size_t)len;
        double frac = len - (double)whole;
        for (size_t k = 0; k <= whole && k <= i; k++) {
            /* the oldest value in part; the newest gets frac(1 - frac)/(len - 1) more, which
             * keeps the window's mean age exactly (len - 1)/2 between whole lengths, so the
             * curve's lag grows smoothly instead of in kinks at each whole length */
            double wk = k < whole ? 1.0 : frac;
            if (k == 0 && frac > 0)
                wk += frac * (1.0 - frac) / (len - 1.0);
            if (wk > 0 && isfinite(y[i - k]))
                sum += wk * y[i - k], weight += wk;
        }
        out[i] = weight > 0 ? sum / weight : NAN;
    }
}

void ns_seed_bands(const NsLog *logs, int n, const int *ok, int *lead, int *size)
{
    int *group = ns_xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    ns_seed_groups(logs, n, group);
    for (int i = 0; i < n; i++) {
        lead[i] = -1, size[i] = 0;
        for (int j = 0; ok[i] && j < n; j++)
            if (ok[j] && group[j] == group[i]) {
                lead[i] = lead[i] < 0 ? j : lead[i];
                size[i]++;
            }
    }
    free(group);
}

const char *ns_group_label(char *buf, size_t len, const char *label)
{
    snprintf(buf, len, "%s", label);
    char *at = strstr(buf, " seed ");
    if (at && at[6] && strspn(at + 6, "0123456789") == strlen(at + 6))
        *at = '\0';
    return buf;
}

void ns_band(double *const *ys, const size_t *ns, int m, size_t n, double *mean, double *lo,
             double *hi)
{
    for (size_t r = 0; r < n; r++) {
        double sum = 0, a = INFINITY, b = -INFINITY;
        int count = 0;
        for (int k = 0; k < m; k++)
            if (r < ns[k] && isfinite(ys[k][r])) {
                double v = ys[k][r];
                sum += v, count++;
                a = v < a ? v : a, b = v > b ? v : b;
            }
        mean[r] = count ? sum / count : NAN;
        lo[r] = count ? a : NAN;
        hi[r] = count ? b : NAN;
    }
}

/* About 4 % of the series, so a curve keeps its shape; at most 200 rows. */
size_t ns_smoothing_window(size_t n)
{
    size_t w = n / 25;
    return w < 1 ? 1 : w > 200 ? 200 : w;
}

