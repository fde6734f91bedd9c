/* Hostile files for every reader (issue 10): from a real run log and checkpoint, truncations, a
 * fixed seeded sample of byte flips, and structural edits made with the HDF5 C API (wrong
 * dtype, rank, shape, array-valued attributes, missing datasets, mismatched lengths, NaN/Inf,
 * absurd values). Every reader command (compare, watch --once, plot, export-notebook, eval,
 * train --resume) must exit 0 or 1, saying one line when it fails, within a time bound: no
 * signal, no sanitizer report, no hang. Sample sizes are fixed so the test takes a minute or
 * two under ASan. NS_TEST_FILTER='*flip*' runs one test. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "h5util.h"
#include "harness.h"
#include "logs.h"

#define READ_TIMEOUT 20.0 /* seconds: a corrupt file is an error well within this, never a hang */
#define LOG_FLIPS 100
#define CHECKPOINT_FLIPS 30

static const char *g_log, *g_ckpt;

/* The readers of a log: each a command with %s for the file. */
static const char *const LOG_READERS[] = {
    "compare %s", "watch --once %s", "plot training %s --out figs",
    "export-notebook %s --out nb.ipynb", "plot fluctuation %s --out figs",
    "plot layers %s --out figs", "plot gradients %s --out figs", "plot boxes %s --out figs",
    "plot lipschitz %s --out figs",
};
#define N_LOG_READERS (int)(sizeof LOG_READERS / sizeof LOG_READERS[0])

static int group_setup_corrupt(void **state)
{
    (void)state;
    if (harness_setup() < 0)
        return -1;
    static char log[4200], ckpt[4200];
    snprintf(log, sizeof log, "%s", scratch("base.h5"));
    snprintf(ckpt, sizeof ckpt, "%s", scratch("base.ckpt.h5"));
    g_log = log, g_ckpt = ckpt;
    /* HDF5 1.10 itself leaks a few hundred bytes on some corrupt metadata (inside
     * libhdf5_serial, not ours): LeakSanitizer is told to ignore leaks allocated there only. */
    const char *supp = scratch("lsan-hdf5.supp");
    write_file(supp, "leak:libhdf5\n", 13);
    setenv("LSAN_OPTIONS", fmt("suppressions=%s:print_suppressions=0", supp), 1);
    return run_io((Io){0}, TINY_TRAIN " --steps 40 --eval-every 10 --probe-vectors-every 5 "
                  "--out %s", log) == 0 ? 0 : -1;
}

/* Runs one reader on a damaged file and checks how it ends. label says what was done. */
static void expect_orderly(const char *label, const char *words)
{
    Run r = run_ex(READ_TIMEOUT, 0, "%s", words);
    int sanitizer = strstr(r.err, "Sanitizer") || strstr(r.err, "runtime error:");
    SOFT(r.code == 0 || r.code == 1, "%s: `%s` exit %d after %.1f s\n%s", label, words, r.code,
         r.seconds, r.err);
    SOFT(!sanitizer, "%s: `%s` sanitizer report:\n%s", label, words, r.err);
    if (r.code == 1 && strncmp(words, "train", 5) != 0) {
        /* one line saying why (plot may warn first about each run it skips) */
        int lines = 0, said = 0;
        for (const char *p = r.err; *p; p++) {
            lines += *p == '\n';
            said += (p == r.err || p[-1] == '\n') && !strncmp(p, "normscope", 9);
        }
        int plot_warns = strncmp(words, "plot", 4) == 0 && strstr(r.err, ": warning:");
        SOFT(said == lines && (lines == 1 || plot_warns) && !strstr(last_line(r.err), "warning"),
             "%s: `%s` fails without one line:\n%s", label, words, r.err);
    }
    if (r.code == 1 && strncmp(words, "train", 5) == 0)
        SOFT(strncmp(last_line(r.err), "normscope:", 10) == 0,
             "%s: `%s` fails without a last line saying why:\n%s", label, words, r.err);
}

static void all_log_readers(const char *label, const char *path)
{
    for (int k = 0; k < N_LOG_READERS; k++)
        expect_orderly(label, fmt(LOG_READERS[k], path));
}

/* train --resume from a (possibly damaged) checkpoint onto a (possibly damaged) log. */
static void resume_onto(const char *label, const char *ckpt, const char *log)
{
    expect_orderly(label, fmt("train " TINY_MODEL " --threads 1 --steps 42 --resume %s --out %s "
                              "--checkpoint %s", ckpt, log, scratch("resumed.ckpt.h5")));
}

/* ------------------------------------------------------------ truncations */

static void truncated_copy(const char *from, const char *to, long size)
{
    size_t len = 0;
    char *data = slurp(from, &len);
    write_file(to, data, (size_t)size < len ? (size_t)size : len);
    free(data);
}

TEST(test_truncations)
{
    long n = file_size(g_log), sizes[] = {0, 1, 512, 2048, n / 3, n / 2, n - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const char *cut = scratch("cut.h5");
        truncated_copy(g_log, cut, sizes[i]);
        all_log_readers(fmt("log cut to %ld bytes", sizes[i]), cut);
        /* the readers' runs used up scratch()'s rotating buffers: ask for the path again, or
         * `cut` may name the child's own stderr file by now */
        if (i % 3 == 0)
            resume_onto(fmt("resume onto a log cut to %ld bytes", sizes[i]), g_ckpt,
                        scratch("cut.h5"));
    }
    long m = file_size(g_ckpt), csizes[] = {0, 2048, m / 2, m - 1};
    for (size_t i = 0; i < sizeof csizes / sizeof csizes[0]; i++) {
        const char *cut = scratch("cut.ckpt.h5");
        truncated_copy(g_ckpt, cut, csizes[i]);
        expect_orderly(fmt("checkpoint cut to %ld", csizes[i]), fmt("eval --checkpoint %s", cut));
        copy_file(g_log, scratch("onto.h5"));
        resume_onto(fmt("resume from a checkpoint cut to %ld", csizes[i]), cut, scratch("onto.h5"));
    }
}

/* ------------------------------------------------------------ byte flips */

static void flipped_copy(const char *from, const char *to, unsigned *seed, long *offset)
{
    size_t len = 0;
    unsigned char *data = (unsigned char *)slurp(from, &len);
    *offset = (long)(rand_r(seed) % len);
    data[*offset] ^= (unsigned char)(1u << (rand_r(seed) % 8));
    write_file(to, data, len);
    free(data);
}

TEST(test_byte_flips)
{
    unsigned seed = 20261201;
    for (int i = 0; i < LOG_FLIPS; i++) {
        long off;
        const char *path = scratch("flip.h5");
        flipped_copy(g_log, path, &seed, &off);
        expect_orderly(fmt("log byte %ld flipped", off), fmt(LOG_READERS[i % N_LOG_READERS], path));
    }
    for (int i = 0; i < CHECKPOINT_FLIPS; i++) {
        long off;
        const char *path = scratch("flip.ckpt.h5");
        flipped_copy(g_ckpt, path, &seed, &off);
        const char *label = fmt("checkpoint byte %ld flipped", off);
        if (i % 2 == 0) {
            expect_orderly(label, fmt("eval --checkpoint %s", path));
        } else {
            copy_file(g_log, scratch("onto.h5"));
            resume_onto(label, path, scratch("onto.h5"));
        }
    }
}

/* ------------------------------------------------------------ structural edits */

static hid_t open_copy(const char *from, const char *to)
{
    copy_file(from, to);
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

/* Replaces attribute name of obj by an int64 array of n elements (n 0: a scalar of value). */
static void set_attr(hid_t obj, const char *name, hid_t type, int n, double value)
{
    if (H5Aexists(obj, name) > 0)
        H5Adelete(obj, name);
    hsize_t dims[1] = {(hsize_t)n};
    hid_t space = n ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_SCALAR);
    double *v = calloc(n ? (size_t)n : 1, sizeof(double));
    for (int i = 0; i < (n ? n : 1); i++)
        v[i] = n ? i : value;
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, v);
    H5Aclose(a), H5Sclose(space), free(v);
}

/* Replaces dataset path by one of the given type and shape, filled with value. */
static void set_dataset(hid_t f, const char *path, hid_t type, int rank, hsize_t d0, hsize_t d1,
                        double value)
{
    if (H5Lexists(f, path, H5P_DEFAULT) > 0)
        H5Ldelete(f, path, H5P_DEFAULT);
    hsize_t dims[2] = {d0, d1};
    hid_t space = H5Screate_simple(rank, dims, NULL);
    size_t n = (size_t)d0 * (rank == 2 ? d1 : 1);
    double *v = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        v[i] = value;
    hid_t d = H5Dcreate2(f, path, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (H5Tget_class(type) != H5T_STRING)
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d), H5Sclose(space), free(v);
}

/* One edit of the log: an index into the list below. */
static void edit_log(hid_t f, int which)
{
    hid_t s16 = H5Tcopy(H5T_C_S1);
    H5Tset_size(s16, 16);
    switch (which) {
    case 0: set_attr(f, "steps", H5T_NATIVE_INT64, 100000, 0); break;
    case 1: set_attr(f, "d_model", H5T_NATIVE_INT64, 7000, 0); break;
    case 2: set_attr(f, "n_layers", H5T_NATIVE_INT64, 0, 2e9); break;
    case 3: set_attr(f, "n_layers", H5T_NATIVE_INT64, 0, -1); break;
    case 4: set_attr(f, "norm", H5T_NATIVE_DOUBLE, 3, 0); break;
    case 5: set_attr(f, "format", H5T_NATIVE_INT64, 10, 0); break;
    case 6: set_dataset(f, "steps/loss", s16, 1, 40, 0, 0); break;
    case 7: set_dataset(f, "steps/loss", H5T_NATIVE_DOUBLE, 2, 40, 3, 1.0); break;
    case 8: H5Ldelete(f, "steps/loss", H5P_DEFAULT); break;
    case 9: set_dataset(f, "steps/loss", H5T_NATIVE_DOUBLE, 1, 7, 0, 1.0); break;
    case 10: set_dataset(f, "steps/loss", H5T_NATIVE_DOUBLE, 1, 40, 0, INFINITY); break;
    case 11: set_dataset(f, "eval/ppl", H5T_NATIVE_DOUBLE, 1, 5, 0, NAN); break;
    case 12: set_dataset(f, "steps/step", H5T_NATIVE_INT64, 1, 40, 0, 4611686018427387904.0); break;
    case 13: set_dataset(f, "steps/step", H5T_NATIVE_INT64, 1, 40, 0, -5); break;
    case 14: set_dataset(f, "norms/final_norm/vectors/batch_var", H5T_NATIVE_FLOAT, 2, 9, 7, 1);
        break;
    case 15: set_dataset(f, "norms/final_norm/dist_var", H5T_NATIVE_DOUBLE, 1, 3, 0, -INFINITY);
        break;
    case 16: H5Ldelete(f, "norms/final_norm", H5P_DEFAULT); break;
    case 17: set_dataset(f, "steps/step", H5T_NATIVE_INT64, 1, 0, 0, 0); break;
    }
    H5Tclose(s16);
}
#define N_LOG_EDITS 18

TEST(test_log_edits)
{
    for (int e = 0; e < N_LOG_EDITS; e++) {
        const char *path = scratch("edit.h5");
        hid_t f = open_copy(g_log, path);
        edit_log(f, e);
        H5Fclose(f);
        all_log_readers(fmt("log edit %d", e), path);
        if (e < 4 || e == 12) /* the path again: the readers' runs reused its buffer */
            resume_onto(fmt("resume onto log edit %d", e), g_ckpt, scratch("edit.h5"));
    }
}

/* One edit of the checkpoint. */
static void edit_checkpoint(hid_t f, int which)
{
    switch (which) {
    case 0: set_attr(f, "steps", H5T_NATIVE_INT64, 7000, 0); break;
    case 1: set_attr(f, "n_layers", H5T_NATIVE_INT64, 0, -1); break;
    case 2: set_attr(f, "vocab_size", H5T_NATIVE_INT64, 0, 1e9); break;
    case 3: set_attr(f, "n_heads", H5T_NATIVE_INT64, 0, 3); break;
    case 4: ns_h5_attr_write_str(f, "tokenizer", "bpe"); break;
    case 5: set_attr(f, "d_model", H5T_NATIVE_DOUBLE, 0, NAN); break;
    case 6: H5Ldelete(f, "params/embed", H5P_DEFAULT); break;
    case 7: set_dataset(f, "params/embed", H5T_NATIVE_FLOAT, 2, 32, 500, 0.5); break;
    case 8: set_dataset(f, "params/embed", H5T_NATIVE_FLOAT, 2, 500, 32, NAN); break;
    case 9: set_dataset(f, "step", H5T_NATIVE_INT64, 1, 7000, 0, 3); break;
    case 10: set_dataset(f, "data/batcher", H5T_NATIVE_INT64, 1, 1000000, 0, -1); break;
    case 11: H5Ldelete(f, "vocab/blob", H5P_DEFAULT); break;
    case 12: set_dataset(f, "optim/t", H5T_NATIVE_INT64, 1, 1, 0, -4e18); break;
    case 13: set_dataset(f, "probes/batch-stats/own/0", H5T_NATIVE_FLOAT, 2, 3, 5, 1); break;
    }
}
#define N_CHECKPOINT_EDITS 14

TEST(test_checkpoint_edits)
{
    for (int e = 0; e < N_CHECKPOINT_EDITS; e++) {
        const char *path = scratch("edit.ckpt.h5");
        hid_t f = open_copy(g_ckpt, path);
        edit_checkpoint(f, e);
        H5Fclose(f);
        expect_orderly(fmt("checkpoint edit %d", e), fmt("eval --checkpoint %s", path));
        copy_file(g_log, scratch("onto.h5"));
        resume_onto(fmt("resume from checkpoint edit %d", e), path, scratch("onto.h5"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_byte_flips),
        cmocka_unit_test(test_log_edits),
        cmocka_unit_test(test_checkpoint_edits),
    };
    test_filter_from_env();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the edits' own HDF5 errors are expected */
    return cmocka_run_group_tests(tests, group_setup_corrupt, group_teardown);
}
