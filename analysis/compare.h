/* The comparison table: one row per run log with the run's outcome (steps, validation
 * perplexity, divergence) and the paper's measurements summarised over the last 20 % of
 * training (distances between batch and running statistics at one norm site, gradient gain
 * through the norms, loss smoothness, throughput), the unknown-token rates, and the growth of
 * the distance at that site and at the site where it grows most. Reads only the run logs. */
#ifndef NS_COMPARE_H
#define NS_COMPARE_H

#include "logread.h"

/* Writes <out_prefix>.md and <out_prefix>.csv for logs[0..n) (already opened with ns_log_open)
 * and, when print is set, the Markdown to stdout. The distance columns use the first norm site
 * of the first run that records any. Runs whose site set differs get a warning on stderr (and
 * in the Markdown notes) and n/a where they lack the site; this is not an error. Runs of another
 * model shape than most (analysis/comparable.h) are left out of the distance columns (n/a), and
 * the notes say which runs were compared and which left out; an unstable run
 * (analysis/outcome.h) is named in the notes and has unstable = 1 in the CSV. Returns 0, or
 * -1 with one line in err (n < 1, an output file that cannot be written, an unknown site). */
int ns_compare(NsLog *logs, int n, const char *out_prefix, int print, char *err);

/* Same, with the site of the distance columns chosen (NULL = default). `site` may be written
 * with or without a leading "norms/" ("layers/0/norm1", "/norms/final_norm"); it is an error
 * only if no run records it. */
int ns_compare_site(NsLog *logs, int n, const char *site, const char *out_prefix, int print,
                    char *err);

typedef struct {
    const char *site; /* as ns_compare_site; "all": the default site, plus every site */
    int all_sites;    /* also the long table of every site (PREFIX-sites.csv, a Markdown
                         section): per run and site the growth of the scheme's distance */
    int list_runs;    /* when some runs differ only in seed: list them one by one as well as
                         their aggregates (mean, standard deviation, n) */
} NsCompareOptions;

/* The table with options. Runs that differ only in seed (analysis/seeds.h) are aggregated in a
 * Markdown section and PREFIX-seeds.csv; PREFIX.csv always has one row per run (with its seed
 * and seed group). */
int ns_compare_opts(NsLog *logs, int n, const NsCompareOptions *opt, const char *out_prefix,
                    int print, char *err);

#endif
