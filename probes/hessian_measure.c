/* The smoothness measurements around one point (hessian.h): the grid along the descent
 * direction, then PyHessian's top eigenvalues, trace and eigenvalue density. One function for
 * the training probe and debug-step --lipschitz, so a debug state replays what runs record. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hessian.h"
#include "util.h"

const double NS_GRID_C[NS_GRID_N] = {0.5, 1.0, 2.0, 4.0};

static int max_int(int a, int b) { return a > b ? a : b; }

void ns_smooth_init(NsSmoothness *s, const NsSmoothPlan *plan, size_t P)
{
    memset(s, 0, sizeof *s);
    int steps = max_int(max_int(plan->iters, plan->runs > 0 ? plan->steps : 0), 1);
    size_t cells = (size_t)max_int(plan->runs * plan->steps, 1);
    s->top_eigs = ns_xcalloc((size_t)max_int(plan->top, 1), sizeof(double));
    s->nodes = ns_xcalloc(cells, sizeof(double));
    s->weights = ns_xcalloc(cells, sizeof(double));
    s->start = ns_xcalloc(P, sizeof(float));
    if (plan->keep_vectors && plan->samples > 0)
        s->probes = ns_xmalloc(sizeof(float) * P * (size_t)plan->samples);
    s->basis = ns_xmalloc(sizeof(float) * P * (size_t)steps);
    s->z = ns_xmalloc(sizeof(float) * P);
    s->hz = ns_xmalloc(sizeof(float) * P);
    s->g = ns_xmalloc(sizeof(float) * P);
    s->alpha = ns_xmalloc(sizeof(double) * (size_t)steps);
    s->beta_t = ns_xmalloc(sizeof(double) * (size_t)steps);
    s->values = ns_xmalloc(sizeof(double) * (size_t)steps);
    s->wts = ns_xmalloc(sizeof(double) * (size_t)steps);
}

void ns_smooth_free(NsSmoothness *s)
{
    void *all[] = {s->top_eigs, s->nodes, s->weights, s->start, s->probes, s->basis, s->z,
                   s->hz, s->g, s->alpha, s->beta_t, s->values, s->wts};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    memset(s, 0, sizeof *s);
}

/* Loss and gradient change along u = -g0/||g0|| at each grid step. */
static void grid(NsSmoothness *s, NsCurvature *c, double lr)
{
    size_t P = c->P;
    double g0_norm = sqrt(ns_sumsq(c->g0, P)), base = lr * sqrt((double)P);
    for (size_t i = 0; i < P; i++) /* u, kept in z until the Hessian */
        s->z[i] = g0_norm > 0 ? (float)(-c->g0[i] / g0_norm) : 0.0f;
    s->grid_loss[0] = c->loss0;
    double lo = c->loss0, hi = c->loss0;
    s->grad_pred = s->beta = 0.0;
    for (int k = 0; k < NS_GRID_N; k++) {
        s->r[k] = NS_GRID_C[k] * base;
        s->grid_loss[k + 1] = ns_curv_loss_grad(c, s->z, s->r[k], s->g);
        lo = fmin(lo, s->grid_loss[k + 1]);
        hi = fmax(hi, s->grid_loss[k + 1]);
        s->grad_diff[k] = ns_l2_distance(s->g, c->g0, P);
        s->grad_pred = fmax(s->grad_pred, s->grad_diff[k]);
        s->beta = fmax(s->beta, s->grad_diff[k] / s->r[k]);
    }
    s->loss_range = hi - lo;
}

/* A Lanczos run from `start`: its Ritz values and quadrature weights in values/wts. */
static int lanczos_run(NsSmoothness *s, NsCurvature *c, const float *start, int steps)
{
    int k = ns_lanczos(ns_curv_op, c, c->P, start, steps, s->basis, s->alpha, s->beta_t);
    if (k > 0)
        ns_tridiag_eigen(s->alpha, s->beta_t, k, s->values, s->wts);
    return k;
}

static void density_row(NsSmoothness *s, int run, int steps, int k)
{
    for (int j = 0; j < steps; j++) {
        s->nodes[(size_t)run * steps + j] = j < k ? s->values[j] : NAN;
        s->weights[(size_t)run * steps + j] = j < k ? s->wts[j] : 0.0;
    }
}

/* Hutchinson one vector at a time, so a stop is seen between vectors: the same draws, and the
 * same sum (each call's mean of one is its product exactly). */
static double trace_estimate(NsSmoothness *s, NsCurvature *c, int samples, NsRng *rng)
{
    double sum = 0.0;
    for (int k = 0; k < samples && !c->abandoned; k++)
        sum += ns_hutchinson(ns_curv_op, c, c->P, 1, rng, s->z, s->hz,
                             s->probes ? s->probes + (size_t)k * c->P : NULL);
    return samples > 0 ? sum / samples : NAN;
}

int ns_smooth_measure(NsSmoothness *s, NsCurvature *c, const NsSmoothPlan *plan, NsRng *rng)
{
    size_t P = c->P;
    grid(s, c, plan->lr);
    for (int j = 0; j < max_int(plan->top, 1); j++)
        s->top_eigs[j] = NAN;
    s->lanczos_steps = 0;
    int shared = plan->runs > 0 && plan->steps == plan->iters && plan->iters > 0;
    if (plan->iters > 0) {
        ns_fill_unit_gaussian(s->start, P, rng);
        s->lanczos_steps = lanczos_run(s, c, s->start, plan->iters);
        ns_largest_magnitude(s->values, s->lanczos_steps, s->top_eigs, plan->top);
        if (shared) /* a unit Gaussian start is what quadrature draws too */
            density_row(s, 0, plan->steps, s->lanczos_steps);
    }
    s->trace = trace_estimate(s, c, plan->samples, rng);
    for (int run = shared; run < plan->runs && !c->abandoned; run++) {
        ns_fill_unit_gaussian(s->z, P, rng);
        density_row(s, run, plan->steps, lanczos_run(s, c, s->z, plan->steps));
    }
    return c->abandoned;
}
