/* Loss smoothness and curvature along the training trajectory, every --lipschitz-every steps,
 * on the step's own batch, right after its backward pass. Every extra pass is one call of
 * ns_model_loss_grad_at, which runs in the probe's own scratch model with dropout off and no
 * hooks, so the model being trained (its parameters, gradients, norm state and dropout RNG) is
 * only read, and training continues exactly as without this probe.
 *
 * With theta0 the parameters, g0 the gradient at theta0 (dropout off), u = -g0/||g0|| and step
 * lengths r_k = c_k * lr_t * sqrt(P) (hessian.h, NS_GRID_C), the probe records:
 *   loss_range          max - min of L(theta0 + r_k u) over k, including r = 0
 *   grad_predictiveness max_k ||g(theta0 + r_k u) - g0||
 *   beta_smoothness     max_k ||g(theta0 + r_k u) - g0|| / r_k
 * and PyHessian's measures from Hessian-vector products (hessian.h: central differences with a
 * ReLU sides pinned, within 1 % of exact products):
 *   hessian_top_eig(s)  Lanczos, --hessian-iters steps, full reorthogonalization
 *   hessian_trace       Hutchinson, --hutchinson-samples Rademacher vectors
 *   density_*           stochastic Lanczos quadrature, --density-runs x --density-steps
 * Each pass starts from the norm state before the step (kept at step_begin), so batch-type
 * schemes and PN see the same state and phase in every pass. For power and power-official
 * after warm-up, "gradient" means what their approximate backward computes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "hessian.h"
#include "probes.h"
#include "util.h"

typedef struct {
    int ids[NS_LIPSCHITZ_N]; /* the schema's group lipschitz */
    NsModelSnapshot snap;   /* norm state before the measured step */
    NsModelScratch scratch; /* where the passes run */
    NsCurvature curv;
    NsSmoothPlan plan;
    NsSmoothness found;
    NsRng rng;
} LipState;

static int declare(NsProbe *p, NsProbes *set, char *err)
{
    LipState *st = p->state;
    const NsRunConfig *cfg = &set->tr->cfg;
    st->plan = (NsSmoothPlan){.iters = cfg->hessian_iters, .top = cfg->hessian_top,
                              .samples = cfg->hutchinson_samples, .runs = cfg->density_runs,
                              .steps = cfg->density_steps ? cfg->density_steps
                                                          : cfg->hessian_iters};
    if (st->plan.steps == 0) /* no Lanczos steps at all: no density */
        st->plan.runs = 0;
    NsRunLogWidths widths = {.grid = NS_GRID_N + 1,
                             .hessian_top = st->plan.iters ? st->plan.top : 0,
                             .density = st->plan.runs * st->plan.steps};
    if (ns_runlog_add_group(&set->log, NS_G_LIPSCHITZ, NS_RUNLOG_LIPSCHITZ, &widths, st->ids,
                            err) < 0)
        return -1;
    const NsModel *m = &set->tr->model;
    if (cfg->lipschitz_every > 0) { /* a second model's memory, only when measuring */
        ns_model_scratch_init(&st->scratch, m);
        ns_curv_init(&st->curv, m, &st->scratch);
        ns_smooth_init(&st->found, &st->plan, m->layout.total);
    }
    ns_rng_seed(&st->rng, cfg->seed ^ 0x11b5c417ULL);
    return 0;
}

static void append_vec(NsProbes *set, int id, const double *v, int n)
{
    if (id < 0)
        return;
    float *row = ns_xmalloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++)
        row[i] = (float)v[i];
    ns_runlog_append(&set->log, id, row);
    free(row);
}

/* A stop signal inside the measurement (minutes with many density runs) abandons it: the
 * trainer then finishes its step, flushes and checkpoints as on any stop. */
static int stop_asked(void *trainer)
{
    const NsTrainer *tr = trainer;
    return ns_stop_agreed(tr->comm);
}

/* Returns 1 when a stop abandoned the measurement (nothing recorded). */
static int measure(LipState *st, NsProbes *set, const NsStepInfo *info)
{
    const NsTrainer *tr = set->tr;
    NsSmoothness *f = &st->found;
    long pinned = st->curv.pinned;
    ns_curv_bind(&st->curv, &st->snap, tr->model.params, tr->tokens, tr->mask);
    st->curv.stop = stop_asked;
    st->curv.stop_ctx = (void *)tr;
    st->plan.lr = info->lr;
    if (ns_smooth_measure(f, &st->curv, &st->plan, &st->rng))
        return 1;
    ns_runlog_append_f64(&set->log, st->ids[NS_LIPSCHITZ_LOSS_RANGE], f->loss_range);
    ns_runlog_append_f64(&set->log, st->ids[NS_LIPSCHITZ_GRAD_PREDICTIVENESS], f->grad_pred);
    ns_runlog_append_f64(&set->log, st->ids[NS_LIPSCHITZ_BETA_SMOOTHNESS], f->beta);
    ns_runlog_append_f64(&set->log, st->ids[NS_LIPSCHITZ_HESSIAN_TOP_EIG], f->top_eigs[0]);
    ns_runlog_append_f64(&set->log, st->ids[NS_LIPSCHITZ_HESSIAN_TRACE], f->trace);
    ns_runlog_append_f64(&set->log, st->ids[NS_LIPSCHITZ_HVP_PINNED], (double)(st->curv.pinned - pinned));
    append_vec(set, st->ids[NS_LIPSCHITZ_GRID_LOSS], f->grid_loss, NS_GRID_N + 1);
    append_vec(set, st->ids[NS_LIPSCHITZ_HESSIAN_TOP_EIGS], f->top_eigs, st->plan.top);
    append_vec(set, st->ids[NS_LIPSCHITZ_DENSITY_NODES], f->nodes, st->plan.runs * st->plan.steps);
    append_vec(set, st->ids[NS_LIPSCHITZ_DENSITY_WEIGHTS], f->weights, st->plan.runs * st->plan.steps);
    return 0;
}

/* Every --lipschitz-every steps, and once at the last step of a run shorter than that (so a
 * default run, 1000 steps against a cadence of 2000, is still measured once, at its end). */
static int measured_step(const NsRunConfig *cfg, int64_t step)
{
    int every = cfg->lipschitz_every;
    return every > 0 && (step % every == 0 || (step == cfg->steps && cfg->steps < every));
}

/* Keeps the pre-step norm state of the steps that will be measured. */
static void step_begin(NsProbe *p, NsProbes *set, int64_t step)
{
    LipState *st = p->state;
    if (measured_step(&set->tr->cfg, step))
        ns_model_snapshot(&set->tr->model, &st->snap);
}

static void after_backward(NsProbe *p, NsProbes *set, const NsStepInfo *info)
{
    LipState *st = p->state;
    if (!measured_step(&set->tr->cfg, info->step) || !isfinite(info->loss))
        return;
    double t0 = ns_now_seconds();
    if (measure(st, set, info))
        return;
    ns_runlog_append_i64(&set->log, st->ids[NS_LIPSCHITZ_STEP], info->step);
    ns_runlog_append_f64(&set->log, st->ids[NS_LIPSCHITZ_SECONDS], ns_now_seconds() - t0);
}

static void destroy(NsProbe *p)
{
    LipState *st = p->state;
    if (st->curv.P) {
        ns_curv_free(&st->curv);
        ns_smooth_free(&st->found);
    }
    ns_model_snapshot_free(&st->snap);
    ns_model_scratch_free(&st->scratch);
    free(st);
}

/* The estimators' random vectors come from the probe's own RNG: a resumed run must draw
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
