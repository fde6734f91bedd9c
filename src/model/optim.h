/* AdamW with bias correction and decoupled weight decay, the warm-up + inverse-square-root
 * learning-rate schedule, and global gradient-norm clipping (model-spec.md, "Training"). The
 * moments m and v are contiguous buffers with the parameter layout. */
#ifndef NS_OPTIM_H
#define NS_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "params.h"

typedef struct {
    NsOptimConfig cfg;
    float *m, *v;
    size_t n;
    int64_t t; /* updates done so far */
} NsAdamW;

void ns_adamw_init(NsAdamW *opt, const NsOptimConfig *cfg, size_t n_params);
void ns_adamw_free(NsAdamW *opt);
/* One update of params with grads at learning rate lr (t advances first: first update t=1). */
void ns_adamw_step(NsAdamW *opt, float *params, const float *grads, float lr);

/* Per-tensor sums of squares of one step, for observers (the params probe): taken inside the
 * passes the step makes anyway, so observing costs no extra pass over the parameters. */
typedef struct {
    double grad_sq;   /* sum g^2, before clipping */
    double param_sq;  /* sum p^2, before the update */
    double update_sq; /* sum (p_after - p_before)^2 */
    double init_sq;   /* sum (p_after - init)^2 */
} NsTensorSums;

/* ns_adamw_step with the same result, filling param_sq, update_sq and init_sq of
 * sums[layout->n_tensors] (whose tensors tile the buffers) against the parameters init. */
void ns_adamw_step_observed(NsAdamW *opt, float *params, const float *grads, float lr,
                            const NsParamLayout *layout, const float *init, NsTensorSums *sums);

/* lr_t = lr * min(t / warmup, sqrt(warmup / t)) for step t >= 1 (warmup 0: constant lr). */
float ns_lr_at(const NsOptimConfig *cfg, int64_t t);

/* Global L2 norm of the gradient (double accumulation), as per-tensor sums (sums[t].grad_sq)
 * added up: the trainer's one pass over the gradient. */
double ns_tensor_grad_norm(const float *grads, const NsParamLayout *layout, NsTensorSums *sums);
/* Scales grads so their global norm (given: norm) is at most max_norm (no-op when max_norm <= 0). */
void ns_clip_grads(float *grads, size_t n, float max_norm, double norm);

#endif
