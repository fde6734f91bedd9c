/* The comparison table's two further views of the same rows:
 *   - seed aggregates: runs that differ only in seed (seeds.h) as one row, mean ± sample
 *     standard deviation and n of each number, and whether the final perplexities of two
 *     configurations differ by more than their seed spread;
 *   - every site: a long table with one row per run (or seed group) and norm site, the growth of
 *     the scheme's distance there (sites.h), the largest marked. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "compare_rows.h"
#include "seeds.h"
#include "util.h"
#include "window.h"

/* The spread over group g of field `off` of the rows (a double inside NsCompareRow). */
/* "<lead>norm | position | " of a run, both as Markdown text (a log's strings are data). */
static void md_scheme(NsText *md, const char *lead, const NsLog *log)
{
    ns_text_printf(md, "%s", lead);
    ns_text_md(md, log->norm);
    ns_text_printf(md, " | ");
    ns_text_md(md, log->position);
    ns_text_printf(md, " | ");
}

static NsSpread group_spread(const NsCompareRow *rows, int n, int g, size_t off)
{
    double *v = ns_xmalloc(sizeof(double) * (size_t)n);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].group == g)
            v[m++] = *(const double *)((const char *)&rows[i] + off);
    NsSpread s;
    ns_spread(v, m, &s);
    free(v);
    return s;
}

static int group_first(const NsCompareRow *rows, int n, int g)
{
    for (int i = 0; i < n; i++)
        if (rows[i].group == g)
            return i;
    return -1;
}

/* Growth at `site` over the group's runs. */
static NsSpread group_site_growth(const NsCompareRow *rows, int n, int g, const char *site)
{
    double *v = ns_xmalloc(sizeof(double) * (size_t)n);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].group == g)
            v[m++] = ns_compare_growth_at(&rows[i], site);
    NsSpread s;
    ns_spread(v, m, &s);
    free(v);
    return s;
}

/* The site whose mean growth over the group is largest (sites of the group's first run);
 * -1 when none. */
static int group_growth_max(const NsCompareRow *rows, int n, int g, NsSpread *best)
{
    const NsCompareRow *first = &rows[group_first(rows, n, g)];
    int at = -1;
    for (int k = 0; k < first->n_growth; k++) {
        NsSpread s = group_site_growth(rows, n, g, first->growth[k].site);
        if (s.n > 0 && (at < 0 || s.mean > best->mean))
            at = k, *best = s;
    }
    return at;
}

/* The group's seeds, "1, 2" (CSV: "1 2", no comma to quote); "?" for a run without one. */
static void seeds_list(NsText *t, const NsCompareRow *rows, int n, int g, const char *sep)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].group == g) {
            if (rows[i].seed < 0)
                ns_text_printf(t, "%s?", k++ ? sep : "");
            else
                ns_text_printf(t, "%s%ld", k++ ? sep : "", rows[i].seed);
        }
}

#define FIELD(name) offsetof(NsCompareRow, name)

/* Final perplexity of each pair of groups of one position: apart, or within seed spread. */
static void ppl_verdicts(NsText *md, const NsLog *logs, const NsCompareRow *rows, int n,
                         int n_groups)
{
    int said = 0;
    for (int a = 0; a < n_groups; a++)
        for (int b = a + 1; b < n_groups; b++) {
            NsSpread sa = group_spread(rows, n, a, FIELD(final_ppl));
            NsSpread sb = group_spread(rows, n, b, FIELD(final_ppl));
            if (sa.n < 1 || sb.n < 1 || (sa.n < 2 && sb.n < 2))
                continue;
            const NsLog *la = &logs[group_first(rows, n, a)], *lb = &logs[group_first(rows, n, b)];
            char x[48], y[48];
            ns_text_printf(md, "%s- final ppl, %s %s against %s %s: difference %.3g, %s "
                           "(larger seed range %.3g)\n", said++ ? "" : "\n", la->label,
                           ns_spread_text(x, sizeof x, &sa), lb->label,
                           ns_spread_text(y, sizeof y, &sb), fabs(sa.mean - sb.mean),
                           ns_spread_within(&sa, &sb) ? "within seed spread"
                                                      : "larger than the seed spread",
                           fmax(sa.max - sa.min, sb.max - sb.min));
        }
}

void ns_compare_seeds_md(NsText *md, const NsLog *logs, const NsCompareRow *rows, int n,
                         int n_groups, const char *site)
{
    static const struct {
        size_t off;
    } COLS[] = {{FIELD(final_ppl)},        {FIELD(best_ppl)},      {FIELD(dist_med[NS_DIST_VAR])},
                {FIELD(dist_med[NS_DIST_PSI2])}, {FIELD(grad_gain)}, {FIELD(unk_valid)},
                {FIELD(growth_first)}};
    ns_text_printf(md, "\n## Seeds\n\nRuns that differ only in seed (every configuration "
                   "attribute equal but seed, threads, flush_every), as one row: mean ± sample "
                   "standard deviation over the n runs (one run: its value). Same columns as above; "
                   "growth at `%s`, and the site where the group's mean growth is largest. A "
                   "difference between two rows smaller than the larger of their seed ranges "
                   "(max - min) is within seed spread.\n\n", site ? site : "(none)");
    ns_text_printf(md, "| scheme | position | seeds | n | final ppl | best ppl | dist_var med | "
                   "dist_psi2 med | grad_gain med | unk valid (share) | growth | largest growth (site) "
                   "|\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (int g = 0; g < n_groups; g++) {
        int first = group_first(rows, n, g);
        NsSpread s = group_spread(rows, n, g, FIELD(final_ppl));
        char a[64];
        md_scheme(md, "| ", &logs[first]);
        seeds_list(md, rows, n, g, ", ");
        int count = 0;
        for (int i = 0; i < n; i++)
            count += rows[i].group == g;
        ns_text_printf(md, " | %d |", count);
        for (size_t k = 0; k < sizeof COLS / sizeof COLS[0]; k++) {
            s = group_spread(rows, n, g, COLS[k].off);
            ns_text_printf(md, " %s |", ns_spread_text(a, sizeof a, &s));
        }
        int at = group_growth_max(rows, n, g, &s);
        if (at < 0)
            ns_text_printf(md, " n/a |\n");
        else
            ns_text_printf(md, " %s (`%s`) |\n", ns_spread_text(a, sizeof a, &s),
                           rows[first].growth[at].site);
    }
    ppl_verdicts(md, logs, rows, n, n_groups);
}

int ns_compare_seeds_csv(const char *path, const NsLog *logs, const NsCompareRow *rows, int n,
                         int n_groups, const char *site, char *err)
{
    static const struct {
        const char *name;
        size_t off;
    } COLS[] = {{"final_ppl", FIELD(final_ppl)},
                {"best_ppl", FIELD(best_ppl)},
                {"dist_var_median", FIELD(dist_med[NS_DIST_VAR])},
                {"dist_psi2_median", FIELD(dist_med[NS_DIST_PSI2])},
                {"grad_gain_median", FIELD(grad_gain)},
                {"unk_rate_valid", FIELD(unk_valid)},
                {"growth", FIELD(growth_first)}};
    FILE *f = fopen(path, "w");
    if (!f)
        return ns_fail(err, "cannot write '%s'", path);
    fprintf(f, "seed_group,scheme,position,seeds,n,site");
    for (size_t k = 0; k < sizeof COLS / sizeof COLS[0]; k++)
        fprintf(f, ",%s_mean,%s_sd,%s_min,%s_max,%s_n", COLS[k].name, COLS[k].name, COLS[k].name,
                COLS[k].name, COLS[k].name);
    fprintf(f, "\n");
    for (int g = 0; g < n_groups; g++) {
        int first = group_first(rows, n, g), count = 0;
        NsText seeds = {0};
        seeds_list(&seeds, rows, n, g, " ");
        for (int i = 0; i < n; i++)
            count += rows[i].group == g;
        fprintf(f, "%d,", g);
        ns_csv_text(f, logs[first].norm);
        fputc(',', f);
        ns_csv_text(f, logs[first].position);
        fputc(',', f);
        ns_csv_text(f, seeds.s ? seeds.s : "");
        fprintf(f, ",%d,", count);
        ns_csv_text(f, site ? site : "");
        ns_text_free(&seeds);
        for (size_t k = 0; k < sizeof COLS / sizeof COLS[0]; k++) {
            NsSpread s = group_spread(rows, n, g, COLS[k].off);
            char a[4][32];
            fprintf(f, ",%s,%s,%s,%s,%d", ns_csv_num(a[0], 32, s.mean), ns_csv_num(a[1], 32, s.sd),
                    ns_csv_num(a[2], 32, s.min), ns_csv_num(a[3], 32, s.max), s.n);
        }
        fprintf(f, "\n");
    }
    return fclose(f) == 0 ? 0 : ns_fail(err, "cannot write '%s' (disk full?)", path);
}

/* ------------------------------------------------------------------------------------------
 * Every site */

static void sites_md_runs(NsText *md, const NsLog *logs, const NsCompareRow *rows, int n)
{
    ns_text_printf(md, "| run | scheme | position | seed | site | distance | early med | "
                   "late med | growth | largest |\n|---|---|---|---:|---|---|---:|---:|---:|---|\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < rows[i].n_growth; k++) {
            const NsSiteGrowth *g = &rows[i].growth[k];
            char a[32], b[32], c[32];
            ns_text_printf(md, "| ");
            ns_text_md(md, logs[i].path);
            md_scheme(md, " | ", &logs[i]);
            if (rows[i].seed < 0)
                ns_text_printf(md, "n/a");
            else
                ns_text_printf(md, "%ld", rows[i].seed);
            ns_text_printf(md, " | `%s` | %s | %s | %s | %s | %s |\n", g->site, g->stat,
                           ns_window_num(a, sizeof a, g->early), ns_window_num(b, sizeof b, g->late),
                           ns_window_num(c, sizeof c, g->growth),
                           k == rows[i].growth_max ? "**largest**" : "");
        }
}

static void sites_md_groups(NsText *md, const NsLog *logs, const NsCompareRow *rows, int n,
                            int n_groups)
{
    ns_text_printf(md, "| scheme | position | seeds | site | distance | late med | growth | "
                   "largest |\n|---|---|---|---|---|---:|---:|---|\n");
    for (int g = 0; g < n_groups; g++) {
        int first = group_first(rows, n, g);
        NsSpread best;
        int at = group_growth_max(rows, n, g, &best);
        for (int k = 0; k < rows[first].n_growth; k++) {
            const char *site = rows[first].growth[k].site;
            double *late = ns_xmalloc(sizeof(double) * (size_t)n);
            int m = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; rows[i].group == g && j < rows[i].n_growth; j++)
                    if (strcmp(rows[i].growth[j].site, site) == 0)
                        late[m++] = rows[i].growth[j].late;
            NsSpread sl, sg = group_site_growth(rows, n, g, site);
            ns_spread(late, m, &sl);
            free(late);
            char a[64], b[64];
            md_scheme(md, "| ", &logs[first]);
            seeds_list(md, rows, n, g, ", ");
            ns_text_printf(md, " | `%s` | %s | %s | %s | %s |\n", site,
                           rows[first].growth[k].stat, ns_spread_text(a, sizeof a, &sl),
                           ns_spread_text(b, sizeof b, &sg), k == at ? "**largest**" : "");
        }
    }
}

void ns_compare_sites_md(NsText *md, const NsLog *logs, const NsCompareRow *rows, int n,
                         int n_groups, int by_group)
{
    ns_text_printf(md, "\n## Every site\n\nAt every norm site: the scheme's distance (dist_var; "
                   "PN family dist_psi2), its median over the second fifth of the run (early, "
                   "steps in (0.2, 0.4] of the last) and over the last fifth (late, (0.8, 1]), "
                   "and growth = late / early; **largest** marks the site where it grows "
                   "most%s.\n\n", by_group ? " (mean over the seeds)" : "");
    if (by_group)
        sites_md_groups(md, logs, rows, n, n_groups);
    else
        sites_md_runs(md, logs, rows, n);
}

int ns_compare_sites_csv(const char *path, const NsLog *logs, const NsCompareRow *rows, int n,
                         char *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ns_fail(err, "cannot write '%s'", path);
    fprintf(f, "run,scheme,position,seed,seed_group,site,stat,early_median,late_median,growth,"
               "largest\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < rows[i].n_growth; k++) {
            const NsSiteGrowth *g = &rows[i].growth[k];
            char a[3][32], seed[32];
            ns_csv_text(f, logs[i].path);
            fputc(',', f);
            ns_csv_text(f, logs[i].norm);
            fputc(',', f);
            ns_csv_text(f, logs[i].position);
            fprintf(f, ",%s,%d,", ns_csv_num(seed, 32, rows[i].seed < 0 ? NAN : rows[i].seed),
                    rows[i].group);
            ns_csv_text(f, g->site);
            fprintf(f, ",%s,%s,%s,%s,%d\n", g->stat, ns_csv_num(a[0], 32, g->early),
                    ns_csv_num(a[1], 32, g->late), ns_csv_num(a[2], 32, g->growth),
                    k == rows[i].growth_max);
        }
    return fclose(f) == 0 ? 0 : ns_fail(err, "cannot write '%s' (disk full?)", path);
}
