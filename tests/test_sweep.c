/* Tests of the per-site fluctuation summary (analysis/sites.h) and of `normscope sweep` (its
 * runner, table and onset map) on tiny grids: every number recomputed here from the logs with
 * plain series reads and a median of our own; cells kept, resumed after a stop and after an
 * extension of --steps; bad grids refused with one line before anything runs; and `study`
 * on the same runner (seeds, jobs, no duplicate BN-vs-PN-V figure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "logs.h"
#include "sites.h"
#include "util.h"

/* ------------------------------------------------------------------------------------------
 * Expected values */

/* Median of the finite values of norms/<site>/<name> whose step / last is in (lo, hi]. */
static double window_median(const NsLog *log, const char *site, const char *name, double last,
                            double lo, double hi)
{
    return window_median_of(log, fmt("norms/%s", site), name, last, lo, hi);
}

static double same(double a, double b)
{
    return (isnan(a) && isnan(b)) || fabs(a - b) <= 1e-12 * fmax(1.0, fabs(b));
}

static void check_growths(const char *path, const char *stat)
{
    NsLog log;
    open_logs(&log, &path, 1);
    NsSiteGrowth *g;
    char err[NS_ERRLEN];
    int n = ns_site_growths(&log, &g, err);
    size_t nl;
    double *steps = series(&log, "steps/step", &nl), last = steps[nl - 1];
    free(steps);
    SOFT(n == N_TINY_SITES, "%s: %d sites, want %d", path, n, N_TINY_SITES);
    for (int i = 0; i < n && i < N_TINY_SITES; i++) {
        SOFT(strcmp(g[i].site, TINY_SITES[i]) == 0, "site %d: %s", i, g[i].site);
        SOFT(strcmp(g[i].stat, stat) == 0, "%s: stat %s, want %s", path, g[i].stat, stat);
        double e = window_median(&log, g[i].site, stat, last, 0.2, 0.4);
        double l = window_median(&log, g[i].site, stat, last, 0.8, 1.0);
        double gr = e > 0 && !isnan(l) ? l / e : NAN;
        SOFT(same(g[i].early, e) && same(g[i].late, l) && same(g[i].growth, gr),
             "%s %s: %g %g %g, want %g %g %g", path, g[i].site, g[i].early, g[i].late,
             g[i].growth, e, l, gr);
        SOFT(isfinite(g[i].growth), "%s %s: growth %g", path, g[i].site, g[i].growth);
    }
    int best = ns_site_growth_max(g, n);
    for (int i = 0; i < n; i++)
        SOFT(best >= 0 && !(g[i].growth > g[best].growth), "max %d not the largest", best);
    free(g);
    close_logs(&log, 1);
}

TEST(test_site_growths_recomputed)
{
    check_growths(g_batch, "dist_var");
    check_growths(g_pv, "dist_psi2");
    check_growths(g_ln, "dist_var"); /* the probe's own running averages */
}

TEST(test_site_growths_without_probe)
{
    NsLog log;
    open_logs(&log, &g_none, 1);
    NsSiteGrowth *g = (NsSiteGrowth *)1;
    char err[NS_ERRLEN] = "";
    SOFT(ns_site_growths(&log, &g, err) == 0 && g == NULL && err[0] == 0,
         "a log without the probe: sites or error '%s'", err);
    close_logs(&log, 1);
}

TEST(test_site_growth_max)
{
    NsSiteGrowth g[4] = {{.growth = NAN}, {.growth = 1.5}, {.growth = 3.0}, {.growth = NAN}};
    SOFT(ns_site_growth_max(g, 4) == 2, "max of 4");
    SOFT(ns_site_growth_max(g, 1) == -1, "NaN only");
    SOFT(ns_site_growth_max(g, 0) == -1, "none");
}


/* ------------------------------------------------------------------------------------------
 * sweep: the table and the map, recomputed */

#define SWEEP_FLAGS TINY_MODEL " --eval-every 10 --log-every 1000"

/* The growth columns of a log: the site whose late/early ratio is largest, and there the same
 * ratio of the scale-free rel_dist_*. */
static void expected_growth(const NsLog *log, double *growth, char *site, double *late,
                            double *rel_growth)
{
    const char *stat = strcmp(ns_log_scheme_stat(log), "psi2") == 0 ? "dist_psi2" : "dist_var";
    size_t nl;
    double *steps = series(log, "steps/step", &nl), last = steps[nl - 1];
    free(steps);
    *growth = *late = NAN;
    site[0] = 0;
    for (int i = 0; i < N_TINY_SITES; i++) {
        double e = window_median(log, TINY_SITES[i], stat, last, 0.2, 0.4);
        double l = window_median(log, TINY_SITES[i], stat, last, 0.8, 1.0);
        double g = e > 0 && !isnan(l) ? l / e : NAN;
        if (!isnan(g) && (isnan(*growth) || g > *growth)) {
            *growth = g, *late = l, strcpy(site, TINY_SITES[i]);
            char rel[32];
            snprintf(rel, sizeof rel, "rel_%s", stat);
            double re = window_median(log, TINY_SITES[i], rel, last, 0.2, 0.4);
            double rl = window_median(log, TINY_SITES[i], rel, last, 0.8, 1.0);
            *rel_growth = re > 0 && !isnan(rl) ? rl / re : NAN;
        }
    }
}

static double divergence_bound(long vocab) { return 10.0 * log((double)vocab); }

/* The first step whose loss (or training gradient norm) is not finite or whose loss is above
 * 10 ln(vocab_size) (analysis/outcome.h). */
static double first_bad(const NsLog *log, const char *group)
{
    size_t n, nl, ng = 0;
    long vocab = 0;
    ns_log_attr_long(log, "vocab_size", &vocab);
    const double bound = divergence_bound(vocab);
    double *st = series(log, fmt("%s/step", group), &n), *loss = series(log, fmt("%s/loss", group), &nl);
    double *gn = strcmp(group, "steps") ? NULL : series(log, "steps/grad_norm", &ng), r = NAN;
    for (size_t i = 0; i < n && i < nl && isnan(r); i++)
        if (!isfinite(loss[i]) || loss[i] > bound ||
            (i < ng && !isfinite(gn[i])))
            r = st[i];
    free(st), free(loss), free(gn);
    return r;
}

/* Median of steps/<name> over the fifth k of the run (steps in (k/5, (k+1)/5] of the last). */
static double steps_fifth(const NsLog *log, const char *name, int k)
{
    return window_median_of(log, "steps", name, 0, k / 5.0, (k + 1) / 5.0);
}

/* analysis/outcome.h's verdict: a fifth's median loss > 1.05 x the lowest earlier one, or the
 * last fifth's median gradient norm >= 100 x the second fifth's. */
static int expected_unstable(const NsLog *log)
{
    double low = NAN;
    for (int k = 0; k < 5; k++) {
        double v = steps_fifth(log, "loss", k);
        if (!isnan(low) && v > 1.05 * low)
            return 1;
        if (isnan(low) || v < low)
            low = v;
    }
    return steps_fifth(log, "grad_norm", 4) >= 100.0 * steps_fifth(log, "grad_norm", 1);
}

static int close_num(const char *text, double want)
{
    if (isnan(want))
        return text[0] == 0;
    return text[0] && fabs(strtod(text, NULL) - want) <= 1e-5 * fmax(1e-12, fabs(want));
}

/* Splits a CSV line in place. */
static int fields(char *line, char **f, int cap)
{
    int n = 0;
    for (char *p = line; n < cap; ) {
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c)
            break;
        *c = 0, p = c + 1;
    }
    return n;
}

/* Checks DIR/sweep.csv (keys norm, dropout) against the logs; returns the rows checked. */
static int check_csv(const char *dir, char growths[][32], char logs[][256])
{
    char *csv = slurp(scratch(fmt("%s/sweep.csv", dir)), NULL);
    int rows = 0, header = 0;
    for (char *line = strtok(csv, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *f[16];
        int n = fields(line, f, 16);
        if (!header++) {
            SOFT(n == 10 && !strcmp(f[0], "norm") && !strcmp(f[1], "dropout") &&
                 !strcmp(f[2], "final_ppl") && !strcmp(f[4], "unstable") &&
                 !strcmp(f[6], "rel_growth") && !strcmp(f[9], "minutes"), "CSV header");
            continue;
        }
        SOFT(n == 10, "CSV row with %d fields", n);
        if (n != 10)
            continue;
        snprintf(logs[rows], 256, "%s/runs/norm-%s_dropout-%s.h5", dir, f[0], f[1]);
        const char *path = scratch(logs[rows]);
        NsLog log;
        open_logs(&log, &path, 1);
        size_t np, nw;
        double *ppl = series(&log, "eval/ppl", &np), *wall = series(&log, "steps/wall_time", &nw);
        double minutes = 0;
        for (size_t i = 0; i < nw; i++)
            if (i + 1 == nw || wall[i + 1] < wall[i])
                minutes += wall[i] / 60.0;
        double div = first_bad(&log, "steps"), ediv = first_bad(&log, "eval");
        if (isnan(div) || ediv < div)
            div = ediv;
        double growth, late, rel_growth = NAN;
        char site[64];
        expected_growth(&log, &growth, site, &late, &rel_growth);
        SOFT(close_num(f[2], ppl[np - 1]), "%s final_ppl %s, want %g", path, f[2], ppl[np - 1]);
        SOFT(close_num(f[3], div), "%s diverged_at '%s', want %g", path, f[3], div);
        SOFT(!strcmp(f[4], expected_unstable(&log) ? "1" : "0"), "%s unstable %s", path, f[4]);
        SOFT(close_num(f[5], growth) && !strcmp(f[7], site) && close_num(f[8], late),
             "%s growth %s at %s, last %s; want %g at %s, %g", path, f[5], f[7], f[8], growth,
             site, late);
        SOFT(close_num(f[6], rel_growth) && isfinite(rel_growth), "%s rel_growth %s, want %g",
             path, f[6], rel_growth);
        SOFT(close_num(f[9], minutes), "%s minutes %s, want %g", path, f[9], minutes);
        snprintf(growths[rows], 32, "%s", f[5]);
        free(ppl), free(wall);
        close_logs(&log, 1);
        rows++;
    }
    free(csv);
    return rows;
}

/* Every row of onset.dat has its cell's growth exactly as the CSV prints it. */
static void check_map(const char *dir, char growths[][32], char logs[][256], int n)
{
    char *dat = slurp(scratch(fmt("%s/onset.dat", dir)), NULL);
    int seen = 0;
    for (char *line = strtok(dat, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || !line[0])
            continue;
        char g[64], d[64], label[64], path[512];
        int x, y;
        if (sscanf(line, "%d %d %63s %63s %63s %511s", &x, &y, g, d, label, path) != 6) {
            SOFT(0, "onset.dat row '%s'", line);
            continue;
        }
        for (int i = 0; i < n; i++)
            if (!strcmp(path, logs[i])) {
                SOFT(!strcmp(g, growths[i][0] ? growths[i] : "NaN"), "%s: map %s, CSV %s", path,
                     g, growths[i]);
                seen++;
            }
    }
    SOFT(seen == n, "onset.dat has %d of %d cells", seen, n);
    free(dat);
}

TEST(test_sweep_table_map_and_reuse)
{
    const char *grid = "sweep --grid norm=batch,power-v --grid dropout=0,0.1 --jobs 2 --out sw";
    Run r = run("%s " SWEEP_FLAGS " --steps 30", grid);
    SOFT(r.code == 0, "sweep: exit %d: %s", r.code, last_line(r.err));
    char growths[8][32], logs[8][256];
    SOFT(check_csv("sw", growths, logs) == 4, "4 rows");
    check_map("sw", growths, logs, 4);
    SOFT(file_contains(scratch("sw/sweep.md"), "| norm | dropout | final_ppl |"), "sweep.md");
    SOFT(strstr(r.err, "4 new") != NULL, "plan: %s", r.err);

    /* again: every cell is kept, its log untouched */
    size_t before_len;
    char *before = slurp(scratch("sw/runs/norm-batch_dropout-0.h5"), &before_len);
    Run again = run("%s " SWEEP_FLAGS " --steps 30", grid);
    size_t after_len;
    char *after = slurp(scratch("sw/runs/norm-batch_dropout-0.h5"), &after_len);
    SOFT(again.code == 0 && strstr(again.err, "4 to keep") && !strstr(again.err, "training "),
         "second sweep: exit %d: %s", again.code, again.err);
    SOFT(before_len == after_len && !memcmp(before, after, before_len), "a kept log changed");
    free(before), free(after);

    /* more steps: every cell resumes from its checkpoint and its log goes on */
    Run more = run("%s " SWEEP_FLAGS " --steps 50", grid);
    SOFT(more.code == 0 && strstr(more.err, "4 to resume"), "extended: exit %d: %s", more.code,
         more.err);
    hid_t f = open_ro(scratch("sw/runs/norm-power-v_dropout-0.1.h5"));
    SOFT(upto(f, "steps/step") == 50, "resumed log steps: %ld", upto(f, "steps/step"));
    H5Fclose(f);
    SOFT(check_csv("sw", growths, logs) == 4, "4 rows after the resume");
    check_map("sw", growths, logs, 4);

    /* a changed setting is not taken for the same cell */
    Run other = run("%s " SWEEP_FLAGS " --steps 50 --lr 2e-3", grid);
    SOFT(other.code == 1 && strstr(other.err, "--lr differs"),
         "other settings: exit %d: %s", other.code, other.err);

    /* a vocabulary cap the corpus does not fill: the log's vocab_size is the vocabulary built,
     * its vocab_cap the cap asked for, and a second run over the finished cells takes them as
     * they are (it once refused them: "--vocab-size differs") */
    const char *small = "sweep --grid norm=batch --out cap " SWEEP_FLAGS " --steps 5 "
                        "--vocab-size 100000";
    Run first = run("%s", small), second = run("%s", small);
    SOFT(first.code == 0 && second.code == 0 && strstr(second.err, "1 to keep") != NULL,
         "rerun with an unfilled cap: exit %d then %d: %s", first.code, second.code,
         last_line(second.err));
}

TEST(test_sweep_interrupted_resumes)
{
    pid_t pid = spawn((Io){scratch("int.out"), scratch("int.err"), NULL},
                      "sweep --grid norm=batch --out si " SWEEP_FLAGS " --steps 600");
    double t0 = now();
    while (!file_contains(scratch("si/runs/norm-batch.out"), "normscope train:") && now() - t0 < 60)
        sleep_ms(50);
    sleep_ms(700); /* past the child's start-up, into its steps */
    kill(pid, SIGINT);
    int code = wait_exit(pid, 120);
    char *err = keep(slurp(scratch("int.err"), NULL));
    SOFT(code == 130 && strstr(last_line(err), "run the same command again"),
         "interrupted sweep: exit %d: %s", code, err);
    SOFT(file_exists(scratch("si/runs/norm-batch.ckpt.h5")), "no checkpoint after the stop");
    Run r = run("sweep --grid norm=batch --out si " SWEEP_FLAGS " --steps 600");
    SOFT(r.code == 0 && strstr(r.err, "1 to resume"), "resumed: exit %d: %s", r.code, r.err);
    hid_t f = open_ro(scratch("si/runs/norm-batch.h5"));
    SOFT(upto(f, "steps/step") == 600, "resumed log: %ld", upto(f, "steps/step"));
    H5Fclose(f);
}

TEST(test_sweep_bad_grids)
{
    static const struct {
        const char *args, *says;
    } CASES[] = {
        {"--grid nosuch=1,2", "'nosuch' is not a flag of normscope train"},
        {"--grid lr=", "empty list"},
        {"--grid lr=1e-3,,3e-3", "empty value"},
        {"--grid lr=1e-3,fast", "cell lr-fast: --lr"},
        {"--grid d-model=32,31", "cell d-model-31: --d-model 31"},
        {"--grid norm=batch,bogus", "unknown value 'bogus'"},
        {"--grid lr=1e-3 --grid lr=2e-3", "given twice"},
        {"--grid lr=1e-3,2e-3 --map-x layers", "--map-x 'layers' is not a --grid key"},
        {"--grid lr=1e-3 --resume x.ckpt.h5", "resumes interrupted cells itself"},
        {"--out bad", "at least one --grid"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        Run r = run("sweep --out bad %s " SWEEP_FLAGS " --steps 5", CASES[i].args);
        const char *nl = strchr(r.err, '\n');
        SOFT(r.code == 2 && strstr(r.err, CASES[i].says) && nl && !nl[1], /* one line */
             "%s: exit %d: %s", CASES[i].args, r.code, r.err);
        SOFT(!file_exists(scratch("bad")), "%s: created the output directory", CASES[i].args);
    }
}

/* ------------------------------------------------------------------------------------------
 * study on the runner */

TEST(test_study_seeds_and_jobs)
{
    Run r = run("study --schemes batch,power-v --seeds 1,2 --jobs 2 --out st " TINY_MODEL
                " --steps 30 --eval-every 10 --lipschitz-every 0 --probe-vectors-every 10");
    SOFT(r.code == 0, "study: exit %d: %s", r.code, last_line(r.err));
    const char *names[] = {"batch-s1", "batch-s2", "power-v-s1", "power-v-s2"};
    for (int i = 0; i < 4; i++) {
        NsLog log;
        const char *path = scratch(fmt("st/runs/%s.h5", names[i]));
        SOFT(file_exists(path), "no %s", path);
        if (!file_exists(path))
            continue;
        open_logs(&log, &path, 1);
        long seed = 0;
        ns_log_attr_long(&log, "seed", &seed);
        SOFT(seed == 1 + i % 2, "%s: seed %ld", names[i], seed);
        close_logs(&log, 1);
    }
    SOFT(!file_exists(scratch("st/figures/boxes-bn-vs-pnv-forward.png")),
         "the BN-vs-PN-V boxes duplicate `boxes` in a BN and PN-V study");
    Run again = run("study --schemes batch,power-v --seeds 1,2 --jobs 2 --out st --reuse-runs "
                    TINY_MODEL " --steps 30 --eval-every 10 --lipschitz-every 0 "
                    "--probe-vectors-every 10");
    SOFT(again.code == 0 && strstr(again.err, "4 to keep"), "reuse: exit %d: %s", again.code,
         again.err);
    Run replace = run("study --schemes batch --out st2 " TINY_MODEL " --steps 20");
    Run replace2 = run("study --schemes batch --out st2 " TINY_MODEL " --steps 20");
    SOFT(replace.code == 0 && replace2.code == 0 && strstr(replace2.err, "replacing"),
         "replace: exit %d/%d: %s", replace.code, replace2.code, replace2.err);
    Run both = run("study --seeds 1,2 --seed 3 --out st3 " TINY_MODEL);
    SOFT(both.code == 2 && strstr(both.err, "not both"), "--seed with --seeds: %s", both.err);
}

/* ------------------------------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    return train_analysis_logs(LOG_BATCH | LOG_PV | LOG_LN | LOG_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_site_growths_recomputed),
        cmocka_unit_test(test_site_growths_without_probe),
        cmocka_unit_test(test_site_growth_max),
        cmocka_unit_test(test_sweep_bad_grids),
        cmocka_unit_test(test_sweep_table_map_and_reuse),
        cmocka_unit_test(test_sweep_interrupted_resumes),
        cmocka_unit_test(test_study_seeds_and_jobs),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, setup, group_teardown);
}
