/* The backbone of every run log: one row per training step (loss, learning rate, gradient
 * norm, speed, time) and one per validation pass. Always on, also with --probes none. */
#include <stdlib.h>

#include "probes.h"
#include "util.h"

enum { S_STEP, S_LOSS, S_LR, S_GRAD_NORM, S_TOKS, S_REAL_TOKS, S_SECONDS, S_WALL, S_PAD, S_PROBES,
       S_N };
enum { E_STEP, E_LOSS, E_PPL, E_N };

typedef struct {
    int step_ids[S_N];
    int penalty_id; /* -1: the scheme adds no penalty to the objective */
    int eval_ids[E_N];
} StepsState;

static const NsRunLogScalar STEPS[S_N] = {
    {"step", "step", "1-based index of the training step"},
    {"loss", "nats", "mean cross-entropy over the real positions of the step's batch, before the "
                     "update"},
    {"lr", "1", "learning rate of the step's update"},
    {"grad_norm", "1", "global L2 norm of the gradient before clipping"},
    {"tokens_per_s", "positions/s", "B*T / step_seconds (padding included)"},
    {"real_tokens_per_s", "tokens/s", "real (non-padding) positions / step_seconds"},
    {"step_seconds", "s", "wall time from fetching the batch to the end of the update, with the "
                          "probes that run inside (norm-site hooks, smoothness); end-of-step "
                          "recording excluded"},
    {"wall_time", "s", "seconds since this process started training"},
    {"padding_fraction", "1", "padded positions / positions of the step's batch (0 for stream "
                              "batching; small with --max-tokens)"},
    {"probe_seconds", "s", "wall time in the per-step probes' hooks (batch-stats, gradients, "
                           "params, norm-gap) since the previous row: this step's, and the "
                           "previous step's end-of-step recording; the smoothness probe's time "
                           "is lipschitz/seconds"},
};

/* Declared for schemes that add a penalty to the objective (batch-regularized) only. */
static const NsRunLogScalar PENALTY = {
    "penalty", "nats", "the training objective's penalty at the step's batch, before the update: "
                       "batch-regularized's P summed over the sites (each divided by the batch's "
                       "real tokens over all ranks; model-spec.md); the objective is loss + "
                       "penalty"};

static const NsRunLogScalar EVALS[E_N] = {
    {"step", "step", "training steps completed when the validation pass ran"},
    {"loss", "nats", "mean cross-entropy over the validation text, inference mode"},
    {"ppl", "1", "validation perplexity exp(loss)"},
};

static int declare(NsProbe *p, NsProbes *set, char *err)
{
    StepsState *st = p->state;
    if (ns_runlog_add_scalars(&set->log, NS_RUNLOG_STEPS, STEPS, S_N, st->step_ids, err) < 0)
        return -1;
    st->penalty_id = -1;
    if (ns_norm_scheme_for(set->tr->model.cfg.norm)->has_penalty &&
        ns_runlog_add_scalars(&set->log, NS_RUNLOG_STEPS, &PENALTY, 1, &st->penalty_id, err) < 0)
        return -1;
    return ns_runlog_add_scalars(&set->log, NS_RUNLOG_EVAL, EVALS, E_N, st->eval_ids, err);
}

static void step_end(NsProbe *p, NsProbes *set, const NsStepInfo *info)
{
    StepsState *st = p->state;
    NsRunLog *log = &set->log;
    ns_runlog_append_i64(log, st->step_ids[S_STEP], info->step);
    ns_runlog_append_f64(log, st->step_ids[S_LOSS], info->loss);
    ns_runlog_append_f64(log, st->step_ids[S_LR], info->lr);
    ns_runlog_append_f64(log, st->step_ids[S_GRAD_NORM], info->grad_norm);
    ns_runlog_append_f64(log, st->step_ids[S_TOKS], info->tokens_per_s);
    ns_runlog_append_f64(log, st->step_ids[S_REAL_TOKS], info->real_tokens_per_s);
    ns_runlog_append_f64(log, st->step_ids[S_SECONDS], info->step_seconds);
    ns_runlog_append_f64(log, st->step_ids[S_WALL], info->wall_time);
    ns_runlog_append_f64(log, st->step_ids[S_PAD],
                         info->n_positions > 0 ? 1.0 - (double)info->n_real / info->n_positions
                                               : 0.0);
    ns_runlog_append_f64(log, st->step_ids[S_PROBES], set->probe_seconds);
    if (st->penalty_id >= 0)
        ns_runlog_append_f64(log, st->penalty_id, info->penalty);
    set->probe_seconds = 0.0;
}

static void eval_end(NsProbe *p, NsProbes *set, int64_t step, double loss, double ppl)
{
    StepsState *st = p->state;
    ns_runlog_append_i64(&set->log, st->eval_ids[E_STEP], step);
    ns_runlog_append_f64(&set->log, st->eval_ids[E_LOSS], loss);
    ns_runlog_append_f64(&set->log, st->eval_ids[E_PPL], ppl);
}

static void destroy(NsProbe *p) { free(p->state); }

void ns_probe_steps(NsProbe *p)
{
    *p = (NsProbe){.name = "steps", .state = ns_xcalloc(1, sizeof(StepsState)),
                   .declare = declare, .step_end = step_end, .eval_end = eval_end,
                   .destroy = destroy};
}
