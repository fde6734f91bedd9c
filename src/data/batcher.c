#include "batcher.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Layout of the saved state. The shape fields are not needed to resume, they are there so that a
 * checkpoint taken with a different corpus or batch shape is refused instead of silently
 * producing different batches. */
enum {
    ST_MAGIC, ST_MODE, ST_BATCH, ST_SEQ, ST_N_IDS, ST_N_ROWS, ST_SHUFFLE, ST_SEED, ST_EPOCH,
    ST_POSITION, ST_COUNT
};
#define STATE_MAGIC 0x4e53424154310000LL /* "NSBAT1" */

/* ------------------------------------------------------------------------------------------
 * Sentence rows */

/* Length of line i as a row sequence [EOS, w1, ..., wn, EOS]: its ids plus the leading EOS. */
static size_t line_row_len(const NsCorpus *c, size_t line)
{
    return c->line_start[line + 1] - c->line_start[line] + 1;
}

/* Rows of a line: chunks starting at 0, T, 2T, ... each holding at least one target. */
static size_t line_n_chunks(size_t row_len, size_t T)
{
    return (row_len - 1 + T - 1) / T; /* ceil((row_len - 1) / T) targets per T */
}

static void build_rows(NsBatcher *b)
{
    const NsCorpus *c = b->corpus;
    size_t T = (size_t)b->seq_len, n = 0;
    for (size_t i = 0; i < c->n_lines; i++)
        n += line_n_chunks(line_row_len(c, i), T);
    b->n_rows = n;
    b->row_line = ns_xmalloc(n * sizeof(size_t));
    b->row_offset = ns_xmalloc(n * sizeof(size_t));
    b->order = ns_xmalloc(n * sizeof(size_t));
    size_t r = 0;
    for (size_t i = 0; i < c->n_lines; i++) {
        size_t chunks = line_n_chunks(line_row_len(c, i), T);
        for (size_t k = 0; k < chunks; k++, r++) {
            b->row_line[r] = i;
            b->row_offset[r] = k * T;
        }
    }
}

/* The row order of an epoch depends only on (seed, epoch), so resuming needs no RNG state
 * beyond those two numbers. */
static void order_for_epoch(NsBatcher *b)
{
    for (size_t r = 0; r < b->n_rows; r++)
        b->order[r] = r;
    if (!b->shuffle)
        return;
    NsRng rng;
    ns_rng_seed(&rng, b->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(b->epoch + 1)));
    for (size_t r = b->n_rows; r > 1; r--) { /* Fisher-Yates */
        size_t j = (size_t)ns_rng_below(&rng, r);
        size_t tmp = b->order[r - 1];
        b->order[r - 1] = b->order[j];
        b->order[j] = tmp;
    }
}

/* Writes one row; returns its number of real positions. */
static int fill_sentence_row(const NsBatcher *b, size_t row, int32_t *tokens, uint8_t *mask)
{
    const NsCorpus *c = b->corpus;
    size_t T = (size_t)b->seq_len, line = b->row_line[row], off = b->row_offset[row];
    size_t row_len = line_row_len(c, line);
    size_t n = row_len - off < T + 1 ? row_len - off : T + 1;
    /* index j >= 1 of the row sequence is ids[line_start + j - 1]; index 0 is the leading EOS */
    for (size_t t = 0; t < n; t++) {
        size_t j = off + t;
        tokens[t] = j == 0 ? NS_EOS_ID : c->ids[c->line_start[line] + j - 1];
    }
    for (size_t t = n; t < T + 1; t++)
        tokens[t] = NS_PAD_ID;
    for (size_t t = 0; t < T; t++)
        mask[t] = t + 1 < n;
    return (int)(n - 1);
}

static int next_sentences(NsBatcher *b, int32_t *tokens, uint8_t *mask)
{
    size_t T = (size_t)b->seq_len;
    int real = 0;
    for (int r = 0; r < b->batch_size; r++) {
        int32_t *row_tokens = tokens + (size_t)r * (T + 1);
        uint8_t *row_mask = mask + (size_t)r * T;
        if (b->cursor < b->n_rows) {
            real += fill_sentence_row(b, b->order[b->cursor++], row_tokens, row_mask);
        } else { /* end of epoch: pad rather than repeat data, so evaluation counts each once */
            memset(row_tokens, 0, (T + 1) * sizeof(int32_t));
            memset(row_mask, 0, T);
        }
    }
    if (b->cursor >= b->n_rows) {
        b->epoch++;
        b->cursor = 0;
        order_for_epoch(b);
    }
    return real;
}

/* ------------------------------------------------------------------------------------------
 * Stream */

static int next_stream(NsBatcher *b, int32_t *tokens, uint8_t *mask)
{
    size_t T = (size_t)b->seq_len;
    for (int r = 0; r < b->batch_size; r++) {
        const int32_t *src = b->corpus->ids + (size_t)r * b->stream_len + b->pos;
        memcpy(tokens + (size_t)r * (T + 1), src, (T + 1) * sizeof(int32_t));
    }
    memset(mask, 1, (size_t)b->batch_size * T);
    b->pos += T;
    if (b->pos + T + 1 > b->stream_len) { /* the next row would not fit: wrap */
        b->pos = 0;
        b->epoch++;
    }
    return b->batch_size * b->seq_len;
}

/* ------------------------------------------------------------------------------------------
 * Public API */

int ns_batcher_init(NsBatcher *b, const NsCorpus *c, NsBatching mode, int batch_size,
                    int seq_len, uint64_t seed, int shuffle, char *err)
{
    memset(b, 0, sizeof(*b));
    if (mode != NS_BATCH_STREAM && mode != NS_BATCH_SENTENCES)
        return ns_fail(err, "batcher: unknown batching mode %d; use stream or sentences",
                       (int)mode);
    if (batch_size < 1 || batch_size > (1 << 20))
        return ns_fail(err, "batch size %d is out of range; use --batch-size between 1 and %d",
                       batch_size, 1 << 20);
    if (seq_len < 1 || seq_len > (1 << 20))
        return ns_fail(err, "sequence length %d is out of range; use --seq-len between 1 and %d",
                       seq_len, 1 << 20);
    size_t per_batch = (size_t)batch_size * ((size_t)seq_len + 1);
    if (per_batch > ((size_t)1 << 30))
        return ns_fail(err, "batch of %d x %d tokens is too large; reduce --batch-size or "
                            "--seq-len", batch_size, seq_len + 1);
    if (c->n_lines == 0 || c->n_ids == 0)
        return ns_fail(err, "batcher: the corpus is empty; give a text file with one sentence "
                            "per line");
    if (mode == NS_BATCH_STREAM && c->n_ids < per_batch)
        return ns_fail(err, "corpus too short for stream batching: one batch needs batch_size "
                            "x (seq_len+1) = %d x %d = %zu tokens, the corpus has %zu; reduce "
                            "--batch-size or --seq-len, or give a larger corpus",
                       batch_size, seq_len + 1, per_batch, c->n_ids);
    b->corpus = c;
    b->mode = mode;
    b->batch_size = batch_size;
    b->seq_len = seq_len;
    b->seed = seed;
    b->shuffle = shuffle ? 1 : 0;
    if (mode == NS_BATCH_STREAM) {
        b->stream_len = c->n_ids / (size_t)batch_size;
    } else {
        build_rows(b);
        order_for_epoch(b);
    }
    return 0;
}

int ns_batcher_next(NsBatcher *b, int32_t *tokens, uint8_t *mask)
{
    if (b->mode == NS_BATCH_STREAM)
        return next_stream(b, tokens, mask);
    return next_sentences(b, tokens, mask);
}

int ns_batcher_epoch_batches(const NsBatcher *b)
{
    size_t n;
    if (b->mode == NS_BATCH_STREAM)
        n = (b->stream_len - 1) / (size_t)b->seq_len;
    else
        n = (b->n_rows + (size_t)b->batch_size - 1) / (size_t)b->batch_size;
    return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}

int ns_batcher_state_size(const NsBatcher *b)
{
    (void)b;
    return ST_COUNT;
}

void ns_batcher_get_state(const NsBatcher *b, int64_t *state)
{
    state[ST_MAGIC] = STATE_MAGIC;
    state[ST_MODE] = b->mode;
    state[ST_BATCH] = b->batch_size;
    state[ST_SEQ] = b->seq_len;
    state[ST_N_IDS] = (int64_t)b->corpus->n_ids;
    state[ST_N_ROWS] = (int64_t)(b->mode == NS_BATCH_STREAM ? b->stream_len : b->n_rows);
    state[ST_SHUFFLE] = b->shuffle;
    memcpy(&state[ST_SEED], &b->seed, sizeof(int64_t)); /* bit copy: the seed is unsigned */
    state[ST_EPOCH] = b->epoch;
    state[ST_POSITION] = (int64_t)(b->mode == NS_BATCH_STREAM ? b->pos : b->cursor);
}

/* Checks that a saved position is one this batcher could have reached. */
static int position_valid(const NsBatcher *b, int64_t p)
{
    if (p < 0)
        return 0;
    if (b->mode == NS_BATCH_SENTENCES)
        return (uint64_t)p < b->n_rows;
    size_t pos = (size_t)p, T = (size_t)b->seq_len;
    return pos % T == 0 && pos + T + 1 <= b->stream_len;
}

int ns_batcher_set_state(NsBatcher *b, const int64_t *state, int n, char *err)
{
    if (n != ST_COUNT || state[ST_MAGIC] != STATE_MAGIC)
        return ns_fail(err, "batcher state is not recognized (%d values); the checkpoint is "
                            "corrupt or from another normscope version", n);
    int64_t rows = (int64_t)(b->mode == NS_BATCH_STREAM ? b->stream_len : b->n_rows);
    if (state[ST_MODE] != b->mode || state[ST_BATCH] != b->batch_size ||
        state[ST_SEQ] != b->seq_len || state[ST_SHUFFLE] != b->shuffle)
        return ns_fail(err, "batcher state was saved with batching mode %lld, batch size %lld, "
                            "seq len %lld, shuffle %lld; resume with the same settings",
                       (long long)state[ST_MODE], (long long)state[ST_BATCH],
                       (long long)state[ST_SEQ], (long long)state[ST_SHUFFLE]);
    if (state[ST_N_IDS] != (int64_t)b->corpus->n_ids || state[ST_N_ROWS] != rows)
        return ns_fail(err, "batcher state was saved for a corpus of %lld tokens, this one has "
                            "%zu; resume with the same corpus and vocabulary",
                       (long long)state[ST_N_IDS], b->corpus->n_ids);
    if (state[ST_EPOCH] < 0 || !position_valid(b, state[ST_POSITION]))
        return ns_fail(err, "batcher state has an impossible position (epoch %lld, position "
                            "%lld); the checkpoint is corrupt",
                       (long long)state[ST_EPOCH], (long long)state[ST_POSITION]);
    memcpy(&b->seed, &state[ST_SEED], sizeof(int64_t));
    b->epoch = state[ST_EPOCH];
    if (b->mode == NS_BATCH_STREAM) {
        b->pos = (size_t)state[ST_POSITION];
    } else {
        b->cursor = (size_t)state[ST_POSITION];
        order_for_epoch(b);
    }
    return 0;
}

void ns_batcher_free(NsBatcher *b)
{
    free(b->row_line);
    free(b->row_offset);
    free(b->order);
    memset(b, 0, sizeof(*b));
}
