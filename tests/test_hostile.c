/* A run log, a flag or a grid value from someone else is data (issue 22), in every artifact:
 *  - every string attribute of a log, a log's file name, every string flag of the analysis
 *    commands and a sweep's grid values, each set to text that tries a way out (a backquote, a
 *    newline and gnuplot's `!`, a quote and system(...), a trailing backslash, terminal escape
 *    sequences, Markdown and HTML), through every command that writes a .gp, .md, .ipynb or
 *    terminal output: no command runs (a canary file never appears, also when each generated
 *    .gp is run again by gnuplot), every .gp still runs, Markdown tables keep their columns,
 *    the notebook is JSON whose code cells are Python, and no ESC byte reaches the terminal;
 *  - logs that declare 50 million rows in a few kB, and step series that are negative,
 *    decreasing or at the int64 extremes: every reader exits 0 or 1 within seconds.
 * The payloads and edits are a fixed list, so the test takes well under a minute. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>
#include <jansson.h>

#include "h5util.h"
#include "harness.h"
#include "logs.h"
#include "sanitize.h"

#define READ_TIMEOUT 20.0 /* seconds; a reader of these logs needs well under one */

static const char *g_log;

/* Each payload tries another way from a string to a command; the files they would create all
 * start with "PW" (canary_found). Attributes are read into short buffers (the scheme name has
 * 31 bytes, the position 7), so each fits the shortest that it is given to. */
static const char *const PAYLOADS[] = {
    "x`touch PWa`",                        /* command substitution inside "..." */
    "`id>PW`",                             /* the same, 7 bytes: the position */
    "a\n!touch PWb\n",                     /* a newline ends a comment; `!` runs a shell */
    "b\"; system(\"touch PWc\"); \"",      /* out of the quotes */
    "c\\\nsystem('touch PWd')",            /* a line continued by a backslash */
    "\x1b]0;PWe\x07\x1b[31m|<b>x</b>|[l](u)`\r\x9b",  /* terminal, Markdown and HTML */
};
#define N_PAYLOADS (int)(sizeof PAYLOADS / sizeof PAYLOADS[0])

/* The log's string attributes that readers show. */
static const char *const STRING_ATTRS[] = {"norm", "norm_position", "normscope_version",
                                           "corpus", "valid", "tokenizer", "batching"};
#define N_STRING_ATTRS (int)(sizeof STRING_ATTRS / sizeof STRING_ATTRS[0])

/* The readers of one log, writing into the scratch directory's "out" folder. */
static const char *const READERS[][8] = {
    {"plot", "training", "LOG", "--out", "out", NULL},
    {"plot", "layers", "LOG", "--out", "out", NULL},
    {"plot", "fluctuation", "LOG", "--out", "out", NULL},
    {"plot", "boxes", "LOG", "--out", "out", NULL},
    {"plot", "gradients", "LOG", "--out", "out", NULL},
    {"plot", "lipschitz", "LOG", "--out", "out", NULL},
    {"plot", "hessian", "LOG", "--out", "out", NULL},
    {"compare", "LOG", "--out", "out/compare", NULL},
    {"export-notebook", "LOG", "--out", "out/nb.ipynb", NULL},
    {"watch", "--once", "LOG", NULL},
};
#define N_READERS (int)(sizeof READERS / sizeof READERS[0])

static int group_setup_hostile(void **state)
{
    (void)state;
    if (harness_setup() < 0)
        return -1;
    static char log[4200];
    snprintf(log, sizeof log, "%s", scratch("base.h5"));
    g_log = log;
    return run_io((Io){0}, TINY_TRAIN " --steps 30 --eval-every 10 --probe-vectors-every 5 "
                  "--lipschitz-every 10 --hessian-iters 3 --out %s", log) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ checks */

/* A copy of a path or text from the rotating buffers of fmt and scratch, which the runs below
 * reuse; freed at teardown. */
static const char *stable(const char *s) { return keep(strdup(s)); }

static int canaries;

static int find_canary(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag;
    if (strncmp(path + ftw->base, "PW", 2) == 0) /* counted once: the next check starts clean */
        canaries += remove(path) == 0 || 1;
    return 0;
}

/* Files whose name starts with "PW" anywhere under the scratch directory: a payload ran.
 * Removes them. */
static int canary_found(void)
{
    canaries = 0;
    nftw(scratch_dir(), find_canary, 16, FTW_PHYS);
    return canaries;
}

/* Runs a program (not normscope) in dir; its exit code, or -signal. */
static int run_program(const char *dir, char *const *argv)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 || chdir(dir) != 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* Columns of a Markdown table row: its '|' that are not escaped by a backslash. */
static int md_columns(const char *line, size_t len)
{
    int bars = 0;
    for (size_t i = 0; i < len; i++)
        bars += line[i] == '|' && (i == 0 || line[i - 1] != '\\');
    return bars;
}

/* Every row of every table in text has its header's column count. */
static void check_md_tables(const char *what, const char *text)
{
    int header = -1;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len && line[0] == '|') {
            int cols = md_columns(line, len);
            if (header < 0)
                header = cols;
            SOFT(cols == header, "%s: a table row has %d bars, its header %d: %.*s\n", what,
                 cols, header, (int)len, line);
        } else {
            header = -1;
        }
        line = end ? end + 1 : line + len;
    }
}

/* The notebook is JSON, its Markdown tables keep their columns and its code cells are Python. */
static void check_notebook(const char *what, const char *path)
{
    json_error_t je;
    json_t *nb = json_load_file(path, 0, &je);
    SOFT(nb != NULL, "%s: %s is not JSON: %s\n", what, path, je.text);
    if (!nb)
        return;
    json_t *cells = json_object_get(nb, "cells"), *cell;
    size_t i;
    json_array_foreach(cells, i, cell) {
        const char *type = json_string_value(json_object_get(cell, "cell_type"));
        json_t *src = json_object_get(cell, "source");
        char *text = json_is_string(src) ? strdup(json_string_value(src)) : strdup("");
        if (json_is_array(src)) {
            size_t k;
            json_t *part;
            json_array_foreach(src, k, part) {
                char *joined = fmt("%s%s", text, json_string_value(part));
                free(text);
                text = strdup(joined);
            }
        }
        if (type && strcmp(type, "markdown") == 0) {
            check_md_tables(fmt("%s: notebook cell %zu", what, i), text);
        } else if (type && strcmp(type, "code") == 0 && on_path("python3")) {
            const char *py = scratch("cell.py");
            write_file(py, text, strlen(text));
            char *argv[] = {"python3", "-c", "import ast,sys; ast.parse(open(sys.argv[1]).read())",
                            (char *)py, NULL};
            SOFT(run_program(scratch_dir(), argv) == 0, "%s: notebook code cell %zu is not "
                 "Python:\n%s\n", what, i, text);
        }
        free(text);
    }
    json_decref(nb);
}

/* Every artifact under dir: .gp files run again with gnuplot (exit 0, nothing run), .md tables
 * keep their columns, .ipynb files are notebooks. Removes them afterwards. */
static void check_artifacts(const char *what, const char *dir)
{
    what = stable(what), dir = stable(dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[4600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (ends_with(e->d_name, ".gp") && on_path("gnuplot")) {
            char *argv[] = {"gnuplot", path, NULL};
            int code = run_program(scratch_dir(), argv);
            SOFT(code == 0, "%s: `gnuplot %s` exits %d\n", what, e->d_name, code);
        } else if (ends_with(e->d_name, ".md")) {
            char *text = slurp(path, NULL);
            check_md_tables(fmt("%s: %s", what, e->d_name), text);
            free(text);
        } else if (ends_with(e->d_name, ".ipynb")) {
            check_notebook(what, path);
        }
    }
    closedir(d);
    SOFT(!canary_found(), "%s: a payload ran (a file PW* exists)\n", what);
}

/* Runs one command: exit 0 or 1, no signal, no sanitizer report, no ESC on the terminal, no
 * command run. Returns its exit code. */
static int expect_safe(const char *what, const char *const *argv, double timeout)
{
    what = stable(what);
    Run r = run_argv(timeout, argv);
    SOFT(r.code == 0 || r.code == 1 || r.code == 2, "%s: `%s %s` exit %d after %.1f s\n%s",
         what, argv[0], argv[1], r.code, r.seconds, r.err);
    SOFT(!strstr(r.err, "Sanitizer") && !strstr(r.err, "runtime error:"),
         "%s: sanitizer report:\n%s", what, r.err);
    SOFT(!strchr(r.out, 0x1b) && !strchr(r.err, 0x1b) && !strchr(r.out, 0x07) &&
             !strchr(r.err, 0x07), "%s: `%s %s` wrote a control character to the terminal",
         what, argv[0], argv[1]);
    if (r.code != 0) /* one line saying why, also when it quotes a hostile string */
        SOFT(strncmp(last_line(r.err), "normscope", 9) == 0, "%s: `%s %s` fails without a "
             "line saying why:\n%s", what, argv[0], argv[1], r.err);
    SOFT(!canary_found(), "%s: `%s %s` ran a payload (a file PW* exists)\n", what, argv[0],
         argv[1]);
    return r.code;
}

/* The command words of reader k on log, "out" replaced by out. */
static void reader_words(int k, const char *log, const char *out, const char **argv)
{
    int n = 0;
    for (const char *const *w = READERS[k]; *w; w++)
        argv[n++] = !strcmp(*w, "LOG") ? log : !strcmp(*w, "out") ? out
                    : !strncmp(*w, "out/", 4) ? stable(fmt("%s/%s", out, *w + 4)) : *w;
    argv[n] = NULL;
}

/* The readers of READERS whose bit is set in `which` on log, writing into out: each safe
 * (expect_safe) and done within `seconds`; with must_draw, each exits 0 (the log is intact
 * apart from its strings). */
static void readers(const char *what, const char *log, const char *out, unsigned which,
                    int must_draw, double seconds)
{
    what = stable(what), log = stable(log), out = stable(out);
    mkdir(out, 0755);
    for (int k = 0; k < N_READERS; k++) {
        if (!(which & (1u << k)))
            continue;
        const char *argv[10];
        reader_words(k, log, out, argv);
        double t0 = now();
        int code = expect_safe(fmt("%s: %s %s", what, READERS[k][0], READERS[k][1]), argv,
                               READ_TIMEOUT);
        double took = now() - t0;
        SOFT(code == 0 || (!must_draw && code == 1), "%s: `%s %s` exits %d", what,
             READERS[k][0], READERS[k][1], code);
        SOFT(took < seconds, "%s: `%s %s` took %.1f s", what, READERS[k][0], READERS[k][1],
             took);
    }
}

/* Reader bits: the plots are 0-6, then compare, export-notebook, watch (the text readers). */
#define ALL_READERS ((1u << N_READERS) - 1)
#define TEXT_READERS (7u << 7)
#define PLOT_READER(kind) (1u << (kind))

/* ------------------------------------------------------------------ the module itself */

TEST(test_sanitize)
{
    char b[64];
    /* a lone 0x9b is not UTF-8 (U+FFFD); C2 9B is the C1 control CSI (dropped) */
    const char *in = "a`b\"c\\d\ne\x1b[31mf\x1b]0;title\x07g\x9bh\xc2\x9bi\xff|<j>[k]&";
    SOFT(!strcmp(ns_gp_quote(b, sizeof b, in),
                 "\"a\\140b\\\"c\\\\d\\nefg\xef\xbf\xbdhi\xef\xbf\xbd|<j>[k]&\""),
         "gnuplot: %s\n", b);
    SOFT(!strcmp(ns_md_text(b, sizeof b, in),
                 "a\\`b\"c\\\\d efg\xef\xbf\xbdhi\xef\xbf\xbd\\|&lt;j&gt;\\[k\\]&amp;"),
         "Markdown: %s\n", b);
    SOFT(!strcmp(ns_text_printable(b, sizeof b, in),
                 "a`b\"c\\d efg\xef\xbf\xbdhi\xef\xbf\xbd|<j>[k]&"), "text: %s\n", b);
    SOFT(!strcmp(ns_py_literal(b, sizeof b, "p\"q\\r\ts\xe2\x80\xaet"), "\"p\\\"q\\\\r\\x09st\""),
         "Python: %s\n", b);
    /* a short buffer cuts between whole escapes and keeps the closing quote */
    for (size_t len = 1; len < 12; len++) {
        ns_gp_quote(b, len, "``````");
        size_t n = strlen(b);
        SOFT(n < len && (n < 2 || (b[0] == '"' && b[n - 1] == '"' && (n - 2) % 4 == 0)),
             "gnuplot literal in %zu bytes: %s\n", len, b);
    }
    SOFT(ns_text_has_control("ok \xc3\xa9") == 0 && ns_text_has_control("a\nb") &&
             ns_text_has_control("\x1b[2J") && ns_text_has_control("\xff"),
         "ns_text_has_control");
}

/* ------------------------------------------------------------------ strings in a log */

static void set_string_attr(const char *path, const char *name, const char *value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(ns_h5_attr_write_str(f, name, value), 0);
    H5Fclose(f);
}

TEST(test_log_strings)
{
    /* variant v gives attribute k payload (k + v) mod N: every pair, in N_PAYLOADS logs */
    for (int v = 0; v < N_PAYLOADS; v++) {
        const char *log = stable(scratch(fmt("strings-%d.h5", v)));
        copy_file(g_log, log);
        for (int k = 0; k < N_STRING_ATTRS; k++)
            set_string_attr(log, STRING_ATTRS[k], PAYLOADS[(k + v) % N_PAYLOADS]);
        /* every text reader; the training plot and, in turn, one other kind (gnuplot is the
         * slow part, and every kind quotes through the same ns_gp_quote) */
        const char *out = stable(scratch(fmt("out-%d", v)));
        readers(fmt("log strings %d", v), log, out,
                TEXT_READERS | PLOT_READER(0) | PLOT_READER(1 + v % 6), 1, READ_TIMEOUT);
        check_artifacts(fmt("log strings %d", v), out);
    }
}

/* ------------------------------------------------------------------ strings in flags */

TEST(test_flag_strings)
{
    /* a log and an output folder whose names try their way out */
    const char *log = stable(scratch("log`touch PWf`\"x|<b>.h5"));
    const char *dir = stable(scratch("dir`touch PWg`\"\\\nsystem(\"touch PWh\")"));
    copy_file(g_log, log);
    mkdir(dir, 0755);
    readers("hostile log and folder names", log, dir,
            TEXT_READERS | PLOT_READER(0) | PLOT_READER(1), 1, READ_TIMEOUT);

    const char *prefix = "p`touch PWi`\"; system(\"touch PWj\")";
    const char *font = "Sans`touch PWk`\",10";
    const char *plot[] = {"plot", "training", log, "--out", dir, "--prefix", prefix,
                          "--font", font, NULL};
    SOFT(expect_safe("hostile --prefix and --font", plot, READ_TIMEOUT) == 0,
         "plot with a hostile prefix and font does not draw");
    const char *compare[] = {"compare", log, "--out", stable(fmt("%s/c`touch PWl`", dir)), NULL};
    SOFT(expect_safe("hostile compare --out", compare, READ_TIMEOUT) == 0,
         "compare with a hostile --out does not write");
    check_artifacts("hostile flags", dir);

    /* a control character in a file-name or font flag is refused with one line; a site that
     * does not exist is named back without its escapes */
    const char *refused[][12] = {
        {"plot", "training", log, "--out", dir, "--prefix", "p\nq\x1b[2J", NULL},
        {"plot", "training", log, "--out", dir, "--font", "Sans\x1b]0;PWm\x07,10", NULL},
        {"plot", "fluctuation", log, "--out", dir, "--site", "x\x1b]0;PWn\x07`touch PWo`", NULL},
        {"compare", log, "--site", "\x1b[31m`touch PWp`\n", NULL},
    };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        int code = expect_safe(fmt("refused flag %zu", k), refused[k], READ_TIMEOUT);
        SOFT(code == (k < 2 ? 2 : 1), "refused flag %zu: exit %d", k, code); /* 2: a bad flag */
    }
}

/* ------------------------------------------------------------------ grid values */

/* A corpus file (its lines alternate two sentences) whose last 5 %, the validation text, fills
 * a tiny batch. */
static void write_corpus(const char *path)
{
    static char text[2000 * 32];
    size_t len = 0;
    for (int i = 0; i < 2000; i++)
        len += (size_t)sprintf(text + len, "%s\n", i % 2 ? "the cat sat on the mat" :
                                                             "a dog ran in the park");
    write_file(path, text, len);
}


TEST(test_sweep_grid_values)
{
    /* two corpora whose file names are the grid's values, and so the onset map's x tics */
    const char *names[2] = {"a`touch PWq`\".txt", "b|<i>[x]&amp;\\.txt"};
    for (int i = 0; i < 2; i++)
        write_corpus(scratch(names[i]));
    const char *argv[] = {"sweep", "--grid", stable(fmt("corpus=%s,%s", names[0], names[1])),
                          "--out", "sw", "--norm", "batch", "--d-model", "32", "--heads", "2",
                          "--d-ff", "64", "--layers", "2", "--seq-len", "16", "--batch-size",
                          "8", "--steps", "20", "--eval-every", "10", "--log-every", "1000",
                          "--threads", "1", NULL};
    int code = expect_safe("hostile grid values", argv, 120.0);
    SOFT(code == 0, "sweep over hostile corpus names exits %d", code);
    SOFT(file_exists(scratch("sw/onset.gp")), "no onset.gp");
    check_artifacts("hostile grid values", scratch("sw"));
    char *csv = slurp(scratch("sw/sweep.csv"), NULL);
    SOFT(strstr(csv, "\"a`touch PWq`\"\".txt\""), "sweep.csv does not quote the value:\n%s", csv);
    free(csv);
}

TEST(test_study_strings)
{
    /* the corpus name reaches report.md's configuration, the notebook's table, the figures */
    const char *corpus = "s`touch PWs`|<i>x.txt";
    write_corpus(scratch(corpus));
    const char *argv[] = {"study", "--schemes", "layer", "--corpus", corpus, "--out", "st",
                          "--d-model", "32", "--heads", "2", "--d-ff", "64", "--layers", "2",
                          "--seq-len", "16", "--batch-size", "8", "--steps", "20",
                          "--eval-every", "10", "--log-every", "1000", "--threads", "1", NULL};
    int code = expect_safe("hostile corpus name in a study", argv, 120.0);
    SOFT(code == 0, "study with a hostile corpus name exits %d", code);
    check_artifacts("study", scratch("st"));
    check_artifacts("study figures", scratch("st/figures"));
    char *report = slurp(scratch("st/report.md"), NULL);
    SOFT(strstr(report, "s\\`touch PWs\\`\\|&lt;i&gt;x.txt") && !strstr(report, "<i>"),
         "report.md does not show the corpus name as text:\n%.600s", report);
    free(report);
}

/* ------------------------------------------------------------------ bounded readers */

/* Replaces path by a chunked, compressed 1-D (cols 0) or 2-D dataset of `rows` rows that holds
 * only its fill value: a few kB on disk whatever the rows. */
static void set_huge(hid_t f, const char *path, hid_t type, hsize_t rows, hsize_t cols,
                     double fill)
{
    if (H5Lexists(f, path, H5P_DEFAULT) > 0)
        H5Ldelete(f, path, H5P_DEFAULT);
    int rank = cols ? 2 : 1;
    hsize_t dims[2] = {rows, cols}, chunk[2] = {1 << 16, cols ? cols : 1};
    hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_deflate(dcpl, 9);
    H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &fill);
    hid_t d = H5Dcreate2(f, path, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    H5Dclose(d), H5Pclose(dcpl), H5Sclose(space);
}

TEST(test_declared_rows)
{
    mkdir(scratch("bound"), 0755);
    const char *log = stable(scratch("huge.h5"));
    copy_file(g_log, log);
    hid_t f = H5Fopen(log, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    const hsize_t rows = 50000000;
    set_huge(f, "steps/step", H5T_NATIVE_INT64, rows, 0, 1);
    set_huge(f, "steps/loss", H5T_NATIVE_DOUBLE, rows, 0, 2.5);
    set_huge(f, "eval/ppl", H5T_NATIVE_DOUBLE, rows, 0, 30);
    set_huge(f, "norms/layers/0/norm1/dist_var", H5T_NATIVE_DOUBLE, rows, 0, 0.5);
    set_huge(f, "norms/layers/0/norm1/step", H5T_NATIVE_INT64, rows, 0, 5);
    set_huge(f, "norms/layers/0/norm1/vectors/batch_var", H5T_NATIVE_FLOAT, rows, 32, 1);
    H5Fclose(f);
    SOFT(file_size(log) < 4 * file_size(g_log) + (1 << 20), "the crafted log is %ld bytes",
         file_size(log));
    readers("50 million declared rows", log, scratch("bound"), ALL_READERS, 0, 5.0);
    long dat = 0;
    DIR *d = opendir(scratch("bound"));
    for (struct dirent *e; d && (e = readdir(d));)
        if (ends_with(e->d_name, ".dat"))
            dat += file_size(scratch(fmt("bound/%s", e->d_name)));
    if (d)
        closedir(d);
    SOFT(dat < (10 << 20), "the readers wrote %ld bytes of .dat", dat);
}

/* A copy of the log whose step series (training steps and a site's) hold v[0..n). */
static void craft_steps(const char *to, const double *v, int n)
{
    copy_file(g_log, to);
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    const char *paths[2] = {"steps/step", "norms/layers/0/norm1/step"};
    for (int p = 0; p < 2; p++) {
        hid_t d = H5Dopen2(f, paths[p], H5P_DEFAULT);
        hid_t space = H5Dget_space(d);
        hsize_t dims[1];
        H5Sget_simple_extent_dims(space, dims, NULL);
        int64_t *x = calloc(dims[0], sizeof *x);
        for (hsize_t i = 0; i < dims[0]; i++) /* the pattern, repeated */
            x[i] = (int64_t)v[i % (hsize_t)n];
        H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
        free(x), H5Sclose(space), H5Dclose(d);
    }
    H5Fclose(f);
}

TEST(test_bad_steps)
{
    mkdir(scratch("bound"), 0755);
    static const double patterns[][4] = {
        {5, 4, 3, 2},                                      /* decreasing */
        {-3, -2, -1, 0},                                   /* negative */
        {9.2233720368547e18, 9.2233720368547e18, 1, 2},    /* near INT64_MAX */
        {-9.2233720368547e18, 0, 9.2233720368547e18, 1},   /* both extremes */
    };
    for (size_t k = 0; k < sizeof patterns / sizeof patterns[0]; k++) {
        const char *log = stable(scratch(fmt("steps-%zu.h5", k)));
        craft_steps(log, patterns[k], 4);
        readers(fmt("step pattern %zu", k), log, scratch("bound"),
                TEXT_READERS | PLOT_READER(2) | PLOT_READER(k % 2 ? 5 : 6), 0, 5.0);
        /* the damaged series is refused or left out, saying so (never drawn as if its steps
         * meant something) */
        const char *readers[2] = {"layers", "training"};
        for (int p = 0; p < 2; p++) {
            const char *argv[] = {"plot", readers[p], log, "--out", stable(scratch("bound")),
                                  NULL};
            Run r = run_argv(READ_TIMEOUT, argv);
            SOFT(strstr(r.err, "damaged"), "step pattern %zu: plot %s exit %d, not saying the "
                 "steps are damaged:\n%s", k, readers[p], r.code, r.err);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_log_strings),
        cmocka_unit_test(test_flag_strings),
        cmocka_unit_test(test_sweep_grid_values),
        cmocka_unit_test(test_study_strings),
        cmocka_unit_test(test_declared_rows),
        cmocka_unit_test(test_bad_steps),
    };
    test_filter_from_env();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return cmocka_run_group_tests(tests, group_setup_hostile, group_teardown);
}
