/* Tests of issue 14's settings, probes and report, running NS_BINARY in a scratch directory:
 *  1 --bn-momentum's default is the scheme's; --release-defaults and explicit flags over it;
 *    --no-layer-scaling (an error for other schemes; without padding, batch-official without
 *    layer scaling trains exactly like batch)
 *  2 rel_dist_* recomputed from the recorded vectors, for every kind of scheme; batch-official's
 *    recorded statistics are those of its layer-scaled, mean-filled input over all rows
 *  3 `study --compare-release` on a tiny configuration: every number of release.csv recomputed
 *    from the run logs, the Markdown's numbers, the figures, and the flags it refuses.
 * SOFT checks report and go on, failing the test at its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "harness.h"
#include "logs.h"
#include "stats.h"
#include "util.h"

/* ------------------------------------------------------------ 1: settings */

TEST(test_bn_momentum_default)
{
    SOFT(trained_attr("--norm batch-official", "bn_momentum") == 0.05f, "batch-official\n");
    SOFT(trained_attr("--norm batch", "bn_momentum") == 0.1f, "batch\n");
    SOFT(trained_attr("--norm layer", "bn_momentum") == 0.1f, "layer keeps the default\n");
    SOFT(trained_attr("--norm batch-official --bn-momentum 0.2", "bn_momentum") == 0.2f,
         "an explicit --bn-momentum wins\n");
    Run h = run("train --help");
    SOFT(strstr(h.out, "batch-official 0.05") != NULL, "--help names the scheme defaults\n");
}

TEST(test_release_defaults)
{
    const char *po = "--norm power-official --warmup 7";
    SOFT(trained_attr(fmt("%s --release-defaults", po), "pn_groups") == 2, "groups = heads\n");
    SOFT(trained_attr(fmt("%s --release-defaults", po), "pn_warmup") == 7, "pn_warmup\n");
    SOFT(trained_attr(fmt("%s --release-defaults", po), "release_defaults") == 1, "recorded\n");
    SOFT(trained_attr(fmt("%s --release-defaults --pn-groups 0", po), "pn_groups") == 0,
         "an explicit --pn-groups wins\n");
    SOFT(trained_attr(fmt("%s --release-defaults --pn-warmup 3", po), "pn_warmup") == 3,
         "an explicit --pn-warmup wins\n");
    SOFT(trained_attr(po, "pn_groups") == 0 && trained_attr(po, "pn_warmup") == 100 &&
             trained_attr(po, "release_defaults") == 0, "without the flag: train's defaults\n");
    SOFT(trained_attr("--norm batch-official --release-defaults", "bn_momentum") == 0.05f,
         "batch-official momentum\n");
}

TEST(test_no_layer_scaling)
{
    Run r = run(TINY_TRAIN " --steps 2 --norm batch --no-layer-scaling --out %s",
                scratch("x.h5"));
    SOFT(r.code == 2 && strstr(r.err, "--no-layer-scaling applies to --norm batch-official"),
         "batch --no-layer-scaling: exit %d, %s\n", r.code, r.err);
    SOFT(trained_attr("--norm batch-official --no-layer-scaling", "no_layer_scaling") == 1,
         "recorded\n");
    /* Stream batches have no padding: the release's BN without its layer scaling takes batch's
     * statistics and gradients (only its running statistics, used at evaluation, differ). */
    const char *a = scratch("ls-batch.h5"), *b = scratch("ls-off.h5"), *c = scratch("ls-on.h5");
    const char *flags = TINY_TRAIN " --steps 6 --eval-every 0 --probes none --batching stream";
    assert_int_equal(run_io((Io){0}, "%s --norm batch --out %s", flags, a), 0);
    assert_int_equal(run_io((Io){0}, "%s --norm batch-official --no-layer-scaling --out %s",
                            flags, b), 0);
    assert_int_equal(run_io((Io){0}, "%s --norm batch-official --out %s", flags, c), 0);
    hid_t fa = open_ro(a), fb = open_ro(b), fc = open_ro(c);
    double *la, *lb, *lc;
    assert_int_equal(rd(fa, "steps/loss", &la, NULL), 6);
    assert_int_equal(rd(fb, "steps/loss", &lb, NULL), 6);
    assert_int_equal(rd(fc, "steps/loss", &lc, NULL), 6);
    for (int t = 0; t < 6; t++)
        SOFT(fabs(la[t] - lb[t]) <= 1e-6 * fabs(la[t]), "step %d loss %.9g vs %.9g\n", t + 1,
             la[t], lb[t]);
    SOFT(fabs(la[5] - lc[5]) > 1e-6, "layer scaling changes training\n");
    free(la), free(lb), free(lc);
    H5Fclose(fa), H5Fclose(fb), H5Fclose(fc);
}

/* ------------------------------------------------------------ 2: relative distances */

static double l2(const double *a, const double *b, int d)
{
    double s = 0.0;
    for (int c = 0; c < d; c++)
        s += (a[c] - (b ? b[c] : 0.0)) * (a[c] - (b ? b[c] : 0.0));
    return sqrt(s);
}

/* batch-official records the statistics of its input u (every real row divided by its RMS) with
 * padded rows set to the mean: over the N = 128 rows, the channel average of psi2 is
 * (n/N) * 1 + ((N - n)/N) * mean_c mu^2, and psi2 = var + mu^2. */
static void check_official_rows(const double *mean, const double *var, const double *psi2,
                                double real_rows, const char *site, int t)
{
    double mu2 = 0.0, avg = 0.0;
    for (int c = 0; c < 32; c++) {
        mu2 += mean[c] * mean[c] / 32, avg += psi2[c] / 32;
        SOFT(fabs(psi2[c] - (var[c] + mean[c] * mean[c])) <= 1e-6 * psi2[c] + 1e-9,
             "%s step %d psi2 != var + mean^2\n", site, t);
    }
    double want = real_rows / 128.0 + (128.0 - real_rows) / 128.0 * mu2;
    SOFT(fabs(avg - want) <= 1e-3 * want, "%s step %d: mean psi2 %.9g, layer-scaled and "
         "mean-filled rows give %.9g\n", site, t, avg, want);
}

/* With --pn-groups the probe measures the group-scaled rows, the input PN's running psi2
 * tracks: in power's warm-up r is the plain average of the psi2_B so far, and each scaled
 * row's mean square is 1 (less eps). */
static void check_grouped_rows(const double *b, const double *r, int t, const char *site)
{
    double avg = 0.0;
    for (int c = 0; c < 32; c++) {
        avg += b[32 * t + c] / 32;
        if (t > 0) {
            double want = 0.0; /* r before step t + 1: the mean of psi2_B of steps 1..t */
            for (int k = 0; k < t; k++)
                want += b[32 * k + c] / t;
            SOFT(fabs(r[32 * t + c] - want) <= 2e-6 * fmax(1.0, want), "%s step %d running_psi2"
                 "[%d] %.9g, from the recorded psi2_B %.9g\n", site, t + 1, c, r[32 * t + c], want);
        }
    }
    SOFT(fabs(avg - 1.0) <= 1e-3, "%s step %d: mean psi2 of group-scaled rows %.9g\n", site,
         t + 1, avg);
}

static void check_relative(const char *norm)
{
    static const char *const stat[3] = {"mean", "var", "psi2"};
    static int k; /* norm may hold spaces, which spawn splits at */
    const char *out = scratch(fmt("rel-%d.h5", k++));
    assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 8 --eval-every 0 --probe-vectors-every 1"
                            " --pn-warmup 100 --batching sentences --norm %s --out %s", norm, out),
                     0);
    hid_t f = open_ro(out);
    double *real, *all, *b[3], *r[3], *dist, *rel;
    assert_int_equal(rd(f, "steps/real_tokens_per_s", &real, NULL), 8);
    assert_int_equal(rd(f, "steps/tokens_per_s", &all, NULL), 8);
    for (int s = 0; s < N_TINY_SITES; s++) {
        const char *site = TINY_SITES[s];
        for (int k = 0; k < 3; k++) {
            const char *vb = fmt("norms/%s/vectors/batch_%s", site, stat[k]);
            const char *vr = fmt("norms/%s/vectors/running_%s", site, stat[k]);
            assert_int_equal(rd(f, vb, &b[k], NULL), 8);
            assert_int_equal(rd(f, vr, &r[k], NULL), 8);
        }
        for (int k = 0; k < 3; k++) {
            assert_int_equal(rd(f, fmt("norms/%s/dist_%s", site, stat[k]), &dist, NULL), 8);
            assert_int_equal(rd(f, fmt("norms/%s/rel_dist_%s", site, stat[k]), &rel, NULL), 8);
            for (int t = 0; t < 8; t++) {
                double diff = l2(b[k] + 32 * t, r[k] + 32 * t, 32);
                double rn = l2(r[k] + 32 * t, NULL, 32), want = rn > 0 ? diff / rn : NAN;
                SOFT(isnan(want) ? isnan(rel[t]) : fabs(rel[t] - want) <= 1e-5 * want + 1e-12,
                     "%s %s step %d rel_dist_%s "
                     "%.9g, from the vectors %.9g\n", norm, site, t + 1, stat[k], rel[t], want);
                SOFT(fabs(dist[t] - diff / 32) <= 1e-5 * diff / 32 + 1e-12,
                     "%s %s step %d dist_%s\n", norm, site, t + 1, stat[k]);
            }
            free(dist), free(rel);
        }
        for (int t = 0; t < 8 && strcmp(norm, "batch-official") == 0; t++)
            check_official_rows(b[0] + 32 * t, b[1] + 32 * t, b[2] + 32 * t,
                                round(128.0 * real[t] / all[t]), site, t + 1);
        for (int t = 0; t < 8 && strstr(norm, "--pn-groups"); t++)
            check_grouped_rows(b[2], r[2], t, site);
        for (int k = 0; k < 3; k++)
            free(b[k]), free(r[k]);
    }
    free(real), free(all);
    H5Fclose(f);
}

TEST(test_relative_distances_from_vectors)
{
    check_relative("batch");
    check_relative("batch-official");
    check_relative("power");
    check_relative("power --pn-groups 2");
    check_relative("layer");
}

/* ------------------------------------------------------------ 3: study --compare-release */

#define N_RUNS 6
static const char *const RUNS[N_RUNS] = {"batch", "batch-official",
                                         "batch-official-no-layer-scaling", "power",
                                         "power-official", "power-official-no-groups"};

/* Median of norms/<site>/<name> over rows with step/T in (lo, hi], T the last training step;
 * *pool (when given) collects the values. */
static double window(const NsLog *log, const char *site, const char *name, double T, double lo,
                     double hi, double **pool, size_t *count)
{
    size_t ns, nv, m = 0;
    double *st = series(log, fmt("norms/%s/step", site), &ns);
    double *v = series(log, fmt("norms/%s/%s", site, name), &nv);
    double *keep = ns_xmalloc(sizeof(double) * (nv + 1));
    for (size_t i = 0; i < ns && i < nv; i++)
        if (st[i] / T > lo && st[i] / T <= hi)
            keep[m++] = v[i];
    if (pool) {
        *pool = ns_xrealloc(*pool, sizeof(double) * (*count + m + 1));
        memcpy(*pool + *count, keep, sizeof(double) * m);
        *count += m;
    }
    double r = ns_quantile(keep, m, 0.5);
    free(st), free(v), free(keep);
    return r;
}

/* The CSV's columns as numbers (NaN for an empty field) and texts. */
typedef struct {
    char text[20][64];
} CsvRow;

static int csv_row(const char *csv, const char *run, CsvRow *row)
{
    const char *line = strstr(csv, fmt("\n%s,", run));
    if (!line)
        return -1;
    line++;
    int k = 0;
    for (const char *p = line; k < 20;) { /* fields may be empty, the last one too */
        size_t n = strcspn(p, ",\n");
        snprintf(row->text[k++], sizeof row->text[0], "%.*s", (int)n, p);
        if (p[n] != ',')
            break;
        p += n + 1;
    }
    return k == 20 ? 0 : -1;
}

static double csv_num(const CsvRow *row, int k)
{
    return row->text[k][0] ? strtod(row->text[k], NULL) : NAN;
}

static void expect(const CsvRow *row, int k, double want, const char *run, const char *what)
{
    double got = csv_num(row, k);
    SOFT(isnan(want) ? isnan(got) : fabs(got - want) <= 1e-9 * fabs(want) + 1e-15,
         "%s %s: release.csv %.17g, from the log %.17g\n", run, what, got, want);
}

static void check_run(const NsLog *log, const CsvRow *row, const char *md)
{
    const char *run = row->text[0];
    size_t n;
    double *steps = series(log, "steps/step", &n), T = steps[n - 1];
    free(steps);
    double *ppl = series(log, "eval/ppl", &n), best = ppl[0];
    for (size_t i = 1; i < n; i++)
        best = fmin(best, ppl[i]);
    expect(row, 1, T, run, "steps_done");
    expect(row, 2, ppl[n - 1], run, "final_ppl");
    expect(row, 3, best, run, "best_ppl");
    expect(row, 4, NAN, run, "diverged_step");
    SOFT(strstr(md, fmt("| %s | %.0f | %.4g | %.4g | - |", run, T, ppl[n - 1], best)) != NULL,
         "%s: release.md's training row\n", run);
    free(ppl);
    const char *stat = strstr(log->norm, "power") ? "psi2" : "var";
    SOFT(strcmp(row->text[5], stat) == 0, "%s: stat %s\n", run, row->text[5]);
    const char *first = TINY_SITES[0];
    char abs[32], rel[32]; /* fmt's buffers are reused */
    snprintf(abs, sizeof abs, "dist_%s", stat);
    snprintf(rel, sizeof rel, "rel_dist_%s", stat);
    SOFT(strcmp(row->text[6], first) == 0, "%s first site\n", run);
    expect(row, 7, window(log, first, abs, T, 0.0, 0.2, NULL, NULL), run, "abs_first");
    expect(row, 8, window(log, first, abs, T, 0.8, 1.0, NULL, NULL), run, "abs_last");
    expect(row, 9, window(log, first, rel, T, 0.0, 0.2, NULL, NULL), run, "rel_first");
    expect(row, 10, window(log, first, rel, T, 0.8, 1.0, NULL, NULL), run, "rel_last");
    int top = 0;
    double best_rel = -1.0, *pool = NULL, nu_last = NAN, nu_max = NAN;
    size_t count = 0;
    for (int s = 0; s < N_TINY_SITES; s++) {
        double v = window(log, TINY_SITES[s], rel, T, 0.8, 1.0, NULL, NULL);
        if (v > best_rel)
            best_rel = v, top = s;
        window(log, TINY_SITES[s], "grad_gain", T, 0.8, 1.0, &pool, &count);
        double *nu = series(log, fmt("norms/%s/nu_norm", TINY_SITES[s]), &n);
        for (size_t i = 0; i < n; i++)
            nu_max = isfinite(nu[i]) && !(nu[i] <= nu_max) ? nu[i] : nu_max;
        nu_last = n && !isnan(nu[n - 1]) && !(nu[n - 1] <= nu_last) ? nu[n - 1] : nu_last;
        free(nu);
    }
    SOFT(strcmp(row->text[11], TINY_SITES[top]) == 0, "%s largest site %s, expected %s\n", run,
         row->text[11], TINY_SITES[top]);
    expect(row, 12, window(log, TINY_SITES[top], abs, T, 0.8, 1.0, NULL, NULL), run,
           "max_abs_last");
    expect(row, 13, best_rel, run, "max_rel_last");
    const char *grad = strcmp(stat, "psi2") == 0 ? "g_psi2" : "g_sigma2";
    SOFT(strcmp(row->text[14], grad) == 0, "%s gradient %s\n", run, row->text[14]);
    expect(row, 15, window(log, first, grad, T, 0.0, 0.2, NULL, NULL), run, "grad_first");
    expect(row, 16, window(log, first, grad, T, 0.8, 1.0, NULL, NULL), run, "grad_last");
    expect(row, 17, ns_quantile(pool, count, 0.5), run, "gain_last");
    expect(row, 18, nu_last, run, "nu_last");
    expect(row, 19, nu_max, run, "nu_max");
    free(pool);
}

TEST(test_study_compare_release)
{
    const char *dir = scratch("release");
    Run r = run("study --compare-release --out %s " TINY_MODEL " --steps 30 --eval-every 10 "
                "--threads 1 --lipschitz-every 0 --probe-vectors-every 10", dir);
    assert_int_equal(r.code, 0);
    char *csv = slurp(fmt("%s/release.csv", dir), NULL);
    char *md = slurp(fmt("%s/release.md", dir), NULL);
    assert_non_null(csv);
    assert_non_null(md);
    NsLog logs[N_RUNS];
    const char *paths[N_RUNS];
    for (int i = 0; i < N_RUNS; i++)
        paths[i] = fmt("%s/runs/%s.h5", dir, RUNS[i]);
    open_logs(logs, paths, N_RUNS);
    for (int i = 0; i < N_RUNS; i++) {
        CsvRow row;
        SOFT(csv_row(csv, RUNS[i], &row) == 0, "release.csv has no full row %s\n", RUNS[i]);
        if (soft_failures == 0)
            check_run(&logs[i], &row, md);
    }
    long groups = -1, nols = -1;
    ns_log_attr_long(&logs[5], "pn_groups", &groups);
    ns_log_attr_long(&logs[2], "no_layer_scaling", &nols);
    SOFT(groups == 0 && nols == 1, "the ablations' settings\n");
    ns_log_attr_long(&logs[4], "pn_groups", &groups);
    SOFT(groups == 2, "the release's PN: groups = heads (%ld)\n", groups);
    close_logs(logs, N_RUNS);
    SOFT(strstr(md, "What does group scaling change") != NULL, "release.md answers\n");
    SOFT(file_contains(fmt("%s/figures/fluctuation-relative.dat", dir), "rel_dist_var"),
         "relative fluctuation figure\n");
    Run bad = run("study --compare-release --schemes batch --out %s", scratch("bad"));
    SOFT(bad.code == 2 && strstr(bad.err, "--schemes"), "--schemes refused: %s\n", bad.err);
    bad = run("study --compare-release --release-defaults --out %s", scratch("bad"));
    SOFT(bad.code == 2 && strstr(bad.err, "--release-defaults"), "refused: %s\n", bad.err);
    free(csv), free(md);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_momentum_default),
        cmocka_unit_test(test_release_defaults),
        cmocka_unit_test(test_no_layer_scaling),
        cmocka_unit_test(test_relative_distances_from_vectors),
        cmocka_unit_test(test_study_compare_release),
    };
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_filter_from_env();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
