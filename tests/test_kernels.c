/* The fast kernels of the model (issue 11) against their plain definitions: the fused
 * softmax cross-entropy (one pass, run-time AVX2) gives the loss and gradient of the separate
 * forward and backward within float round-off, padded rows included; dropout draws exactly the
 * masks of ns_rng_next's stream (its inlined copy must never drift from the library one); the
 * observed AdamW step (the params probe's sums taken inside the update) updates exactly as the
 * plain step, bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "layers.h"
#include "optim.h"
#include "params.h"
#include "util.h"

static void test_xent_fused(void **state)
{
    (void)state;
    /* V not a multiple of 8, to reach the scalar tails of the vector kernels */
    enum { B = 3, T = 5, V = 1003 };
    NsRng rng;
    ns_rng_seed(&rng, 4);
    size_t n = (size_t)B * T * V;
    float *a = ns_xmalloc(n * sizeof(float)), *b = ns_xmalloc(n * sizeof(float));
    int32_t tokens[B * (T + 1)];
    uint8_t mask[B * T];
    for (size_t i = 0; i < n; i++) /* wide logits: exp underflows for some */
        a[i] = b[i] = (float)(30.0 * (ns_rng_uniform(&rng) - 0.5) * (i % 7 == 0 ? 4 : 1));
    for (int i = 0; i < B * (T + 1); i++)
        tokens[i] = (int32_t)ns_rng_below(&rng, V);
    for (int i = 0; i < B * T; i++)
        mask[i] = i % 4 != 3;
    /* the definition, in double */
    double ref_loss = 0;
    int n_real = 0;
    double *ref = ns_xcalloc(n, sizeof(double));
    for (int r = 0; r < B * T; r++) {
        const float *z = a + (size_t)r * V;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < V; j++)
            mx = fmax(mx, z[j]);
        for (int j = 0; j < V; j++)
            sum += exp(z[j] - mx);
        if (!mask[r])
            continue;
        int target = tokens[(r / T) * (T + 1) + r % T + 1];
        ref_loss += log(sum) + mx - z[target];
        n_real++;
        for (int j = 0; j < V; j++)
            ref[(size_t)r * V + j] = exp(z[j] - mx) / sum - (j == target);
    }
    ref_loss /= n_real;
    for (size_t i = 0; i < n; i++)
        ref[i] /= n_real;
    double l1 = ns_xent_forward(a, tokens, mask, B, T, V);
    ns_xent_backward(a, tokens, mask, B, T, V);
    double l2 = ns_xent_forward_backward(b, tokens, mask, B, T, V);
    assert_true(fabs(l1 - l2) <= 1e-6 * fabs(l1));
    double diff = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        norm = fmax(norm, fabs((double)a[i]));
    }
    print_message("loss %.9f vs %.9f, largest gradient difference %.1e of %.1e\n", l1, l2, diff,
                  norm);
    assert_true(diff <= 1e-6 * norm);
    double dref = 0;
    for (size_t i = 0; i < n; i++)
        dref = fmax(dref, fabs(ref[i] - b[i]));
    print_message("against float64: loss %.1e, gradient %.1e\n", fabs(l2 - ref_loss), dref);
    assert_true(fabs(l2 - ref_loss) <= 1e-6 * fabs(ref_loss));
    assert_true(dref <= 1e-6 * norm);
    free(a), free(b), free(ref);
}

static void test_dropout_stream(void **state)
{
    (void)state;
    enum { N = 1000 };
    float x[N], y[N], keep[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)i;
    NsRng rng, ref;
    ns_rng_seed(&rng, 9);
    ref = rng;
    ns_dropout_forward(y, x, keep, 0.3f, N, &rng);
    float scale = 1.0f / (1.0f - 0.3f);
    uint32_t threshold = (uint32_t)(0.3f * 16777216.0f);
    for (int i = 0; i < N; i++) {
        float k = (uint32_t)(ns_rng_next(&ref) >> 40) >= threshold ? scale : 0.0f;
        assert_true(keep[i] == k);
        assert_true(y[i] == x[i] * k);
    }
    assert_memory_equal(&rng, &ref, sizeof rng); /* the stream continues where it would */
}

/* Three steps of the plain and of the observed update from the same start: parameters and both
 * moments bit-identical, and the sums equal to their definitions summed in double. */
static void test_adamw_observed_identical(void **state)
{
    (void)state;
    NsModelConfig mc;
    ns_model_config_default(&mc);
    mc.d_model = 24, mc.n_layers = 2, mc.n_heads = 2, mc.d_ff = 40, mc.vocab_size = 3001;
    NsParamLayout L;
    ns_layout_build(&L, &mc);
    size_t n = L.total;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    float *g = malloc(sizeof(float) * n), *init = malloc(sizeof(float) * n);
    NsRng rng;
    ns_rng_seed(&rng, 5);
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] = init[i] = (float)(0.02 * ns_rng_normal(&rng));
    NsOptimConfig oc = {.lr = 1e-3f, .adam_beta1 = 0.9f, .adam_beta2 = 0.98f,
                        .adam_eps = 1e-8f, .weight_decay = 0.01f};
    NsAdamW plain, seen;
    ns_adamw_init(&plain, &oc, n);
    ns_adamw_init(&seen, &oc, n);
    NsTensorSums *sums = calloc((size_t)L.n_tensors, sizeof *sums);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++)
            g[i] = (float)(0.1 * ns_rng_normal(&rng));
        float *old = malloc(sizeof(float) * n); /* before the step, for the sums */
        memcpy(old, b, sizeof(float) * n);
        ns_adamw_step(&plain, a, g, 2e-3f);
        ns_adamw_step_observed(&seen, b, g, 2e-3f, &L, init, sums);
        assert_memory_equal(a, b, sizeof(float) * n);
        assert_memory_equal(plain.m, seen.m, sizeof(float) * n);
        assert_memory_equal(plain.v, seen.v, sizeof(float) * n);
        for (int t = 0; t < L.n_tensors; t++) {
            const NsTensorInfo *ti = &L.tensors[t];
            double want[3] = {0};
            for (size_t i = ti->offset; i < ti->offset + ti->size; i++) {
                want[0] += (double)old[i] * old[i];
                want[1] += ((double)b[i] - old[i]) * ((double)b[i] - old[i]);
                want[2] += ((double)b[i] - init[i]) * ((double)b[i] - init[i]);
            }
            assert_true(fabs(sums[t].param_sq - want[0]) <= 1e-6 * want[0]);
            assert_true(fabs(sums[t].update_sq - want[1]) <= 1e-6 * want[1]);
            assert_true(fabs(sums[t].init_sq - want[2]) <= 1e-6 * want[2]);
        }
        free(old);
    }
    ns_adamw_free(&plain);
    ns_adamw_free(&seen);
    ns_layout_free(&L);
    free(a), free(b), free(g), free(init), free(sums);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xent_fused),
        cmocka_unit_test(test_dropout_stream),
        cmocka_unit_test(test_adamw_observed_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
