/* Private to compare: the numbers of one run (a row of the table) and the two further tables
 * built from them, the seed aggregates (compare_seeds.c) and every site (same file). */
#ifndef NS_COMPARE_ROWS_H
#define NS_COMPARE_ROWS_H

#include "logread.h"
#include "outcome.h"
#include "sites.h"
#include "table.h"

enum { NS_DIST_MEAN, NS_DIST_VAR, NS_DIST_PSI2, NS_N_DIST };

typedef struct {
    double steps_done, steps_total;
    double final_ppl, best_ppl, best_step, diverged_step;
    NsStability stab;            /* ns_run_outcome's verdict: unstable when the loss rose */
    int has_site;
    double dist_med[NS_N_DIST], dist_p95[NS_N_DIST];
    /* the training-inference discrepancy tid_mean/var/psi2 and its sampling floor, medians over
     * the same window */
    double tid_med[NS_N_DIST], tid_floor[NS_N_DIST];
    double grad_gain, beta, hessian, tokens_per_s;
    double unk_train, unk_valid; /* root attributes unk_rate_train/_valid; NaN when absent */
    long seed;                   /* -1 when absent */
    int group;                   /* runs of one group differ only in seed */
    NsSiteGrowth *growth;        /* per site (ns_site_growths), n_growth of them */
    int n_growth;
    double growth_first;         /* growth at the table's site */
    int growth_max;              /* index into growth of the largest, -1 none */
} NsCompareRow;

/* Growth of the row at `site`, NaN when it has none there. */
double ns_compare_growth_at(const NsCompareRow *r, const char *site);

/* Markdown and CSV of the seed aggregates: one row per group of runs that differ only in seed. */
void ns_compare_seeds_md(NsText *md, const NsLog *logs, const NsCompareRow *rows, int n,
                         int n_groups, const char *site);
int ns_compare_seeds_csv(const char *path, const NsLog *logs, const NsCompareRow *rows, int n,
                         int n_groups, const char *site, char *err);

/* Every site: one long table, a row per run (by_group: per seed group, mean ± sd) and site. */
void ns_compare_sites_md(NsText *md, const NsLog *logs, const NsCompareRow *rows, int n,
                         int n_groups, int by_group);
int ns_compare_sites_csv(const char *path, const NsLog *logs, const NsCompareRow *rows, int n,
                         char *err);

#endif
