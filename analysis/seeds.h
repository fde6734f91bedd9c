/* Seeds as an axis: runs that differ only in their seed are repetitions of one configuration,
 * summarised by mean, standard deviation, range and count (the comparison table, the plots'
 * bands, the study report). "Differ only in seed" is decided over every root attribute of the
 * run-option table (NS_RUN_OPTIONS), except the seed itself and the settings that change speed
 * or bookkeeping, never results: threads, flush_every. */
#ifndef NS_SEEDS_H
#define NS_SEEDS_H

#include <stddef.h>

#include "logread.h"

/* Root attribute `seed`, or -1 when absent. */
long ns_log_seed(const NsLog *log);

/* Run i's label ("batch (post)"), with its seed ("batch (post) seed 2") when another of the n
 * runs shares the label: how legends, tables and the report tell repetitions apart. */
void ns_seed_label(const NsLog *logs, int n, int i, char *buf, size_t len);
/* The same as Markdown text (ns_md_text): what the reports' tables and sentences show. */
void ns_seed_label_md(const NsLog *logs, int n, int i, char *buf, size_t len);

/* 1 when a and b have the same configuration apart from the seed, else 0. */
int ns_logs_same_but_seed(const NsLog *a, const NsLog *b);
/* The same comparison of every run option whose attribute skip() does not pass over (a vocabulary
 * cap, where both logs record one, stands for the vocabulary built). */
int ns_logs_same_except(const NsLog *a, const NsLog *b, int (*skip)(const char *attr));

/* group[i] = the group of run i (0, 1, ... in order of first appearance; runs of one group differ
 * only in seed). Returns the number of groups. */
int ns_seed_groups(const NsLog *logs, int n, int *group);

/* Mean, sample standard deviation (NaN below 2 values), minimum, maximum and count of the finite
 * values of v[0..n). */
typedef struct {
    double mean, sd, min, max;
    int n;
} NsSpread;
void ns_spread(const double *v, int n, NsSpread *out);

/* A difference of means that the seeds alone could make: 1 when |a.mean - b.mean| is at most
 * the larger seed range (max - min) of a and b and one of them has two runs or more; else 0. */
int ns_spread_within(const NsSpread *a, const NsSpread *b);
/* "12.3 ± 0.4" (%.4g; "12.3" for one run, "n/a" for none). */
const char *ns_spread_text(char *buf, size_t len, const NsSpread *s);

#endif
