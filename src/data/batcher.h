/* Batches of token ids for the language model.
 *
 * A batch is tokens[B][T+1] (int32) and mask[B][T] (uint8, 1 = real position). The model reads
 * inputs tokens[:, 0:T] and predicts targets tokens[:, 1:T+1]; position (b, t) is real when its
 * target tokens[b][t+1] is a real token. Padding (NS_PAD_ID) only ever follows the real positions
 * of a row.
 *
 * stream:    the corpus ids as one stream (EOS between lines), cut into B contiguous sub-streams
 *            of length L = n_ids / B (the remainder is dropped, like the usual `batchify`). Each
 *            batch takes T+1 tokens of every sub-stream and then advances by T, so consecutive
 *            batches overlap by one token and every target of a sub-stream is predicted once.
 *            Mask is all ones. An epoch is (L - 1) / T batches; the tail of a sub-stream too
 *            short for a full row is skipped and the walk wraps to the start.
 * sentences: one line per row: [EOS, w1, ..., wn, EOS] (the leading EOS acts as beginning of
 *            sentence), padded with 0 to T+1. A line longer than T+1 tokens becomes consecutive
 *            chunks of T+1 overlapping by one token, so every target is predicted once. Rows come
 *            in a seeded shuffled order each epoch (shuffle=1) or in file order (shuffle=0). The
 *            last batch of an epoch may be partial: its missing rows are all padding, mask 0.
 *
 * sentences with a token budget (ns_batcher_set_max_tokens, fairseq's --max-tokens): each epoch
 *            the rows are shuffled (seeded by seed and epoch), stably sorted by length (so rows of
 *            equal length stay in shuffled order), cut greedily into batches of as many rows as
 *            fit rows x longest <= max_tokens (and rows <= B), and the batches are shuffled. A
 *            batch is [Bk][Tk+1] with Bk <= B, Tk <= T its own longest row: padding is only the
 *            difference between lengths of neighbouring rows. The cut depends on the lengths
 *            only, so every epoch has the same number of batches and resuming needs only the
 *            epoch and the batch index.
 *
 * The batcher keeps a pointer to the corpus, which must outlive it. */
#ifndef NS_BATCHER_H
#define NS_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "corpus.h"

typedef enum { NS_BATCH_STREAM = 0, NS_BATCH_SENTENCES = 1 } NsBatching;

typedef struct NsBatcher {
    const NsCorpus *corpus;
    NsBatching mode;
    int batch_size; /* B */
    int seq_len;    /* T */
    uint64_t seed;
    int shuffle;
    int64_t epoch;  /* completed passes over the data */
    /* stream */
    size_t stream_len; /* L: length of each of the B sub-streams */
    size_t pos;        /* offset of the next row inside every sub-stream */
    /* sentences: row r is the chunk of line row_line[r] starting at row_offset[r] of the line's
     * [EOS, w1, ..., wn, EOS] sequence */
    size_t n_rows;
    size_t *row_line;
    size_t *row_offset;
    size_t *order;  /* this epoch's row order */
    size_t cursor;  /* next index into order (with a token budget: into batch_perm) */
    /* sentences with a token budget: batch k is order[batch_start[k] .. batch_start[k+1]) */
    int max_tokens; /* 0: fixed [B][T+1] batches */
    size_t n_batches;
    size_t *batch_start; /* [n_batches + 1] */
    size_t *batch_perm;  /* this epoch's batch order */
} NsBatcher;

int ns_batcher_init(NsBatcher *b, const NsCorpus *c, NsBatching mode, int batch_size,
                    int seq_len, uint64_t seed, int shuffle, char *err);
/* Fills tokens[B*(T+1)] and mask[B*T]; returns the number of real positions (sum of mask).
 * Never fails after a successful init; wraps around epochs. */
int ns_batcher_next(NsBatcher *b, int32_t *tokens, uint8_t *mask);
/* Token-budget batching for sentence mode (see above); 0 turns it off. Call right after init.
 * Fails (message in err) for stream batching or a budget below T, which could not hold the
 * longest rows. */
int ns_batcher_set_max_tokens(NsBatcher *b, int max_tokens, char *err);
/* As ns_batcher_next, but the batch may be smaller than [B][T+1]: tokens is [*Bk][*Tk + 1] and
 * mask [*Bk][*Tk], packed (row stride Tk+1 and Tk). Without a token budget Bk = B, Tk = T. */
int ns_batcher_next_shaped(NsBatcher *b, int32_t *tokens, uint8_t *mask, int *Bk, int *Tk);
/* Number of batches that cover the data once. From a fresh init with shuffle=0, that many calls
 * to ns_batcher_next visit every sentence-mode target exactly once (stream mode: every target
 * of the B sub-streams except each one's short tail). */
int ns_batcher_epoch_batches(const NsBatcher *b);
/* Exact resume: the whole position/RNG state as a small int64 array. set_state checks that the
 * state was taken from a batcher over the same corpus size with the same mode and shape. */
int ns_batcher_state_size(const NsBatcher *b);
void ns_batcher_get_state(const NsBatcher *b, int64_t *state);
int ns_batcher_set_state(NsBatcher *b, const int64_t *state, int n, char *err);
void ns_batcher_free(NsBatcher *b);

#endif
