/* The --compare-release report (DIR/release.md and DIR/release.csv): what the authors' released
 * code changes against the paper's schemes — batch against batch-official, power against
 * power-official under the release's settings — and the ablations of the release's row scaling
 * (batch-official without layer scaling, power-official without group scaling). Every number is
 * computed from the run logs: training outcome, the fluctuation of the batch statistics
 * (absolute and scale-free relative distances, at the first norm site and at the site where the
 * relative distance is largest), the gradient through the statistics, and nu's norm. */
#ifndef NS_RELEASE_REPORT_H
#define NS_RELEASE_REPORT_H

#include "logread.h"

/* What one run of the comparison measured; the columns of release.csv, in order. Medians are
 * over the site's rows in the first or last 20 % of training (progress = step / last step
 * recorded, NaN ignored); NaN where a run records nothing there. */
typedef struct {
    double steps_done, final_ppl, best_ppl, diverged_step;
    const char *stat;      /* "var" or "psi2": the statistic the scheme normalizes by */
    char first_site[64];   /* the run's first norm site */
    double abs_first, abs_last, rel_first, rel_last;  /* dist_<stat>, rel_dist_<stat> */
    char max_site[64];     /* the site whose rel_last is largest */
    double max_abs_last, max_rel_last;
    const char *grad;      /* "g_sigma2" or "g_psi2" */
    double grad_first, grad_last;                     /* at the first site */
    double gain_last;      /* grad_gain, pooled over every site, last 20 % */
    double nu_last, nu_max; /* nu_norm: largest last value over sites; largest ever */
} NsReleaseRow;

/* Measures one log. Returns 0, or -1 with err when it has no norm sites. */
int ns_release_measure(const NsLog *log, NsReleaseRow *r, char *err);

/* Writes <out_dir>/release.md and release.csv; runs are named names[i] (the study's run
 * names: batch, batch-official, batch-official-no-layer-scaling, power, power-official,
 * power-official-no-groups; a pair with a missing run is left out of the answers). */
int ns_release_report(const char *out_dir, NsLog *logs, const char *const *names, int n,
                      char *err);

#endif
