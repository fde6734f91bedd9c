/* AdamW with bias correction and decoupled weight decay, the warm-up + inverse-square-root
 * learning-rate schedule, and global gradient-norm clipping (model-spec.md, "Training"). The
 * moments m and v are contiguous buffers with the parameter layout. */
#ifndef NS_OPTIM_H
#define NS_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

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

/* lr_t = lr * min(t / warmup, sqrt(warmup / t)) for step t >= 1 (warmup 0: constant lr). */
float ns_lr_at(const NsOptimConfig *cfg, int64_t t);

/* Global L2 norm of the gradient (double accumulation). */
double ns_grad_norm(const float *grads, size_t n);
/* Scales grads so their global norm is at most max_norm (no-op when max_norm <= 0). Returns the
 * norm before clipping. */
double ns_clip_grad_norm(float *grads, size_t n, float max_norm);

#endif
