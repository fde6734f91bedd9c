/* Tests of the batcher (both batchings) on small hand-made corpora: stream rows read contiguous
 * sub-streams with shifted targets and wrap; sentence rows hold a line's chunks with padding only
 * after the real positions, and an unshuffled epoch reproduces the corpus exactly; shuffling is
 * seeded, reshuffles every epoch and keeps every row once; the data order resumes exactly from a
 * saved state, which other settings refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batcher.h"
#include "corpus.h"
#include "harness.h"
#include "util.h"

/* A corpus with lines of the given word counts; word ids are 3, 4, 5, ... (never pad/unk/eos). */
static void make_corpus(NsCorpus *c, const int *words_per_line, int n_lines)
{
    size_t n = 0;
    for (int i = 0; i < n_lines; i++)
        n += (size_t)words_per_line[i] + 1;
    c->ids = ns_xmalloc(n * sizeof(int32_t));
    c->line_start = ns_xmalloc(((size_t)n_lines + 1) * sizeof(size_t));
    c->n_ids = n;
    c->n_lines = (size_t)n_lines;
    size_t k = 0;
    int32_t next_word = 3;
    for (int i = 0; i < n_lines; i++) {
        c->line_start[i] = k;
        for (int w = 0; w < words_per_line[i]; w++)
            c->ids[k++] = next_word++;
        c->ids[k++] = NS_EOS_ID;
    }
    c->line_start[n_lines] = k;
}

static const int test_lines[] = {1, 5, 3, 20, 2, 9, 4, 12, 3, 7}; /* with T=4: chunked lines */
#define N_TEST_LINES ((int)(sizeof(test_lines) / sizeof(test_lines[0])))
enum { TB = 3, TT = 4 }; /* batch size and sequence length of the batching tests */

static void init_batcher(NsBatcher *b, const NsCorpus *c, NsBatching mode, uint64_t seed,
                         int shuffle)
{
    char err[NS_ERRLEN] = "";
    if (ns_batcher_init(b, c, mode, TB, TT, seed, shuffle, err) != 0)
        fail_msg("ns_batcher_init: %s", err);
}

/* ------------------------------------------------------------------------------------------
 * Batching */

static void test_stream_batches(void **state)
{
    (void)state;
    NsCorpus c;
    make_corpus(&c, test_lines, N_TEST_LINES); /* 76 ids: L = 25, 6 batches per epoch */
    NsBatcher b;
    init_batcher(&b, &c, NS_BATCH_STREAM, 1, 1);
    size_t L = c.n_ids / TB;
    int per_epoch = ns_batcher_epoch_batches(&b);
    assert_int_equal(per_epoch, (int)((L - 1) / TT));
    int32_t tokens[TB * (TT + 1)], first[TB * (TT + 1)];
    uint8_t mask[TB * TT];
    for (int k = 0; k < per_epoch; k++) {
        assert_int_equal(ns_batcher_next(&b, tokens, mask), TB * TT);
        if (k == 0)
            memcpy(first, tokens, sizeof(first));
        for (int r = 0; r < TB; r++) {
            /* row r reads its own contiguous sub-stream; targets = inputs shifted by one */
            assert_memory_equal(tokens + r * (TT + 1), c.ids + r * L + (size_t)k * TT,
                                (TT + 1) * sizeof(int32_t));
            for (int t = 0; t < TT; t++)
                assert_int_equal(mask[r * TT + t], 1);
        }
    }
    ns_batcher_next(&b, tokens, mask); /* wraps to the start */
    assert_memory_equal(tokens, first, sizeof(first));
    ns_batcher_free(&b);

    char err[NS_ERRLEN] = "";
    assert_int_equal(ns_batcher_init(&b, &c, NS_BATCH_STREAM, 8, 9, 1, 0, err), -1);
    assert_non_null(strstr(err, "80")); /* needs 8 x 10 tokens */
    assert_non_null(strstr(err, "76"));
    assert_int_equal(ns_batcher_init(&b, &c, NS_BATCH_STREAM, 0, 9, 1, 0, err), -1);
    assert_int_equal(ns_batcher_init(&b, &c, NS_BATCH_SENTENCES, 2, 0, 1, 0, err), -1);
    ns_corpus_free(&c);
}

/* Checks one sentence row: mask = (target != pad), padding only after the real positions.
 * Returns the number of real positions. */
static int check_sentence_row(const int32_t *tokens, const uint8_t *mask)
{
    int real = 0;
    while (real < TT && tokens[real + 1] != NS_PAD_ID)
        real++;
    for (int t = 0; t < TT; t++)
        assert_int_equal(mask[t], t < real);
    for (int t = real + 1; t <= TT; t++)
        assert_int_equal(tokens[t], NS_PAD_ID);
    return real;
}

static void test_sentence_epoch_unshuffled(void **state)
{
    (void)state;
    NsCorpus c;
    make_corpus(&c, test_lines, N_TEST_LINES);
    NsBatcher b;
    init_batcher(&b, &c, NS_BATCH_SENTENCES, 7, 0);
    int per_epoch = ns_batcher_epoch_batches(&b);
    int32_t tokens[TB * (TT + 1)], first[TB * (TT + 1)];
    uint8_t mask[TB * TT];
    int32_t *targets = ns_xmalloc(c.n_ids * 2 * sizeof(int32_t));
    size_t n_targets = 0, rows_seen = 0, empty_rows = 0;
    int32_t prev_last = NS_EOS_ID;
    for (int k = 0; k < per_epoch; k++) {
        int real = ns_batcher_next(&b, tokens, mask);
        if (k == 0)
            memcpy(first, tokens, sizeof(first));
        int sum = 0;
        for (int r = 0; r < TB; r++) {
            const int32_t *row = tokens + r * (TT + 1);
            int n = check_sentence_row(row, mask + r * TT);
            sum += n;
            if (n == 0) { /* only the tail of the last batch, and only padding */
                assert_int_equal(k, per_epoch - 1);
                assert_int_equal(row[0], NS_PAD_ID);
                empty_rows++;
                continue;
            }
            /* a row starts with the leading EOS of its line or, for a continued chunk, with
             * the previous chunk's last token: chunks overlap by one */
            assert_int_equal(row[0], prev_last);
            assert_true(n_targets + (size_t)n <= c.n_ids);
            memcpy(targets + n_targets, row + 1, (size_t)n * sizeof(int32_t));
            n_targets += (size_t)n;
            prev_last = row[n];
            rows_seen++;
        }
        assert_int_equal(real, sum);
    }
    /* the real targets of one unshuffled epoch are exactly the corpus */
    assert_int_equal(n_targets, c.n_ids);
    assert_memory_equal(targets, c.ids, c.n_ids * sizeof(int32_t));
    assert_int_equal(rows_seen + empty_rows, (size_t)per_epoch * TB);
    assert_true(empty_rows < TB);
    assert_int_equal(b.epoch, 1);
    ns_batcher_next(&b, tokens, mask); /* the second epoch starts over in file order */
    assert_memory_equal(tokens, first, sizeof(first));
    free(targets);
    ns_batcher_free(&b);
    ns_corpus_free(&c);
}

/* Collects the non-empty rows of one epoch, sorted, to compare epochs as multisets. */
static int compare_rows(const void *a, const void *b)
{
    return memcmp(a, b, (TT + 1) * sizeof(int32_t));
}

static size_t epoch_rows(NsBatcher *b, int32_t *rows)
{
    int32_t tokens[TB * (TT + 1)];
    uint8_t mask[TB * TT];
    size_t n = 0;
    int per_epoch = ns_batcher_epoch_batches(b);
    for (int k = 0; k < per_epoch; k++) {
        ns_batcher_next(b, tokens, mask);
        for (int r = 0; r < TB; r++) {
            const int32_t *row = tokens + r * (TT + 1);
            if (check_sentence_row(row, mask + r * TT) > 0)
                memcpy(rows + (n++) * (TT + 1), row, (TT + 1) * sizeof(int32_t));
        }
    }
    return n;
}

static void test_sentence_shuffle(void **state)
{
    (void)state;
    NsCorpus c;
    make_corpus(&c, test_lines, N_TEST_LINES);
    NsBatcher plain, s1, s2, s3;
    init_batcher(&plain, &c, NS_BATCH_SENTENCES, 7, 0);
    init_batcher(&s1, &c, NS_BATCH_SENTENCES, 42, 1);
    init_batcher(&s2, &c, NS_BATCH_SENTENCES, 42, 1);
    init_batcher(&s3, &c, NS_BATCH_SENTENCES, 43, 1);
    size_t cap = (size_t)ns_batcher_epoch_batches(&plain) * TB * (TT + 1);
    int32_t *r0 = ns_xmalloc(cap * sizeof(int32_t)), *r1 = ns_xmalloc(cap * sizeof(int32_t));
    int32_t *r2 = ns_xmalloc(cap * sizeof(int32_t)), *r3 = ns_xmalloc(cap * sizeof(int32_t));
    int32_t *first_epoch = ns_xmalloc(cap * sizeof(int32_t));
    size_t n = epoch_rows(&plain, r0);
    for (int epoch = 0; epoch < 2; epoch++) {
        assert_int_equal(epoch_rows(&s1, r1), n);
        assert_int_equal(epoch_rows(&s2, r2), n);
        assert_int_equal(epoch_rows(&s3, r3), n);
        size_t bytes = n * (TT + 1) * sizeof(int32_t);
        assert_memory_equal(r1, r2, bytes);     /* same seed, same order */
        assert_memory_not_equal(r1, r3, bytes); /* another seed, another order */
        assert_memory_not_equal(r1, r0, bytes); /* shuffled at all */
        if (epoch == 0)
            memcpy(first_epoch, r1, bytes);
        else
            assert_memory_not_equal(r1, first_epoch, bytes); /* reshuffled every epoch */
        qsort(r1, n, (TT + 1) * sizeof(int32_t), compare_rows);
        qsort(r3, n, (TT + 1) * sizeof(int32_t), compare_rows);
        qsort(r0, n, (TT + 1) * sizeof(int32_t), compare_rows);
        assert_memory_equal(r1, r0, bytes); /* every row exactly once per epoch */
        assert_memory_equal(r3, r0, bytes);
    }
    free(r0), free(r1), free(r2), free(r3), free(first_epoch);
    ns_batcher_free(&plain), ns_batcher_free(&s1), ns_batcher_free(&s2), ns_batcher_free(&s3);
    ns_corpus_free(&c);
}

/* Runs `before` batches, saves the state, then checks that a fresh batcher with another seed
 * restored from that state produces the identical next `after` batches. */
static void check_resume(NsBatching mode, int shuffle, int before, int after)
{
    NsCorpus c;
    make_corpus(&c, test_lines, N_TEST_LINES);
    NsBatcher a, b;
    init_batcher(&a, &c, mode, 42, shuffle);
    init_batcher(&b, &c, mode, 5, shuffle);
    int32_t ta[TB * (TT + 1)], tb[TB * (TT + 1)];
    uint8_t ma[TB * TT], mb[TB * TT];
    for (int k = 0; k < before; k++)
        ns_batcher_next(&a, ta, ma);
    int n = ns_batcher_state_size(&a);
    int64_t st[64];
    assert_true(n > 0 && n <= 64);
    ns_batcher_get_state(&a, st);
    char err[NS_ERRLEN] = "";
    if (ns_batcher_set_state(&b, st, n, err) != 0)
        fail_msg("ns_batcher_set_state: %s", err);
    for (int k = 0; k < after; k++) {
        assert_int_equal(ns_batcher_next(&a, ta, ma), ns_batcher_next(&b, tb, mb));
        assert_memory_equal(ta, tb, sizeof(ta));
        assert_memory_equal(ma, mb, sizeof(ma));
    }
    assert_int_equal(ns_batcher_set_state(&b, st, n - 1, err), -1);
    ns_batcher_free(&b);
    init_batcher(&b, &c, mode, 42, !shuffle);
    assert_int_equal(ns_batcher_set_state(&b, st, n, err), -1); /* other settings: refused */
    assert_non_null(strstr(err, "same settings"));
    ns_batcher_free(&b);
    assert_int_equal(ns_batcher_init(&b, &c, mode, TB - 1, TT, 42, shuffle, err), 0);
    assert_int_equal(ns_batcher_set_state(&b, st, n, err), -1);
    assert_non_null(strstr(err, "same settings"));
    ns_batcher_free(&b);
    ns_batcher_free(&a);
    ns_corpus_free(&c);
}

static void test_resume(void **state)
{
    (void)state;
    check_resume(NS_BATCH_SENTENCES, 1, 0, 25);
    check_resume(NS_BATCH_SENTENCES, 1, 13, 30); /* crosses epoch boundaries */
    check_resume(NS_BATCH_SENTENCES, 0, 9, 20);
    check_resume(NS_BATCH_STREAM, 0, 4, 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_batches),
        cmocka_unit_test(test_sentence_epoch_unshuffled),
        cmocka_unit_test(test_sentence_shuffle),
        cmocka_unit_test(test_resume),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
