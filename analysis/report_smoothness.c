/* The smoothness section of the study report (report_smoothness.h). Each run is summarised over
 * the second half of its training, where the schemes have left their initial transient: the
 * median of each measure and its interquartile range over the probe's rows. Two schemes are
 * called different on a measure only when those ranges do not overlap; otherwise the section
 * says that the difference is within the step-to-step variation of the measure. */
#include "report_smoothness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "seeds.h"
#include "stats.h"
#include "util.h"
#include "window.h"

typedef struct {
    double q1, med, q3;
    size_t n;
} Summary;

static const struct {
    const char *series, *title, *what;
    int magnitude; /* compare |value|: the top eigenvalue may be negative */
} MEASURES[] = {
    {"beta_smoothness", "β-smoothness", "β-smoothness (max over the step grid of "
                                        "||g(θ + r u) − g(θ)|| / r, u = −g/||g||)", 0},
    {"hessian_top_eig", "top eigenvalue magnitude",
     "magnitude of the Hessian's top eigenvalue (Lanczos)", 1},
    {"hessian_trace", "trace", "Hessian trace (Hutchinson)", 0},
};
#define N_MEASURES (int)(sizeof MEASURES / sizeof MEASURES[0])

static double last_step(const NsLog *log)
{
    size_t n = 0;
    double *steps = ns_window_series(log, "steps/step", &n), last = n ? steps[n - 1] : NAN;
    free(steps);
    return last;
}

static Summary summarize(const NsLog *log, int m)
{
    Summary s = {NAN, NAN, NAN, 0};
    double *pool = NULL, max_step = last_step(log);
    size_t count = 0;
    if (!isfinite(max_step))
        return s;
    ns_window_append(log, NS_RUNLOG_LIPSCHITZ, MEASURES[m].series, max_step, 0.5, 1.0, 1, &pool,
                     &count);
    for (size_t i = 0; i < count && MEASURES[m].magnitude; i++)
        pool[i] = fabs(pool[i]);
    s.n = ns_count_finite(pool, count);
    if (s.n > 0)
        s = (Summary){ns_quantile(pool, count, 0.25), ns_median(pool, count),
                      ns_quantile(pool, count, 0.75), s.n};
    free(pool);
    return s;
}

static void table(FILE *f, NsLog *logs, int n, Summary (*sum)[N_MEASURES])
{
    char a[32], b[32], c[32];
    fprintf(f, "| run | rows |");
    for (int m = 0; m < N_MEASURES; m++)
        fprintf(f, " %s median [IQR] |", MEASURES[m].title);
    fprintf(f, "\n|---|---|");
    for (int m = 0; m < N_MEASURES; m++)
        fprintf(f, "---|");
    fprintf(f, "\n");
    for (int i = 0; i < n; i++) {
        char label[160];
        ns_seed_label_md(logs, n, i, label, sizeof label);
        fprintf(f, "| %s | %zu |", label, sum[i][0].n);
        for (int m = 0; m < N_MEASURES; m++)
            fprintf(f, " %s [%s, %s] |", ns_window_num(a, sizeof a, sum[i][m].med),
                    ns_window_num(b, sizeof b, sum[i][m].q1),
                    ns_window_num(c, sizeof c, sum[i][m].q3));
        fprintf(f, "\n");
    }
}

/* The smallest median, and the smallest of another configuration (runs that differ only in
 * seed are one configuration: comparing a scheme with its own second seed says nothing). */
static void compare(FILE *f, NsLog *logs, int n, Summary (*sum)[N_MEASURES], int m,
                    const int *group)
{
    int lo = -1, next = -1;
    for (int i = 0; i < n; i++)
        if (sum[i][m].n > 0 && (lo < 0 || sum[i][m].med < sum[lo][m].med))
            lo = i;
    for (int i = 0; lo >= 0 && i < n; i++)
        if (sum[i][m].n > 0 && group[i] != group[lo] &&
            (next < 0 || sum[i][m].med < sum[next][m].med))
            next = i;
    char a[32], b[32], label[160];
    if (lo < 0) {
        fprintf(f, "- %s: no run recorded it.\n", MEASURES[m].what);
        return;
    }
    ns_seed_label_md(logs, n, lo, label, sizeof label);
    fprintf(f, "- Smallest %s: %s (median %s)", MEASURES[m].what, label,
            ns_window_num(a, sizeof a, sum[lo][m].med));
    if (next < 0) {
        fprintf(f, "; no other configuration recorded it.\n");
        return;
    }
    int overlap = sum[lo][m].q3 >= sum[next][m].q1;
    ns_seed_label_md(logs, n, next, label, sizeof label);
    fprintf(f, ", then %s (median %s): %s.\n", label, ns_window_num(b, sizeof b, sum[next][m].med),
            overlap ? "their interquartile ranges overlap, so the difference is within the "
                      "step-to-step variation (noise)"
                    : "their interquartile ranges do not overlap");
}

void ns_report_smoothness(FILE *f, NsLog *logs, int n)
{
    Summary(*sum)[N_MEASURES] = ns_xcalloc((size_t)(n > 0 ? n : 1), sizeof *sum);
    for (int i = 0; i < n; i++)
        for (int m = 0; m < N_MEASURES; m++)
            sum[i][m] = summarize(&logs[i], m);
    fprintf(f, "## Smoothness and curvature\n\n"
               "The smoothness probe measures, every `--lipschitz-every` steps on the step's own "
               "batch, how fast the gradient changes along the update direction (β-smoothness) "
               "and the Hessian's top eigenvalue and trace (README, \"Probes\"). Smaller values "
               "mean a smoother loss, the property the PowerNorm paper argues PN improves over "
               "BN. Below: medians over the second half of each run with the interquartile range "
               "over the probe's rows; `rows` counts them.\n\n");
    table(f, logs, n, sum);
    fprintf(f, "\n");
    int *group = ns_xcalloc((size_t)(n > 0 ? n : 1), sizeof(int));
    ns_seed_groups(logs, n, group);
    for (int m = 0; m < N_MEASURES; m++)
        compare(f, logs, n, sum, m, group);
    fprintf(f, "\n");
    free(group);
    free(sum);
}
