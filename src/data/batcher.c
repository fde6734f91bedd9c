#include "batcher.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Layout of the saved state. The shape fields are not needed to resume, they are there so that a
 * checkpoint taken with a different corpus or batch shape is refused instead of silently
 * producing different batches. */
enum {
    ST_MAGIC, ST_MODE, ST_BATCH, ST_SEQ, ST_N_IDS, ST_N_ROWS, ST_SHUFFLE, ST_SEED, ST_EPOCH,
    ST_POSITION, ST_COUNT, ST_MAX_TOKENS = ST_COUNT /* only with a token budget */
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

/* Tokens of a row (real positions + 1), at most T+1. */
static size_t row_tokens(const NsBatcher *b, size_t row)
{
    size_t T = (size_t)b->seq_len, row_len = line_row_len(b->corpus, b->row_line[row]);
    size_t left = row_len - b->row_offset[row];
    return left < T + 1 ? left : T + 1;
}

/* Writes one row padded to width T+1 (T <= seq_len, at least the row's real positions);
 * returns its number of real positions. */
static int fill_sentence_row(const NsBatcher *b, size_t row, size_t T, int32_t *tokens,
                             uint8_t *mask)
{
    const NsCorpus *c = b->corpus;
    size_t line = b->row_line[row], off = b->row_offset[row];
    size_t n = row_tokens(b, row);
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
        int32_t *row_tok = tokens + (size_t)r * (T + 1);
        uint8_t *row_mask = mask + (size_t)r * T;
        if (b->cursor < b->n_rows) {
            real += fill_sentence_row(b, b->order[b->cursor++], T, row_tok, row_mask);
        } else { /* end of epoch: pad rather than repeat data, so evaluation counts each once */
            memset(row_tok, 0, (T + 1) * sizeof(int32_t));
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
 * Sentences with a token budget */

/* order = this epoch's shuffled rows, stably sorted by length (counting sort over 1..T+1
 * tokens): equal lengths keep their shuffled order, so batch membership changes every epoch. */
static void sort_by_length(NsBatcher *b)
{
    size_t T = (size_t)b->seq_len;
    size_t *count = ns_xcalloc(T + 3, sizeof(size_t));
    size_t *sorted = ns_xmalloc(b->n_rows * sizeof(size_t));
    for (size_t i = 0; i < b->n_rows; i++)
        count[row_tokens(b, b->order[i]) + 1]++;
    for (size_t k = 1; k < T + 3; k++)
        count[k] += count[k - 1];
    for (size_t i = 0; i < b->n_rows; i++)
        sorted[count[row_tokens(b, b->order[i])]++] = b->order[i];
    memcpy(b->order, sorted, b->n_rows * sizeof(size_t));
    free(sorted);
    free(count);
}

/* Greedy cut of the sorted rows: a row joins the batch while rows x (its real positions, the
 * batch's longest so far) stays within the budget and the batch within B rows. Depends only on
 * the multiset of lengths, so it is the same every epoch. */
static void cut_batches(NsBatcher *b)
{
    size_t k = 0, rows = 0, budget = (size_t)b->max_tokens;
    b->batch_start[0] = 0;
    for (size_t i = 0; i < b->n_rows; i++) {
        size_t len = row_tokens(b, b->order[i]) - 1;
        if (rows > 0 && ((rows + 1) * len > budget || rows + 1 > (size_t)b->batch_size)) {
            b->batch_start[++k] = i;
            rows = 0;
        }
        rows++;
    }
    b->batch_start[++k] = b->n_rows;
    b->n_batches = k;
}

static void plan_epoch(NsBatcher *b)
{
    order_for_epoch(b);
    sort_by_length(b);
    cut_batches(b);
    for (size_t k = 0; k < b->n_batches; k++)
        b->batch_perm[k] = k;
    if (!b->shuffle)
        return;
    NsRng rng;
    ns_rng_seed(&rng, b->seed ^ (0xd1b54a32d192ed03ULL * (uint64_t)(b->epoch + 1)));
    for (size_t k = b->n_batches; k > 1; k--) {
        size_t j = (size_t)ns_rng_below(&rng, k);
        size_t tmp = b->batch_perm[k - 1];
        b->batch_perm[k - 1] = b->batch_perm[j];
        b->batch_perm[j] = tmp;
    }
}

static int next_budget(NsBatcher *b, int32_t *tokens, uint8_t *mask, int *Bk, int *Tk)
{
    size_t k = b->batch_perm[b->cursor];
    size_t first = b->batch_start[k], last = b->batch_start[k + 1];
    size_t T = row_tokens(b, b->order[last - 1]) - 1; /* sorted: the last row is the longest */
    int real = 0;
    for (size_t i = first; i < last; i++)
        real += fill_sentence_row(b, b->order[i], T, tokens + (i - first) * (T + 1),
                                  mask + (i - first) * T);
    *Bk = (int)(last - first);
    *Tk = (int)T;
    if (++b->cursor >= b->n_batches) {
        b->epoch++;
        b->cursor = 0;
        plan_epoch(b);
    }
    return real;
}

/* A packed [Bk][Tk+1] batch spread out to [B][T+1] in place, the extra rows and columns
 * padding. Rows only move to higher addresses and the last moves first, so no row is
 * overwritten before it has moved (memmove handles a row overlapping itself). */
static void unpack_batch(const NsBatcher *b, int32_t *tokens, uint8_t *mask, int Bk, int Tk)
{
    size_t T = (size_t)b->seq_len, t = (size_t)Tk;
    for (size_t r = (size_t)b->batch_size; r-- > 0;) {
        int32_t *dst_tok = tokens + r * (T + 1);
        uint8_t *dst_mask = mask + r * T;
        size_t keep = r < (size_t)Bk ? t : 0, keep_tok = r < (size_t)Bk ? t + 1 : 0;
        memmove(dst_tok, tokens + r * (t + 1), keep_tok * sizeof(int32_t));
        memmove(dst_mask, mask + r * t, keep);
        memset(dst_tok + keep_tok, 0, (T + 1 - keep_tok) * sizeof(int32_t));
        memset(dst_mask + keep, 0, T - keep);
    }
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

int ns_batcher_next_shaped(NsBatcher *b, int32_t *tokens, uint8_t *mask, int *Bk, int *Tk)
{
    if (b->max_tokens > 0)
        return next_budget(b, tokens, mask, Bk, Tk);
    *Bk = b->batch_size;
    *Tk = b->seq_len;
    if (b->mode == NS_BATCH_STREAM)
        return next_stream(b, tokens, mask);
    return next_sentences(b, tokens, mask);
}

int ns_batcher_next(NsBatcher *b, int32_t *tokens, uint8_t *mask)
{
    int Bk, Tk;
    int real = ns_batcher_next_shaped(b, tokens, mask, &Bk, &Tk);
    if (Bk != b->batch_size || Tk != b->seq_len)
        unpack_batch(b, tokens, mask, Bk, Tk);
    return real;
}

int ns_batcher_set_max_tokens(NsBatcher *b, int max_tokens, char *err)
{
    if (max_tokens < 0)
        return ns_fail(err, "--max-tokens %d is negative; give a token budget, or 0 for "
                            "batches of --batch-size rows", max_tokens);
    if (max_tokens == 0)
        return 0;
    if (b->mode != NS_BATCH_SENTENCES)
        return ns_fail(err, "--max-tokens needs --batching sentences (stream batches have no "
                            "padding to save)");
    if (max_tokens < b->seq_len)
        return ns_fail(err, "--max-tokens %d is smaller than --seq-len %d: a batch must hold "
                            "one full-length row", max_tokens, b->seq_len);
    b->max_tokens = max_tokens;
    b->batch_start = ns_xmalloc((b->n_rows + 1) * sizeof(size_t));
    b->batch_perm = ns_xmalloc(b->n_rows * sizeof(size_t));
    b->cursor = 0;
    plan_epoch(b);
    return 0;
}

int ns_batcher_epoch_batches(const NsBatcher *b)
{
    size_t n;
    if (b->mode == NS_BATCH_STREAM)
        n = (b->stream_len - 1) / (size_t)b->seq_len;
    else if (b->max_tokens > 0)
        n = b->n_batches;
    else
        n = (b->n_rows + (size_t)b->batch_size - 1) / (size_t)b->batch_size;
    return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}

int ns_batcher_state_size(const NsBatcher *b)
{
    return ST_COUNT + (b->max_tokens > 0); /* unchanged layout without a budget */
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
    if (b->max_tokens > 0)
        state[ST_MAX_TOKENS] = b->max_tokens;
}

/* Checks that a saved position is one this batcher could have reached. */
static int position_valid(const NsBatcher *b, int64_t p)
{
    if (p < 0)
        return 0;
    if (b->max_tokens > 0)
        return (uint64_t)p < b->n_batches;
    if (b->mode == NS_BATCH_SENTENCES)
        return (uint64_t)p < b->n_rows;
    size_t pos = (size_t)p, T = (size_t)b->seq_len;
    return pos % T == 0 && pos + T + 1 <= b->stream_len;
}

int ns_batcher_set_state(NsBatcher *b, const int64_t *state, int n, char *err)
{
    if (n < ST_COUNT || state[ST_MAGIC] != STATE_MAGIC)
        return ns_fail(err, "batcher state is not recognized (%d values); the checkpoint is "
                            "corrupt or from another normscope version", n);
    int64_t saved_budget = n > ST_COUNT ? state[ST_MAX_TOKENS] : 0;
    if (n > ST_COUNT + 1 || saved_budget != b->max_tokens)
        return ns_fail(err, "batcher state was saved with --max-tokens %lld, this run has %d; "
                            "resume with the same settings", (long long)saved_budget,
                       b->max_tokens);
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
    } else if (b->max_tokens > 0) {
        plan_epoch(b);
        b->cursor = (size_t)state[ST_POSITION];
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
    free(b->batch_start);
    free(b->batch_perm);
    memset(b, 0, sizeof(*b));
}
