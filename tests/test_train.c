/* Training end to end with the `normscope` program (NS_BINARY), run as a child process in a
 * scratch directory with a timeout and judged by its exit code, output and files:
 *   1. divergence exits 3 naming the step, and leaves a run log;
 *   2. SIGINT exits 130 naming the step, and --resume from its checkpoint is exact (the same
 *      final validation loss as a run that never stopped);
 *   3. train -> eval round trip on the checkpoint (sentences and stream batching); eval on
 *      another corpus, also once the training text has moved;
 *   4. learning on a real corpus (below the unigram entropy, LN and PN); the char tokenizer and
 *      stream batching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"
#include "harness.h"

/* ------------------------------------------------------------------ fixture */

static Run base; /* `train TINY --steps 40 --out base.h5`, run once in setup */

static int setup(void **state)
{
    (void)state;
    ns_h5_quiet();
    if (harness_setup() != 0)
        return -1;
    char text[16384] = "";
    for (int i = 0; i < 25; i++) /* 25 lines of 3 words: 100 tokens with EOS */
        snprintf(text + strlen(text), sizeof text - strlen(text), "w%d x y\n", i);
    write_file(scratch("short.txt"), text, strlen(text));
    text[0] = '\0';
    for (int i = 0; i < 400; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "w%d v%d x%d y\n", i % 37,
                 i % 11, i % 5);
    write_file(scratch("tc.txt"), text, strlen(text));
    base = run("train " TINY " --steps 40 --out base.h5");
    return 0;
}

/* The number after the first occurrence of key in text; NAN if absent. */
static double number_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

/* ------------------------------------------------------------------ 1, 2. divergence, SIGINT */

static void test_divergence(void **state)
{
    (void)state;
    Run r = run("train " TINY " --steps 200 --lr 100 --clip 0 --warmup 1 --norm none --out div.h5");
    const char *msg = last_line(r.err), *want = "normscope: training diverged at step ";
    assert_int_equal(r.code, 3);
    if (strncmp(msg, want, strlen(want)) != 0)
        fail_msg("last stderr line: %s", msg);
    long step = strtol(msg + strlen(want), NULL, 10);
    assert_true(step >= 1 && step <= 200);
    hid_t f = H5Fopen(scratch("div.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    char format[64] = "";
    assert_int_equal(ns_h5_attr_read_str(f, "format", format, sizeof format), 0);
    assert_string_equal(format, "normscope-runlog-1");
    assert_true(ns_h5_exists(f, "steps"));
    H5Fclose(f);
    print_message("diverged at step %ld (%.2f s)\n", step, r.seconds);
}

static void test_interrupt_and_resume(void **state)
{
    (void)state;
    Run r = run_ex(120.0, 1, "train " TINY " --steps 1000000 --out sig.h5");
    const char *msg = last_line(r.err), *want = "normscope: stopped by signal after step ";
    assert_int_equal(r.code, 130);
    if (strncmp(msg, want, strlen(want)) != 0)
        fail_msg("last stderr line: %s", msg);
    long step = strtol(msg + strlen(want), NULL, 10);
    assert_true(step >= 10 && file_exists(scratch("sig.ckpt.h5")));
    r = run("train --resume sig.ckpt.h5 --steps %ld --out sig.h5", step + 15);
    if (r.code != 0 || !strstr(r.out, fmt("done: %ld steps", step + 15)) ||
        !strstr(r.err, "(resumed)"))
        fail_msg("resume: exit %d, stdout %s, stderr %s", r.code, r.out, r.err);
    /* Resuming is exact: the same final validation loss as a run that never stopped. */
    Run straight = run("train " TINY " --steps %ld --out straight.h5", step + 15);
    double a = number_after(r.out, "final validation loss ");
    double b = number_after(straight.out, "final validation loss ");
    print_message("stopped at step %ld; resumed to %ld: validation loss %.4f, unbroken run %.4f\n",
                  step, step + 15, a, b);
    assert_int_equal(straight.code, 0);
    assert_true(a == b);
}

/* ------------------------------------------------------------------ 3. train + eval */

static void test_train_eval_roundtrip(void **state)
{
    (void)state;
    if (base.code != 0)
        fail_msg("train: exit %d, stderr %s", base.code, base.err);
    double final = number_after(base.out, "final validation loss ");
    assert_true(isfinite(final) && strstr(base.out, "done: 40 steps"));
    assert_true(file_exists(scratch("base.h5")) && file_exists(scratch("base.ckpt.h5")));
    Run r = run("eval --checkpoint base.ckpt.h5");
    if (r.code != 0)
        fail_msg("eval: exit %d, stderr %s", r.code, r.err);
    double loss = number_after(r.out, "\nloss "), ppl = number_after(r.out, "\nperplexity ");
    print_message("train final validation loss %.4f, eval loss %.6f (%.2f s)\n", final, loss,
                  r.seconds);
    assert_true(fabs(loss - final) <= 1e-4);
    assert_true(fabs(ppl - exp(loss)) <= 1e-3 * ppl);

    /* Stream batching: eval with the run's batching gives the run's validation loss too. */
    r = run("train " TINY " --steps 20 --batching stream --out st.h5");
    final = number_after(r.out, "final validation loss ");
    assert_int_equal(r.code, 0);
    r = run("eval --checkpoint st.ckpt.h5 --batching stream");
    assert_int_equal(r.code, 0);
    assert_true(fabs(number_after(r.out, "\nloss ") - final) <= 1e-4);

    r = run("eval --checkpoint base.ckpt.h5 --corpus %s/ptb.valid.txt", test_corpora());
    double unk = number_after(r.out, "unk rate ");
    loss = number_after(r.out, "\nloss ");
    if (r.code != 0 || !(unk >= 0 && unk <= 1) || !isfinite(loss) || !strstr(r.out, "perplexity"))
        fail_msg("eval on ptb.valid.txt: exit %d, stdout %s, stderr %s", r.code, r.out, r.err);
    print_message("ptb.valid.txt: unk rate %.4f, loss %.4f\n", unk, loss);
}

/* eval on another text needs the checkpoint (which holds the vocabulary), not the training
 * text: it must still work once that file has moved (or from another working directory). */
static void test_eval_without_training_text(void **state)
{
    (void)state;
    Run r = run("train " TINY " --steps 10 --corpus tc.txt --batching sentences --out tc.h5");
    assert_int_equal(r.code, 0);
    assert_int_equal(rename(scratch("tc.txt"), scratch("tc-moved.txt")), 0);
    r = run("eval --checkpoint tc.ckpt.h5 --corpus short.txt");
    if (r.code != 0 || !isfinite(number_after(r.out, "\nloss ")))
        fail_msg("eval --corpus short.txt after the training text moved: exit %d, stderr %s",
                 r.code, r.err);
}

/* ------------------------------------------------------------------ 4. real training */

/* Trains; checks exit 0 and that every reported loss is finite. */
static Run train_ok(const char *what, const char *args)
{
    Run r = run_ex(600.0, 0, "train %s", args);
    if (r.code != 0)
        fail_msg("%s: exit %d, stderr %s", what, r.code, r.err);
    for (const char *p = strstr(r.err, "loss "); p; p = strstr(p + 1, "loss "))
        if (!isfinite(strtod(p + 5, NULL)))
            fail_msg("%s: non-finite loss at '%.40s'", what, p);
    assert_true(isfinite(number_after(r.out, "final validation loss ")));
    return r;
}

static const char *shakespeare(void)
{
    return fmt("%s/tinyshakespeare.txt", test_corpora());
}

static void test_real_corpus(void **state)
{
    (void)state;
    static const char *NORMS[] = {"layer", "power --pn-warmup 50"};
    for (int i = 0; i < 2; i++) {
        Run r = train_ok(NORMS[i], fmt(
            "--corpus %s --tokenizer word --norm %s --d-model 64 --heads 4 --d-ff 128 --layers 2 "
            "--seq-len 32 --batch-size 24 --vocab-size 2000 --steps 300 --lr 6e-3 --warmup 30 "
            "--batching stream --eval-every 150 --eval-batches 30 --log-every 25 --probes none "
            "--dropout 0 --threads 1 --out real%d.h5", shakespeare(), NORMS[i], i));
        double H = number_after(r.err, "unigram entropy ");
        double train_loss = number_after(r.err, "step 300/300 loss "); /* steps 276-300 */
        double valid = number_after(r.out, "final validation loss ");
        print_message("%s: unigram entropy %.3f, final train loss %.3f, validation %.3f "
                      "(%.1f s)\n", NORMS[i], H, train_loss, valid, r.seconds);
        assert_true(H > 3.0);
        if (!(train_loss <= H - 0.5 && valid <= H - 0.5))
            fail_msg("%s did not learn: train %.3f, validation %.3f, unigram entropy %.3f",
                     NORMS[i], train_loss, valid, H);
    }
}

static void test_char_and_stream(void **state)
{
    (void)state;
    static const char *ARGS[] = {
        TINY " --steps 30 --tokenizer char --out c1.h5",
        TINY " --steps 30 --tokenizer char --batching stream --out c2.h5",
        TINY " --steps 30 --batching stream --out c3.h5",
    };
    for (int i = 0; i < 3; i++) {
        Run r = train_ok(ARGS[i], ARGS[i]);
        int V = (int)number_after(r.err, " V=");
        if (strstr(ARGS[i], "char") && !(V > 3 && V < 200))
            fail_msg("char tokenizer vocabulary V=%d", V);
    }
    if (!shakespeare())
        return;
    Run r = train_ok("char tinyshakespeare", fmt("%s --corpus %s --tokenizer char --vocab-size "
                     "10000 --steps 20 --eval-batches 5 --out c4.h5", TINY, shakespeare()));
    int V = (int)number_after(r.err, " V=");
    print_message("tinyshakespeare char vocabulary V=%d\n", V);
    assert_true(V > 40 && V < 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_interrupt_and_resume),
        cmocka_unit_test(test_train_eval_roundtrip),
        cmocka_unit_test(test_eval_without_training_text),
        cmocka_unit_test(test_real_corpus),
        cmocka_unit_test(test_char_and_stream),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, setup, group_teardown);
}
