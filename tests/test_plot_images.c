/* Tests of the plots' images and of `normscope plot`, on short real run logs trained with the
 * program under test (NS_BINARY) in a scratch directory: every kind of figure is a real PNG and
 * SVG, and its gnuplot script redraws it from another directory (when gnuplot is on PATH: these
 * skip otherwise); `normscope plot` of every kind prints the images it wrote, and bad input,
 * missing data or sites and a PATH without gnuplot give the right exit code and message. The
 * figures' data are tested in test_plots.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "logs.h"
#include "plot_runs.h"
#include "util.h"

/* ------------------------------------------------------------------------------ images */

/* figure2 draws exactly two runs (a vision run beside a Transformer run); here two of ours. */
static int pair_kind(const char *kind) { return strcmp(kind, "figure2") == 0; }

static void test_images_every_kind(void **state)
{
    (void)state;
    if (!HAVE_GNUPLOT)
        skip();
    NsLog logs[4];
    open_runs(logs, (int[]){BATCH, PV, PW, LN}, 4);
    NsPlotOptions opt = {.out_dir = scratch("img")};
    for (int k = 0; NS_PLOT_KINDS[k]; k++)
        plot_ok(NS_PLOT_KINDS[k], logs, pair_kind(NS_PLOT_KINDS[k]) ? 2 : 4, &opt,
                strcmp(NS_PLOT_KINDS[k], "boxes") ? 1 : 2);
    const char *bases[] = {"fluctuation", "boxes-forward", "boxes-backward", "gradients",
                           "lipschitz",   "training",      "layers"};
    for (int i = 0; i < 7; i++) {
        char base[800];
        snprintf(base, sizeof base, "%s/%s", scratch("img"), bases[i]);
        assert_images(base);
    }
    close_logs(logs, 4);
}

/* The script is self-contained: it re-draws its images when run from another directory. */
static void test_script_reruns(void **state)
{
    (void)state;
    if (!HAVE_GNUPLOT)
        skip();
    NsLog log;
    open_runs(&log, (int[]){BATCH}, 1);
    NsPlotOptions opt = {.out_dir = scratch("rerun")};
    plot_ok("lipschitz", &log, 1, &opt, 1);
    ns_log_close(&log);
    char png[800], gp[800];
    snprintf(png, sizeof png, "%s", scratch("rerun/lipschitz.png"));
    snprintf(gp, sizeof gp, "%s", scratch("rerun/lipschitz.gp"));
    assert_int_equal(unlink(png), 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir("/") != 0)
            _exit(126);
        execlp("gnuplot", "gnuplot", gp, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_images(scratch("rerun/lipschitz"));
}

/* ------------------------------------------------------------------------------ command line */

static void test_cli_every_kind(void **state)
{
    (void)state;
    char words[4096], out[800], err[800];
    snprintf(out, sizeof out, "%s", scratch("cli.out"));
    snprintf(err, sizeof err, "%s", scratch("cli.err"));
    for (int k = 0; NS_PLOT_KINDS[k]; k++) {
        if (pair_kind(NS_PLOT_KINDS[k]))
            snprintf(words, sizeof words, "plot %s %s %s --out %s", NS_PLOT_KINDS[k],
                     RUN_PATH[BATCH], RUN_PATH[PV], scratch("cli"));
        else
            snprintf(words, sizeof words, "plot %s %s %s %s %s --out %s", NS_PLOT_KINDS[k],
                     RUN_PATH[BATCH], RUN_PATH[PV], RUN_PATH[PW], RUN_PATH[LN], scratch("cli"));
        int rc = run_io((Io){.out = out, .err = err}, "%s", words);
        char dat[800];
        snprintf(dat, sizeof dat, "%s/%s%s.dat", scratch("cli"), NS_PLOT_KINDS[k],
                 strcmp(NS_PLOT_KINDS[k], "boxes") ? "" : "-forward");
        assert_true(file_size(dat) > 0);
        if (!HAVE_GNUPLOT) {
            assert_int_equal(rc, 1);
            assert_true(file_contains(err, "gnuplot-nox"));
            continue;
        }
        if (rc != 0)
            fail_msg("normscope %s exited %d", words, rc);
        /* every printed path is an image that exists */
        char *text = slurp(out, NULL);
        int images = 0;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), images++) {
            char base[800];
            snprintf(base, sizeof base, "%.*s", (int)(strlen(line) - 4), line);
            assert_images(base);
        }
        free(text);
        assert_int_equal(images, strcmp(NS_PLOT_KINDS[k], "boxes") ? 2 : 4);
    }
}

static void test_cli_errors(void **state)
{
    (void)state;
    char out[800], err[800], words[4096];
    snprintf(out, sizeof out, "%s", scratch("clie.out"));
    snprintf(err, sizeof err, "%s", scratch("clie.err"));
    FILE *f = fopen(scratch("plain.txt"), "w");
    fputs("hello\n", f);
    fclose(f);
    snprintf(words, sizeof words, "plot training %s", scratch("plain.txt"));
    assert_int_equal(run_io((Io){.out = out, .err = err}, "%s", words), 1);
    assert_true(file_contains(err, "not an HDF5 file"));
    snprintf(words, sizeof words, "plot histogram %s", RUN_PATH[BATCH]);
    assert_int_equal(run_io((Io){.out = out, .err = err}, "%s", words), 2);
    assert_true(file_contains(err, "fluctuation, boxes, gradients"));
    assert_int_equal(run_io((Io){.out = out, .err = err}, "plot training"), 2);
    assert_true(file_contains(err, "no run"));
    snprintf(words, sizeof words, "plot training %s --colour red", RUN_PATH[BATCH]);
    assert_int_equal(run_io((Io){.out = out, .err = err}, "%s", words), 2);
    assert_true(file_contains(err, "--colour"));
    snprintf(words, sizeof words, "plot fluctuation %s --site layers/5/norm2 --out %s",
             RUN_PATH[BATCH], scratch("clie"));
    assert_int_equal(run_io((Io){.out = out, .err = err}, "%s", words), 1);
    assert_true(file_contains(err, "layers/5/norm2"));
    snprintf(words, sizeof words, "plot boxes %s --out %s", RUN_PATH[NONE], scratch("clie"));
    assert_int_equal(run_io((Io){.out = out, .err = err}, "%s", words), 1);
    assert_true(file_contains(err, "probes"));
    /* site sets differ: the post-norm run has no final_norm and is skipped, by name */
    snprintf(words, sizeof words, "plot fluctuation %s %s --site final_norm --out %s",
             RUN_PATH[BATCH], RUN_PATH[POST], scratch("clie"));
    assert_int_equal(run_io((Io){.out = out, .err = err}, "%s", words), HAVE_GNUPLOT ? 0 : 1);
    assert_true(file_contains(err, RUN_PATH[POST]));
    assert_true(file_contains(err, "final_norm"));
    assert_int_equal(run_io((Io){.out = out, .err = err}, "plot --help"), 0);
    for (int k = 0; NS_PLOT_KINDS[k]; k++)
        assert_true(file_contains(out, NS_PLOT_KINDS[k]));
    /* no gnuplot on PATH: data and script written, the error names the package */
    snprintf(words, sizeof words, "plot training %s --out %s", RUN_PATH[BATCH],
             scratch("clie-nognu"));
    assert_int_equal(run_io((Io){.out = out, .err = err, .path = scratch("empty-path")}, "%s",
                            words), 1);
    assert_true(file_contains(err, "gnuplot-nox"));
    assert_true(file_size(scratch("clie-nognu/training.gp")) > 0);
}


/* --format pdf,png --size --font on the command line: a real PDF (%PDF ... %%EOF) and PNG per
 * figure, each path printed once, no SVG; the figures of every kind, and no two the same file. */
static void test_cli_formats(void **state)
{
    (void)state;
    if (!HAVE_GNUPLOT)
        skip();
    char words[4096], out[800], err[800];
    snprintf(out, sizeof out, "%s", scratch("fmt.out"));
    snprintf(err, sizeof err, "%s", scratch("fmt.err"));
    int total = 0;
    char *seen[64];
    for (int k = 0; NS_PLOT_KINDS[k]; k++) {
        snprintf(words, sizeof words, "plot %s %s %s %s --out %s --format pdf,png,pdf "
                 "--size 640x420 --font Serif,8", NS_PLOT_KINDS[k], RUN_PATH[BATCH],
                 RUN_PATH[SEED2], pair_kind(NS_PLOT_KINDS[k]) ? "" : RUN_PATH[LN],
                 scratch("fmt"));
        int rc = run_io((Io){.out = out, .err = err}, "%s", words);
        if (rc != 0)
            fail_msg("normscope %s exited %d", words, rc);
        char *text = slurp(out, NULL);
        int images = 0;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), images++) {
            for (int j = 0; j < total; j++)
                if (strcmp(seen[j], line) == 0)
                    fail_msg("image %s printed twice", line);
            assert_true(total < 64);
            seen[total++] = keep(strdup(line));
            size_t len = strlen(line);
            assert_true(len > 4);
            if (strcmp(line + len - 4, ".pdf") == 0) {
                size_t size = 0;
                char *pdf = slurp(line, &size);
                assert_true(size > 1000);
                assert_memory_equal(pdf, "%PDF", 4);
                size_t end = size; /* %%EOF, then at most a line break */
                while (end > 0 && (pdf[end - 1] == '\n' || pdf[end - 1] == '\r'))
                    end--;
                assert_true(end >= 5);
                assert_memory_equal(pdf + end - 5, "%%EOF", 5);
                free(pdf);
            } else {
                assert_string_equal(line + len - 4, ".png");
                char svg[800];
                snprintf(svg, sizeof svg, "%.*s.svg", (int)(len - 4), line);
                assert_int_equal(file_size(svg), -1);
            }
        }
        free(text);
        assert_int_equal(images, strcmp(NS_PLOT_KINDS[k], "boxes") ? 2 : 4);
    }
    assert_true(file_contains(scratch("fmt/training.gp"), "pdfcairo size 8.889in,5.833in"));
    assert_true(file_contains(scratch("fmt/training.gp"), "font \"Serif,8\""));
    /* bad style flags: usage errors naming the flag, before any file is written */
    snprintf(words, sizeof words, "plot training %s --format gif", RUN_PATH[BATCH]);
    assert_int_equal(run_io((Io){.out = out, .err = err}, "%s", words), 2);
    assert_true(file_contains(err, "--format"));
    snprintf(words, sizeof words, "plot training %s --size 12", RUN_PATH[BATCH]);
    assert_int_equal(run_io((Io){.out = out, .err = err}, "%s", words), 2);
    assert_true(file_contains(err, "--size"));
    assert_int_equal(run_io((Io){.out = out, .err = err}, "plot --help"), 0);
    assert_true(file_contains(out, "--format"));
    assert_true(file_contains(out, "--font"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_images_every_kind),
        cmocka_unit_test(test_script_reruns),
        cmocka_unit_test(test_cli_every_kind),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_cli_formats),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, plot_runs_setup, group_teardown);
}
