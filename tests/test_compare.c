/* Tests of `normscope compare` (the table of a study) against real run logs trained by the
 * program under test (NS_BINARY) in a scratch directory: short runs of batch, power-v, layer
 * (pre) and one with --probes none, a run the engine stops as diverged, and logs crafted from
 * them with the HDF5 API (a NaN loss, an unknown format). Every number of the CSV is recomputed
 * here from the logs with logread/stats; the Markdown's captions, n/a and divergence marks; the
 * command line and its errors. `watch` is tested in test_watch.c, export-notebook in
 * test_notebook.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "compare.h"
#include "h5util.h"
#include "harness.h"
#include "logs.h"
#include "seeds.h"
#include "stats.h"
#include "util.h"

static const int NAN_INDEX = 20; /* row of /steps/loss set to NaN in g_nan */

/* ------------------------------------------------------------------------------------------
 * Fixture: the logs, made once for all tests */

static const char *g_seed2; /* batch.h5's configuration with another seed */

static int setup_logs(void **state)
{
    (void)state;
    if (train_analysis_logs(LOG_BATCH | LOG_PV | LOG_LN | LOG_NONE | LOG_DIV) != 0)
        return -1;
    return train_logs(1, TINY_LOGS " --steps 60", (const char *[]){"batch-seed7.h5"},
                      (const char *[]){"--norm batch --lipschitz-every 10 --hessian-iters 3 "
                                       "--seed 7"}, NULL, &g_seed2);
}

/* ------------------------------------------------------------------------------------------
 * Expected values, recomputed from the logs */

static double steps_done(const NsLog *log)
{
    size_t n;
    double *s = series(log, "steps/step", &n), r = n ? s[n - 1] : 0.0;
    free(s);
    return r;
}

/* Quantile q of group/name over rows with step/S in (0.8, 1], S = steps done; over every row
 * when none (all_if_empty). Values are appended to *pool when pool is not NULL. */
static double late(const NsLog *log, const char *group, const char *name, double q,
                   int all_if_empty)
{
    char ps[256], pv[256];
    snprintf(ps, sizeof ps, "%s/step", group);
    snprintf(pv, sizeof pv, "%s/%s", group, name);
    size_t ns, nv;
    double *st = series(log, ps, &ns), *v = series(log, pv, &nv), S = steps_done(log);
    double *keep = ns_xmalloc(sizeof(double) * (nv + 1));
    size_t m = 0;
    for (size_t i = 0; i < ns && i < nv; i++)
        if (st[i] / S > 0.8 && st[i] / S <= 1.0)
            keep[m++] = v[i];
    if (m == 0 && all_if_empty)
        for (size_t i = 0; i < ns && i < nv; i++)
            keep[m++] = v[i];
    double r = ns_quantile(keep, m, q);
    free(st), free(v), free(keep);
    return r;
}

static double pooled_late_median(const NsLog *log, const char *name)
{
    char **sites;
    int n = ns_log_sites(log, &sites);
    double *pool = ns_xmalloc(sizeof(double) * 4096), S = steps_done(log);
    size_t m = 0;
    for (int s = 0; s < n; s++) {
        char ps[256], pv[256];
        snprintf(ps, sizeof ps, "norms/%s/step", sites[s]);
        snprintf(pv, sizeof pv, "norms/%s/%s", sites[s], name);
        size_t ns, nv;
        double *st = series(log, ps, &ns), *v = series(log, pv, &nv);
        for (size_t i = 0; i < ns && i < nv && m < 4096; i++)
            if (st[i] / S > 0.8 && st[i] / S <= 1.0)
                pool[m++] = v[i];
        free(st), free(v);
    }
    ns_log_free_sites(sites, n);
    double r = ns_median(pool, m);
    free(pool);
    return r;
}

/* Median of norms/<site>/<name> over rows with step/S in (lo, hi], S = steps done. */
static double site_window_median(const NsLog *log, const char *site, const char *name, double lo,
                                 double hi)
{
    char ps[256], pv[256];
    snprintf(ps, sizeof ps, "norms/%s/step", site);
    snprintf(pv, sizeof pv, "norms/%s/%s", site, name);
    size_t ns, nv, m = 0;
    double *st = series(log, ps, &ns), *v = series(log, pv, &nv), S = steps_done(log);
    double *keep = ns_xmalloc(sizeof(double) * (nv + 1));
    for (size_t i = 0; i < ns && i < nv; i++)
        if (st[i] / S > lo && st[i] / S <= hi)
            keep[m++] = v[i];
    double r = ns_median(keep, m);
    free(st), free(v), free(keep);
    return r;
}

/* The scheme's distance: dist_psi2 for the PN family, dist_var otherwise. */
static const char *scheme_dist(const NsLog *log)
{
    return strncmp(log->norm, "power", 5) == 0 ? "dist_psi2" : "dist_var";
}

/* late / early median of the scheme's distance at a site (NaN when early is not > 0). */
static double growth_at(const NsLog *log, const char *site)
{
    double early = site_window_median(log, site, scheme_dist(log), 0.2, 0.4);
    double late = site_window_median(log, site, scheme_dist(log), 0.8, 1.0);
    return early > 0 ? late / early : NAN;
}

/* The site of the largest growth (NULL if none) and that growth. */
static const char *max_growth(const NsLog *log, double *best, char *buf, size_t len)
{
    char **sites;
    int n = ns_log_sites(log, &sites);
    const char *at = NULL;
    *best = NAN;
    for (int s = 0; s < n; s++) {
        double g = growth_at(log, sites[s]);
        if (!isnan(g) && (isnan(*best) || g > *best)) {
            *best = g;
            snprintf(buf, len, "%s", sites[s]);
            at = buf;
        }
    }
    ns_log_free_sites(sites, n);
    return at;
}

/* ------------------------------------------------------------------------------------------
 * CSV */

typedef struct {
    char *text;
    char *field[64][40]; /* [row][column]; row 0 is the header */
    int rows, cols;
} Csv;

/* Splits on ',' keeping empty fields (the test's paths hold no commas or quotes). */
static void csv_load(Csv *c, const char *path)
{
    memset(c, 0, sizeof *c);
    c->text = slurp(path, NULL);
    char *rest = c->text;
    for (char *line; c->rows < 64 && (line = strsep(&rest, "\n")) && *line;) {
        int k = 0;
        for (char *f; k < 40 && (f = strsep(&line, ","));)
            c->field[c->rows][k++] = f;
        if (c->rows == 0)
            c->cols = k;
        assert_int_equal(k, c->cols);
        c->rows++;
    }
}

static const char *csv_get(const Csv *c, int row, const char *column)
{
    for (int k = 0; k < c->cols; k++)
        if (strcmp(c->field[0][k], column) == 0)
            return c->field[row][k];
    fail_msg("CSV has no column '%s'", column);
    return NULL;
}

/* A CSV number equals the expected one (to its 8 significant digits); NaN = empty field. */
static void check_num(const Csv *c, int row, const char *column, double want)
{
    const char *got = csv_get(c, row, column);
    if (isnan(want)) {
        if (got[0])
            fail_msg("row %d %s: expected empty (missing), got '%s'", row, column, got);
        return;
    }
    char *end;
    double v = strtod(got, &end);
    if (!got[0] || *end)
        fail_msg("row %d %s: expected %.10g, got '%s'", row, column, want, got);
    if (isinf(want) ? v != want : fabs(v - want) > 1e-7 * fabs(want) + 1e-300)
        fail_msg("row %d %s: expected %.10g, got %.10g", row, column, want, v);
}

/* The outcome and measurement columns of one CSV row against the log. */
static void check_row(const Csv *c, int row, const NsLog *log, const char *site)
{
    size_t ne, np;
    double *es = series(log, "eval/step", &ne), *ppl = series(log, "eval/ppl", &np);
    double best = NAN, best_step = NAN;
    for (size_t i = 0; i < ne; i++)
        if (!isnan(ppl[i]) && (isnan(best) || ppl[i] < best))
            best = ppl[i], best_step = es[i];
    check_num(c, row, "steps_done", steps_done(log));
    check_num(c, row, "final_ppl", ne ? ppl[ne - 1] : NAN);
    check_num(c, row, "best_ppl", best);
    check_num(c, row, "best_ppl_step", best_step);
    free(es), free(ppl);
    char group[128];
    snprintf(group, sizeof group, "norms/%s", site);
    const char *names[] = {"dist_mean", "dist_var", "dist_psi2"};
    for (int k = 0; k < 3; k++) {
        char col[64];
        snprintf(col, sizeof col, "%s_median", names[k]);
        check_num(c, row, col, late(log, group, names[k], 0.5, 0));
        snprintf(col, sizeof col, "%s_p95", names[k]);
        check_num(c, row, col, late(log, group, names[k], 0.95, 0));
    }
    const char *tids[] = {"tid_mean", "tid_var", "tid_psi2", "tid_mean_floor", "tid_var_floor",
                          "tid_psi2_floor"};
    for (int k = 0; k < 6; k++) {
        char col[64];
        snprintf(col, sizeof col, "%s_median", tids[k]);
        check_num(c, row, col, late(log, group, tids[k], 0.5, 0));
    }
    check_num(c, row, "grad_gain_median", pooled_late_median(log, "grad_gain"));
    check_num(c, row, "beta_smoothness_median", late(log, "lipschitz", "beta_smoothness", 0.5, 1));
    check_num(c, row, "hessian_top_eig_median", late(log, "lipschitz", "hessian_top_eig", 0.5, 1));
    check_num(c, row, "tokens_per_s_median", late(log, "steps", "tokens_per_s", 0.5, 0));
    double unk;
    check_num(c, row, "unk_rate_train",
              ns_log_attr_double(log, "unk_rate_train", &unk) == 0 ? unk : NAN);
    check_num(c, row, "unk_rate_valid",
              ns_log_attr_double(log, "unk_rate_valid", &unk) == 0 ? unk : NAN);
    long seed;
    check_num(c, row, "seed", ns_log_attr_long(log, "seed", &seed) == 0 ? (double)seed : NAN);
    char buf[128];
    double top;
    const char *at = max_growth(log, &top, buf, sizeof buf);
    check_num(c, row, "growth", growth_at(log, site));
    check_num(c, row, "max_growth", top);
    assert_string_equal(csv_get(c, row, "max_growth_site"), at ? at : "");
}

/* ------------------------------------------------------------------------------------------
 * compare */

static void test_compare_values(void **state)
{
    (void)state;
    craft_nan_loss(g_batch, g_nan, NAN_INDEX);
    const char *paths[] = {g_batch, g_pv, g_ln, g_none, g_nan};
    NsLog logs[5];
    open_logs(logs, paths, 5);
    char prefix[PATH_MAX + 32], path[PATH_MAX + 64], err[NS_ERRLEN] = "";
    snprintf(prefix, sizeof prefix, "%s/table", scratch_dir());
    /* nan-loss.h5 is a copy of batch.h5: one configuration, so --runs to list every run */
    NsCompareOptions o = {.list_runs = 1};
    assert_int_equal(ns_compare_opts(logs, 5, &o, prefix, 0, err), 0);
    snprintf(path, sizeof path, "%s.csv", prefix);
    Csv c;
    csv_load(&c, path);
    assert_int_equal(c.rows, 6);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(csv_get(&c, i + 1, "run"), paths[i]);
        assert_string_equal(csv_get(&c, i + 1, "scheme"), logs[i].norm);
        check_row(&c, i + 1, &logs[i], "layers/0/norm1");
    }
    assert_string_equal(csv_get(&c, 2, "scheme"), "power-v");
    assert_string_equal(csv_get(&c, 3, "position"), "pre");
    assert_string_equal(csv_get(&c, 1, "site"), "layers/0/norm1");
    assert_string_equal(csv_get(&c, 4, "site"), ""); /* --probes none: no site, n/a */
    check_num(&c, 1, "divergence_step", NAN);
    size_t n;
    double *step = series(&logs[4], "steps/step", &n);
    check_num(&c, 5, "divergence_step", step[NAN_INDEX]);
    free(step);
    free(c.text);
    /* the Markdown: the site in the caption, n/a for missing, "-" for no divergence */
    snprintf(path, sizeof path, "%s.md", prefix);
    char *md = slurp(path, NULL);
    assert_non_null(strstr(md, "at norm site `layers/0/norm1`"));
    const char *none_row = strstr(md, "noprobes.h5 | batch | pre | 1 | 60 / 60 |");
    assert_non_null(none_row);
    assert_non_null(strstr(none_row, "| n/a | n/a |"));
    assert_non_null(strstr(strstr(md, "batch.h5 | batch"), "| - |"));
    assert_non_null(strstr(md, "Notes:"));
    free(md);
    close_logs(logs, 5);
}

/* The engine records the diverging step in /steps (non-finite loss or gradient norm) and
 * stops: compare names that step. */
static void test_compare_engine_divergence(void **state)
{
    (void)state;
    NsLog log;
    open_logs(&log, (const char *[]){g_div}, 1);
    char prefix[PATH_MAX + 32], path[PATH_MAX + 64], err[NS_ERRLEN] = "";
    snprintf(prefix, sizeof prefix, "%s/div", scratch_dir());
    assert_int_equal(ns_compare(&log, 1, prefix, 0, err), 0);
    snprintf(path, sizeof path, "%s.csv", prefix);
    Csv c;
    csv_load(&c, path);
    size_t n, nl, ng;
    double *step = series(&log, "steps/step", &n), *loss = series(&log, "steps/loss", &nl);
    double *gnorm = series(&log, "steps/grad_norm", &ng);
    assert_true(n > 0 && n == nl && n == ng);
    assert_true(!isfinite(loss[n - 1]) || !isfinite(gnorm[n - 1])); /* the last row diverged */
    double first = NAN;
    for (size_t i = 0; i < n && isnan(first); i++)
        if (!isfinite(loss[i]) || !isfinite(gnorm[i]))
            first = step[i];
    assert_true(step[n - 1] < 60);
    check_num(&c, 1, "steps_done", step[n - 1]);
    check_num(&c, 1, "steps_total", 60);
    check_num(&c, 1, "divergence_step", first);
    free(step), free(loss), free(gnorm);
    free(c.text);
    ns_log_close(&log);
}

static void test_compare_cli(void **state)
{
    (void)state;
    char prefix[PATH_MAX + 32], out[PATH_MAX + 64], errf[PATH_MAX + 64], path[PATH_MAX + 64];
    snprintf(prefix, sizeof prefix, "%s/cli", scratch_dir());
    snprintf(out, sizeof out, "%s/cli.stdout", scratch_dir());
    snprintf(errf, sizeof errf, "%s/cli.stderr", scratch_dir());
    assert_int_equal(run_io((Io){.out = out, .err = errf}, "compare %s %s %s --out %s --site "
                            "final_norm", g_batch, g_ln, g_none, prefix), 0);
    char *text = slurp(out, NULL), *warn = slurp(errf, NULL);
    assert_non_null(strstr(text, "| run | scheme |"));
    assert_non_null(strstr(text, "at norm site `final_norm`"));
    assert_non_null(strstr(text, "layer-pre.h5 | layer | pre |"));
    assert_non_null(strstr(warn, "noprobes.h5"));  /* the warning names the run */
    assert_non_null(strstr(warn, "final_norm"));   /* and the site */
    free(text), free(warn);
    snprintf(path, sizeof path, "%s.csv", prefix);
    Csv c;
    csv_load(&c, path);
    NsLog logs[2];
    open_logs(logs, (const char *[]){g_batch, g_ln}, 2);
    check_row(&c, 1, &logs[0], "final_norm");
    check_row(&c, 2, &logs[1], "final_norm");
    close_logs(logs, 2);
    free(c.text);
}

static void test_compare_errors(void **state)
{
    (void)state;
    char errf[PATH_MAX + 64], prefix[PATH_MAX + 32], err[NS_ERRLEN] = "";
    snprintf(errf, sizeof errf, "%s/err.stderr", scratch_dir());
    snprintf(prefix, sizeof prefix, "%s/e", scratch_dir());
    write_file(g_text, "not a run log\n", 14);
    craft_format(g_batch, g_badver, "normscope-runlog-99");
    assert_int_equal(run_io((Io){.err = errf}, "compare"), NS_EXIT_USAGE);
    assert_int_equal(run_io((Io){.err = errf}, "compare %s --bogus", g_batch), NS_EXIT_USAGE);
    struct {
        const char *file, *phrase;
    } cases[] = {{g_text, "not an HDF5 file"},
                 {g_badver, "unknown format 'normscope-runlog-99'"},
                 {"/nonexistent/run.h5", "no such file"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(run_io((Io){.err = errf}, "compare %s %s --out %s", g_batch, cases[i].file,
                                prefix), NS_EXIT_ERROR);
        char *msg = slurp(errf, NULL);
        assert_non_null(strstr(msg, cases[i].phrase));
        assert_non_null(strstr(msg, cases[i].file));
        assert_ptr_equal(strchr(msg, '\n'), msg + strlen(msg) - 1); /* one line */
        free(msg);
    }
    assert_int_equal(run_io((Io){.err = errf}, "compare %s --site layers/9/norm1 --out %s", g_batch,
                            prefix), NS_EXIT_ERROR);
    NsLog log;
    assert_int_equal(ns_compare(&log, 0, prefix, 0, err), -1);
    assert_non_null(strstr(err, "at least one"));
    open_logs(&log, (const char *[]){g_batch}, 1);
    assert_int_equal(ns_compare(&log, 1, "/nonexistent-dir/t", 0, err), -1);
    assert_non_null(strstr(err, "cannot write"));
    ns_log_close(&log);
}


/* --site all: one long table, a row per run and site, growth recomputed here; the largest
 * marked, and named in the default table beside the first site. */
static void test_compare_all_sites(void **state)
{
    (void)state;
    const char *paths[] = {g_batch, g_pv, g_ln};
    NsLog logs[3];
    open_logs(logs, paths, 3);
    char prefix[PATH_MAX + 32], path[PATH_MAX + 64], err[NS_ERRLEN] = "";
    snprintf(prefix, sizeof prefix, "%s/sites", scratch_dir());
    NsCompareOptions o = {.site = "all"};
    assert_int_equal(ns_compare_opts(logs, 3, &o, prefix, 0, err), 0);
    snprintf(path, sizeof path, "%s-sites.csv", prefix);
    Csv c;
    csv_load(&c, path);
    int row = 1;
    for (int i = 0; i < 3; i++) {
        char **sites, buf[128];
        int n = ns_log_sites(&logs[i], &sites);
        assert_true(n >= 3);
        double best;
        const char *at = max_growth(&logs[i], &best, buf, sizeof buf);
        for (int s = 0; s < n; s++, row++) {
            assert_string_equal(csv_get(&c, row, "run"), paths[i]);
            assert_string_equal(csv_get(&c, row, "site"), sites[s]);
            assert_string_equal(csv_get(&c, row, "stat"), scheme_dist(&logs[i]));
            check_num(&c, row, "early_median",
                      site_window_median(&logs[i], sites[s], scheme_dist(&logs[i]), 0.2, 0.4));
            check_num(&c, row, "late_median",
                      site_window_median(&logs[i], sites[s], scheme_dist(&logs[i]), 0.8, 1.0));
            check_num(&c, row, "growth", growth_at(&logs[i], sites[s]));
            assert_string_equal(csv_get(&c, row, "largest"),
                                at && strcmp(at, sites[s]) == 0 ? "1" : "0");
        }
        ns_log_free_sites(sites, n);
    }
    assert_int_equal(c.rows, row);
    free(c.text);
    snprintf(path, sizeof path, "%s.md", prefix);
    char *md = slurp(path, NULL);
    assert_non_null(strstr(md, "## Every site"));
    assert_non_null(strstr(md, "| `layers/1/norm2` |"));
    assert_non_null(strstr(md, "**largest**"));
    assert_non_null(strstr(md, "largest growth (site)"));
    free(md);
    close_logs(logs, 3);
}

/* Runs that differ only in seed: aggregated (mean, sample sd, n), recomputed here; listed one
 * by one only with --runs; their final perplexities said to be within seed spread or not. */
static void test_compare_seeds(void **state)
{
    (void)state;
    const char *paths[] = {g_batch, g_pv, g_seed2};
    NsLog logs[3];
    open_logs(logs, paths, 3);
    char prefix[PATH_MAX + 32], path[PATH_MAX + 64], err[NS_ERRLEN] = "";
    snprintf(prefix, sizeof prefix, "%s/seeds", scratch_dir());
    assert_int_equal(ns_compare(logs, 3, prefix, 0, err), 0);
    snprintf(path, sizeof path, "%s-seeds.csv", prefix);
    Csv c;
    csv_load(&c, path);
    assert_int_equal(c.rows, 3); /* header, batch (2 seeds), power-v */
    assert_string_equal(csv_get(&c, 1, "scheme"), "batch");
    assert_string_equal(csv_get(&c, 1, "seeds"), "1 7");
    check_num(&c, 1, "n", 2);
    check_num(&c, 2, "n", 1);
    double v[2], dv[2];
    for (int k = 0; k < 2; k++) {
        size_t n;
        double *ppl = series(&logs[k ? 2 : 0], "eval/ppl", &n);
        v[k] = ppl[n - 1];
        free(ppl);
        dv[k] = late(&logs[k ? 2 : 0], "norms/layers/0/norm1", "dist_var", 0.5, 0);
    }
    double mean = (v[0] + v[1]) / 2, sd = fabs(v[0] - v[1]) / sqrt(2.0);
    check_num(&c, 1, "final_ppl_mean", mean);
    check_num(&c, 1, "final_ppl_sd", sd);
    check_num(&c, 1, "final_ppl_min", fmin(v[0], v[1]));
    check_num(&c, 1, "final_ppl_max", fmax(v[0], v[1]));
    check_num(&c, 1, "final_ppl_n", 2);
    check_num(&c, 1, "dist_var_median_mean", (dv[0] + dv[1]) / 2);
    check_num(&c, 1, "dist_var_median_sd", fabs(dv[0] - dv[1]) / sqrt(2.0));
    check_num(&c, 2, "final_ppl_sd", NAN); /* one run: no spread */
    free(c.text);
    /* the per-run CSV keeps every run, with its seed and group */
    snprintf(path, sizeof path, "%s.csv", prefix);
    csv_load(&c, path);
    assert_int_equal(c.rows, 4);
    check_num(&c, 1, "seed", 1);
    check_num(&c, 3, "seed", 7);
    assert_string_equal(csv_get(&c, 1, "seed_group"), csv_get(&c, 3, "seed_group"));
    assert_string_not_equal(csv_get(&c, 1, "seed_group"), csv_get(&c, 2, "seed_group"));
    free(c.text);
    snprintf(path, sizeof path, "%s.md", prefix);
    char *md = slurp(path, NULL);
    assert_non_null(strstr(md, "## Seeds"));
    assert_non_null(strstr(md, "| batch | pre | 1, 7 | 2 |"));
    assert_null(strstr(md, "batch-seed7.h5 | batch")); /* not listed one by one */
    assert_true(strstr(md, "within seed spread") || strstr(md, "larger than the seed spread"));
    free(md);
    NsCompareOptions o = {.list_runs = 1};
    assert_int_equal(ns_compare_opts(logs, 3, &o, prefix, 0, err), 0);
    md = slurp(path, NULL);
    assert_non_null(strstr(md, "batch-seed7.h5 | batch | pre | 7 |"));
    assert_non_null(strstr(md, "## Seeds"));
    free(md);
    close_logs(logs, 3);
}

/* Sets the int64 root attribute name of the file at path with the writer train uses (value < 0:
 * removes it). */
static void set_attr(const char *path, const char *name, long value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (value < 0)
        assert_true(H5Aexists(f, name) <= 0 || H5Adelete(f, name) >= 0);
    else
        assert_int_equal(ns_h5_attr_write_i64(f, name, value), 0);
    H5Fclose(f);
}

/* On the embedded corpus the vocabulary built varies with the seed: repetitions are grouped by
 * the cap asked for (vocab_cap) where both logs record it, by vocab_size where one does not. */
static void test_seed_groups_by_vocab_cap(void **state)
{
    (void)state;
    char a[PATH_MAX + 32], b[PATH_MAX + 32], err[NS_ERRLEN] = "";
    snprintf(a, sizeof a, "%s/vocab-a.h5", scratch_dir());
    snprintf(b, sizeof b, "%s/vocab-b.h5", scratch_dir());
    NsLog base;
    long built, cap;
    assert_int_equal(ns_log_open(&base, g_seed2, err), 0);
    assert_int_equal(ns_log_attr_long(&base, "vocab_size", &built), 0);
    assert_int_equal(ns_log_attr_long(&base, "vocab_cap", &cap), 0); /* train records it */
    ns_log_close(&base);
    struct { long cap_b, vocab_b; int same; } cases[] = {
        {cap, built - 10, 1},     /* same cap, another vocabulary built: repetitions */
        {cap + 1, built, 0},      /* another cap: another configuration */
        {-1, built - 10, 0},      /* b an old log without vocab_cap: vocab_size decides */
        {-1, built, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        copy_file(g_batch, a);
        copy_file(g_seed2, b);
        set_attr(b, "vocab_cap", cases[k].cap_b);
        set_attr(b, "vocab_size", cases[k].vocab_b);
        NsLog la, lb;
        assert_int_equal(ns_log_open(&la, a, err), 0);
        assert_int_equal(ns_log_open(&lb, b, err), 0);
        assert_int_equal(ns_logs_same_but_seed(&la, &lb), cases[k].same);
        ns_log_close(&la), ns_log_close(&lb);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_values),
        cmocka_unit_test(test_compare_engine_divergence),
        cmocka_unit_test(test_compare_cli),
        cmocka_unit_test(test_compare_errors),
        cmocka_unit_test(test_compare_all_sites),
        cmocka_unit_test(test_compare_seeds),
        cmocka_unit_test(test_seed_groups_by_vocab_cap),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, setup_logs, group_teardown);
}
