#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* The step's constants, shared by the plain and the observed update. */
typedef struct {
    float b1, b2, corr1, corr2, eps, lr, decay;
} AdamWCoef;

static AdamWCoef adamw_begin(NsAdamW *opt, float lr)
{
    const NsOptimConfig *c = &opt->cfg;
    opt->t++;
    /* Bias corrections in double: 1 - b2^t is tiny for small t. */
    return (AdamWCoef){.b1 = c->adam_beta1, .b2 = c->adam_beta2,
                       .corr1 = (float)(1.0 - pow(c->adam_beta1, (double)opt->t)),
                       .corr2 = (float)(1.0 - pow(c->adam_beta2, (double)opt->t)),
                       .eps = c->adam_eps, .lr = lr, .decay = lr * c->weight_decay};
}

/* Elements [0, n) of the buffers: 2 % of a `small` step when scalar. Restrict pointers and
 * -fno-math-errno (meson.build, numerics) let GCC vectorize it, inlined into the target_clones
 * callers below (an AVX2 version chosen at load time). Same operations in the same order in
 * every version (C11 mode contracts no FMAs), so the result does not depend on the CPU, nor on
 * whether the step is observed. With `old` (a constant NULL in the plain step, where the
 * branch folds away), the parameters before the update are kept there in the same pass. */
static inline void adamw_update(const AdamWCoef *k, float *restrict params,
                                const float *restrict grads, float *restrict mom,
                                float *restrict vel, float *restrict old, size_t n)
{
    float b1 = k->b1, b2 = k->b2, corr1 = k->corr1, corr2 = k->corr2, eps = k->eps;
    float lr = k->lr, decay = k->decay;
    for (size_t i = 0; i < n; i++) {
        float g = grads[i], p = params[i];
        float m = mom[i] = b1 * mom[i] + (1.0f - b1) * g;
        float v = vel[i] = b2 * vel[i] + (1.0f - b2) * g * g;
        float mhat = m / corr1, vhat = v / corr2;
        if (old)
            old[i] = p;
        params[i] = p - (lr * mhat / (sqrtf(vhat) + eps) + decay * p);
    }
}

NS_CPU_CLONES
void ns_adamw_step(NsAdamW *opt, float *restrict params, const float *restrict grads, float lr)
{
    AdamWCoef k = adamw_begin(opt, lr);
    adamw_update(&k, params, grads, opt->m, opt->v, NULL, opt->n);
}

/* The observed step updates a chunk small enough to stay in cache, keeping the old values as it
 * goes, then takes the chunk's sums from them: the sums cost no second pass over the parameters
 * in memory (the params probe's own passes were about 2 % of a `small` step, all memory
 * traffic). What remains is the stream of the initial parameters and the sums' arithmetic:
 * 13-15 ms against 9-10 ms for the plain step on `small` (copying each chunk first: 15-17). */
enum { CHUNK = 2048, LANES = NS_SUM_LANES };

/* acc[0..2][l] += the lane-l sums of old^2, (now - old)^2 and (now - init)^2 over a chunk in
 * cache. The differences are taken in float (exact for an update, now and old being within a
 * factor 2 of each other; within an ulp of the difference from init) and squared and summed in
 * double, for a relative error near 1e-7 that a norm in a log does not feel. GCC does not
 * vectorize three interleaved double sums by itself (it made this 8x slower), hence vector
 * types: 4 floats widened to 4 doubles, two such groups (lanes 0-3, 4-7) per iteration. */
typedef float V4F __attribute__((vector_size(16)));
typedef double V4D __attribute__((vector_size(32)));

static inline V4F load4(const float *p)
{
    V4F v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void chunk_sums(const float *restrict old, const float *restrict now,
                              const float *restrict init, size_t n, double acc[3][LANES])
{
    V4D s[3][2];
    memcpy(s, acc, sizeof s);
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int h = 0; h < 2; h++) {
            V4F o = load4(old + i + 4 * h), w = load4(now + i + 4 * h);
            V4D p = __builtin_convertvector(o, V4D);
            V4D u = __builtin_convertvector(w - o, V4D);
            V4D d = __builtin_convertvector(w - load4(init + i + 4 * h), V4D);
            s[0][h] += p * p;
            s[1][h] += u * u;
            s[2][h] += d * d;
        }
    memcpy(acc, s, sizeof s);
    for (; i < n; i++) {
        double p = old[i], u = now[i] - old[i], d = now[i] - init[i];
        acc[0][0] += p * p;
        acc[1][0] += u * u;
        acc[2][0] += d * d;
    }
}

NS_CPU_CLONES
void ns_adamw_step_observed(NsAdamW *opt, float *restrict params, const float *restrict grads,
                            float lr, const NsParamLayout *layout, const float *init,
                            NsTensorSums *sums)
{
    AdamWCoef k = adamw_begin(opt, lr);
    float old[CHUNK];
    for (int t = 0; t < layout->n_tensors; t++) {
        const NsTensorInfo *ti = &layout->tensors[t];
        double acc[3][LANES] = {{0}};
        for (size_t i = ti->offset, end = ti->offset + ti->size; i < end; i += CHUNK) {
            size_t n = end - i < CHUNK ? end - i : CHUNK;
            adamw_update(&k, params + i, grads + i, opt->m + i, opt->v + i, old, n);
            chunk_sums(old, params + i, init + i, n, acc);
        }
        sums[t].param_sq = ns_lane_total(acc[0]);
        sums[t].update_sq = ns_lane_total(acc[1]);
        sums[t].init_sq = ns_lane_total(acc[2]);
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

double ns_tensor_grad_norm(const float *grads, const NsParamLayout *layout, NsTensorSums *sums)
{
    double total = 0.0;
    for (int t = 0; t < layout->n_tensors; t++) {
        const NsTensorInfo *ti = &layout->tensors[t];
        sums[t].grad_sq = ns_sumsq(grads + ti->offset, ti->size);
        total += sums[t].grad_sq;
    }
    return sqrt(total);
}

void ns_clip_grads(float *grads, size_t n, float max_norm, double norm)
{
    if (max_norm > 0.0f && norm > max_norm) {
        float scale = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < n; i++)
            grads[i] *= scale;
    }
}
