#include "eval_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"
#include "util.h"

double ns_evaluate_batches(const NsCorpus *corpus, NsBatching batching, int B, int T,
                           int max_batches, uint64_t seed, NsBatchLoss loss, void *ctx, char *err)
{
    NsBatcher b;
    if (ns_batcher_init(&b, corpus, batching, B, T, seed, 0, err) < 0)
        return NAN;
    int n = ns_batcher_epoch_batches(&b);
    if (max_batches > 0 && n > max_batches)
        n = max_batches;
    int32_t *tokens = ns_xcalloc((size_t)B * (T + 1), sizeof(int32_t));
    uint8_t *mask = ns_xcalloc((size_t)B * T, 1);
    double total = 0.0;
    long count = 0;
    int stopped = 0;
    for (int i = 0; i < n && !(stopped = ns_stop_agreed(ns_comm_world())); i++) {
        int real = ns_batcher_next(&b, tokens, mask);
        if (real == 0)
            continue;
        total += loss(ctx, tokens, mask) * real;
        count += real;
    }
    free(tokens);
    free(mask);
    ns_batcher_free(&b);
    if (stopped) {
        ns_fail(err, "%s", NS_EVAL_STOPPED);
        return NAN;
    }
    if (count == 0) {
        ns_fail(err, "evaluation text yields no tokens to predict");
        return NAN;
    }
    return total / (double)count;
}

typedef struct {
    NsModel *work;
    const NsModelSnapshot *state;
    int B, T;
} BatchStatsPass;

/* A training forward updates the running state: each batch starts from the model's. */
static double batch_stats_loss(void *ctx, const int32_t *tokens, const uint8_t *mask)
{
    BatchStatsPass *p = ctx;
    ns_model_restore(p->work, p->state);
    ns_model_set_batch_shape(p->work, p->B, p->T);
    return ns_model_forward(p->work, tokens, mask, 1);
}

double ns_evaluate_corpus_batch_stats(const NsModel *m, const NsCorpus *corpus,
                                      NsBatching batching, int max_batches, uint64_t seed,
                                      NsModelScratch *scratch, char *err)
{
    BatchStatsPass p = {&scratch->work, &scratch->state, m->cfg.batch_size, m->cfg.seq_len};
    memcpy(p.work->params, m->params, sizeof(float) * m->layout.total);
    ns_model_snapshot(m, &scratch->state);
    return ns_evaluate_batches(corpus, batching, p.B, p.T, max_batches, seed, batch_stats_loss,
                               &p, err);
}

int ns_norm_keeps_running_stats(const NsModel *m)
{
    unsigned running = NS_STATE_RUNNING_MEAN | NS_STATE_RUNNING_VAR | NS_STATE_RUNNING_PSI2;
    return m->n_sites > 0 && (m->sites[0].scheme->state & running) != 0;
}
