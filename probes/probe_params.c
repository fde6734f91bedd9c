/* Per parameter tensor, every step: gradient norm (before clipping), parameter norm (before
 * the update), update norm ||p_after - p_before|| and distance from initialisation
 * ||p_after - p_init||, all L2 over the tensor. Rows align with /params/step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probes.h"
#include "util.h"

enum { P_GRAD, P_PARAM, P_UPDATE, P_INIT, P_N };

typedef struct {
    int step_id;
    int (*ids)[P_N]; /* per tensor */
    float *before;   /* parameters before the update */
} ParamState;

static const struct { const char *name, *def; } SERIES[P_N] = {
    {"grad_norm", "L2 norm of the tensor's gradient before clipping"},
    {"param_norm", "L2 norm of the tensor before the step's update"},
    {"update_norm", "L2 norm of the step's change to the tensor"},
    {"dist_init", "L2 distance of the tensor after the update from its initial value"},
};

static int declare(NsProbe *p, NsProbes *set, char *err)
{
    ParamState *st = p->state;
    const NsParamLayout *L = &set->tr->model.layout;
    st->ids = ns_xcalloc((size_t)L->n_tensors, sizeof *st->ids);
    st->before = ns_xmalloc(sizeof(float) * L->total);
    static const NsRunLogScalar step = {"step", "step",
                                        "training step of each row of every params/<name> series"};
    if (ns_runlog_add_scalars(&set->log, NS_RUNLOG_PARAMS, &step, 1, &st->step_id, err) < 0)
        return -1;
    char path[NS_RUNLOG_PATH_LEN];
    for (int i = 0; i < L->n_tensors; i++) {
        for (int k = 0; k < P_N; k++) {
            ns_runlog_param_path(path, sizeof path, L->tensors[i].name, SERIES[k].name);
            st->ids[i][k] = ns_runlog_add(&set->log, path, NS_SERIES_F64, 1, "1", SERIES[k].def,
                                          err);
            if (st->ids[i][k] < 0)
                return -1;
        }
    }
    return 0;
}

/* The norms below are one pass over each tensor for all its series (instead of one pass per
 * series plus a copy), with 4 independent double sums so the adds need not wait for each
 * other: this probe was about 5 % of a `small` step as separate single-sum passes. */
enum { LANES = 4 };

/* sum g^2 and sum p^2, copying p to before on the way. */
static void grad_param_sums(const float *g, const float *p, float *before, size_t n,
                            double *gg, double *pp)
{
    double sg[LANES] = {0}, sp[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            sg[k] += (double)g[i + k] * g[i + k];
            sp[k] += (double)p[i + k] * p[i + k];
            before[i + k] = p[i + k];
        }
    for (; i < n; i++) {
        sg[0] += (double)g[i] * g[i];
        sp[0] += (double)p[i] * p[i];
        before[i] = p[i];
    }
    *gg = (sg[0] + sg[1]) + (sg[2] + sg[3]);
    *pp = (sp[0] + sp[1]) + (sp[2] + sp[3]);
}

/* sum (now - a)^2 and sum (now - b)^2 */
static void distance_sums(const float *now, const float *a, const float *b, size_t n, double *da,
                          double *db)
{
    double sa[LANES] = {0}, sb[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            double x = (double)now[i + k] - a[i + k], y = (double)now[i + k] - b[i + k];
            sa[k] += x * x;
            sb[k] += y * y;
        }
    for (; i < n; i++) {
        double x = (double)now[i] - a[i], y = (double)now[i] - b[i];
        sa[0] += x * x;
        sb[0] += y * y;
    }
    *da = (sa[0] + sa[1]) + (sa[2] + sa[3]);
    *db = (sb[0] + sb[1]) + (sb[2] + sb[3]);
}

static void after_backward(NsProbe *p, NsProbes *set, const NsStepInfo *info)
{
    (void)info;
    ParamState *st = p->state;
    const NsModel *m = &set->tr->model;
    const NsParamLayout *L = &m->layout;
    for (int i = 0; i < L->n_tensors; i++) {
        const NsTensorInfo *t = &L->tensors[i];
        double gg, pp;
        grad_param_sums(m->grads + t->offset, m->params + t->offset, st->before + t->offset,
                        t->size, &gg, &pp);
        ns_runlog_append_f64(&set->log, st->ids[i][P_GRAD], sqrt(gg));
        ns_runlog_append_f64(&set->log, st->ids[i][P_PARAM], sqrt(pp));
    }
}

static void step_end(NsProbe *p, NsProbes *set, const NsStepInfo *info)
{
    ParamState *st = p->state;
    const NsTrainer *tr = set->tr;
    const NsParamLayout *L = &tr->model.layout;
    ns_runlog_append_i64(&set->log, st->step_id, info->step);
    for (int i = 0; i < L->n_tensors; i++) {
        const NsTensorInfo *t = &L->tensors[i];
        double du, di;
        distance_sums(tr->model.params + t->offset, st->before + t->offset,
                      tr->params_init + t->offset, t->size, &du, &di);
        ns_runlog_append_f64(&set->log, st->ids[i][P_UPDATE], sqrt(du));
        ns_runlog_append_f64(&set->log, st->ids[i][P_INIT], sqrt(di));
    }
}

static void destroy(NsProbe *p)
{
    ParamState *st = p->state;
    free(st->ids);
    free(st->before);
    free(st);
}

void ns_probe_params(NsProbe *p)
{
    *p = (NsProbe){.name = "params", .state = ns_xcalloc(1, sizeof(ParamState)),
                   .declare = declare, .after_backward = after_backward, .step_end = step_end,
                   .destroy = destroy};
}
