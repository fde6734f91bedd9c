/* What the params probe costs inside the optimizer: times the plain AdamW update
 * (ns_adamw_step) and the observed one that also takes the probe's per-tensor sums
 * (ns_adamw_step_observed) on the parameter layout of a model, alternating, and prints
 *   params  plain_ms  observed_ms
 * (medians over the repetitions). A timer around the probes' hooks cannot see this cost, since
 * it sits inside the update; scripts/bench.sh adds it to the probes' in-run share. A benchmark,
 * not a test.
 *
 * usage: adamw_cost d L H F V reps */
#include <stdio.h>
#include <stdlib.h>

#include "optim.h"
#include "params.h"
#include "stats.h"
#include "util.h"

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: adamw_cost d L H F V reps\n");
        return 2;
    }
    NsModelConfig mc;
    ns_model_config_default(&mc);
    mc.d_model = atoi(argv[1]), mc.n_layers = atoi(argv[2]), mc.n_heads = atoi(argv[3]);
    mc.d_ff = atoi(argv[4]), mc.vocab_size = atoi(argv[5]);
    int reps = atoi(argv[6]);
    if (mc.d_model < 1 || mc.n_layers < 1 || mc.n_heads < 1 || mc.d_ff < 1 ||
        mc.vocab_size < 1 || reps < 1 || reps > 1000) {
        fprintf(stderr, "adamw_cost: every size must be >= 1 and reps in 1..1000\n");
        return 2;
    }
    NsParamLayout layout;
    ns_layout_build(&layout, &mc);
    size_t n = layout.total;
    float *params = ns_xmalloc(sizeof(float) * n), *grads = ns_xmalloc(sizeof(float) * n);
    float *init = ns_xmalloc(sizeof(float) * n);
    NsRng rng;
    ns_rng_seed(&rng, 1);
    for (size_t i = 0; i < n; i++) {
        params[i] = init[i] = (float)(0.02 * ns_rng_normal(&rng));
        grads[i] = (float)(1e-3 * ns_rng_normal(&rng));
    }
    NsOptimConfig oc = {.lr = 1e-3f, .adam_beta1 = 0.9f, .adam_beta2 = 0.98f,
                        .adam_eps = 1e-8f, .weight_decay = 0.01f};
    NsAdamW opt;
    ns_adamw_init(&opt, &oc, n);
    NsTensorSums *sums = ns_xcalloc((size_t)layout.n_tensors, sizeof *sums);
    double *plain = ns_xmalloc(sizeof(double) * (size_t)reps);
    double *observed = ns_xmalloc(sizeof(double) * (size_t)reps);
    for (int r = -3; r < reps; r++) { /* three rounds to warm caches and pages */
        double t0 = ns_now_seconds();
        ns_adamw_step(&opt, params, grads, 1e-3f);
        double t1 = ns_now_seconds();
        ns_adamw_step_observed(&opt, params, grads, 1e-3f, &layout, init, sums);
        double t2 = ns_now_seconds();
        if (r >= 0)
            plain[r] = t1 - t0, observed[r] = t2 - t1;
    }
    printf("%zu %.3f %.3f\n", n, 1e3 * ns_median(plain, (size_t)reps),
           1e3 * ns_median(observed, (size_t)reps));
    ns_adamw_free(&opt);
    ns_layout_free(&layout);
    free(params), free(grads), free(init), free(sums), free(plain), free(observed);
    return 0;
}
