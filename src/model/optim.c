#include "optim.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

void ns_adamw_init(NsAdamW *opt, const NsOptimConfig *cfg, size_t n_params)
{
    opt->cfg = *cfg;
    opt->n = n_params;
    opt->m = ns_xcalloc(n_params, sizeof(float));
    opt->v = ns_xcalloc(n_params, sizeof(float));
    opt->t = 0;
}

void ns_adamw_free(NsAdamW *opt)
{
    free(opt->m);
    free(opt->v);
    opt->m = opt->v = NULL;
}

/* One update over all parameters: 2 % of a `small` step when scalar. Local restrict pointers
 * and -fno-math-errno (meson.build, numerics) let GCC vectorize it; target_clones adds an AVX2
 * version chosen at load time. Same operations in the same order in every version (C11 mode
 * contracts no FMAs), so the result does not depend on the CPU. */
__attribute__((target_clones("avx2", "default")))
void ns_adamw_step(NsAdamW *opt, float *restrict params, const float *restrict grads, float lr)
{
    const NsOptimConfig *c = &opt->cfg;
    float *restrict mom = opt->m, *restrict vel = opt->v;
    float eps = c->adam_eps;
    opt->t++;
    float b1 = c->adam_beta1, b2 = c->adam_beta2;
    /* Bias corrections in double: 1 - b2^t is tiny for small t. */
    float corr1 = (float)(1.0 - pow(b1, (double)opt->t));
    float corr2 = (float)(1.0 - pow(b2, (double)opt->t));
    float decay = lr * c->weight_decay;
    for (size_t i = 0; i < opt->n; i++) {
        float g = grads[i];
        float m = mom[i] = b1 * mom[i] + (1.0f - b1) * g;
        float v = vel[i] = b2 * vel[i] + (1.0f - b2) * g * g;
        float mhat = m / corr1, vhat = v / corr2;
        params[i] -= lr * mhat / (sqrtf(vhat) + eps) + decay * params[i];
    }
}

float ns_lr_at(const NsOptimConfig *cfg, int64_t t)
{
    if (t < 1)
        t = 1;
    if (cfg->warmup <= 0)
        return cfg->lr;
    double w = cfg->warmup;
    double f = fmin((double)t / w, sqrt(w / (double)t));
    return (float)(cfg->lr * f);
}

double ns_grad_norm(const float *grads, size_t n) { return sqrt(ns_sumsq(grads, n)); }

double ns_clip_grad_norm(float *grads, size_t n, float max_norm)
{
    double norm = ns_grad_norm(grads, n);
    if (max_norm > 0.0f && norm > max_norm) {
        float scale = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < n; i++)
            grads[i] *= scale;
    }
    return norm;
}
