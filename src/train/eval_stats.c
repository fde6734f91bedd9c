#include "eval_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

double ns_evaluate_corpus_batch_stats(const NsModel *m, const NsCorpus *corpus,
                                      NsBatching batching, int max_batches, uint64_t seed,
                                      NsModelScratch *scratch, char *err)
{
    NsBatcher b;
    int B = m->cfg.batch_size, T = m->cfg.seq_len;
    if (ns_batcher_init(&b, corpus, batching, B, T, seed, 0, err) < 0)
        return NAN;
    int n = ns_batcher_epoch_batches(&b);
    if (max_batches > 0 && n > max_batches)
        n = max_batches;
    NsModel *w = &scratch->work;
    memcpy(w->params, m->params, sizeof(float) * m->layout.total);
    ns_model_snapshot(m, &scratch->state);
    int32_t *tokens = ns_xcalloc((size_t)B * (T + 1), sizeof(int32_t));
    uint8_t *mask = ns_xcalloc((size_t)B * T, 1);
    double total = 0.0;
    long count = 0;
    for (int i = 0; i < n; i++) {
        int real = ns_batcher_next(&b, tokens, mask);
        if (real == 0)
            continue;
        /* a training forward updates the running state: each batch starts from m's */
        ns_model_restore(w, &scratch->state);
        ns_model_set_batch_shape(w, B, T);
        total += ns_model_forward(w, tokens, mask, 1) * real;
        count += real;
    }
    free(tokens);
    free(mask);
    ns_batcher_free(&b);
    if (count == 0) {
        ns_fail(err, "evaluation text yields no tokens to predict");
        return NAN;
    }
    return total / (double)count;
}

int ns_norm_keeps_running_stats(const NsModel *m)
{
    unsigned running = NS_STATE_RUNNING_MEAN | NS_STATE_RUNNING_VAR | NS_STATE_RUNNING_PSI2;
    return m->n_sites > 0 && (m->sites[0].scheme->state & running) != 0;
}
