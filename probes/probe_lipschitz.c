/* Loss smoothness along the training trajectory (Santurkar et al. 2018, as used in the
 * PowerNorm paper), every --lipschitz-every steps, on the step's own batch, right after its
 * backward pass. Every extra pass is one call of ns_model_loss_grad_at, which runs in the
 * probe's own scratch model with dropout off and no hooks, so the model being trained (its
 * parameters, gradients, norm state and dropout RNG) is only read, and training continues
 * exactly as without this probe.
 *
 * With theta0 the parameters, g0 the gradient at theta0 (dropout off), u = -g0/||g0|| and
 * step lengths r_k = c_k * lr_t * sqrt(P) for c_k in GRID (lr_t * sqrt(P) is the length of a
 * typical AdamW step, whose per-coordinate size is about lr_t), the probe measures:
 *   loss_range          max - min of L(theta0 + r_k u) over k, including r = 0
 *   grad_predictiveness max_k ||g(theta0 + r_k u) - g0||
 *   beta_smoothness     max_k ||g(theta0 + r_k u) - g0|| / r_k
 *   hessian_top_eig     power iteration (--hessian-iters) with Hv ~ (g(theta0 + eps v) - g0)/eps,
 *                       eps = HVP_EPS, v unit-norm, starting from a seeded random direction.
 * Each pass starts from the norm state before the step (kept at step_begin), so batch-type
 * schemes and PN see the same state and phase in every pass. For power and power-official
 * after warm-up, "gradient" means what their approximate backward computes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "probes.h"
#include "util.h"

static const double GRID[] = {0.5, 1.0, 2.0, 4.0};
#define N_GRID (int)(sizeof GRID / sizeof GRID[0])
#define HVP_EPS 1e-2

enum { L_STEP, L_RANGE, L_PRED, L_BETA, L_EIG, L_SECONDS, L_N };

typedef struct {
    int ids[L_N];
    int losses_id;
    float *theta, *g0, *g, *v; /* [P]: parameters of a pass, gradients, direction */
    NsModelSnapshot snap;      /* norm state before the measured step */
    NsModelScratch scratch;    /* where the passes run */
    NsRng rng;
} LipState;

static const NsRunLogScalar SERIES[L_N] = {
    {"step", "step", "training step at which the smoothness was measured"},
    {"loss_range", "nats", "max - min of the loss along -g0 over the step grid (incl. 0)"},
    {"grad_predictiveness", "1", "max over the grid of ||g(theta0 + r u) - g0||_2"},
    {"beta_smoothness", "1/length", "max over the grid of ||g(theta0 + r u) - g0|| / r"},
    {"hessian_top_eig", "1", "largest-magnitude Hessian eigenvalue by power iteration on "
                             "finite-difference Hessian-vector products"},
    {"seconds", "s", "wall time of this probe invocation"},
};

static int declare(NsProbe *p, NsProbes *set, char *err)
{
    LipState *st = p->state;
    if (ns_runlog_add_scalars(&set->log, NS_RUNLOG_LIPSCHITZ, SERIES, L_N, st->ids, err) < 0)
        return -1;
    char path[NS_RUNLOG_PATH_LEN];
    ns_runlog_path(path, sizeof path, NS_RUNLOG_LIPSCHITZ, "grid_loss");
    st->losses_id = ns_runlog_add(&set->log, path, NS_SERIES_F32_VEC, N_GRID + 1, "nats",
                                  "loss at r = 0 then at each grid step r_k = c_k * lr * "
                                  "sqrt(P), c_k = 0.5, 1, 2, 4", err);
    const NsModel *m = &set->tr->model;
    size_t P = m->layout.total;
    st->theta = ns_xmalloc(sizeof(float) * P);
    st->g0 = ns_xmalloc(sizeof(float) * P);
    st->g = ns_xmalloc(sizeof(float) * P);
    st->v = ns_xmalloc(sizeof(float) * P);
    if (set->tr->cfg.lipschitz_every > 0) /* a second model's memory, only when measuring */
        ns_model_scratch_init(&st->scratch, m);
    ns_rng_seed(&st->rng, set->tr->cfg.seed ^ 0x11b5c417ULL);
    return st->losses_id < 0 ? -1 : 0;
}

/* Loss and gradient (into out) at theta0 + r * dir, from the pre-step norm state. */
static double loss_and_grad(LipState *st, const NsTrainer *tr, const float *dir, double r,
                            float *out)
{
    const NsModel *m = &tr->model;
    const float *theta0 = m->params; /* the passes never write the model: still the step's */
    size_t P = m->layout.total;
    for (size_t i = 0; i < P; i++)
        st->theta[i] = theta0[i] + (float)(r * (dir ? dir[i] : 0.0f));
    return ns_model_loss_grad_at(m, &st->snap, st->theta, tr->tokens, tr->mask, out,
                                 &st->scratch);
}

static double top_eigenvalue(LipState *st, const NsTrainer *tr, int iters)
{
    size_t P = tr->model.layout.total;
    for (size_t i = 0; i < P; i++)
        st->v[i] = (float)ns_rng_normal(&st->rng);
    double norm = sqrt(ns_sumsq(st->v, P)), eig = NAN;
    for (int it = 0; it < iters && norm > 0; it++) {
        for (size_t i = 0; i < P; i++)
            st->v[i] /= (float)norm;
        loss_and_grad(st, tr, st->v, HVP_EPS, st->g);
        double dot = 0.0;
        for (size_t i = 0; i < P; i++) {
            st->g[i] = (float)((st->g[i] - st->g0[i]) / HVP_EPS); /* Hv */
            dot += (double)st->g[i] * st->v[i];
        }
        eig = dot; /* Rayleigh quotient v.Hv with |v| = 1 */
        memcpy(st->v, st->g, sizeof(float) * P);
        norm = sqrt(ns_sumsq(st->v, P));
    }
    return eig;
}

static void measure(LipState *st, NsProbes *set, const NsStepInfo *info)
{
    const NsTrainer *tr = set->tr;
    size_t P = tr->model.layout.total;
    float losses[N_GRID + 1];
    losses[0] = (float)loss_and_grad(st, tr, NULL, 0.0, st->g0);
    double g0_norm = sqrt(ns_sumsq(st->g0, P)), base = info->lr * sqrt((double)P);
    for (size_t i = 0; i < P; i++) /* unit descent direction, kept in v until the Hessian */
        st->v[i] = g0_norm > 0 ? (float)(-st->g0[i] / g0_norm) : 0.0f;
    double lo = losses[0], hi = losses[0], pred = 0.0, beta = 0.0;
    for (int k = 0; k < N_GRID; k++) {
        double r = GRID[k] * base;
        losses[k + 1] = (float)loss_and_grad(st, tr, st->v, r, st->g);
        lo = fmin(lo, losses[k + 1]);
        hi = fmax(hi, losses[k + 1]);
        double change = ns_l2_distance(st->g, st->g0, P);
        pred = fmax(pred, change);
        beta = fmax(beta, change / r);
    }
    double eig = tr->cfg.hessian_iters > 0 ? top_eigenvalue(st, tr, tr->cfg.hessian_iters) : NAN;
    ns_runlog_append_f64(&set->log, st->ids[L_RANGE], hi - lo);
    ns_runlog_append_f64(&set->log, st->ids[L_PRED], pred);
    ns_runlog_append_f64(&set->log, st->ids[L_BETA], beta);
    ns_runlog_append_f64(&set->log, st->ids[L_EIG], eig);
    ns_runlog_append(&set->log, st->losses_id, losses);
}

/* Keeps the pre-step norm state of the steps that will be measured. */
static void step_begin(NsProbe *p, NsProbes *set, int64_t step)
{
    LipState *st = p->state;
    int every = set->tr->cfg.lipschitz_every;
    if (every > 0 && step % every == 0)
        ns_model_snapshot(&set->tr->model, &st->snap);
}

static void after_backward(NsProbe *p, NsProbes *set, const NsStepInfo *info)
{
    LipState *st = p->state;
    int every = set->tr->cfg.lipschitz_every;
    if (every <= 0 || info->step % every != 0 || !isfinite(info->loss))
        return;
    double t0 = ns_now_seconds();
    measure(st, set, info);
    ns_runlog_append_i64(&set->log, st->ids[L_STEP], info->step);
    ns_runlog_append_f64(&set->log, st->ids[L_SECONDS], ns_now_seconds() - t0);
}

static void destroy(NsProbe *p)
{
    LipState *st = p->state;
    free(st->theta);
    free(st->g0);
    free(st->g);
    free(st->v);
    ns_model_snapshot_free(&st->snap);
    ns_model_scratch_free(&st->scratch);
    free(st);
}

/* The power iteration's start vectors come from the probe's own RNG: a resumed run must draw
 * the ones an uninterrupted run would, so the RNG is saved with each checkpoint. */
static int save_rng(NsProbe *p, NsProbes *set, hid_t group, char *err)
{
    (void)set;
    const LipState *st = p->state;
    hsize_t four[1] = {4};
    return ns_h5_write(group, "rng", H5T_NATIVE_UINT64, st->rng.s, 1, four, err);
}

static int load_rng(NsProbe *p, NsProbes *set, hid_t group, char *err)
{
    (void)set;
    LipState *st = p->state;
    if (ns_h5_read(group, "rng", H5T_NATIVE_UINT64, st->rng.s, 4, err) < 0)
        return ns_fail_context(err, "probe lipschitz");
    return 0;
}

void ns_probe_lipschitz(NsProbe *p)
{
    *p = (NsProbe){.name = "lipschitz", .state = ns_xcalloc(1, sizeof(LipState)),
                   .declare = declare, .step_begin = step_begin,
                   .after_backward = after_backward, .destroy = destroy,
                   .save_state = save_rng, .load_state = load_rng};
}
