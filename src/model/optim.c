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

void ns_adamw_step(NsAdamW *opt, float *params, const float *grads, float lr)
{
    const NsOptimConfig *c = &opt->cfg;
    opt->t++;
    float b1 = c->adam_beta1, b2 = c->adam_beta2;
    /* Bias corrections in double: 1 - b2^t is tiny for small t. */
    float corr1 = (float)(1.0 - pow(b1, (double)opt->t));
    float corr2 = (float)(1.0 - pow(b2, (double)opt->t));
    float decay = lr * c->weight_decay;
    for (size_t i = 0; i < opt->n; i++) {
        float g = grads[i];
        float m = opt->m[i] = b1 * opt->m[i] + (1.0f - b1) * g;
        float v = opt->v[i] = b2 * opt->v[i] + (1.0f - b2) * g * g;
        float mhat = m / corr1, vhat = v / corr2;
        params[i] -= lr * mhat / (sqrtf(vhat) + c->adam_eps) + decay * params[i];
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
