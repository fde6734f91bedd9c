/* Two explanations of why batch normalization fails in NLP Transformers, tested on the same runs:
 *   fluctuation (Shen et al., ICML 2020, PowerNorm): the batch statistics stray from their
 *     running values more and more as training goes on (growth of dist_*, absolute and
 *     scale-free, from the second to the last fifth of the run: analysis/sites.h);
 *   training-inference discrepancy (Wang, Wu, Huang, NeurIPS 2022): the batch statistics differ
 *     from the running ones late in training (median of tid_* over the last fifth), and the
 *     loss that difference costs at inference (norm_gap/gap at the last validation pass).
 * Which of them tracks the perplexity deficit of the batch-statistics runs against LayerNorm?
 *
 * Pairs: every run whose scheme is not layer, rms or none, with the LayerNorm run of the same
 * configuration and seed (every run option equal but the scheme's own settings: norm,
 * bn_momentum, pn_*, no_layer_scaling, release_defaults, rbn_penalty_*; and threads,
 * flush_every). Its deficit (nats) is the difference of the final validation losses, split into
 * the part already there with the run's own batch statistics (norm_gap/loss_batch_stats minus
 * LN's loss: it trained worse) and the part inference with the running statistics adds
 * (norm_gap/gap). Each measure is taken at the first norm site and at the run's worst site (the
 * largest value of that measure), and ranked against the deficit: Spearman's rho with a 95 %
 * interval from Fisher's z (standard error sqrt(1.06 / (n - 3)), Fieller, Hartley and Pearson
 * 1957). Verdicts: "tracks" when the interval lies above 0; "does not track" when it lies below
 * 0.3 (no moderate positive correlation is compatible with the runs); else "inconclusive", with
 * n; fewer than NS_EXPLAIN_MIN_PAIRS pairs are always inconclusive. Every grid key that varies
 * among the pairs (a run option, the scheme among them) is a possible confounder: the same
 * correlation is taken within each of its levels and pooled (weighted by pairs), and a pooled
 * "tracks" whose within-level correlation is under half of it, or not positive, is said to be
 * driven by that key. */
#ifndef NS_EXPLANATIONS_H
#define NS_EXPLANATIONS_H

#include <stdio.h>

#include "logread.h"

#define NS_EXPLAIN_MIN_PAIRS 5
#define NS_EXPLAIN_NO_TRACK 0.3

/* Spearman's rank correlation of the pairs (x[i], y[i]) where both are finite (ties get their
 * mean rank); *n receives their count. NaN with fewer than 3 pairs or a constant side. */
double ns_spearman(const double *x, const double *y, int len, int *n);
/* Its 95 % interval by Fisher's z (NaN bounds below 4 pairs). */
void ns_spearman_interval(double rho, int n, double *lo, double *hi);
/* "tracks", "does not track" or "inconclusive" for rho over n pairs (rules above). */
const char *ns_explain_verdict(double rho, int n);

/* Writes the section "## Two explanations, tested on the same runs" about logs[0..n). */
void ns_report_explanations(FILE *f, const NsLog *logs, int n);

#endif
