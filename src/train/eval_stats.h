/* Evaluation with the batch statistics of each evaluation batch, beside the usual inference
 * with the running statistics: the train/inference gap of BatchNorm-type schemes (the paper's
 * argument is that BN's running statistics at inference differ from the batch statistics it
 * trained with). `eval --norm-stats batch` and the norm-gap probe use it. */
#ifndef NS_EVAL_STATS_H
#define NS_EVAL_STATS_H

#include <stdint.h>

#include "batcher.h"
#include "model.h"

/* The loop every evaluation shares: the corpus's first max_batches batches (all when <= 0) of
 * B rows of T positions in file order, each scored by loss(ctx, tokens, mask) (the mean over
 * its real positions); returns the mean over all real positions, NAN with err on error. */
/* A stop signal (ns_stop_agreed, checked before every batch) abandons the pass: NAN with
 * NS_EVAL_STOPPED in err. */
#define NS_EVAL_STOPPED "stopped by signal during evaluation"
typedef double (*NsBatchLoss)(void *ctx, const int32_t *tokens, const uint8_t *mask);
double ns_evaluate_batches(const NsCorpus *corpus, NsBatching batching, int B, int T,
                           int max_batches, uint64_t seed, NsBatchLoss loss, void *ctx, char *err);

/* Mean loss over a corpus, batched as ns_evaluate_corpus batches it (file order, whole set or
 * max_batches batches), each batch normalized as a training step of m normalizes it (batch
 * statistics; PN's phase and running values as m holds them now) with dropout off and without
 * any update: every batch starts from m's current norm state. The passes run in `scratch`
 * (ns_model_scratch_init(scratch, m) first; reused from call to call): m is only read, so
 * training that calls this continues exactly as without it. Returns NAN with err on error. */
double ns_evaluate_corpus_batch_stats(const NsModel *m, const NsCorpus *corpus,
                                      NsBatching batching, int max_batches, uint64_t seed,
                                      NsModelScratch *scratch, char *err);

/* Whether the scheme normalizes with running statistics at inference (so the two evaluations
 * can differ): BatchNorm and the PN family. */
int ns_norm_keeps_running_stats(const NsModel *m);

#endif
