/* normscope compare: the side-by-side table of run logs (Markdown for people, CSV for
 * spreadsheets and pandas). Every number is recomputed from the logs' series; nothing is
 * taken from the engine. Conventions:
 *   - "last 20 %" = rows whose step lies in (0.8 S, S], S = the run's steps done (its last
 *     /steps/step), so a run that stopped early is summarised over the end of what it did;
 *   - missing data (no such series, no finite value) is "n/a" in Markdown and an empty CSV
 *     field, never 0; infinities print as inf (a perplexity can overflow);
 *   - Markdown numbers use %.4g, CSV numbers %.8g (enough to re-check them, still readable). */
#include "compare.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "window.h"
#include "util.h"

#define WINDOW_LO 0.8 /* the last 20 % of training */

enum { DIST_MEAN, DIST_VAR, DIST_PSI2, N_DIST };
static const char *const DIST_NAMES[N_DIST] = {"dist_mean", "dist_var", "dist_psi2"};

typedef struct {
    double steps_done, steps_total;
    double final_ppl, best_ppl, best_step, diverged_step;
    int has_site;
    double dist_med[N_DIST], dist_p95[N_DIST];
    double grad_gain, beta, hessian, tokens_per_s;
} Row;

/* Growable text, so the Markdown can go both to a file and to stdout. */
typedef struct {
    char *s;
    size_t len, cap;
} Text;

static void text_printf(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(Text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)need + 1 > t->cap) {
        t->cap = 2 * (t->len + (size_t)need + 1);
        t->s = ns_xrealloc(t->s, t->cap);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)need;
}

/* Warnings: printed at once and repeated under the table, where the reader of the report
 * sees why a cell says n/a. */
static void note(Text *notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(Text *notes, const char *fmt, ...)
{
    char line[NS_ERRLEN * 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "normscope: warning: %s\n", line);
    text_printf(notes, "- %s\n", line);
}

/* ------------------------------------------------------------------------------------------
 * Numbers from one log */




/* Steps recorded, total, and the first step whose training loss or gradient norm is not
 * finite (the engine records the diverging step in /steps before it stops). */
static void steps_outcome(const NsLog *log, Row *r)
{
    size_t n = 0, nl = 0, ng = 0;
    double *step = ns_window_series(log, "steps/step", &n);
    double *loss = ns_window_series(log, "steps/loss", &nl);
    double *gnorm = ns_window_series(log, "steps/grad_norm", &ng);
    long total;
    r->steps_total = ns_log_attr_long(log, "steps", &total) == 0 ? (double)total : NAN;
    r->steps_done = n > 0 ? step[n - 1] : 0.0;
    r->diverged_step = NAN;
    for (size_t i = 0; i < n && i < nl; i++)
        if (!isfinite(loss[i]) || (i < ng && !isfinite(gnorm[i]))) {
            r->diverged_step = step[i];
            break;
        }
    free(step);
    free(loss);
    free(gnorm);
}

/* Training also stops as diverged when a validation loss is not finite. */
static double divergence_from_eval(const NsLog *log)
{
    size_t n = 0, nl = 0;
    double *step = ns_window_series(log, "eval/step", &n),
           *loss = ns_window_series(log, "eval/loss", &nl);
    double first = NAN;
    for (size_t i = 0; i < n && i < nl && isnan(first); i++)
        if (!isfinite(loss[i]))
            first = step[i];
    free(step);
    free(loss);
    return first;
}

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
    }
}

static void compute_row(const NsLog *log, const char *site, char **sites, int nsites, Row *r)
{
    memset(r, 0, sizeof *r);
    steps_outcome(log, r);
    eval_outcome(log, r);
    double eval_div = divergence_from_eval(log);
    if (isnan(r->diverged_step) || eval_div < r->diverged_step)
        r->diverged_step = eval_div;
    double max_step = r->steps_done;
    r->has_site = 0;
    for (int s = 0; site && s < nsites; s++)
        r->has_site |= strcmp(sites[s], site) == 0;
    for (int k = 0; k < N_DIST; k++)
        r->dist_med[k] = r->dist_p95[k] = NAN;
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

/* Picks the site (the given one, or the first site of the first run with any) and warns for
 * runs that lack it or record a different set of sites. */
static int choose_site(NsLog *logs, const SiteList *lists, int n, const char **site, Text *notes,
                       char *err)
{
    int ref = -1;
    for (int i = 0; i < n && ref < 0; i++)
        if (lists[i].n > 0)
            ref = i;
    if (ref < 0) {
        if (*site)
            return ns_fail(err, "--site %s: none of the runs records norm sites (trained with "
                                "--probes none?)", *site);
        note(notes, "no run records norm sites (trained with --probes none?): distance and "
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
            note(notes, "run '%s' has no norm site '%s'%s: its distance columns are n/a",
                 logs[i].path, *site, lists[i].n ? "" : " (no /norms at all: --probes none?)");
        else if (i != ref)
            for (int s = 0; s < lists[i].n || s < lists[ref].n; s++) {
                int in_i = s < lists[i].n, in_ref = s < lists[ref].n;
                const char *a = in_i ? lists[i].names[s] : NULL;
                const char *b = in_ref ? lists[ref].names[s] : NULL;
                if (a && b && strcmp(a, b) == 0)
                    continue;
                note(notes, "runs '%s' and '%s' record different norm sites (site '%s' is only "
                            "in '%s'); grad_gain pools each run's own sites",
                     logs[ref].path, logs[i].path, a ? a : b, a ? logs[i].path : logs[ref].path);
                break;
            }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Output */


static const char *csv_num(char *buf, size_t len, double v)
{
    if (isnan(v))
        buf[0] = '\0';
    else
        snprintf(buf, len, "%.8g", v);
    return buf;
}

/* Run file names may contain '|' (Markdown) or ',' and '"' (CSV). */
static void md_text(Text *t, const char *s)
{
    for (; *s; s++)
        text_printf(t, *s == '|' ? "\\|" : "%c", *s);
}

static void csv_text(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void md_header(Text *t, int n, const char *site)
{
    text_printf(t, "# normscope compare\n\nTable: %d run%s. Distances (1/d)||batch - running "
                   "statistic|| at norm site `%s`, median (med) and 95th percentile (p95) over "
                   "the last 20 %% of each run's steps, i.e. steps in (0.8 S, S] with S the steps "
                   "done; grad_gain: median over every norm site in that window; beta-smoothness "
                   "and Hessian top eigenvalue: median of the Lipschitz measurements in that "
                   "window (all of them if none falls in it); tokens/s: median in that window. "
                   "n/a: not recorded.\n\n", n, n == 1 ? "" : "s", site ? site : "(none)");
    text_printf(t, "| run | scheme | position | steps | final ppl | best ppl (step) | "
                   "diverged at | dist_mean med | dist_mean p95 | dist_var med | dist_var p95 "
                   "| dist_psi2 med | dist_psi2 p95 | grad_gain med | beta-smoothness med | "
                   "Hessian top eig med | tokens/s med |\n");
    text_printf(t, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                   "---:|---:|\n");
}

static void md_row(Text *t, const NsLog *log, const Row *r)
{
    char a[32], b[32];
    text_printf(t, "| ");
    md_text(t, log->path);
    if (isnan(r->steps_total))
        snprintf(a, sizeof a, "n/a");
    else
        snprintf(a, sizeof a, "%.0f", r->steps_total); /* counts in full, not %.4g */
    text_printf(t, " | %s | %s | %.0f / %s | %s | ", log->norm, log->position, r->steps_done, a,
                ns_window_num(b, sizeof b, r->final_ppl));
    if (isnan(r->best_ppl))
        text_printf(t, "n/a | ");
    else
        text_printf(t, "%s (%.0f) | ", ns_window_num(a, sizeof a, r->best_ppl), r->best_step);
    if (isnan(r->diverged_step))
        text_printf(t, "- |");
    else
        text_printf(t, "%.0f |", r->diverged_step);
    for (int k = 0; k < N_DIST; k++)
        text_printf(t, " %s | %s |", ns_window_num(a, sizeof a, r->dist_med[k]),
                    ns_window_num(b, sizeof b, r->dist_p95[k]));
    const double tail[] = {r->grad_gain, r->beta, r->hessian, r->tokens_per_s};
    for (size_t k = 0; k < sizeof tail / sizeof tail[0]; k++)
        text_printf(t, " %s |", ns_window_num(a, sizeof a, tail[k]));
    text_printf(t, "\n");
}

static void csv_row(FILE *f, const NsLog *log, const Row *r, const char *site)
{
    char a[32], b[32];
    csv_text(f, log->path);
    fputc(',', f);
    csv_text(f, log->norm);
    fputc(',', f);
    csv_text(f, log->position);
    const double head[] = {r->steps_done, r->steps_total, r->final_ppl, r->best_ppl,
                           r->best_step, r->diverged_step};
    for (size_t k = 0; k < sizeof head / sizeof head[0]; k++)
        fprintf(f, ",%s", csv_num(a, sizeof a, head[k]));
    fputc(',', f);
    csv_text(f, r->has_site ? site : "");
    for (int k = 0; k < N_DIST; k++)
        fprintf(f, ",%s,%s", csv_num(a, sizeof a, r->dist_med[k]),
                csv_num(b, sizeof b, r->dist_p95[k]));
    const double tail[] = {r->grad_gain, r->beta, r->hessian, r->tokens_per_s};
    for (size_t k = 0; k < sizeof tail / sizeof tail[0]; k++)
        fprintf(f, ",%s", csv_num(a, sizeof a, tail[k]));
    fputc('\n', f);
}

static int write_csv(const char *path, NsLog *logs, const Row *rows, int n, const char *site,
                     char *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ns_fail(err, "cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "run,scheme,position,steps_done,steps_total,final_ppl,best_ppl,best_ppl_step,"
               "divergence_step,site,dist_mean_median,dist_mean_p95,dist_var_median,"
               "dist_var_p95,dist_psi2_median,dist_psi2_p95,grad_gain_median,"
               "beta_smoothness_median,hessian_top_eig_median,tokens_per_s_median\n");
    for (int i = 0; i < n; i++)
        csv_row(f, &logs[i], &rows[i], site);
    if (fclose(f) != 0)
        return ns_fail(err, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

static int write_text(const char *path, const Text *t, char *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ns_fail(err, "cannot write '%s': %s", path, strerror(errno));
    size_t w = fwrite(t->s, 1, t->len, f);
    if (fclose(f) != 0 || w != t->len)
        return ns_fail(err, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Entry points */

int ns_compare_site(NsLog *logs, int n, const char *site, const char *out_prefix, int print,
                    char *err)
{
    if (n < 1)
        return ns_fail(err, "compare needs at least one run log");
    SiteList *lists = ns_xcalloc((size_t)n, sizeof *lists);
    for (int i = 0; i < n; i++)
        lists[i].n = ns_log_sites(&logs[i], &lists[i].names);
    Text md = {0}, notes = {0};
    Row *rows = ns_xcalloc((size_t)n, sizeof *rows);
    /* "/norms/layers/0/norm1" and "norms/layers/0/norm1" name the site "layers/0/norm1". */
    site = site ? ns_runlog_site_name(site) : NULL;
    int rc = choose_site(logs, lists, n, &site, &notes, err);
    if (rc == 0) {
        for (int i = 0; i < n; i++)
            compute_row(&logs[i], site, lists[i].names, lists[i].n, &rows[i]);
        md_header(&md, n, site);
        for (int i = 0; i < n; i++)
            md_row(&md, &logs[i], &rows[i]);
        if (notes.len)
            text_printf(&md, "\nNotes:\n\n%s", notes.s);
        char path[1100];
        snprintf(path, sizeof path, "%s.md", out_prefix);
        rc = write_text(path, &md, err);
        snprintf(path, sizeof path, "%s.csv", out_prefix);
        if (rc == 0)
            rc = write_csv(path, logs, rows, n, site, err);
        if (rc == 0 && print)
            fwrite(md.s, 1, md.len, stdout);
    }
    for (int i = 0; i < n; i++)
        ns_log_free_sites(lists[i].names, lists[i].n);
    free(lists);
    free(rows);
    free(md.s);
    free(notes.s);
    return rc;
}

int ns_compare(NsLog *logs, int n, const char *out_prefix, int print, char *err)
{
    return ns_compare_site(logs, n, NULL, out_prefix, print, err);
}
