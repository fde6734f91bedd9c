/* Per parameter tensor, every step: gradient norm (before clipping), parameter norm (before
 * the update), update norm ||p_after - p_before|| and distance from initialisation
 * ||p_after - p_init||, all L2 over the tensor. Rows align with /params/step.
 *
 * The sums come from the trainer (NsTrainer.tensor_sums): it takes them inside its own passes
 * over the gradient and the update, since this probe's separate passes (a copy of the
 * parameters, then two reads of three buffers) were about 2 % of a `small` step, all memory
 * traffic. A step that diverged made no update: its sums are taken here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probes.h"
#include "util.h"

typedef struct {
    int step_id;
    int (*ids)[NS_TENSOR_N]; /* per tensor: the schema's group tensor */
} ParamState;

static int declare(NsProbe *p, NsProbes *set, char *err)
{
    ParamState *st = p->state;
    const NsParamLayout *L = &set->tr->model.layout;
    st->ids = ns_xcalloc((size_t)L->n_tensors, sizeof *st->ids);
    if (ns_runlog_add_group(&set->log, NS_G_PARAMS, NS_RUNLOG_PARAMS, NULL, &st->step_id, err) < 0)
        return -1;
    char path[NS_RUNLOG_PATH_LEN];
    for (int i = 0; i < L->n_tensors; i++)
        if (ns_runlog_add_group(&set->log, NS_G_TENSOR,
                                ns_runlog_path(path, sizeof path, NS_RUNLOG_PARAMS,
                                               L->tensors[i].name),
                                NULL, st->ids[i], err) < 0)
            return -1;
    return 0;
}

static void step_end(NsProbe *p, NsProbes *set, const NsStepInfo *info)
{
    ParamState *st = p->state;
    const NsTrainer *tr = set->tr;
    const NsParamLayout *L = &tr->model.layout;
    int updated = tr->step == info->step;
    ns_runlog_append_i64(&set->log, st->step_id, info->step);
    for (int i = 0; i < L->n_tensors; i++) {
        const NsTensorInfo *t = &L->tensors[i];
        NsTensorSums sums = tr->tensor_sums[i];
        if (!updated) {
            sums.param_sq = ns_sumsq(tr->model.params + t->offset, t->size);
            sums.update_sq = 0.0;
            double d = ns_l2_distance(tr->model.params + t->offset, tr->params_init + t->offset,
                                      t->size);
            sums.init_sq = d * d;
        }
        ns_runlog_append_f64(&set->log, st->ids[i][NS_TENSOR_GRAD_NORM], sqrt(sums.grad_sq));
        ns_runlog_append_f64(&set->log, st->ids[i][NS_TENSOR_PARAM_NORM], sqrt(sums.param_sq));
        ns_runlog_append_f64(&set->log, st->ids[i][NS_TENSOR_UPDATE_NORM], sqrt(sums.update_sq));
        ns_runlog_append_f64(&set->log, st->ids[i][NS_TENSOR_DIST_INIT], sqrt(sums.init_sq));
    }
}

static void destroy(NsProbe *p)
{
    ParamState *st = p->state;
    free(st->ids);
    free(st);
}

void ns_probe_params(NsProbe *p)
{
    *p = (NsProbe){.name = "params", .state = ns_xcalloc(1, sizeof(ParamState)),
                   .declare = declare, .step_end = step_end, .destroy = destroy,
                   .wants_tensor_sums = 1};
}
