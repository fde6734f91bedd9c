/* Curvature of the training loss at one point: Hessian-vector products by central differences
 * of gradients, and the three measures of PyHessian (Yao et al. 2020) built on them: top
 * eigenvalues (Lanczos with full reorthogonalization), the trace (Hutchinson) and the
 * eigenvalue density (stochastic Lanczos quadrature). Used by the smoothness probe and by
 * debug-step --lipschitz; the solvers take any symmetric operator, so tests can run them on an
 * explicit matrix.
 *
 * Every gradient pass is ns_model_loss_grad_at in a scratch model from one fixed norm state:
 * the model being trained is only read.
 *
 * The product. Hv ~ (g(theta + h v) - g(theta - h v)) / 2h with h = HVP_SCALE ||theta|| / ||v||,
 * so each coordinate moves by about HVP_SCALE of the parameters' own size, and with the ReLU
 * derivatives of theta in both passes. Exact products (double backward) differentiate the
 * piece of the loss that theta lies on, where every ReLU keeps its side. Plain differences do
 * not: a unit whose input changes sign between theta and theta +- h v puts the jump of its
 * gradient, divided by 2h, into the product, an error of any size that a smaller h makes
 * rarer but not smaller; in models of 10^5 ReLU units and more, every product crosses some
 * (measured with bench/torch_ref.py against float64 double-backward products: errors of
 * 50-1400 %, README). So when one side crossed a kink, the product is the one-sided difference
 * of the other side against theta (O(h) truncation); when both did, each pass pins the units
 * that changed side back to theta's side for its backward (relu_sides), after halving h (up
 * to 4 times) while more than 1 % of the units would be pinned. What is left are float32
 * round-off of theta +- h v and of the gradients, ~ 2^-24 / HVP_SCALE of ||Hv||, and the
 * truncation of the smooth pieces (softmax, norms), O(h^2) and growing fast at the top
 * eigenvector; HVP_SCALE = 2^-13 keeps both near 1e-3 of the product (README: measured
 * against exact products). */
#ifndef NS_HESSIAN_H
#define NS_HESSIAN_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define HVP_SCALE (1.0 / 8192.0)

/* The loss around one point theta0, on one batch, from one norm state. */
typedef struct {
    const NsModel *m; /* configuration and layout, never written */
    const NsModelSnapshot *state;
    const float *theta0;
    const int32_t *tokens;
    const uint8_t *mask;
    NsModelScratch *scratch;
    size_t P;
    double loss0, theta_norm;
    float *g0;              /* gradient at theta0 */
    float *theta;           /* work: a pass's parameters */
    NsModelScratch minus;   /* the minus side's passes (plus: scratch); made at the first product */
    uint8_t *relu0;         /* ReLU input > 0 at theta0, per unit of every layer and row */
    size_t n_units;
    long products; /* products taken */
    long one_sided; /* products taken one-sided: one side crossed a ReLU kink */
    long pinned;    /* ReLU units pinned to theta0's side in products crossing on both sides */
    long halved;    /* step halvings (each costs two more forward passes) */
    /* Asked before every product (NULL: never): nonzero abandons the measurement, and
     * `abandoned` stays set until the next ns_curv_bind. */
    int (*stop)(void *ctx);
    void *stop_ctx;
    int abandoned;
} NsCurvature;

void ns_curv_init(NsCurvature *c, const NsModel *m, NsModelScratch *scratch);
void ns_curv_free(NsCurvature *c);
/* Sets the point and the norm state every pass starts from, and computes loss0 and g0 there. */
double ns_curv_bind(NsCurvature *c, const NsModelSnapshot *state, const float *theta0,
                    const int32_t *tokens, const uint8_t *mask);
/* Loss and gradient (into grad) at theta0 + r dir. */
double ns_curv_loss_grad(NsCurvature *c, const float *dir, double r, float *grad);
/* hv = H v at theta0 (see the header comment). */
void ns_curv_hvp(NsCurvature *c, const float *v, float *hv);

/* A symmetric linear operator on n floats. */
typedef void (*NsSymOp)(void *ctx, const float *v, float *out);
void ns_curv_op(void *curvature, const float *v, float *out); /* ns_curv_hvp as an NsSymOp */

/* Lanczos from `start` (any nonzero vector) for up to `steps` steps with full
 * reorthogonalization; basis holds steps * n floats. Fills alpha[k], beta[k-1] of the
 * tridiagonal and returns k, fewer than steps when the Krylov space closes. */
int ns_lanczos(NsSymOp op, void *ctx, size_t n, const float *start, int steps, float *basis,
               double *alpha, double *beta);
/* Eigenvalues of the k x k tridiagonal, ascending, and the squared first components of the
 * unit eigenvectors (the quadrature weights; they sum to 1). weights may be NULL. */
void ns_tridiag_eigen(const double *alpha, const double *beta, int k, double *values,
                      double *weights);
/* Eigen-decomposition of a symmetric n x n matrix (row-major, destroyed) by cyclic Jacobi:
 * values ascending, vectors (may be NULL) as columns of an n x n row-major matrix. */
void ns_sym_eigen(double *a, int n, double *values, double *vectors);

/* The k eigenvalues of largest magnitude among values[0..n), in decreasing magnitude (NaN
 * beyond n). */
void ns_largest_magnitude(const double *values, int n, double *out, int k);

/* Vectors the estimators draw from rng: unit-norm Gaussian, and Rademacher (+-1 entries). */
void ns_fill_unit_gaussian(float *v, size_t n, NsRng *rng);
void ns_fill_rademacher(float *v, size_t n, NsRng *rng);

/* Hutchinson: the mean over `samples` Rademacher vectors z drawn from rng of z . H z. z and hz
 * are n floats of work; keep (samples * n floats, or NULL) receives the vectors. */
double ns_hutchinson(NsSymOp op, void *ctx, size_t n, int samples, NsRng *rng, float *z,
                     float *hz, float *keep);

/* ------------------------------------------------------------ the smoothness measurements */

/* Step lengths of the grid along u = -g0 / ||g0||: r_k = NS_GRID_C[k] * lr * sqrt(P), where
 * lr * sqrt(P) is the length of a typical AdamW step (each coordinate moves by about lr). */
#define NS_GRID_N 4
extern const double NS_GRID_C[NS_GRID_N];

typedef struct {
    double lr;              /* sets the grid's step lengths */
    int iters, top;         /* Lanczos steps of the top-eigenvalue run, eigenvalues kept */
    int samples;            /* Hutchinson vectors (0 = no trace) */
    int runs, steps;        /* quadrature runs and their Lanczos steps (0 runs = no density) */
    int keep_vectors;       /* keep every Hutchinson vector (debug states) */
} NsSmoothPlan;

/* Everything one measurement finds, in the order the estimators draw from the RNG: the
 * top-eigenvalue run's start vector (unit Gaussian), the Hutchinson vectors, then the start of
 * every quadrature run but a first one shared with the top-eigenvalue run (same steps). */
typedef struct {
    double r[NS_GRID_N], grid_loss[NS_GRID_N + 1], grad_diff[NS_GRID_N];
    double loss_range, grad_pred, beta; /* max-min of grid_loss, max grad_diff, max diff / r */
    int lanczos_steps;                  /* of the top-eigenvalue run (its tridiagonal's size) */
    double *top_eigs;                   /* [top], largest magnitude first (NaN: none) */
    double trace;                       /* NaN without samples */
    double *nodes, *weights;            /* [runs * steps]: Ritz values, weights (NaN, 0 unused) */
    float *start;                       /* [P] */
    float *probes;                      /* [samples * P] when keep_vectors */
    /* work */
    float *basis, *z, *hz, *g;
    double *alpha, *beta_t, *values, *wts;
} NsSmoothness;

void ns_smooth_init(NsSmoothness *s, const NsSmoothPlan *plan, size_t P);
void ns_smooth_free(NsSmoothness *s);
/* Measures around the point c is bound to (ns_curv_bind). Returns 0, or 1 when c->stop asked
 * to stop: the measurement is then incomplete and must not be recorded. */
int ns_smooth_measure(NsSmoothness *s, NsCurvature *c, const NsSmoothPlan *plan, NsRng *rng);

#endif
