/* normscope compare: the side-by-side table of run logs (Markdown for people, CSV for
 * spreadsheets and pandas). Every number is recomputed from the logs' series; nothing is
 * taken from the engine. Conventions:
 *   - "last 20 %" = rows whose step lies in (0.8 S, S], S = the run's steps done (its last
 *     /steps/step), so a run that stopped early is summarised over the end of what it did;
 *   - missing data (no such series, no finite value) is "n/a" in Markdown and an empty CSV
 *     field, never 0; infinities print as inf (a perplexity can overflow);
 *   - Markdown numbers use %.4g, CSV numbers %.8g (enough to re-check them, still readable);
 *   - growth at a site = late / early median of the scheme's distance there (analysis/sites.h);
 *     every row names the site where it is largest beside the table's site;
 *   - runs that differ only in seed (analysis/seeds.h) are also summarised together, mean,
 *     standard deviation and n (compare_seeds.c), and then listed one by one only on request. */
#include "compare.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comparable.h"
#include "compare_rows.h"
#include "seeds.h"
#include "stats.h"
#include "sweep_summary.h"
#include "util.h"
#include "window.h"
#include "sanitize.h"

#define WINDOW_LO 0.8 /* the last 20 % of training */

#define N_DIST NS_N_DIST
static const char *const DIST_NAMES[N_DIST] = {"dist_mean", "dist_var", "dist_psi2"};
static const char *const TID_NAMES[N_DIST] = {"tid_mean", "tid_var", "tid_psi2"};
static const char *const FLOOR_NAMES[N_DIST] = {"tid_mean_floor", "tid_var_floor",
                                                "tid_psi2_floor"};

typedef NsCompareRow Row;

/* ------------------------------------------------------------------------------------------
 * Numbers from one log */

/* Final and best validation perplexity. Best ignores NaN but not inf: a run whose every
 * evaluation overflowed has best ppl inf, not n/a. */
static void eval_outcome(const NsLog *log, Row *r)
{
    size_t n = 0, np = 0;
    double *step = ns_window_series(log, "eval/step", &n);
    double *ppl = ns_window_series(log, "eval/ppl", &np);
    n = n < np ? n : np;
    r->final_ppl = n > 0 ? ppl[n - 1] : NAN;
    r->best_ppl = r->best_step = NAN;
    for (size_t i = 0; i < n; i++)
        if (!isnan(ppl[i]) && (isnan(r->best_ppl) || ppl[i] < r->best_ppl)) {
            r->best_ppl = ppl[i];
            r->best_step = step[i];
        }
    free(step);
    free(ppl);
}

static void site_measurements(const NsLog *log, const char *site, double max_step, Row *r)
{
    char group[NS_RUNLOG_PATH_LEN];
    ns_runlog_site_path(group, sizeof group, site, NULL);
    for (int k = 0; k < N_DIST; k++) {
        r->dist_med[k] =
            ns_window_quantile(log, group, DIST_NAMES[k], max_step, WINDOW_LO, 1.0, 0, 0.5);
        r->dist_p95[k] =
            ns_window_quantile(log, group, DIST_NAMES[k], max_step, WINDOW_LO, 1.0, 0, 0.95);
        r->tid_med[k] =
            ns_window_quantile(log, group, TID_NAMES[k], max_step, WINDOW_LO, 1.0, 0, 0.5);
        r->tid_floor[k] =
            ns_window_quantile(log, group, FLOOR_NAMES[k], max_step, WINDOW_LO, 1.0, 0, 0.5);
    }
}

static void compute_row(const NsLog *log, const char *site, char **sites, int nsites, Row *r)
{
    memset(r, 0, sizeof *r);
    NsRunOutcome o; /* steps done and planned, the first non-finite step (the sweep's too) */
    ns_run_outcome(log, &o);
    r->steps_done = o.steps_done;
    r->steps_total = o.steps_planned >= 0 ? (double)o.steps_planned : NAN;
    r->diverged_step = o.diverged_at;
    r->stab = o.stab;
    eval_outcome(log, r);
    double max_step = r->steps_done;
    r->has_site = 0;
    for (int s = 0; site && s < nsites; s++)
        r->has_site |= strcmp(sites[s], site) == 0;
    for (int k = 0; k < N_DIST; k++)
        r->dist_med[k] = r->dist_p95[k] = r->tid_med[k] = r->tid_floor[k] = NAN;
    if (r->has_site)
        site_measurements(log, site, max_step, r);
    r->grad_gain =
        ns_window_sites_median(log, sites, nsites, "grad_gain", max_step, WINDOW_LO, 1.0);
    r->beta = ns_window_quantile(log, NS_RUNLOG_LIPSCHITZ, "beta_smoothness", max_step, WINDOW_LO,
                                 1.0, 1, 0.5);
    r->hessian = ns_window_quantile(log, NS_RUNLOG_LIPSCHITZ, "hessian_top_eig", max_step,
                                    WINDOW_LO, 1.0, 1, 0.5);
    r->tokens_per_s =
        ns_window_quantile(log, NS_RUNLOG_STEPS, "tokens_per_s", max_step, WINDOW_LO, 1.0, 0, 0.5);
    if (ns_log_attr_double(log, "unk_rate_train", &r->unk_train) < 0)
        r->unk_train = NAN;
    if (ns_log_attr_double(log, "unk_rate_valid", &r->unk_valid) < 0)
        r->unk_valid = NAN;
    r->seed = ns_log_seed(log);
    char err[NS_ERRLEN];
    r->n_growth = ns_site_growths(log, &r->growth, err);
    if (r->n_growth < 0) { /* an unreadable site: the growth columns say n/a */
        fprintf(stderr, "normscope: warning: %s: per-site growth: %s\n", log->path, err);
        r->n_growth = 0;
    }
    r->growth_first = ns_compare_growth_at(r, site);
    r->growth_max = ns_site_growth_max(r->growth, r->n_growth);
}

double ns_compare_growth_at(const NsCompareRow *r, const char *site)
{
    for (int k = 0; site && k < r->n_growth; k++)
        if (strcmp(r->growth[k].site, site) == 0)
            return r->growth[k].growth;
    return NAN;
}

/* ------------------------------------------------------------------------------------------
 * Sites: which one the distance columns show, and warnings where runs differ */

typedef struct {
    char **names;
    int n;
} SiteList;

static int site_index(const SiteList *l, const char *site)
{
    for (int i = 0; site && i < l->n; i++)
        if (strcmp(l->names[i], site) == 0)
            return i;
    return -1;
}

/* Picks the site (the given one, or the first site of the first run with any, one of the
 * compared model shape's when it has sites) and warns for runs that lack it or record a
 * different set of sites. */
static int choose_site(NsLog *logs, const SiteList *lists, int n, const int *in_shape,
                       const char **site, NsText *notes, char *err)
{
    int ref = -1;
    for (int pass = 0; pass < 2 && ref < 0; pass++)
        for (int i = 0; i < n && ref < 0; i++)
            if (lists[i].n > 0 && (pass == 1 || in_shape[i]))
                ref = i;
    if (ref < 0) {
        if (*site)
            return ns_fail(err, "--site %s: none of the runs records norm sites (trained with "
                                "--probes none?)", *site);
        ns_text_note(notes, "no run records norm sites (trained with --probes none?): distance and "
                    "grad_gain columns are n/a");
        return 0;
    }
    int found = 0;
    for (int i = 0; i < n; i++)
        found |= site_index(&lists[i], *site) >= 0;
    if (*site && !found)
        return ns_fail(err, "--site %s: no run records this norm site (the first run's sites: "
                            "%s ... %s)", *site, lists[ref].names[0],
                       lists[ref].names[lists[ref].n - 1]);
    if (!*site)
        *site = lists[ref].names[0];
    for (int i = 0; i < n; i++) {
        if (site_index(&lists[i], *site) < 0)
            ns_text_note(notes, "run '%s' has no norm site '%s'%s: its distance columns are n/a",
                 logs[i].path, *site, lists[i].n ? "" : " (no /norms at all: --probes none?)");
        else if (i != ref)
            for (int s = 0; s < lists[i].n || s < lists[ref].n; s++) {
                int in_i = s < lists[i].n, in_ref = s < lists[ref].n;
                const char *a = in_i ? lists[i].names[s] : NULL;
                const char *b = in_ref ? lists[ref].names[s] : NULL;
                if (a && b && strcmp(a, b) == 0)
                    continue;
                ns_text_note(notes, "runs '%s' and '%s' record different norm sites (site '%s' is only "
                            "in '%s'); grad_gain pools each run's own sites",
                     logs[ref].path, logs[i].path, a ? a : b, a ? logs[i].path : logs[ref].path);
                break;
            }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Output */


static void md_header(NsText *t, int n, const char *site)
{
    ns_text_printf(t, "# normscope compare\n\nTable: %d run%s. Distances (1/d)||batch - running "
                   "statistic|| at norm site `%s`, median (med) and 95th percentile (p95) over "
                   "the last 20 %% of each run's steps, i.e. steps in (0.8 S, S] with S the steps "
                   "done; grad_gain: median over every norm site in that window; beta-smoothness "
                   "and Hessian top eigenvalue: median of the Lipschitz measurements in that "
                   "window (all of them if none falls in it); tokens/s: median in that window; "
                   "unk train/valid: share of <unk> tokens in the training and validation text; "
                   "growth: median of the scheme's distance (dist_var, PN family dist_psi2) over "
                   "the last fifth of the run divided by its median over the second fifth, at "
                   "`%s` and at the site where it is largest (`compare --site all` lists every "
                   "site); tid: the training-inference discrepancy at `%s` (Wang et al. 2022; "
                   "docs/runlog.md), median over the same window, beside the median of its "
                   "sampling floor, which assumes independent normal rows (past the first site "
                   "they are not, and models with other row counts have other floors). n/a: not "
                   "recorded.\n\n", n, n == 1 ? "" : "s", site ? site : "(none)",
                   site ? site : "(none)", site ? site : "(none)");
    ns_text_printf(t, "| run | scheme | position | seed | steps | final ppl | best ppl (step) | "
                   "diverged at | dist_mean med | dist_mean p95 | dist_var med | dist_var p95 "
                   "| dist_psi2 med | dist_psi2 p95 | grad_gain med | beta-smoothness med | "
                   "Hessian top eig med | tokens/s med | unk train | unk valid | growth | "
                   "largest growth (site) | tid_mean med | tid_mean floor | tid_var med | "
                   "tid_var floor | tid_psi2 med | tid_psi2 floor |\n");
    ns_text_printf(t, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                   "---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
}

/* A share as a percentage, n/a when absent. */
static const char *percent(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "n/a");
    else
        snprintf(buf, len, "%.1f %%", 100.0 * v);
    return buf;
}

static void md_row(NsText *t, const NsLog *log, const Row *r)
{
    char a[32], b[32], seed[24];
    ns_text_printf(t, "| ");
    ns_text_md(t, log->path);
    if (isnan(r->steps_total))
        snprintf(a, sizeof a, "n/a");
    else
        snprintf(a, sizeof a, "%.0f", r->steps_total); /* counts in full, not %.4g */
    if (r->seed < 0)
        snprintf(seed, sizeof seed, "n/a");
    else
        snprintf(seed, sizeof seed, "%ld", r->seed);
    char norm[sizeof log->norm * 6], position[sizeof log->position * 6];
    ns_text_printf(t, " | %s | %s | %s | %.0f / %s | %s | ",
                   ns_md_text(norm, sizeof norm, log->norm),
                   ns_md_text(position, sizeof position, log->position), seed, r->steps_done, a,
                   ns_window_num(b, sizeof b, r->final_ppl));
    if (isnan(r->best_ppl))
        ns_text_printf(t, "n/a | ");
    else
        ns_text_printf(t, "%s (%.0f) | ", ns_window_num(a, sizeof a, r->best_ppl), r->best_step);
    if (isnan(r->diverged_step))
        ns_text_printf(t, "- |");
    else
        ns_text_printf(t, "%.0f |", r->diverged_step);
    for (int k = 0; k < N_DIST; k++)
        ns_text_printf(t, " %s | %s |", ns_window_num(a, sizeof a, r->dist_med[k]),
                       ns_window_num(b, sizeof b, r->dist_p95[k]));
    const double tail[] = {r->grad_gain, r->beta, r->hessian, r->tokens_per_s};
    for (size_t k = 0; k < sizeof tail / sizeof tail[0]; k++)
        ns_text_printf(t, " %s |", ns_window_num(a, sizeof a, tail[k]));
    ns_text_printf(t, " %s |", percent(a, sizeof a, r->unk_train));
    ns_text_printf(t, " %s |", percent(a, sizeof a, r->unk_valid));
    ns_text_printf(t, " %s |", ns_window_num(a, sizeof a, r->growth_first));
    if (r->growth_max < 0)
        ns_text_printf(t, " n/a |");
    else
        ns_text_printf(t, " %s (`%s`) |",
                       ns_window_num(a, sizeof a, r->growth[r->growth_max].growth),
                       r->growth[r->growth_max].site);
    for (int k = 0; k < N_DIST; k++)
        ns_text_printf(t, " %s | %s |", ns_window_num(a, sizeof a, r->tid_med[k]),
                       ns_window_num(b, sizeof b, r->tid_floor[k]));
    ns_text_printf(t, "\n");
}

static void csv_row(FILE *f, const NsLog *log, const Row *r, const char *site)
{
    char a[32], b[32];
    ns_csv_text(f, log->path);
    fputc(',', f);
    ns_csv_text(f, log->norm);
    fputc(',', f);
    ns_csv_text(f, log->position);
    fprintf(f, ",%s", ns_csv_num(a, sizeof a, r->seed < 0 ? NAN : (double)r->seed));
    fprintf(f, ",%d", r->group);
    const double head[] = {r->steps_done, r->steps_total, r->final_ppl, r->best_ppl,
                           r->best_step, r->diverged_step};
    for (size_t k = 0; k < sizeof head / sizeof head[0]; k++)
        fprintf(f, ",%s", ns_csv_num(a, sizeof a, head[k]));
    fputc(',', f);
    ns_csv_text(f, r->has_site ? site : "");
    for (int k = 0; k < N_DIST; k++)
        fprintf(f, ",%s,%s", ns_csv_num(a, sizeof a, r->dist_med[k]),
                ns_csv_num(b, sizeof b, r->dist_p95[k]));
    const double tail[] = {r->grad_gain, r->beta,      r->hessian,     r->tokens_per_s,
                           r->unk_train, r->unk_valid, r->growth_first};
    for (size_t k = 0; k < sizeof tail / sizeof tail[0]; k++)
        fprintf(f, ",%s", ns_csv_num(a, sizeof a, tail[k]));
    int m = r->growth_max;
    fprintf(f, ",%s,", ns_csv_num(a, sizeof a, m < 0 ? NAN : r->growth[m].growth));
    ns_csv_text(f, m < 0 ? "" : r->growth[m].site);
    for (int k = 0; k < N_DIST; k++)
        fprintf(f, ",%s,%s", ns_csv_num(a, sizeof a, r->tid_med[k]),
                ns_csv_num(b, sizeof b, r->tid_floor[k]));
    fprintf(f, ",%d\n", r->stab.unstable ? 1 : 0);
}

static int write_csv(const char *path, NsLog *logs, const Row *rows, int n, const char *site,
                     char *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ns_fail(err, "cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "run,scheme,position,seed,seed_group,steps_done,steps_total,final_ppl,best_ppl,"
               "best_ppl_step,divergence_step,site,dist_mean_median,dist_mean_p95,"
               "dist_var_median,dist_var_p95,dist_psi2_median,dist_psi2_p95,grad_gain_median,"
               "beta_smoothness_median,hessian_top_eig_median,tokens_per_s_median,"
               "unk_rate_train,unk_rate_valid,growth,max_growth,max_growth_site,"
               "tid_mean_median,tid_mean_floor_median,tid_var_median,tid_var_floor_median,"
               "tid_psi2_median,tid_psi2_floor_median,unstable\n");
    for (int i = 0; i < n; i++)
        csv_row(f, &logs[i], &rows[i], site);
    if (fclose(f) != 0)
        return ns_fail(err, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Entry points */

/* The Markdown: the per-run table (unless seed groups are summarised and runs not asked for),
 * the seed aggregates, every site, the notes. */
static void write_markdown(NsText *md, NsLog *logs, const Row *rows, int n, int n_groups,
                           const char *site, const NsCompareOptions *o, const NsText *notes)
{
    int seeds = n_groups < n;
    md_header(md, n, site);
    if (seeds && !o->list_runs) { /* the header stays: it explains the columns */
        md->len = strstr(md->s, "| run |") - md->s;
        md->s[md->len] = '\0';
        ns_text_printf(md, "(%d runs in %d groups that differ only in seed: summarised below; "
                       "`--runs` lists every run.)\n", n, n_groups);
    } else {
        for (int i = 0; i < n; i++)
            md_row(md, &logs[i], &rows[i]);
    }
    if (seeds)
        ns_compare_seeds_md(md, logs, rows, n, n_groups, site);
    if (o->all_sites)
        ns_compare_sites_md(md, logs, rows, n, n_groups, seeds && !o->list_runs);
    if (notes->len)
        ns_text_printf(md, "\nNotes:\n\n%s", notes->s);
}

/* Notes for runs of other model shapes (left out of the distance columns) and unstable runs. */
static void note_comparability(NsLog *logs, int n, const Row *rows, NsText *notes)
{
    NsText t = {0};
    if (ns_comparable_text(&t, logs, n))
        ns_text_note(notes, "the distance columns need runs of one model shape; %s", t.s);
    ns_text_free(&t);
    for (int i = 0; i < n; i++) {
        char why[300];
        ns_stability_text(&rows[i].stab, why, sizeof why);
        if (why[0] && isnan(rows[i].diverged_step))
            ns_text_note(notes, "run '%s' is unstable: %s (analysis/outcome.h); its distances "
                         "show instability, not the paper's effect", logs[i].path, why);
    }
}

static int write_outputs(NsLog *logs, const Row *rows, int n, int n_groups, const char *site,
                         const NsCompareOptions *o, const char *out_prefix, int print,
                         const NsText *notes, char *err)
{
    NsText md = {0};
    char path[1100];
    write_markdown(&md, logs, rows, n, n_groups, site, o, notes);
    snprintf(path, sizeof path, "%s.md", out_prefix);
    int rc = ns_text_write(path, &md, err);
    snprintf(path, sizeof path, "%s.csv", out_prefix);
    if (rc == 0)
        rc = write_csv(path, logs, rows, n, site, err);
    snprintf(path, sizeof path, "%s-seeds.csv", out_prefix);
    if (rc == 0 && n_groups < n)
        rc = ns_compare_seeds_csv(path, logs, rows, n, n_groups, site, err);
    snprintf(path, sizeof path, "%s-sites.csv", out_prefix);
    if (rc == 0 && o->all_sites)
        rc = ns_compare_sites_csv(path, logs, rows, n, err);
    if (rc == 0 && print)
        fwrite(md.s, 1, md.len, stdout);
    ns_text_free(&md);
    return rc;
}

int ns_compare_opts(NsLog *logs, int n, const NsCompareOptions *opt, const char *out_prefix,
                    int print, char *err)
{
    if (n < 1)
        return ns_fail(err, "compare needs at least one run log");
    NsCompareOptions o = opt ? *opt : (NsCompareOptions){0};
    const char *site = o.site;
    if (site && strcmp(site, "all") == 0)
        o.all_sites = 1, site = NULL;
    SiteList *lists = ns_xcalloc((size_t)n, sizeof *lists);
    for (int i = 0; i < n; i++)
        lists[i].n = ns_log_sites(&logs[i], &lists[i].names);
    NsText notes = {0};
    Row *rows = ns_xcalloc((size_t)n, sizeof *rows);
    int *group = ns_xcalloc((size_t)n, sizeof *group);
    int *in_shape = ns_xcalloc((size_t)n, sizeof *in_shape);
    /* "/norms/layers/0/norm1" and "norms/layers/0/norm1" name the site "layers/0/norm1". */
    site = site ? ns_runlog_site_name(site) : NULL;
    ns_comparable_mask(logs, n, in_shape);
    int rc = choose_site(logs, lists, n, in_shape, &site, &notes, err);
    if (rc == 0) {
        int n_groups = ns_seed_groups(logs, n, group);
        for (int i = 0; i < n; i++) {
            compute_row(&logs[i], in_shape[i] ? site : NULL, lists[i].names, lists[i].n,
                        &rows[i]);
            rows[i].group = group[i];
        }
        note_comparability(logs, n, rows, &notes);
        rc = write_outputs(logs, rows, n, n_groups, site, &o, out_prefix, print, &notes, err);
    }
    for (int i = 0; i < n; i++) {
        ns_log_free_sites(lists[i].names, lists[i].n);
        free(rows[i].growth);
    }
    free(lists);
    free(rows);
    free(group);
    free(in_shape);
    ns_text_free(&notes);
    return rc;
}

int ns_compare_site(NsLog *logs, int n, const char *site, const char *out_prefix, int print,
                    char *err)
{
    NsCompareOptions o = {.site = site};
    return ns_compare_opts(logs, n, &o, out_prefix, print, err);
}

int ns_compare(NsLog *logs, int n, const char *out_prefix, int print, char *err)
{
    return ns_compare_site(logs, n, NULL, out_prefix, print, err);
}
