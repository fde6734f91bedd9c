/* The unknown-token rate (issue 13): the fraction of the training and validation tokens that the
 * vocabulary maps to <unk>, computed by the data layer on texts whose unknown counts are known,
 * shown in train's banner, written to the run log as unk_rate_train / unk_rate_valid, and
 * warned about above 5 % naming --vocab-size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dataset.h"
#include "h5util.h"
#include "harness.h"

/* train.txt: 50 lines "a a b c d": a 100, b 50, c 50, d 50 tokens (250 without EOS). Ties break
 * by byte order, so a vocabulary of 6 ids (3 reserved) keeps a, b, c: 50 <unk> (0.2); one of 7
 * keeps every word (0). valid.txt: 40 lines "a b c e": e never occurs in training, 40 of 160
 * tokens (0.25). valid_known.txt: 40 lines "a b c d" (0 at 7 ids, 0.25 at 6). */
static int setup(void **state)
{
    (void)state;
    if (harness_setup() != 0)
        return -1;
    char text[4096] = "";
    for (int i = 0; i < 50; i++)
        strcat(text, "a a b c d\n");
    write_file(scratch("train.txt"), text, strlen(text));
    text[0] = '\0';
    for (int i = 0; i < 40; i++)
        strcat(text, "a b c e\n");
    write_file(scratch("valid.txt"), text, strlen(text));
    text[0] = '\0';
    for (int i = 0; i < 40; i++)
        strcat(text, "a b c d\n\n"); /* empty lines count for nothing */
    write_file(scratch("valid_known.txt"), text, strlen(text));
    return 0;
}

static void load(NsDataset *ds, const char *valid, int cap)
{
    char train_path[1024], valid_path[1024], err[512] = "";
    snprintf(train_path, sizeof train_path, "%s", scratch("train.txt"));
    snprintf(valid_path, sizeof valid_path, "%s", scratch(valid));
    NsDataSpec spec = {.corpus_path = train_path, .valid_path = valid_path,
                       .tokenizer = NS_TOK_WORD, .batching = NS_BATCH_STREAM, .seed = 1,
                       .vocab_cap = cap, .batch_size = 4, .seq_len = 8};
    if (ns_dataset_load(ds, &spec, NULL, 0, err) != 0)
        fail_msg("ns_dataset_load: %s", err);
}

TEST(data_layer_counts_unknown_tokens)
{
    static const struct { const char *valid; int cap; double train, valid_rate; } C[] = {
        {"valid.txt", 6, 0.2, 0.25},
        {"valid.txt", 7, 0.0, 0.25},
        {"valid_known.txt", 7, 0.0, 0.0},
        {"valid_known.txt", 6, 0.2, 0.25},
    };
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        NsDataset ds;
        load(&ds, C[i].valid, C[i].cap);
        SOFT(ds.unk_rate_train == C[i].train && ds.unk_rate_valid == C[i].valid_rate,
             "%s at %d ids: unk rates %g / %g, expected %g / %g\n", C[i].valid, C[i].cap,
             ds.unk_rate_train, ds.unk_rate_valid, C[i].train, C[i].valid_rate);
        ns_dataset_free(&ds);
    }
}

#define RUN_FLAGS "train --d-model 16 --heads 2 --d-ff 32 --layers 1 --seq-len 8 " \
                  "--batch-size 4 --threads 1 --steps 2 --probes none --corpus train.txt"

static double root_attr(const char *log, const char *name)
{
    double v = NAN;
    hid_t f = H5Fopen(scratch(log), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    SOFT(ns_h5_attr_read_f64(f, name, &v) == 0, "%s has no float attribute %s\n", log, name);
    H5Fclose(f);
    return v;
}

TEST(train_shows_records_and_warns)
{
    ns_h5_quiet();
    Run high = run(RUN_FLAGS " --vocab-size 6 --valid valid.txt --out high.h5");
    assert_int_equal(high.code, 0);
    SOFT(strstr(high.err, "<unk> 20.00% of training and 25.00% of validation tokens"),
         "banner without the rates: %s\n", high.err);
    SOFT(strstr(high.err, "normscope: warning: ") && strstr(high.err, "--vocab-size"),
         "no warning naming --vocab-size: %s\n", high.err);
    SOFT(root_attr("high.h5", "unk_rate_train") == 0.2, "unk_rate_train of high.h5\n");
    SOFT(root_attr("high.h5", "unk_rate_valid") == 0.25, "unk_rate_valid of high.h5\n");

    Run none = run(RUN_FLAGS " --vocab-size 7 --valid valid_known.txt --out none.h5");
    assert_int_equal(none.code, 0);
    SOFT(strstr(none.err, "<unk> 0.00% of training and 0.00% of validation tokens"),
         "banner without the rates: %s\n", none.err);
    SOFT(!strstr(none.err, "warning"), "a warning at 0 %% unknown: %s\n", none.err);
    SOFT(root_attr("none.h5", "unk_rate_train") == 0.0, "unk_rate_train of none.h5\n");
    SOFT(root_attr("none.h5", "unk_rate_valid") == 0.0, "unk_rate_valid of none.h5\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_layer_counts_unknown_tokens),
        cmocka_unit_test(train_shows_records_and_warns),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, setup, group_teardown);
}
