/* Finite-difference checks (fdcheck.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fdcheck.h"
#include "util.h"

int fd_crossed;

float *falloc(size_t n) { return ns_xcalloc(n, sizeof(float)); }

void fill_normal(float *x, size_t n, double mean, double std, NsRng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(mean + std * ns_rng_normal(rng));
}

void fill_uniform(float *x, size_t n, double lo, double hi, NsRng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * ns_rng_uniform(rng));
}

double wsum(const float *w, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)w[i] * y[i];
    return s;
}

double rms(const float *g, size_t n)
{
    return n ? sqrt(ns_sumsq(g, n) / (double)n) : 0.0;
}

void make_mask(uint8_t *mask, const int *len, int B, int T)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            mask[b * T + t] = t < len[b];
}

/* f'(0) from f at 0, d1, d2 (same sign): the slope of the quadratic through the three points. */
static double one_sided(double f0, double d1, double f1, double d2, double f2)
{
    return ((f1 - f0) * d2 * d2 - (f2 - f0) * d1 * d1) / (d1 * d2 * (d2 - d1));
}

/* dL/dx[i] from f at x[i] + {-2h, -h, +h, +2h}. The fourth-order central stencil cancels the
 * curvature error. Where a ReLU kink lies inside the stencil (fd_crossed) it falls back to the
 * plain central difference over +-h if those two points are clean, else to the clean side's
 * second-order one-sided stencil (returns 1: its rounding noise is 2.5x the central one's).
 * Returns -1 if both sides cross a kink. */
static int fd_estimate(ObjFn f, void *ctx, float *x, size_t i, float h, double l0, double *num)
{
    float save = x[i];
    double d[4], l[4];
    int crossed[4];
    for (int s = 0; s < 4; s++) {
        x[i] = save + (float)(s - 2 + (s >= 2)) * h;
        d[s] = (double)x[i] - save;
        fd_crossed = 0;
        l[s] = f(ctx);
        crossed[s] = fd_crossed;
    }
    x[i] = save;
    double c1 = (l[2] - l[1]) / (d[2] - d[1]), c2 = (l[3] - l[0]) / (d[3] - d[0]);
    int left = !crossed[0] && !crossed[1], right = !crossed[2] && !crossed[3];
    if (left && right)
        *num = (4 * c1 - c2) / 3;
    else if (!crossed[1] && !crossed[2])
        *num = c1;
    else if (right)
        *num = one_sided(l0, d[2], l[2], d[3], l[3]);
    else if (left)
        *num = one_sided(l0, d[1], l[1], d[0], l[0]);
    else
        return -1;
    return !(left && right) && !(!crossed[1] && !crossed[2]);
}

double fd_check(const char *what, ObjFn f, void *ctx, float *x, size_t n,
                       const float *grad, size_t samples, float h, double scale, NsRng *rng)
{
    if (scale <= 0.0)
        scale = rms(grad, n);
    scale = fmax(scale, 1e-12);
    size_t count = samples < n ? samples : n, *idx = malloc(sizeof(size_t) * n), wi = 0;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t k = 0; k < count && samples < n; k++) { /* partial Fisher-Yates */
        size_t j = k + (size_t)ns_rng_below(rng, n - k), t = idx[k];
        idx[k] = idx[j], idx[j] = t;
    }
    fd_crossed = 0;
    double worst = -1.0, wa = 0.0, wn = 0.0, l0 = f(ctx), num = 0.0;
    size_t noisy = 0, skipped = 0;
    for (size_t k = 0; k < count; k++) {
        size_t i = idx[k];
        int r = fd_estimate(f, ctx, x, i, h, l0, &num);
        if (r < 0)
            r = fd_estimate(f, ctx, x, i, h / 4, l0, &num) < 0 ? -1 : 1;
        if (r < 0) {
            skipped++;
            continue;
        }
        noisy += r;
        double err = (r ? 0.5 : 1.0) * fabs(grad[i] - num) / fmax(fabs(num), scale);
        if (!isfinite(err) || !isfinite(grad[i]))
            err = INFINITY;
        if (err > worst)
            worst = err, wi = i, wa = grad[i], wn = num;
    }
    free(idx);
    f(ctx); /* leave the outputs of the unperturbed point behind */
    printf("    %-34s worst rel err %.2e  (coord %zu: analytic % .6e numeric % .6e)", what, worst,
           wi, wa, wn);
    if (noisy || skipped)
        printf("  [kinks: %zu one-sided or h/4, %zu skipped]", noisy, skipped);
    printf("\n");
    if (!(worst <= TOL) || 2 * skipped > count)
        fail_msg("%s: gradient mismatch at coord %zu: analytic %.7g, numeric %.7g (rel %.3g), "
                 "%zu of %zu coordinates skipped", what, wi, wa, wn, worst, skipped, count);
    return worst;
}
