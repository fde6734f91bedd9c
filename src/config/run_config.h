/* The full configuration of a training run: model and optimizer (config.h) plus data, schedule,
 * output and probe options. Filled from the command line (cli.c), stored in checkpoints and as
 * root attributes of the run log, so every file says exactly how it was made. */
#ifndef NS_RUN_CONFIG_H
#define NS_RUN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "batcher.h"
#include "config.h"
#include "corpus.h"
#include "dataset.h"


typedef struct {
    NsModelConfig model;
    NsOptimConfig optim;

    /* Data. Empty corpus path = the embedded synthetic corpus. Empty valid path = hold out the
     * last 5 % of the corpus lines (embedded corpus: a second text from seed + 1). */
    char corpus_path[NS_PATH_LEN];
    char valid_path[NS_PATH_LEN];
    NsTokenizer tokenizer;
    NsBatching batching;
    long synth_bytes; /* size of the embedded corpus */

    /* Schedule. */
    long steps;
    uint64_t seed;
    int threads;
    int eval_every;   /* steps between validation passes (0 = only at the end) */
    int eval_batches; /* cap on validation batches per pass (0 = whole validation set) */
    int log_every;    /* plain log line cadence when stderr is not a terminal */

    /* Outputs. */
    char out_path[NS_PATH_LEN];        /* run log (HDF5) */
    char checkpoint_path[NS_PATH_LEN]; /* default: <out without .h5>.ckpt.h5 */
    char resume_path[NS_PATH_LEN];
    int checkpoint_every; /* 0 = only at the end / on interruption */
    int flush_every;      /* run-log flush cadence in steps */

    /* Probes (probes/). */
    char probes[256];        /* comma list, "all" or "none" */
    int probe_vectors_every; /* full statistic vectors every N steps (0 = never) */
    int lipschitz_every;     /* smoothness probes every N steps (0 = off) */
    int hessian_iters;
} NsRunConfig;

void ns_run_config_default(NsRunConfig *c);
/* Checks data/schedule/output options (model and optimizer have their own validators). */
int ns_run_config_validate(const NsRunConfig *c, char *err);
/* Fills checkpoint_path from out_path when it is empty. */
void ns_run_config_finish(NsRunConfig *c);

/* The data layer's view of this configuration (points into c). */
NsDataSpec ns_run_config_data_spec(const NsRunConfig *c);

const char *ns_tokenizer_name(NsTokenizer t);
const char *ns_batching_name(NsBatching b);

#endif
