/* The backbone of every run log: one row per training step (loss, learning rate, gradient
 * norm, speed, time) and one per validation pass. Always on, also with --probes none. */
#include <stdlib.h>

#include "probes.h"
#include "util.h"

/* The series are the schema's groups `steps` and `eval` (src/io/runlog.schema.json). */
typedef struct {
    int step_ids[NS_STEPS_N];
    int penalty_id; /* -1: the scheme adds no penalty to the objective (group steps_penalty) */
    int eval_ids[NS_EVAL_N];
} StepsState;

static int declare(NsProbe *p, NsProbes *set, char *err)
{
    StepsState *st = p->state;
    if (ns_runlog_add_group(&set->log, NS_G_STEPS, NS_RUNLOG_STEPS, NULL, st->step_ids, err) < 0)
        return -1;
    st->penalty_id = -1;
    if (ns_norm_scheme_for(set->tr->model.cfg.norm)->has_penalty &&
        ns_runlog_add_group(&set->log, NS_G_STEPS_PENALTY, NS_RUNLOG_STEPS, NULL, &st->penalty_id,
                            err) < 0)
        return -1;
    return ns_runlog_add_group(&set->log, NS_G_EVAL, NS_RUNLOG_EVAL, NULL, st->eval_ids, err);
}

static void step_end(NsProbe *p, NsProbes *set, const NsStepInfo *info)
{
    StepsState *st = p->state;
    NsRunLog *log = &set->log;
    ns_runlog_append_i64(log, st->step_ids[NS_STEPS_STEP], info->step);
    ns_runlog_append_f64(log, st->step_ids[NS_STEPS_LOSS], info->loss);
    ns_runlog_append_f64(log, st->step_ids[NS_STEPS_LR], info->lr);
    ns_runlog_append_f64(log, st->step_ids[NS_STEPS_GRAD_NORM], info->grad_norm);
    ns_runlog_append_f64(log, st->step_ids[NS_STEPS_TOKENS_PER_S], info->tokens_per_s);
    ns_runlog_append_f64(log, st->step_ids[NS_STEPS_REAL_TOKENS_PER_S], info->real_tokens_per_s);
    ns_runlog_append_f64(log, st->step_ids[NS_STEPS_STEP_SECONDS], info->step_seconds);
    ns_runlog_append_f64(log, st->step_ids[NS_STEPS_WALL_TIME], info->wall_time);
    ns_runlog_append_f64(log, st->step_ids[NS_STEPS_PADDING_FRACTION],
                         info->n_positions > 0 ? 1.0 - (double)info->n_real / info->n_positions
                                               : 0.0);
    ns_runlog_append_f64(log, st->step_ids[NS_STEPS_PROBE_SECONDS], set->probe_seconds);
    if (st->penalty_id >= 0)
        ns_runlog_append_f64(log, st->penalty_id, info->penalty);
    set->probe_seconds = 0.0;
}

static void eval_end(NsProbe *p, NsProbes *set, int64_t step, double loss, double ppl)
{
    StepsState *st = p->state;
    ns_runlog_append_i64(&set->log, st->eval_ids[NS_EVAL_STEP], step);
    ns_runlog_append_f64(&set->log, st->eval_ids[NS_EVAL_LOSS], loss);
    ns_runlog_append_f64(&set->log, st->eval_ids[NS_EVAL_PPL], ppl);
}

static void destroy(NsProbe *p) { free(p->state); }

void ns_probe_steps(NsProbe *p)
{
    *p = (NsProbe){.name = "steps", .state = ns_xcalloc(1, sizeof(StepsState)),
                   .declare = declare, .step_end = step_end, .eval_end = eval_end,
                   .destroy = destroy};
}
