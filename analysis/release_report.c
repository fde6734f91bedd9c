#include "release_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "stats.h"
#include "study_report.h"
#include "window.h"
#include "util.h"
#include "sanitize.h"

/* ------------------------------------------------------------------ measurements */



static void eval_outcome(const NsLog *log, NsReleaseRow *r)
{
    size_t n, m;
    double *ppl = ns_window_series(log, "eval/ppl", &n),
           *steps = ns_window_series(log, "steps/step", &m);
    r->final_ppl = n ? ppl[n - 1] : NAN;
    r->best_ppl = NAN;
    for (size_t i = 0; i < n; i++)
        if (!isnan(ppl[i]) && (isnan(r->best_ppl) || ppl[i] < r->best_ppl))
            r->best_ppl = ppl[i];
    r->steps_done = m ? steps[m - 1] : 0.0;
    NsRunOutcome o; /* the divergence step as every table judges it (outcome.h) */
    ns_run_outcome(log, &o);
    r->diverged_step = o.diverged_at;
    free(ppl);
    free(steps);
}

/* nu_norm of every site: the largest last value and the largest value ever. */
static void nu_outcome(const NsLog *log, char **sites, int n_sites, NsReleaseRow *r)
{
    r->nu_last = r->nu_max = NAN;
    for (int s = 0; s < n_sites; s++) {
        char p[NS_RUNLOG_PATH_LEN];
        size_t n;
        double *v =
            ns_window_series(log, ns_runlog_site_path(p, sizeof p, sites[s], "nu_norm"), &n);
        double mx = ns_finite_max(v, n), last = n ? v[n - 1] : NAN;
        if (!isnan(mx) && (isnan(r->nu_max) || mx > r->nu_max))
            r->nu_max = mx;
        if (!isnan(last) && (isnan(r->nu_last) || last > r->nu_last))
            r->nu_last = last;
        free(v);
    }
}


/* Distances at every site: the first site's, and those of the site with the largest
 * relative distance late in training. */
static void fluctuation(const NsLog *log, char **sites, int n_sites, NsReleaseRow *r)
{
    char abs_name[32], rel_name[32];
    snprintf(abs_name, sizeof abs_name, "dist_%s", r->stat);
    snprintf(rel_name, sizeof rel_name, "rel_dist_%s", r->stat);
    double T = r->steps_done;
    snprintf(r->first_site, sizeof r->first_site, "%s", sites[0]);
    r->abs_first = ns_window_site_median(log, sites[0], abs_name, T, 0.0, 0.2);
    r->abs_last = ns_window_site_median(log, sites[0], abs_name, T, 0.8, 1.0);
    r->rel_first = ns_window_site_median(log, sites[0], rel_name, T, 0.0, 0.2);
    r->rel_last = ns_window_site_median(log, sites[0], rel_name, T, 0.8, 1.0);
    r->max_rel_last = NAN;
    snprintf(r->max_site, sizeof r->max_site, "%s", sites[0]);
    for (int s = 0; s < n_sites; s++) {
        double rel = ns_window_site_median(log, sites[s], rel_name, T, 0.8, 1.0);
        if (!isnan(rel) && (isnan(r->max_rel_last) || rel > r->max_rel_last)) {
            r->max_rel_last = rel;
            snprintf(r->max_site, sizeof r->max_site, "%s", sites[s]);
        }
    }
    r->max_abs_last = ns_window_site_median(log, r->max_site, abs_name, T, 0.8, 1.0);
}

int ns_release_measure(const NsLog *log, NsReleaseRow *r, char *err)
{
    memset(r, 0, sizeof *r);
    char **sites = NULL;
    int n_sites = ns_log_sites(log, &sites);
    if (n_sites <= 0) {
        ns_log_free_sites(sites, n_sites > 0 ? n_sites : 0);
        return ns_fail(err, "%s: no norm sites recorded (run with the batch-stats and "
                            "gradients probes)", log->path);
    }
    eval_outcome(log, r);
    r->stat = ns_log_scheme_stat(log);
    r->grad = strcmp(r->stat, "psi2") == 0 ? "g_psi2" : "g_sigma2";
    fluctuation(log, sites, n_sites, r);
    r->grad_first = ns_window_site_median(log, sites[0], r->grad, r->steps_done, 0.0, 0.2);
    r->grad_last = ns_window_site_median(log, sites[0], r->grad, r->steps_done, 0.8, 1.0);
    r->gain_last =
        ns_window_sites_median(log, sites, n_sites, "grad_gain", r->steps_done, 0.8, 1.0);
    nu_outcome(log, sites, n_sites, r);
    ns_log_free_sites(sites, n_sites);
    return 0;
}

/* ------------------------------------------------------------------ the report */


static void write_settings(FILE *f, const NsLog *logs, const char *const *names, int n)
{
    fprintf(f, "## Runs\n\nSame data, seed and model; only the scheme and its settings differ.\n\n"
               "| run | --norm | bn_momentum | layer scaling | pn_groups | pn_warmup | "
               "release_defaults |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        double mom = NAN;
        long groups = 0, warm = 0, nols = 0, rel = 0;
        ns_log_attr_double(&logs[i], "bn_momentum", &mom);
        ns_log_attr_long(&logs[i], "pn_groups", &groups);
        ns_log_attr_long(&logs[i], "pn_warmup", &warm);
        ns_log_attr_long(&logs[i], "no_layer_scaling", &nols);
        ns_log_attr_long(&logs[i], "release_defaults", &rel);
        const NsNormScheme *sc = logs[i].scheme;
        int has_ls = sc && sc->groups == NS_GROUPS_LAYER, bn = sc && sc->bn_momentum > 0;
        int pn = sc && sc->groups == NS_GROUPS_OPTION;
        char m[32] = "-", g[32] = "-", w[32] = "-";
        if (bn)
            ns_window_num(m, sizeof m, mom);
        if (pn) {
            snprintf(g, sizeof g, groups ? "%ld" : "0 (none)", groups);
            snprintf(w, sizeof w, "%ld", warm);
        }
        char norm[sizeof logs[i].norm * 6];
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s |\n", names[i],
                ns_md_text(norm, sizeof norm, logs[i].norm), m,
                has_ls ? (nols ? "off" : "on") : "-", g, w, rel ? "yes" : "no");
    }
    fprintf(f, "\n");
}

static void write_training(FILE *f, const NsReleaseRow *rows, const char *const *names, int n)
{
    fprintf(f, "## Training\n\n| run | steps done | final valid ppl | best valid ppl | "
               "diverged at step |\n|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        char a[32], b[32], c[32];
        fprintf(f, "| %s | %.0f | %s | %s | %s |\n", names[i], rows[i].steps_done,
                ns_window_num(a, sizeof a, rows[i].final_ppl),
                ns_window_num(b, sizeof b, rows[i].best_ppl),
                isnan(rows[i].diverged_step) ? "-"
                                             : ns_window_num(c, sizeof c, rows[i].diverged_step));
    }
    fprintf(f, "\n");
}

static void write_fluctuation(FILE *f, const NsReleaseRow *rows, const char *const *names, int n)
{
    fprintf(f, "## Fluctuation of the batch statistics\n\nThe statistic each scheme normalizes "
               "by (var: sigma2_B, psi2: psi2_B) against its running value: the paper's "
               "absolute (1/d)||stat_B - running||_2 (`dist_*`) and the scale-free "
               "||stat_B - running||_2 / ||running||_2 (`rel_dist_*`); medians over the first "
               "and the last 20 %% of training. batch-official's statistics are the ones it "
               "used: over all rows, padding included, of its layer-scaled, mean-filled input."
               "\n\n| run | stat | first site | abs first 20 %% | abs last 20 %% | rel first "
               "20 %% | rel last 20 %% | site of largest rel | its abs last | its rel last |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const NsReleaseRow *r = &rows[i];
        char a[32], b[32], c[32], d[32], e[32], g[32];
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", names[i], r->stat,
                r->first_site, ns_window_num(a, sizeof a, r->abs_first),
                ns_window_num(b, sizeof b, r->abs_last), ns_window_num(c, sizeof c, r->rel_first),
                ns_window_num(d, sizeof d, r->rel_last), r->max_site,
                ns_window_num(e, sizeof e, r->max_abs_last),
                ns_window_num(g, sizeof g, r->max_rel_last));
    }
    fprintf(f, "\n");
}

static void write_gradients(FILE *f, const NsReleaseRow *rows, const char *const *names, int n)
{
    fprintf(f, "## Gradients through the statistics\n\n(1/d)||dL/dstat_B|| at the first site "
               "(g_sigma2 for BN, g_psi2 for PN: n/a where the scheme takes no gradient "
               "through the batch statistic, e.g. PN after its warm-up), the layers' gradient "
               "gain pooled over every site, and (1/d)||nu||: the largest last value over the "
               "sites and the largest ever.\n\n| run | gradient | first 20 %% | last 20 %% | "
               "grad_gain last 20 %% | nu_norm last | nu_norm max | diverged at step |\n"
               "|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const NsReleaseRow *r = &rows[i];
        char a[32], b[32], c[32], d[32], e[32], g[32];
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", names[i], r->grad,
                ns_window_num(a, sizeof a, r->grad_first), ns_window_num(b, sizeof b, r->grad_last),
                ns_window_num(c, sizeof c, r->gain_last), ns_window_num(d, sizeof d, r->nu_last),
                ns_window_num(e, sizeof e, r->nu_max),
                isnan(r->diverged_step) ? "-" : ns_window_num(g, sizeof g, r->diverged_step));
    }
    fprintf(f, "\n");
}

/* ------------------------------------------------------------------ the answers */

typedef struct {
    const char *paper, *release, *question;
} Pair;

static const Pair PAIRS[] = {
    {"batch", "batch-official",
     "What does the release's BN (layer scaling, mean-filled padding, all-row variance, "
     "momentum 0.05) change against the paper's BN?"},
    {"batch-official-no-layer-scaling", "batch-official",
     "What does layer scaling change in the release's BN (without -> with)?"},
    {"power", "power-official",
     "What does the release's PN (its backward, group scaling over H groups, PN warm-up = "
     "learning-rate warm-up) change against the paper's PN?"},
    {"power-official-no-groups", "power-official",
     "What does group scaling change in the release's PN (without -> with)?"},
};

static int find(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

static const char *diverged(char *buf, size_t n, double step)
{
    if (isnan(step))
        snprintf(buf, n, "no divergence");
    else
        snprintf(buf, n, "diverged at step %.0f", step);
    return buf;
}

static void write_answer(FILE *f, const Pair *p, const NsReleaseRow *a, const NsReleaseRow *b)
{
    char x[12][32];
    fprintf(f, "**%s** (`%s` -> `%s`)\n\n", p->question, p->paper, p->release);
    fprintf(f, "- training: final validation ppl %s -> %s, best %s -> %s; %s -> %s.\n",
            ns_window_num(x[0], 32, a->final_ppl), ns_window_num(x[1], 32, b->final_ppl),
            ns_window_num(x[2], 32, a->best_ppl), ns_window_num(x[3], 32, b->best_ppl),
            diverged(x[4], 32, a->diverged_step), diverged(x[5], 32, b->diverged_step));
    fprintf(f,
            "- fluctuation at %s, last 20 %%: relative %s (%s) -> %s (%s), %s-fold; "
            "absolute %s -> %s. Largest relative: %s at %s -> %s at %s.\n",
            a->first_site, ns_window_num(x[0], 32, a->rel_last), a->stat,
            ns_window_num(x[1], 32, b->rel_last), b->stat,
            ns_window_num(x[2], 32, b->rel_last / a->rel_last),
            ns_window_num(x[3], 32, a->abs_last), ns_window_num(x[4], 32, b->abs_last),
            ns_window_num(x[5], 32, a->max_rel_last), a->max_site,
            ns_window_num(x[6], 32, b->max_rel_last), b->max_site);
    fprintf(f,
            "- gradients: %s at %s, last 20 %%: %s -> %s (first 20 %%: %s -> %s); "
            "grad_gain %s -> %s; nu_norm max %s -> %s.\n\n",
            a->grad, a->first_site, ns_window_num(x[0], 32, a->grad_last),
            ns_window_num(x[1], 32, b->grad_last), ns_window_num(x[2], 32, a->grad_first),
            ns_window_num(x[3], 32, b->grad_first), ns_window_num(x[4], 32, a->gain_last),
            ns_window_num(x[5], 32, b->gain_last), ns_window_num(x[6], 32, a->nu_max),
            ns_window_num(x[7], 32, b->nu_max));
}

static void write_answers(FILE *f, const NsReleaseRow *rows, const char *const *names, int n)
{
    fprintf(f, "## What the release's choices change\n\nEach line compares two runs of the "
               "tables above (paper or ablation -> release).\n\n");
    for (size_t k = 0; k < sizeof PAIRS / sizeof PAIRS[0]; k++) {
        int a = find(names, n, PAIRS[k].paper), b = find(names, n, PAIRS[k].release);
        if (a >= 0 && b >= 0)
            write_answer(f, &PAIRS[k], &rows[a], &rows[b]);
    }
}

/* ------------------------------------------------------------------ files */

static void csv_num(FILE *f, double v)
{
    if (isnan(v))
        fprintf(f, ",");
    else
        fprintf(f, ",%.17g", v);
}

static int write_csv(const char *path, const NsReleaseRow *rows, const char *const *names, int n,
                     char *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ns_fail(err, "cannot write '%s'", path);
    fprintf(f, "run,steps_done,final_ppl,best_ppl,diverged_step,stat,first_site,abs_first,"
               "abs_last,rel_first,rel_last,max_site,max_abs_last,max_rel_last,grad,grad_first,"
               "grad_last,gain_last,nu_last,nu_max\n");
    for (int i = 0; i < n; i++) {
        const NsReleaseRow *r = &rows[i];
        fprintf(f, "%s", names[i]);
        double a[] = {r->steps_done, r->final_ppl, r->best_ppl, r->diverged_step};
        for (size_t k = 0; k < 4; k++)
            csv_num(f, a[k]);
        fprintf(f, ",%s,%s", r->stat, r->first_site);
        double b[] = {r->abs_first, r->abs_last, r->rel_first, r->rel_last};
        for (size_t k = 0; k < 4; k++)
            csv_num(f, b[k]);
        fprintf(f, ",%s", r->max_site);
        csv_num(f, r->max_abs_last);
        csv_num(f, r->max_rel_last);
        fprintf(f, ",%s", r->grad);
        double c[] = {r->grad_first, r->grad_last, r->gain_last, r->nu_last, r->nu_max};
        for (size_t k = 0; k < 5; k++)
            csv_num(f, c[k]);
        fprintf(f, "\n");
    }
    return fclose(f) == 0 ? 0 : ns_fail(err, "cannot write '%s'", path);
}

int ns_release_report(const char *out_dir, NsLog *logs, const char *const *names, int n,
                      char *err)
{
    NsReleaseRow *rows = ns_xcalloc((size_t)(n > 0 ? n : 1), sizeof *rows);
    char md[1100], csv[1100];
    snprintf(md, sizeof md, "%s/release.md", out_dir);
    snprintf(csv, sizeof csv, "%s/release.csv", out_dir);
    int rc = n > 0 ? 0 : ns_fail(err, "release report: no runs");
    for (int i = 0; i < n && rc == 0; i++)
        rc = ns_release_measure(&logs[i], &rows[i], err);
    FILE *f = rc == 0 ? fopen(md, "w") : NULL;
    if (rc == 0 && !f)
        rc = ns_fail(err, "cannot write '%s'", md);
    if (f) {
        fprintf(f, "# The authors' release against the paper (normscope study "
                   "--compare-release)\n\n");
        ns_study_report_config(f, &logs[0]);
        write_settings(f, logs, names, n);
        write_training(f, rows, names, n);
        write_fluctuation(f, rows, names, n);
        write_gradients(f, rows, names, n);
        write_answers(f, rows, names, n);
        fprintf(f, "Every number is in `release.csv` at full precision. Figures: "
                   "`figures/fluctuation*.png`, `figures/boxes*-forward.png` (absolute and "
                   "`-relative`), `figures/gradients.png`, `figures/training.png`.\n");
        if (fclose(f) != 0)
            rc = ns_fail(err, "cannot write '%s'", md);
    }
    if (rc == 0)
        rc = write_csv(csv, rows, names, n, err);
    free(rows);
    return rc;
}
