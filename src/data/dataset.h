/* From text to batches: reads the corpus (or generates the embedded one), builds the
 * vocabulary on the training text, tokenizes training and validation text, and sets up their
 * batchers. This is where one batch's journey starts. */
#ifndef NS_DATASET_H
#define NS_DATASET_H

#include "batcher.h"
#include "corpus.h"

#include <stdint.h>

#define NS_PATH_LEN 1024

/* What the data layer needs to know about a run (the run configuration, src/config/, fills it
 * with ns_run_config_data_spec): where the text is, how to cut it into tokens and batches. */
typedef struct {
    const char *corpus_path; /* "" = the embedded synthetic corpus */
    const char *valid_path;  /* "" = hold out the last 5 % of the corpus lines */
    NsTokenizer tokenizer;
    NsBatching batching;
    long synth_bytes;        /* size of the embedded corpus */
    uint64_t seed;           /* embedded corpus text and training data order */
    int vocab_cap, batch_size, seq_len;
    int max_tokens;          /* sentences: token budget per training batch (0 = off) */
    long max_bytes;          /* largest corpus or validation file read (NsTextLimits) */
    int any_file;            /* read files that are not regular files */
} NsDataSpec;

typedef struct {
    NsVocab vocab;
    NsCorpus train, valid;
    NsBatcher train_batches;
    char source[NS_PATH_LEN + 32]; /* human-readable description of where the text came from */
    double unigram_entropy;        /* nats, training corpus: the loss of a unigram model */
    /* Fractions of the training and validation tokens (EOS excluded) that the vocabulary maps
     * to <unk> (ns_corpus_unk_rate): a high rate means --vocab-size cuts real words. */
    double unk_rate_train, unk_rate_valid;
} NsDataset;

/* Loads everything for a run. If `vocab_tokens` is non-NULL (resume / eval from a checkpoint),
 * the vocabulary is rebuilt from that list instead of from the text. */
int ns_dataset_load(NsDataset *ds, const NsDataSpec *cfg, char *const *vocab_tokens,
                    int vocab_n, char *err);
void ns_dataset_free(NsDataset *ds);

/* Reads and tokenizes a text file with a given vocabulary (eval on another corpus). */
int ns_load_corpus_file(const char *path, const NsTextLimits *lim, const NsVocab *vocab,
                        NsTokenizer tokenizer, NsCorpus *corpus, char *err);

#endif
