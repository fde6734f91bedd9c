/* Token-budget batching (--max-tokens, src/data/batcher.c) and the model on batches smaller
 * than its buffers: batches are deterministic from the seed, resume exactly from a saved state
 * (also across epochs), visit every row exactly once per epoch, respect the budget with little
 * padding, keep the mask layout (real positions first, padding after); and a model run on a
 * packed batch computes the loss and gradients it computes on the same rows padded to the full
 * [B][T] shape, for per-row and for batch-statistics schemes (padding never enters them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batcher.h"
#include "corpus.h"
#include "h5util.h"
#include "harness.h"
#include "logs.h"
#include "model.h"
#include "util.h"

enum { MB = 8, MT = 16, BUDGET = 48, N_LINES = 300 };

/* Lines of 1..30 words (seeded); word ids 3, 4, 5, ... are unique, so a row is identified by its
 * first word. */
static void make_corpus(NsCorpus *c, uint64_t seed)
{
    NsRng rng;
    ns_rng_seed(&rng, seed);
    int words[N_LINES];
    size_t n = 0;
    for (int i = 0; i < N_LINES; i++) {
        words[i] = 1 + (int)ns_rng_below(&rng, 30);
        n += (size_t)words[i] + 1;
    }
    memset(c, 0, sizeof *c);
    c->ids = ns_xmalloc(n * sizeof(int32_t));
    c->line_start = ns_xmalloc((N_LINES + 1) * sizeof(size_t));
    c->n_ids = n;
    c->n_lines = N_LINES;
    size_t k = 0;
    int32_t next = 3;
    for (int i = 0; i < N_LINES; i++) {
        c->line_start[i] = k;
        for (int w = 0; w < words[i]; w++)
            c->ids[k++] = next++;
        c->ids[k++] = NS_EOS_ID;
    }
    c->line_start[N_LINES] = k;
}

static void free_corpus(NsCorpus *c)
{
    free(c->ids);
    free(c->line_start);
}

static void init_budget(NsBatcher *b, const NsCorpus *c, uint64_t seed, int budget)
{
    char err[NS_ERRLEN] = "";
    if (ns_batcher_init(b, c, NS_BATCH_SENTENCES, MB, MT, seed, 1, err) != 0 ||
        ns_batcher_set_max_tokens(b, budget, err) != 0)
        fail_msg("batcher: %s", err);
}

typedef struct {
    int32_t tokens[MB * (MT + 1)];
    uint8_t mask[MB * MT];
    int B, T, real;
} Batch;

static void next(NsBatcher *b, Batch *x)
{
    memset(x, 0, sizeof *x);
    x->real = ns_batcher_next_shaped(b, x->tokens, x->mask, &x->B, &x->T);
}

static int same_batch(const Batch *a, const Batch *b)
{
    return a->B == b->B && a->T == b->T && a->real == b->real &&
           memcmp(a->tokens, b->tokens, sizeof a->tokens) == 0 &&
           memcmp(a->mask, b->mask, sizeof a->mask) == 0;
}

static void test_determinism(void **state)
{
    (void)state;
    NsCorpus c;
    make_corpus(&c, 7);
    NsBatcher a, b, other;
    init_budget(&a, &c, 11, BUDGET);
    init_budget(&b, &c, 11, BUDGET);
    init_budget(&other, &c, 12, BUDGET);
    int n = 3 * ns_batcher_epoch_batches(&a), differ = 0;
    for (int i = 0; i < n; i++) {
        Batch x, y, z;
        next(&a, &x), next(&b, &y), next(&other, &z);
        assert_true(same_batch(&x, &y));
        differ += !same_batch(&x, &z);
    }
    assert_true(differ > n / 2);
    ns_batcher_free(&a), ns_batcher_free(&b), ns_batcher_free(&other);
    free_corpus(&c);
}

/* Every row exactly once per epoch, within the budget, mask = real positions first. */
static void test_epoch_and_shape(void **state)
{
    (void)state;
    NsCorpus c;
    make_corpus(&c, 8);
    NsBatcher b;
    init_budget(&b, &c, 3, BUDGET);
    size_t targets = 0; /* a line of n words has n + 1 targets (its words and EOS) */
    for (int i = 0; i < N_LINES; i++)
        targets += c.line_start[i + 1] - c.line_start[i];
    int32_t max_id = (int32_t)c.n_ids + 3;
    for (int epoch = 0; epoch < 2; epoch++) {
        int *seen = ns_xcalloc((size_t)max_id + 1, sizeof(int));
        size_t real = 0, positions = 0;
        int n = ns_batcher_epoch_batches(&b);
        for (int k = 0; k < n; k++) {
            Batch x;
            next(&b, &x);
            assert_true(x.B >= 1 && x.B <= MB && x.T >= 1 && x.T <= MT);
            assert_true(x.B * x.T <= BUDGET);
            int longest = 0, sum = 0;
            for (int r = 0; r < x.B; r++) {
                const int32_t *tok = x.tokens + r * (x.T + 1);
                const uint8_t *m = x.mask + r * x.T;
                int len = 0;
                while (len < x.T && m[len])
                    len++;
                for (int t = len; t < x.T; t++) /* nothing real after the first padding */
                    assert_int_equal(m[t], 0);
                for (int t = len + 1; t <= x.T; t++)
                    assert_int_equal(tok[t], NS_PAD_ID);
                assert_true(len >= 1);
                int32_t key = tok[0] == NS_EOS_ID ? tok[1] : tok[0];
                assert_true(key >= 0 && key <= max_id);
                seen[key]++;
                longest = len > longest ? len : longest;
                sum += len;
            }
            assert_int_equal(longest, x.T); /* padded to its own longest row */
            assert_int_equal(sum, x.real);
            real += (size_t)x.real;
            positions += (size_t)(x.B * x.T);
        }
        assert_int_equal(real, targets);
        for (int32_t k = 0; k <= max_id; k++)
            assert_true(seen[k] <= 1);
        double padding = 1.0 - (double)real / (double)positions;
        print_message("epoch %d: %d batches, padding %.1f %%\n", epoch, n, 100 * padding);
        assert_true(padding < 0.10);
        free(seen);
    }
    ns_batcher_free(&b);
    free_corpus(&c);
}

static void test_resume(void **state)
{
    (void)state;
    NsCorpus c;
    make_corpus(&c, 9);
    NsBatcher a, b;
    init_budget(&a, &c, 5, BUDGET);
    int epoch_n = ns_batcher_epoch_batches(&a);
    int stops[] = {0, 3, epoch_n - 1, epoch_n, epoch_n + 2};
    int done = 0;
    for (size_t s = 0; s < sizeof stops / sizeof stops[0]; s++) {
        Batch x, y;
        for (; done < stops[s]; done++)
            next(&a, &x);
        int64_t st[32];
        int n = ns_batcher_state_size(&a);
        assert_true(n <= 32);
        ns_batcher_get_state(&a, st);
        char err[NS_ERRLEN] = "";
        /* a batcher restored from the state continues as one that walked to the same point */
        NsBatcher ref;
        init_budget(&ref, &c, 5, BUDGET);
        init_budget(&b, &c, 5, BUDGET);
        assert_int_equal(ns_batcher_set_state(&b, st, n, err), 0);
        for (int k = 0; k < done; k++)
            next(&ref, &x);
        for (int k = 0; k < epoch_n + 1; k++) {
            next(&ref, &x), next(&b, &y);
            assert_true(same_batch(&x, &y));
        }
        ns_batcher_free(&ref), ns_batcher_free(&b);
    }
    /* a state saved with another budget, or without one, is refused */
    int64_t st[32];
    int n = ns_batcher_state_size(&a);
    ns_batcher_get_state(&a, st);
    char err[NS_ERRLEN] = "";
    init_budget(&b, &c, 5, BUDGET + 8);
    assert_true(ns_batcher_set_state(&b, st, n, err) < 0);
    assert_non_null(strstr(err, "--max-tokens"));
    ns_batcher_free(&b);
    init_budget(&b, &c, 5, 0);
    assert_true(ns_batcher_set_state(&b, st, n, err) < 0);
    ns_batcher_free(&b);
    ns_batcher_free(&a);
    free_corpus(&c);
}

static void test_bad_budget(void **state)
{
    (void)state;
    NsCorpus c;
    make_corpus(&c, 10);
    NsBatcher b;
    char err[NS_ERRLEN] = "";
    assert_int_equal(ns_batcher_init(&b, &c, NS_BATCH_SENTENCES, MB, MT, 1, 1, err), 0);
    assert_true(ns_batcher_set_max_tokens(&b, MT - 1, err) < 0);
    assert_non_null(strstr(err, "--max-tokens"));
    assert_true(ns_batcher_set_max_tokens(&b, -5, err) < 0);
    ns_batcher_free(&b);
    assert_int_equal(ns_batcher_init(&b, &c, NS_BATCH_STREAM, MB, MT, 1, 1, err), 0);
    assert_true(ns_batcher_set_max_tokens(&b, BUDGET, err) < 0);
    assert_non_null(strstr(err, "sentences"));
    ns_batcher_free(&b);
    free_corpus(&c);
}

/* ns_batcher_next spreads a packed batch into the full [B][T+1] layout. */
static void test_unpacked_layout(void **state)
{
    (void)state;
    NsCorpus c;
    make_corpus(&c, 12);
    NsBatcher a, b;
    init_budget(&a, &c, 2, BUDGET);
    init_budget(&b, &c, 2, BUDGET);
    for (int k = 0; k < 20; k++) {
        Batch x;
        next(&a, &x);
        int32_t tok[MB * (MT + 1)];
        uint8_t mask[MB * MT];
        memset(tok, 0x7f, sizeof tok);
        memset(mask, 0x7f, sizeof mask);
        assert_int_equal(ns_batcher_next(&b, tok, mask), x.real);
        for (int r = 0; r < MB; r++)
            for (int t = 0; t <= MT; t++) {
                int inside = r < x.B && t <= x.T;
                assert_int_equal(tok[r * (MT + 1) + t], inside ? x.tokens[r * (x.T + 1) + t] : 0);
                if (t < MT)
                    assert_int_equal(mask[r * MT + t], r < x.B && t < x.T ? x.mask[r * x.T + t] : 0);
            }
    }
    ns_batcher_free(&a), ns_batcher_free(&b);
    free_corpus(&c);
}

/* ------------------------------------------------------------------------------------------
 * The model on packed batches */

static void model_on(const char *norm, const int32_t *tokens, const uint8_t *mask, int B, int T,
                     double *loss, float *grads)
{
    NsModelConfig cfg;
    ns_model_config_default(&cfg);
    cfg.vocab_size = 40, cfg.d_model = 16, cfg.n_heads = 2, cfg.d_ff = 32, cfg.n_layers = 2;
    cfg.seq_len = MT, cfg.batch_size = MB, cfg.dropout = 0.0f, cfg.pn_warmup = 100;
    cfg.norm_position = NS_POS_POST;
    assert_int_equal(ns_norm_from_name(norm, &cfg.norm), 0);
    NsModel m;
    ns_model_init(&m, &cfg, 3);
    ns_model_set_batch_shape(&m, B, T);
    *loss = ns_model_forward(&m, tokens, mask, 1);
    ns_model_zero_grad(&m);
    ns_model_backward(&m);
    memcpy(grads, m.grads, sizeof(float) * m.layout.total);
    ns_model_free(&m);
}

static void test_model_packed_equals_padded(void **state)
{
    (void)state;
    /* 3 rows of at most 5 real positions, packed as [3][5+1] and padded to [MB][MT+1] */
    enum { PB = 3, PT = 5 };
    const int lens[PB] = {5, 2, 4};
    int32_t packed[PB * (PT + 1)], full[MB * (MT + 1)];
    uint8_t pmask[PB * PT], fmask[MB * MT];
    memset(packed, 0, sizeof packed), memset(full, 0, sizeof full);
    memset(pmask, 0, sizeof pmask), memset(fmask, 0, sizeof fmask);
    for (int r = 0; r < PB; r++)
        for (int t = 0; t <= lens[r]; t++) {
            int32_t id = 3 + (r * 7 + t * 5) % 37;
            packed[r * (PT + 1) + t] = full[r * (MT + 1) + t] = id;
            if (t < lens[r])
                pmask[r * PT + t] = fmask[r * MT + t] = 1;
        }
    const char *schemes[] = {"layer", "batch", "power-v", "power", "rms"};
    for (size_t s = 0; s < sizeof schemes / sizeof schemes[0]; s++) {
        double lp, lf;
        size_t n = 200000; /* more than the tiny model's parameters */
        float *gp = ns_xcalloc(n, sizeof(float)), *gf = ns_xcalloc(n, sizeof(float));
        model_on(schemes[s], packed, pmask, PB, PT, &lp, gp);
        model_on(schemes[s], full, fmask, MB, MT, &lf, gf);
        assert_true(fabs(lp - lf) <= 1e-5 * fabs(lf));
        double diff = 0, norm = 0;
        for (size_t i = 0; i < n; i++) {
            diff += ((double)gp[i] - gf[i]) * ((double)gp[i] - gf[i]);
            norm += (double)gf[i] * gf[i];
        }
        print_message("%s: loss %.7f vs %.7f, gradient relative difference %.1e\n", schemes[s],
                      lp, lf, sqrt(diff / norm));
        assert_true(sqrt(diff / norm) < 1e-4);
        free(gp), free(gf);
    }
}

/* ------------------------------------------------------------------------------------------
 * The program: a --max-tokens run resumed from its checkpoint is the uninterrupted run, and
 * logs its padding per step. */

#define MT_FLAGS "train --d-model 16 --layers 1 --heads 2 --d-ff 32 --seq-len 32 --batch-size 64 " \
                 "--max-tokens 256 --batching sentences --eval-every 0 --probes none "        \
                 "--threads 1 --corpus %s/tinyshakespeare.txt"

static void test_program_resume(void **state)
{
    (void)state;
    const char *corpora = test_corpora();
    Run a = run(MT_FLAGS " --steps 12 --out %s", corpora, scratch("mt_a.h5"));
    assert_int_equal(a.code, 0);
    Run b = run(MT_FLAGS " --steps 6 --out %s", corpora, scratch("mt_b.h5"));
    assert_int_equal(b.code, 0);
    b = run(MT_FLAGS " --steps 12 --out %s --resume %s", corpora, scratch("mt_b.h5"),
            scratch("mt_b.ckpt.h5"));
    assert_int_equal(b.code, 0);
    hid_t fa = open_ro(scratch("mt_a.h5")), fb = open_ro(scratch("mt_b.h5"));
    double *la, *lb, *pad;
    assert_int_equal(rd(fa, "steps/loss", &la, NULL), 12);
    assert_int_equal(rd(fb, "steps/loss", &lb, NULL), 12);
    assert_memory_equal(la, lb, 12 * sizeof(double)); /* bit for bit */
    assert_int_equal(rd(fa, "steps/padding_fraction", &pad, NULL), 12);
    for (int i = 0; i < 12; i++)
        assert_true(pad[i] >= 0.0 && pad[i] < 0.10);
    free(la), free(lb), free(pad);
    H5Fclose(fa), H5Fclose(fb);
    /* a budget that cannot hold one full row is a usage error naming the flag */
    Run bad = run(MT_FLAGS " --steps 1 --max-tokens 8 --out %s", corpora, scratch("mt_c.h5"));
    assert_int_not_equal(bad.code, 0);
    assert_non_null(strstr(bad.err, "--max-tokens"));
}

static int setup(void **state)
{
    (void)state;
    ns_h5_quiet();
    return harness_setup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_epoch_and_shape),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_bad_budget),
        cmocka_unit_test(test_unpacked_layout),
        cmocka_unit_test(test_model_packed_equals_padded),
        cmocka_unit_test(test_program_resume),
    };
    return cmocka_run_group_tests(tests, setup, group_teardown);
}
