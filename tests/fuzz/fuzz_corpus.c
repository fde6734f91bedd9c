/* Fuzz target: the corpus reader, both tokenizers, the vocabulary and the batcher, as a run
 * loads its data (ns_dataset_load). The first bytes choose the settings; the rest is the text
 * file (or, when the first byte says so, a training file and a validation file, cut where the
 * sixth byte says). Then: a few batches are drawn and checked, the vocabulary is rebuilt from
 * its own list (what a checkpoint stores and --resume reads back), and the validation text is
 * tokenized again with it (eval --corpus). Loading may fail with an error; it must never crash,
 * leak or hang, and what it loads must hold together. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "batcher.h"
#include "corpus.h"
#include "dataset.h"
#include "fuzz_common.h"
#include "util.h"

#define DRAWS 4 /* batches drawn from a loaded dataset */

/* The settings a run gives the data layer, from the first 6 bytes. */
typedef struct {
    NsDataSpec spec;
    int two_files;
    size_t cut; /* the validation file starts here in the text */
} Settings;

static Settings take_settings(const uint8_t **data, size_t *size)
{
    Settings s = {.spec = {.corpus_path = "", .valid_path = "", .synth_bytes = 4096,
                           .max_bytes = NS_TEXT_MAX_BYTES_DEFAULT}};
    uint32_t flags = fuzz_take(data, size, 1);
    s.spec.tokenizer = flags & 1 ? NS_TOK_CHAR : NS_TOK_WORD;
    s.spec.batching = flags & 2 ? NS_BATCH_SENTENCES : NS_BATCH_STREAM;
    s.two_files = (flags & 4) != 0;
    s.spec.seed = flags >> 4;
    s.spec.vocab_cap = 4 + (int)fuzz_take(data, size, 1);
    s.spec.batch_size = 1 + (int)fuzz_take(data, size, 1) % 16;
    s.spec.seq_len = 1 + (int)fuzz_take(data, size, 1) % 64;
    int budget = (int)fuzz_take(data, size, 1);
    s.spec.max_tokens = (flags & 8) && s.spec.batching == NS_BATCH_SENTENCES ? budget * 4 : 0;
    s.cut = (size_t)fuzz_take(data, size, 1) * *size / 256;
    return s;
}

/* Every id a batch holds is a vocabulary id, and padding only where the mask says so. */
static void check_batches(NsDataset *ds, const NsDataSpec *spec)
{
    size_t B = (size_t)spec->batch_size, T = (size_t)spec->seq_len;
    int32_t *tokens = ns_xcalloc(B * (T + 1), sizeof *tokens);
    uint8_t *mask = ns_xcalloc(B * T, sizeof *mask);
    for (int k = 0; k < DRAWS; k++) {
        int Bk = (int)B, Tk = (int)T;
        if (spec->max_tokens)
            ns_batcher_next_shaped(&ds->train_batches, tokens, mask, &Bk, &Tk);
        else
            ns_batcher_next(&ds->train_batches, tokens, mask);
        for (size_t i = 0; i < (size_t)Bk * (size_t)(Tk + 1); i++)
            if (tokens[i] < 0 || tokens[i] >= ds->vocab.size) {
                fprintf(stderr, "fuzz_corpus: batch %d holds id %d outside the vocabulary (%d)\n",
                        k, tokens[i], ds->vocab.size);
                abort();
            }
    }
    free(tokens);
    free(mask);
}

/* The vocabulary read back from its list, as a checkpoint restores it, must be the same. */
static void check_vocab_round_trip(const NsVocab *v)
{
    char err[NS_ERRLEN];
    NsVocab back;
    if (ns_vocab_from_list(&back, v->tokens, v->size, err) != 0) {
        fprintf(stderr, "fuzz_corpus: a built vocabulary does not load back: %s\n", err);
        abort();
    }
    for (int i = 0; i < v->size; i++)
        if (ns_vocab_lookup(&back, v->tokens[i], (size_t)v->token_len[i]) != i) {
            fprintf(stderr, "fuzz_corpus: token %d does not map back to its id\n", i);
            abort();
        }
    ns_vocab_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Settings s = take_settings(&data, &size);
    if (s.two_files) {
        s.spec.corpus_path = fuzz_file(0, data, s.cut);
        s.spec.valid_path = fuzz_file(1, data + s.cut, size - s.cut);
    } else {
        s.spec.corpus_path = fuzz_file(0, data, size);
    }
    char err[NS_ERRLEN];
    NsDataset ds;
    if (ns_dataset_load(&ds, &s.spec, NULL, 0, err) != 0) {
        ns_dataset_free(&ds); /* what a failed load made so far */
        return 0;
    }
    check_batches(&ds, &s.spec);
    check_vocab_round_trip(&ds.vocab);
    if (s.two_files) {
        NsCorpus again = {0};
        NsTextLimits lim = {.max_bytes = s.spec.max_bytes, .any_file = 0};
        ns_load_corpus_file(s.spec.valid_path, &lim, &ds.vocab, s.spec.tokenizer, &again, err);
        ns_corpus_free(&again);
    }
    ns_dataset_free(&ds);
    return 0;
}
