/* Hessian-vector products by kink-aware central differences, and the Lanczos, Hutchinson and
 * quadrature machinery on top of them (hessian.h says why the product is taken this way). */
#include "hessian.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Halvings of the step when a product pins too many units (ns_curv_hvp): h / 16 keeps the
 * round-off under 1 % of the product. */
#define MAX_HALVINGS 4

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ------------------------------------------------------------ the loss around theta0 */

void ns_curv_init(NsCurvature *c, const NsModel *m, NsModelScratch *scratch)
{
    memset(c, 0, sizeof *c);
    c->m = m;
    c->scratch = scratch;
    c->P = m->layout.total;
    c->g0 = ns_xmalloc(sizeof(float) * c->P);
    c->theta = ns_xmalloc(sizeof(float) * c->P);
    const NsModelConfig *mc = &m->cfg;
    c->n_units = (size_t)mc->n_layers * mc->batch_size * mc->seq_len * mc->d_ff;
    c->relu0 = ns_xmalloc(c->n_units);
}

void ns_curv_free(NsCurvature *c)
{
    free(c->g0);
    free(c->theta);
    ns_model_scratch_free(&c->minus);
    free(c->relu0);
    memset(c, 0, sizeof *c);
}

/* The ReLU units of w's last forward: records their sides into relu0 (record) or pins every
 * unit on the other side than at theta0 back to theta0's side for the backward,
 * which takes a unit's derivative from its output (ns_relu_backward: y > 0), and returns how
 * many it pinned. A pinned unit's forward value is left as computed: it is within h of the kink,
 * where ReLU is continuous, so it moves the gradient by O(h), not by a jump. */
static size_t relu_sides(NsCurvature *c, NsModel *w, int record)
{
    size_t units = (size_t)w->B * w->T * w->cfg.d_ff, pinned = 0, u = 0;
    for (int l = 0; l < w->cfg.n_layers; l++) {
        float *a = w->acts[l].ffh;
        for (size_t i = 0; i < units; i++, u++) {
            uint8_t on = a[i] > 0.0f;
            if (record)
                c->relu0[u] = on;
            else if (on != c->relu0[u]) {
                a[i] = c->relu0[u] ? FLT_MIN : 0.0f;
                pinned++;
            }
        }
    }
    return pinned;
}

double ns_curv_loss_grad(NsCurvature *c, const float *dir, double r, float *grad)
{
    for (size_t i = 0; i < c->P; i++)
        c->theta[i] = c->theta0[i] + (float)(r * (dir ? dir[i] : 0.0f));
    return ns_model_loss_grad_at(c->m, c->state, c->theta, c->tokens, c->mask, grad,
                                 c->scratch);
}

double ns_curv_bind(NsCurvature *c, const NsModelSnapshot *state, const float *theta0,
                    const int32_t *tokens, const uint8_t *mask)
{
    c->abandoned = 0;
    c->state = state;
    c->theta0 = theta0;
    c->tokens = tokens;
    c->mask = mask;
    c->theta_norm = sqrt(ns_sumsq(theta0, c->P));
    c->loss0 = ns_curv_loss_grad(c, NULL, 0.0, c->g0);
    relu_sides(c, &c->scratch->work, 1);
    return c->loss0;
}

/* One side of a difference, the gradient at theta0 + s v with theta0's ReLU derivatives, in two
 * halves, each side in a model of its own (the scratch for plus, c->minus for minus): both
 * sides' forwards decide whether to halve h before either backward runs, so a halving costs
 * two forwards, about 2/3 of a pass, instead of two passes (the PN schemes after warm-up halve
 * in most products). The forward half runs the loss pass from the fixed norm state and pins
 * the units that changed side (relu_sides), and returns how many it pinned. */
static size_t side_forward(NsCurvature *c, NsModel *w, const float *v, double s)
{
    for (size_t i = 0; i < c->P; i++)
        w->params[i] = c->theta0[i] + (float)(s * v[i]);
    ns_model_restore(w, c->state);
    ns_model_set_batch_shape(w, c->m->B_global, c->m->T);
    ns_model_forward(w, c->tokens, c->mask, 1);
    return relu_sides(c, w, 0);
}

/* The backward half: the side's gradient, left in w->grads. */
static const float *side_backward(NsModel *w)
{
    ns_model_zero_grad(w);
    ns_model_backward(w);
    return w->grads;
}

/* The pinned counts over every rank's rows: the choices below (halve h, which side is clean)
 * must be the same on every rank, because each choice is followed by collective passes. */
static void count_over_ranks(const NsCurvature *c, size_t *plus, size_t *minus)
{
    NsComm *comm = c->m->comm;
    if (!comm || comm->size <= 1)
        return;
    double n[2] = {(double)*plus, (double)*minus};
    comm->sum_f64(comm, n, 2);
    *plus = (size_t)n[0];
    *minus = (size_t)n[1];
}

void ns_curv_hvp(NsCurvature *c, const float *v, float *hv)
{
    size_t P = c->P;
    double vn = sqrt(ns_sumsq(v, P));
    c->products++;
    if (!(vn > 0)) {
        memset(hv, 0, sizeof(float) * P);
        return;
    }
    double h = HVP_SCALE * (c->theta_norm > 0 ? c->theta_norm : 1.0) / vn;
    /* The minus side's model is made at the first product: measurements taking none skip it */
    if (!c->minus.work.params)
        ns_model_scratch_init(&c->minus, c->m);
    NsModel *wp = &c->scratch->work, *wm = &c->minus.work;
    size_t plus = side_forward(c, wp, v, h), minus = side_forward(c, wm, v, -h);
    count_over_ranks(c, &plus, &minus);
    /* A pinned unit's forward value is off by up to its own share of the product: in a small
     * model, where pinned units are more than 1 % of all, a smaller step crosses fewer. */
    for (int k = 0; k < MAX_HALVINGS && plus && minus && 100 * (plus + minus) > c->n_units; k++) {
        h *= 0.5;
        c->halved++;
        plus = side_forward(c, wp, v, h);
        minus = side_forward(c, wm, v, -h);
        count_over_ranks(c, &plus, &minus);
    }
    /* A clean side against theta0 itself is exact to O(h), and the crossed side's backward is
     * not needed; pinning both is the fallback */
    int one_sided = (plus > 0) != (minus > 0);
    const float *hi = plus && !minus ? c->g0 : side_backward(wp);
    const float *lo = minus && !plus ? c->g0 : side_backward(wm);
    double span = one_sided ? h : 2.0 * h;
    for (size_t i = 0; i < P; i++)
        hv[i] = (float)(((double)hi[i] - lo[i]) / span);
    c->pinned += (long)(plus && minus ? plus + minus : 0);
    c->one_sided += one_sided;
}

/* Once a stop is asked for, every product is zero without a pass: Lanczos then sees its Krylov
 * space close at once and returns, so no estimator runs on for minutes after a signal. */
void ns_curv_op(void *curvature, const float *v, float *out)
{
    NsCurvature *c = curvature;
    if (!c->abandoned && c->stop && c->stop(c->stop_ctx))
        c->abandoned = 1;
    if (c->abandoned)
        memset(out, 0, sizeof(float) * c->P);
    else
        ns_curv_hvp(c, v, out);
}

/* ------------------------------------------------------------ Lanczos */

int ns_lanczos(NsSymOp op, void *ctx, size_t n, const float *start, int steps, float *basis,
               double *alpha, double *beta)
{
    double sn = sqrt(ns_sumsq(start, n)), scale = 0.0;
    if (!(sn > 0) || steps <= 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        basis[i] = (float)(start[i] / sn);
    float *w = ns_xmalloc(sizeof(float) * n);
    int k = 0;
    for (int j = 0; j < steps; j++) {
        const float *q = basis + (size_t)j * n;
        op(ctx, q, w);
        alpha[j] = dot(w, q, n);
        k = j + 1;
        /* Gram-Schmidt against every basis vector, twice: in float32 storage one pass leaves
         * components of ~1e-7 that Lanczos would amplify into copies of converged values. */
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i <= j; i++) {
                const float *b = basis + (size_t)i * n;
                double proj = dot(w, b, n);
                for (size_t t = 0; t < n; t++)
                    w[t] -= (float)(proj * b[t]);
            }
        double b = sqrt(ns_sumsq(w, n));
        scale = fmax(scale, fabs(alpha[j]) + b);
        if (j + 1 == steps || !(b > 1e-6 * scale)) /* the Krylov space closed */
            break;
        beta[j] = b;
        float *next = basis + (size_t)(j + 1) * n;
        for (size_t t = 0; t < n; t++)
            next[t] = (float)(w[t] / b);
    }
    free(w);
    return k;
}

/* ------------------------------------------------------------ small dense eigen-problems */

static void rotate(double *m, int n, int p, int q, double c, double s, int rows)
{
    for (int k = 0; k < n; k++) {
        double *x = rows ? &m[(size_t)p * n + k] : &m[(size_t)k * n + p];
        double *y = rows ? &m[(size_t)q * n + k] : &m[(size_t)k * n + q];
        double xp = *x, yq = *y;
        *x = c * xp - s * yq;
        *y = s * xp + c * yq;
    }
}

void ns_sym_eigen(double *a, int n, double *values, double *vectors)
{
    double *v = ns_xcalloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n; i++)
        v[(size_t)i * n + i] = 1.0;
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0.0, all = 0.0;
        for (int p = 0; p < n; p++)
            for (int q = 0; q < n; q++) {
                double x = a[(size_t)p * n + q] * a[(size_t)p * n + q];
                all += x;
                off += p != q ? x : 0.0;
            }
        if (off <= 1e-30 * all || off == 0.0)
            break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[(size_t)p * n + q];
                if (apq == 0.0)
                    continue;
                double theta = (a[(size_t)q * n + q] - a[(size_t)p * n + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                rotate(a, n, p, q, c, s, 0);
                rotate(a, n, p, q, c, s, 1);
                rotate(v, n, p, q, c, s, 0);
            }
    }
    /* ascending, by insertion: n is a Lanczos step count or a test's tiny model */
    int *order = ns_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && a[(size_t)order[j - 1] * n + order[j - 1]] > a[(size_t)i * n + i]; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    for (int i = 0; i < n; i++) {
        values[i] = a[(size_t)order[i] * n + order[i]];
        for (int r = 0; vectors && r < n; r++)
            vectors[(size_t)r * n + i] = v[(size_t)r * n + order[i]];
    }
    free(order);
    free(v);
}

void ns_tridiag_eigen(const double *alpha, const double *beta, int k, double *values,
                      double *weights)
{
    double *t = ns_xcalloc((size_t)k * k, sizeof(double));
    double *vec = ns_xmalloc(sizeof(double) * (size_t)k * k);
    for (int i = 0; i < k; i++) {
        t[(size_t)i * k + i] = alpha[i];
        if (i + 1 < k)
            t[(size_t)i * k + i + 1] = t[(size_t)(i + 1) * k + i] = beta[i];
    }
    ns_sym_eigen(t, k, values, vec);
    for (int j = 0; weights && j < k; j++)
        weights[j] = vec[j] * vec[j]; /* row 0: first components */
    free(t);
    free(vec);
}

void ns_largest_magnitude(const double *values, int n, double *out, int k)
{
    int *taken = ns_xcalloc((size_t)(n > 0 ? n : 1), sizeof(int));
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!taken[i] && (best < 0 || fabs(values[i]) > fabs(values[best])))
                best = i;
        out[j] = best < 0 ? NAN : values[best];
        if (best >= 0)
            taken[best] = 1;
    }
    free(taken);
}

/* ------------------------------------------------------------ random vectors, Hutchinson */

void ns_fill_unit_gaussian(float *v, size_t n, NsRng *rng)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)ns_rng_normal(rng);
    double norm = sqrt(ns_sumsq(v, n));
    for (size_t i = 0; i < n && norm > 0; i++)
        v[i] = (float)(v[i] / norm);
}

void ns_fill_rademacher(float *v, size_t n, NsRng *rng)
{
    uint64_t bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 64 == 0)
            bits = ns_rng_next(rng);
        v[i] = (bits >> (i % 64)) & 1 ? 1.0f : -1.0f;
    }
}

double ns_hutchinson(NsSymOp op, void *ctx, size_t n, int samples, NsRng *rng, float *z,
                     float *hz, float *keep)
{
    double sum = 0.0;
    for (int s = 0; s < samples; s++) {
        ns_fill_rademacher(z, n, rng);
        if (keep)
            memcpy(keep + (size_t)s * n, z, sizeof(float) * n);
        op(ctx, z, hz);
        sum += dot(z, hz, n);
    }
    return samples > 0 ? sum / samples : NAN;
}
