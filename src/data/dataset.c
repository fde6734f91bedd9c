#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth_corpus.h"
#include "util.h"

/* Byte offset of the start of the line that begins the last `fraction` of the lines. */
static size_t holdout_split(const char *text, size_t len, double fraction)
{
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    size_t keep = lines - (size_t)(lines * fraction), seen = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n' && ++seen == keep)
            return i + 1;
    return len;
}

/* Reads or generates the training and validation texts. */
static int load_texts(NsDataset *ds, const NsDataSpec *cfg, char **train, size_t *train_len,
                      char **valid, size_t *valid_len, char *err)
{
    *valid = NULL;
    NsTextLimits lim = {cfg->max_bytes > 0 ? cfg->max_bytes : NS_TEXT_MAX_BYTES_DEFAULT,
                        cfg->any_file};
    if (!*cfg->corpus_path) {
        *train = ns_synth_corpus(cfg->seed, (size_t)cfg->synth_bytes, train_len);
        snprintf(ds->source, sizeof ds->source, "embedded synthetic corpus (seed %llu, %zu bytes)",
                 (unsigned long long)cfg->seed, *train_len);
    } else {
        *train = ns_read_text_file_limited(cfg->corpus_path, &lim, train_len, err);
        if (!*train)
            return -1;
        snprintf(ds->source, sizeof ds->source, "%s", cfg->corpus_path);
    }
    if (*cfg->valid_path) {
        *valid = ns_read_text_file_limited(cfg->valid_path, &lim, valid_len, err);
        return *valid ? 0 : -1;
    }
    if (!*cfg->corpus_path) {
        size_t vbytes = (size_t)cfg->synth_bytes / 10;
        *valid = ns_synth_corpus(cfg->seed + 1, vbytes < 4096 ? 4096 : vbytes, valid_len);
        return 0;
    }
    /* No validation file: hold out the last 5 % of the lines. */
    size_t split = holdout_split(*train, *train_len, 0.05);
    if (split >= *train_len)
        return ns_fail(err, "corpus '%s' has too few lines to hold out validation text; give "
                            "--valid PATH", cfg->corpus_path);
    *valid_len = *train_len - split;
    *valid = ns_xmalloc(*valid_len + 1);
    memcpy(*valid, *train + split, *valid_len);
    (*valid)[*valid_len] = '\0';
    *train_len = split;
    return 0;
}

static void describe_texts(const NsDataSpec *cfg, char *train, size_t tn, char *valid, size_t vn)
{
    if (*cfg->corpus_path)
        snprintf(train, tn, "training text '%s'", cfg->corpus_path);
    else
        snprintf(train, tn, "embedded training text");
    if (*cfg->valid_path)
        snprintf(valid, vn, "validation text '%s'", cfg->valid_path);
    else if (*cfg->corpus_path)
        snprintf(valid, vn, "validation text (last 5%% of '%s'; or give --valid)",
                 cfg->corpus_path);
    else
        snprintf(valid, vn, "embedded validation text");
}

/* Checks now that the validation text makes at least one batch, rather than failing at the
 * first validation pass after training for a while. */
static int check_valid_batches(const NsDataset *ds, const NsDataSpec *cfg, char *err)
{
    NsBatcher b;
    int rc = ns_batcher_init(&b, &ds->valid, cfg->batching, cfg->batch_size,
                             cfg->seq_len, cfg->seed, 0, err);
    if (rc == 0)
        ns_batcher_free(&b);
    return rc;
}

int ns_dataset_load(NsDataset *ds, const NsDataSpec *cfg, char *const *vocab_tokens,
                    int vocab_n, char *err)
{
    memset(ds, 0, sizeof *ds);
    char *train = NULL, *valid = NULL, train_name[NS_PATH_LEN + 32], valid_name[NS_PATH_LEN + 64];
    size_t train_len = 0, valid_len = 0;
    describe_texts(cfg, train_name, sizeof train_name, valid_name, sizeof valid_name);
    int rc = load_texts(ds, cfg, &train, &train_len, &valid, &valid_len, err);
    if (rc == 0)
        rc = vocab_tokens ? ns_vocab_from_list(&ds->vocab, vocab_tokens, vocab_n, err)
                          : ns_vocab_build(&ds->vocab, train, train_len, cfg->tokenizer,
                                           cfg->vocab_cap, err);
    if (rc == 0 &&
        (ns_corpus_tokenize(&ds->train, &ds->vocab, cfg->tokenizer, train, train_len, err) < 0 ||
         ns_batcher_init(&ds->train_batches, &ds->train, cfg->batching, cfg->batch_size,
                         cfg->seq_len, cfg->seed, 1, err) < 0))
        rc = ns_fail_context(err, "%s", train_name);
    if (rc == 0)
        rc = ns_batcher_set_max_tokens(&ds->train_batches, cfg->max_tokens, err);
    if (rc == 0 &&
        (ns_corpus_tokenize(&ds->valid, &ds->vocab, cfg->tokenizer, valid, valid_len, err) < 0 ||
         check_valid_batches(ds, cfg, err) < 0))
        rc = ns_fail_context(err, "%s", valid_name);
    if (rc == 0) {
        ds->unigram_entropy = ns_corpus_unigram_entropy(&ds->train, ds->vocab.size);
        ds->unk_rate_train = ns_corpus_unk_rate(&ds->train);
        ds->unk_rate_valid = ns_corpus_unk_rate(&ds->valid);
    }
    free(train);
    free(valid);
    return rc;
}

int ns_load_corpus_file(const char *path, const NsTextLimits *lim, const NsVocab *vocab,
                        NsTokenizer tokenizer, NsCorpus *corpus, char *err)
{
    size_t len;
    char *text = ns_read_text_file_limited(path, lim, &len, err);
    if (!text)
        return -1;
    int rc = ns_corpus_tokenize(corpus, vocab, tokenizer, text, len, err);
    free(text);
    if (rc < 0) {
        return ns_fail_context(err, "text '%s'", path);
    }
    return 0;
}

void ns_dataset_free(NsDataset *ds)
{
    ns_batcher_free(&ds->train_batches);
    ns_corpus_free(&ds->train);
    ns_corpus_free(&ds->valid);
    ns_vocab_free(&ds->vocab);
}
