/* From text to batches: reads the corpus (or generates the embedded one), builds the
 * vocabulary on the training text, tokenizes training and validation text, and sets up their
 * batchers. This is where one batch's journey starts. */
#ifndef NS_DATASET_H
#define NS_DATASET_H

#include "batcher.h"
#include "corpus.h"
#include "run_config.h"

typedef struct {
    NsVocab vocab;
    NsCorpus train, valid;
    NsBatcher train_batches;
    char source[NS_PATH_LEN + 32]; /* human-readable description of where the text came from */
    double unigram_entropy;        /* nats, training corpus: the loss of a unigram model */
} NsDataset;

/* Loads everything for a run. If `vocab_tokens` is non-NULL (resume / eval from a checkpoint),
 * the vocabulary is rebuilt from that list instead of from the text. */
int ns_dataset_load(NsDataset *ds, const NsRunConfig *cfg, char *const *vocab_tokens,
                    int vocab_n, char *err);
void ns_dataset_free(NsDataset *ds);

/* Reads and tokenizes a text file with a given vocabulary (eval on another corpus). */
int ns_load_corpus_file(const char *path, const NsVocab *vocab, NsTokenizer tokenizer,
                        NsCorpus *corpus, char *err);

#endif
