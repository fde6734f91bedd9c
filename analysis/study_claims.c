/* The study report's view over every norm site and every seed. Runs that differ only in seed
 * (seeds.h) form one configuration; a number of a configuration is the mean over its seeds, and
 * its spread is said beside it. Growth at a site is sites.h's: the median of the scheme's
 * distance over the last fifth of the run divided by its median over the second fifth. */
#include "study_claims.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_stability.h"
#include "seeds.h"
#include "sites.h"
#include "stats.h"
#include "util.h"
#include "sanitize.h"

#define GROWS 2.0  /* claim 1: BN's distance grows by more than this ... */
#define ABOVE 10.0 /* ... and ends more than this many times PN-V's */

typedef struct {
    int n, n_groups;
    int *group;
    NsSiteGrowth **growth;
    int *n_growth;
} Study;

static void study_open(Study *s, const NsLog *logs, int n)
{
    s->n = n;
    s->group = ns_xcalloc((size_t)n, sizeof(int));
    s->growth = ns_xcalloc((size_t)n, sizeof(NsSiteGrowth *));
    s->n_growth = ns_xcalloc((size_t)n, sizeof(int));
    s->n_groups = ns_seed_groups(logs, n, s->group);
    for (int i = 0; i < n; i++) {
        char err[NS_ERRLEN];
        s->n_growth[i] = ns_site_growths(&logs[i], &s->growth[i], err);
        if (s->n_growth[i] < 0) {
            fprintf(stderr, "normscope: warning: report: %s: %s\n", logs[i].path, err);
            s->n_growth[i] = 0;
        }
    }
}

static void study_close(Study *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->growth[i]);
    free(s->growth);
    free(s->n_growth);
    free(s->group);
}

static int group_first(const Study *s, int g)
{
    for (int i = 0; i < s->n; i++)
        if (s->group[i] == g)
            return i;
    return -1;
}

static int group_of_scheme(const Study *s, const NsLog *logs, const char *norm)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(logs[i].norm, norm) == 0)
            return s->group[i];
    return -1;
}

enum { GROWTH, LATE, REL_GROWTH };

/* Growth, late median or growth of the scale-free rel_dist_* (what) at `site` over the runs of
 * group g. */
static NsSpread site_spread(const Study *s, int g, const char *site, int what)
{
    double v[64];
    int m = 0;
    for (int i = 0; i < s->n && m < 64; i++)
        for (int k = 0; s->group[i] == g && k < s->n_growth[i]; k++)
            if (strcmp(s->growth[i][k].site, site) == 0)
                v[m++] = what == LATE         ? s->growth[i][k].late
                         : what == REL_GROWTH ? s->growth[i][k].rel_growth
                                              : s->growth[i][k].growth;
    NsSpread r;
    ns_spread(v, m, &r);
    return r;
}

/* The site of group g's first run where the mean growth is largest; -1 when none. */
static int group_max_site(const Study *s, int g, NsSpread *best)
{
    int first = group_first(s, g), at = -1;
    for (int k = 0; k < s->n_growth[first]; k++) {
        NsSpread r = site_spread(s, g, s->growth[first][k].site, GROWTH);
        if (r.n > 0 && (at < 0 || r.mean > best->mean))
            at = k, *best = r;
    }
    return at;
}

static void seed_list(FILE *f, const Study *s, const NsLog *logs, int g)
{
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (s->group[i] == g)
            fprintf(f, "%s%ld", k++ ? ", " : "", ns_log_seed(&logs[i]));
}

void ns_report_sites(FILE *f, const NsLog *logs, int n, const char *first, char *largest,
                     size_t len)
{
    Study s;
    study_open(&s, logs, n);
    largest[0] = '\0';
    fprintf(f, "## Every site\n\nHow much each run's distance (dist_var; PN family dist_psi2) "
               "grows from the second fifth of training to the last (late / early median), at "
               "the first site `%s` and at the site where it grows most. Runs that differ only "
               "in seed are one row: mean ± standard deviation over the seeds. `normscope "
               "compare --site all` lists every site.\n\n"
               "| configuration | seeds | growth at `%s` | largest growth | at site | late "
               "distance there |\n|---|---|---:|---:|---|---:|\n", first, first);
    int bn = group_of_scheme(&s, logs, "batch");
    double overall = -INFINITY;
    for (int g = 0; g < s.n_groups; g++) {
        int i = group_first(&s, g);
        NsSpread at_first = site_spread(&s, g, first, GROWTH), best = {0}, late;
        int k = group_max_site(&s, g, &best);
        char a[64], b[64], c[64], label[512];
        fprintf(f, "| %s | ", ns_md_text(label, sizeof label, logs[i].label));
        seed_list(f, &s, logs, g);
        if (k < 0) {
            fprintf(f, " | %s | n/a | n/a | n/a |\n", ns_spread_text(a, sizeof a, &at_first));
            continue;
        }
        const char *site = s.growth[i][k].site;
        late = site_spread(&s, g, site, LATE);
        fprintf(f, " | %s | %s | `%s` | %s |\n", ns_spread_text(a, sizeof a, &at_first),
                ns_spread_text(b, sizeof b, &best), site, ns_spread_text(c, sizeof c, &late));
        /* the site named in the report: BN's largest, else the largest of any configuration */
        if (g == bn || (bn < 0 && best.mean > overall)) {
            snprintf(largest, len, "%s", site);
            overall = g == bn ? INFINITY : best.mean;
        }
    }
    if (largest[0])
        fprintf(f, "\nThe effect is largest at `%s`%s (beside the first site `%s`).\n\n", largest,
                bn >= 0 ? " for BN" : "", first);
    study_close(&s);
}

/* max / median of the gradient through the batch statistic at a site, mean over group g. */
static NsSpread tail_ratio(const Study *s, const NsLog *logs, int g, const char *site,
                           const char *name)
{
    double v[64];
    int m = 0;
    for (int i = 0; i < s->n && m < 64; i++) {
        if (s->group[i] != g)
            continue;
        char path[NS_RUNLOG_PATH_LEN], err[NS_ERRLEN];
        size_t len = 0;
        ns_runlog_site_path(path, sizeof path, site, name);
        double *y = ns_log_has(&logs[i], path) ? ns_log_read_series(&logs[i], path, &len, err)
                                               : NULL;
        v[m++] = y ? ns_finite_max(y, len) / ns_median(y, len) : NAN;
        free(y);
    }
    NsSpread r;
    ns_spread(v, m, &r);
    return r;
}

/* 1 when a run of group g is unstable (outcome.h), with why: its seed and the clause. */
static int group_unstable(const Study *s, const NsLog *logs, int g, char *why, size_t len)
{
    for (int i = 0; i < s->n; i++) {
        char clause[300];
        if (s->group[i] == g && ns_unstable_why(&logs[i], clause, sizeof clause)) {
            snprintf(why, len, "seed %ld: %s", ns_log_seed(&logs[i]), clause);
            return 1;
        }
    }
    why[0] = '\0';
    return 0;
}

/* Claim 1 at one site: both distances grow and BN ends far above PN-V ("holds"); only the
 * absolute one grows ("input scale": the scale-free distance stays, so the input's scale grew,
 * not the statistic's fluctuation); BN's run unstable ("unstable run"); else "does not hold". */
static const char *claim1_verdict(double growth, double rel_growth, double ratio, int unstable)
{
    if (!(growth > GROWS && ratio > ABOVE))
        return "does not hold";
    if (unstable)
        return "unstable run";
    return rel_growth > GROWS ? "holds" : "input scale";
}

static void list_site(char *buf, size_t len, int *count, const char *site)
{
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s`%s`", (*count)++ ? ", " : "", site);
}

void ns_report_claims(FILE *f, const NsLog *logs, int n)
{
    Study s;
    study_open(&s, logs, n);
    int bn = group_of_scheme(&s, logs, "batch"), pnv = group_of_scheme(&s, logs, "power-v");
    if (bn < 0 || pnv < 0) {
        fprintf(f, "## The claims at every site\n\nNeeds a batch and a power-v run; this study "
                   "has %s.\n\n", bn < 0 ? "no batch run" : "no power-v run");
        study_close(&s);
        return;
    }
    int b0 = group_first(&s, bn);
    char why[400];
    int unstable = group_unstable(&s, logs, bn, why, sizeof why);
    fprintf(f, "## The claims at every site\n\nClaim 1 (forward): BN's dist_var grows more than "
               "%gx from the second to the last fifth of training and ends more than %gx PN-V's "
               "dist_psi2; it holds when the scale-free rel_dist_var grows more than %gx too "
               "(\"input scale\": only the absolute distance grows, so the input's scale grew, "
               "not the statistic's fluctuation), and never for an unstable run (\"Stability\"). "
               "Claim 2 (backward): BN's gradient through sigma2_B has the heavier "
               "tail (max / median) than PN-V's through psi2_B. Each judged at every site, from "
               "the mean over seeds.\n\n| site | BN growth | BN rel growth | BN late / PN-V "
               "late | claim 1 | BN max/med g_sigma2 | PN-V max/med g_psi2 | claim 2 |\n"
               "|---|---:|---:|---:|---|---:|---:|---|\n", GROWS, ABOVE, GROWS);
    int m = s.n_growth[b0], hold1 = 0, hold2 = 0, scale = 0;
    char held1[600] = "", held2[600] = "", scaled[600] = "";
    for (int k = 0; k < m; k++) {
        const char *site = s.growth[b0][k].site;
        NsSpread g = site_spread(&s, bn, site, GROWTH), rg = site_spread(&s, bn, site, REL_GROWTH),
                 lb = site_spread(&s, bn, site, LATE), lp = site_spread(&s, pnv, site, LATE);
        NsSpread tb = tail_ratio(&s, logs, bn, site, "g_sigma2"),
                 tp = tail_ratio(&s, logs, pnv, site, "g_psi2");
        double ratio = lb.mean / lp.mean;
        const char *c1 = claim1_verdict(g.mean, rg.mean, ratio, unstable);
        int c2 = tb.mean > tp.mean;
        char a[64], b[64], c[64], d[64];
        fprintf(f, "| `%s` | %s | %s | %.3g | %s | %s | %s | %s |\n", site,
                ns_spread_text(a, sizeof a, &g), ns_spread_text(d, sizeof d, &rg), ratio, c1,
                ns_spread_text(b, sizeof b, &tb), ns_spread_text(c, sizeof c, &tp),
                isnan(tb.mean) || isnan(tp.mean) ? "n/a" : c2 ? "holds" : "does not hold");
        if (strcmp(c1, "holds") == 0)
            list_site(held1, sizeof held1, &hold1, site);
        if (strcmp(c1, "input scale") == 0)
            list_site(scaled, sizeof scaled, &scale, site);
        if (c2 && !isnan(tb.mean) && !isnan(tp.mean))
            list_site(held2, sizeof held2, &hold2, site);
    }
    fprintf(f, "\n**Over all sites:** claim 1 holds at %d of %d sites%s%s", hold1, m,
            hold1 ? ": " : "", held1);
    if (scale)
        fprintf(f, " (at %d more only the absolute distance grows: %s)", scale, scaled);
    fprintf(f, "; claim 2 holds at %d of %d%s%s.\n\n", hold2, m, hold2 ? ": " : "", held2);
    if (unstable)
        fprintf(f, "BN's run is unstable (%s): its distances grew with the instability; an "
                   "unstable run, not the paper's effect.\n\n", why);
    study_close(&s);
}

void ns_report_training_seeds(FILE *f, const NsLog *logs, int n)
{
    Study s;
    study_open(&s, logs, n);
    if (s.n_groups == n) { /* one seed each: the plain ranking says it all */
        study_close(&s);
        return;
    }
    NsSpread *ppl = ns_xcalloc((size_t)s.n_groups, sizeof(NsSpread));
    for (int g = 0; g < s.n_groups; g++) {
        double v[64];
        int m = 0;
        for (int i = 0; i < n && m < 64; i++)
            if (s.group[i] == g) {
                char err[NS_ERRLEN];
                size_t len = 0;
                double *y = ns_log_read_series(&logs[i], "eval/ppl", &len, err);
                v[m++] = y && len ? y[len - 1] : NAN;
                free(y);
            }
        ns_spread(v, m, &ppl[g]);
    }
    fprintf(f, "Over seeds (runs that differ only in seed), final validation perplexity, mean ± "
               "standard deviation:\n\n| configuration | seeds | final ppl | min | max |\n"
               "|---|---|---:|---:|---:|\n");
    for (int g = 0; g < s.n_groups; g++) {
        char a[64], label[512];
        fprintf(f, "| %s | ", ns_md_text(label, sizeof label, logs[group_first(&s, g)].label));
        seed_list(f, &s, logs, g);
        fprintf(f, " | %s | %.4g | %.4g |\n", ns_spread_text(a, sizeof a, &ppl[g]), ppl[g].min,
                ppl[g].max);
    }
    fprintf(f, "\n");
    for (int a = 0; a < s.n_groups; a++)
        for (int b = a + 1; b < s.n_groups; b++) {
            if (!ns_spread_within(&ppl[a], &ppl[b]))
                continue;
            char la[512], lb[512];
            fprintf(f, "- %s (%.4g) against %s (%.4g): the difference, %.3g, is **within seed "
                       "spread** (seed range up to %.3g): these runs do not tell the two "
                       "apart.\n", ns_md_text(la, sizeof la, logs[group_first(&s, a)].label),
                    ppl[a].mean, ns_md_text(lb, sizeof lb, logs[group_first(&s, b)].label),
                    ppl[b].mean, fabs(ppl[a].mean - ppl[b].mean),
                    fmax(ppl[a].max - ppl[a].min, ppl[b].max - ppl[b].min));
        }
    fprintf(f, "\n");
    free(ppl);
    study_close(&s);
}
