/* The plot tests' run logs and checks (plot_runs.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "h5util.h"
#include "logs.h"
#include "plot_runs.h"
#include "util.h"

const char *RUN_PATH[N_RUNS];
int HAVE_GNUPLOT;

int plot_runs_setup(void **state)
{
    static const char *const RUN_ARGS[N_RUNS] = {
        "--norm batch", "--norm power-v", "--norm power --pn-warmup 10",
        "--norm layer --norm-position pre", "--norm batch --norm-position post",
        "--norm batch --probes none", "--norm batch --seed 2"};
    static const char *const RUN_NAMES[N_RUNS] = {"batch.h5", "pv.h5",   "pw.h5",    "ln.h5",
                                                  "post.h5",  "none.h5", "seed2.h5"};
    (void)state;
    ns_h5_quiet();
    HAVE_GNUPLOT = on_path("gnuplot");
    if (harness_setup() != 0)
        return -1;
    return train_logs(N_RUNS, "--steps 40 --d-model 16 --heads 2 --d-ff 32 --layers 2 --seq-len 12 "
                      "--batch-size 8 --vocab-size 300 --synth-bytes 60000 --eval-every 10 "
                      "--lipschitz-every 10 --hessian-iters 2 --probe-vectors-every 0 "
                      "--log-every 100 --threads 1", RUN_NAMES, RUN_ARGS, NULL, RUN_PATH);
}

void open_runs(NsLog *logs, const int *which, int n)
{
    const char *paths[N_RUNS];
    for (int i = 0; i < n; i++)
        paths[i] = RUN_PATH[which[i]];
    open_logs(logs, paths, n);
}

void plot_ok(const char *kind, NsLog *logs, int n, const NsPlotOptions *opt, int figures)
{
    char err[NS_ERRLEN] = "";
    int rc = ns_plot(kind, logs, n, opt, err);
    if (HAVE_GNUPLOT) {
        if (rc != figures)
            fail_msg("ns_plot(%s) = %d (want %d): %s", kind, rc, figures, err);
    } else {
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err, "gnuplot-nox"));
    }
}


void assert_images(const char *base)
{
    char png[800], svg[800];
    snprintf(png, sizeof png, "%s.png", base);
    snprintf(svg, sizeof svg, "%s.svg", base);
    size_t n = 0;
    char *bytes = slurp(png, &n);
    assert_non_null(bytes);
    assert_true(n > 5000);
    assert_memory_equal(bytes, "\x89PNG\r\n\x1a\n", 8);
    free(bytes);
    assert_true(file_size(svg) > 2000);
    assert_true(file_contains(svg, "<svg"));
}
