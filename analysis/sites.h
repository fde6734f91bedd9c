/* The per-site fluctuation summary: at every norm site of a run, how much the distance between
 * the batch statistic the run's scheme normalizes by and its running value grew from early in
 * training to the end. The sweep's `growth` column and the reports' "site where the effect is
 * largest" are read from here.
 *
 * What the numbers are: the median of norms/<site>/<stat> (dist_var for mean-subtracting schemes,
 * dist_psi2 for the PN family: ns_log_scheme_stat) over the rows whose step lies in (0.2, 0.4]
 * of the run's last recorded step (`early`) and in (0.8, 1.0] (`late`), and late / early.
 * For batch and the PN family the running value is the scheme's own running statistic, the one
 * used at inference. Schemes that keep none (layer, rms, none) are measured by the batch-stats
 * probe against its own running average (momentum 0.1) of the same statistic over the same rows:
 * for them the numbers say how much the batch statistic of their input fluctuates, a control
 * that never reaches the model's output. */
#ifndef NS_SITES_H
#define NS_SITES_H

#include "logread.h"

typedef struct {
    char site[64]; /* "layers/3/norm2", ..., "final_norm" */
    char stat[16]; /* the series judged for the run's scheme: "dist_var" or "dist_psi2" */
    double early;  /* median over the second fifth of the run, steps in (0.2, 0.4] of the last */
    double late;   /* median over the last fifth, (0.8, 1.0] */
    double growth; /* late / early; NaN when either is NaN or early <= 0 */
    /* the same on the scale-free rel_<stat> = ||stat_B - running|| / ||running||: a growth of
     * the input's scale moves `growth` but not `rel_growth` (NaN where the log lacks it) */
    double rel_early, rel_late, rel_growth;
} NsSiteGrowth;

#define NS_SITES_EARLY_LO 0.2
#define NS_SITES_EARLY_HI 0.4
#define NS_SITES_LATE_LO 0.8

/* One entry per norm site recorded in the log, in model order; *out malloc'd (free()). Returns
 * the count, or -1 with a one-line err. A log without the batch-stats probe gives 0 sites, no
 * error. */
int ns_site_growths(const NsLog *log, NsSiteGrowth **out, char *err);
/* Index of the site with the largest growth (NaN skipped); -1 when none. */
int ns_site_growth_max(const NsSiteGrowth *g, int n);

/* The run's last recorded step (last row of steps/step; of the first site's step series when
 * steps/step is absent); 0 when there is none. */
double ns_sites_last_step(const NsLog *log);

#endif
