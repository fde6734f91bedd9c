#include "explanations.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "run_config.h"
#include "seeds.h"
#include "stats.h"
#include "sites.h"
#include "table.h"
#include "util.h"
#include "window.h"

/* ------------------------------------------------------------------ rank correlation */

typedef struct {
    double v;
    int i;
} Ranked;

static int cmp_ranked(const void *a, const void *b)
{
    double x = ((const Ranked *)a)->v, y = ((const Ranked *)b)->v;
    return (x > y) - (x < y);
}

/* Mean ranks (1-based) of v[0..n), ties sharing the mean of their ranks. */
static void ranks(const double *v, int n, double *out)
{
    Ranked *r = ns_xmalloc(sizeof(Ranked) * (size_t)n);
    for (int i = 0; i < n; i++)
        r[i] = (Ranked){v[i], i};
    qsort(r, (size_t)n, sizeof *r, cmp_ranked);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && r[j + 1].v == r[i].v)
            j++;
        for (int k = i; k <= j; k++)
            out[r[k].i] = (i + j) / 2.0 + 1.0;
        i = j + 1;
    }
    free(r);
}

static double pearson(const double *x, const double *y, int n)
{
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++)
        mx += x[i] / n, my += y[i] / n;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

double ns_spearman(const double *x, const double *y, int len, int *n)
{
    double *a = ns_xmalloc(sizeof(double) * (size_t)(len > 0 ? len : 1) * 4);
    double *b = a + len, *ra = b + len, *rb = ra + len;
    int m = 0;
    for (int i = 0; i < len; i++)
        if (isfinite(x[i]) && isfinite(y[i]))
            a[m] = x[i], b[m++] = y[i];
    *n = m;
    double rho = NAN;
    if (m >= 3) {
        ranks(a, m, ra);
        ranks(b, m, rb);
        rho = pearson(ra, rb, m);
    }
    free(a);
    return rho;
}

/* The interval for a two-sided level: z_crit 1.96 for 95 %. */
static void interval_at(double rho, int n, double z_crit, double *lo, double *hi)
{
    *lo = *hi = NAN;
    if (n < 4 || !isfinite(rho))
        return;
    double r = fmax(-0.999999, fmin(0.999999, rho));
    double z = atanh(r), se = sqrt(1.06 / (n - 3));
    *lo = tanh(z - z_crit * se);
    *hi = tanh(z + z_crit * se);
}

void ns_spearman_interval(double rho, int n, double *lo, double *hi)
{
    interval_at(rho, n, 1.959964, lo, hi);
}

/* The verdict at a two-sided level whose critical value is z_crit. */
static const char *verdict_at(double rho, int n, double z_crit)
{
    double lo, hi;
    interval_at(rho, n, z_crit, &lo, &hi);
    if (n < NS_EXPLAIN_MIN_PAIRS || !isfinite(lo))
        return "inconclusive";
    if (lo > 0.0)
        return "tracks";
    if (hi < NS_EXPLAIN_NO_TRACK)
        return "does not track";
    return "inconclusive";
}

const char *ns_explain_verdict(double rho, int n) { return verdict_at(rho, n, 1.959964); }

/* ------------------------------------------------------------------ the pairs and measures */

enum { M_FLUCT, M_REL_FLUCT, M_TID, M_GAP, M_N };
static const char *const MEASURE[M_N] = {
    "fluctuation: growth of the distance (dist_*)",
    "fluctuation, scale-free: growth of rel_dist_*",
    "TID: tid_* over the last fifth",
    "loss-level gap: norm_gap/gap at the last validation",
};
static const int EXPLANATION[M_N] = {0, 0, 1, 1}; /* PowerNorm's, Wang et al.'s */

typedef struct {
    int run, ln;
    double deficit, worse, gap; /* nats: final loss minus LN's = worse + gap */
    double at[2][M_N];          /* [first site, worst site][measure] */
} Pair;

/* Settings that belong to a scheme (or to speed and cadence), not to the cell it ran in. */
static int scheme_setting(const char *attr)
{
    static const char *const names[] = {"norm", "bn_momentum", "pn_alpha", "pn_warmup",
                                        "pn_groups", "no_layer_scaling", "release_defaults",
                                        "rbn_penalty_mean", "rbn_penalty_var", "threads",
                                        "flush_every"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(attr, names[i]))
            return 1;
    return 0;
}

static int is_scheme(const NsLog *log, const char *norm) { return !strcmp(log->norm, norm); }

static int batch_statistics_scheme(const NsLog *log)
{
    return !is_scheme(log, "layer") && !is_scheme(log, "rms") && !is_scheme(log, "none");
}

static double last_finite(const NsLog *log, const char *path)
{
    size_t n;
    double *v = ns_window_series(log, path, &n), last = NAN;
    for (size_t i = n; i-- > 0 && !isfinite(last);)
        last = v[i];
    free(v);
    return last;
}

/* The TID of the scheme's statistic at each site: median over the last fifth. */
static void tid_measures(const NsLog *log, double last, double *first, double *worst)
{
    char **sites, name[24];
    int n = ns_log_sites(log, &sites);
    snprintf(name, sizeof name, "tid_%s", ns_log_scheme_stat(log));
    *first = *worst = NAN;
    for (int s = 0; s < n; s++) {
        double v = ns_window_site_median(log, sites[s], name, last, NS_SITES_LATE_LO, 1.0);
        if (s == 0)
            *first = v;
        if (isfinite(v) && !(v <= *worst))
            *worst = v;
    }
    ns_log_free_sites(sites, n);
}

static void site_measures(const NsLog *log, Pair *p)
{
    char err[NS_ERRLEN];
    NsSiteGrowth *g = NULL;
    int n = ns_site_growths(log, &g, err);
    for (int k = 0; k < 2; k++)
        p->at[k][M_FLUCT] = p->at[k][M_REL_FLUCT] = NAN;
    for (int s = 0; s < n; s++) {
        if (s == 0) {
            p->at[0][M_FLUCT] = g[s].growth;
            p->at[0][M_REL_FLUCT] = g[s].rel_growth;
        }
        if (isfinite(g[s].growth) && !(g[s].growth <= p->at[1][M_FLUCT]))
            p->at[1][M_FLUCT] = g[s].growth;
        if (isfinite(g[s].rel_growth) && !(g[s].rel_growth <= p->at[1][M_REL_FLUCT]))
            p->at[1][M_REL_FLUCT] = g[s].rel_growth;
    }
    free(g);
    tid_measures(log, ns_sites_last_step(log), &p->at[0][M_TID], &p->at[1][M_TID]);
}

static void measure_pair(const NsLog *logs, Pair *p)
{
    const NsLog *run = &logs[p->run];
    double ln_loss = last_finite(&logs[p->ln], "eval/loss");
    p->deficit = last_finite(run, "eval/loss") - ln_loss;
    p->worse = last_finite(run, "norm_gap/loss_batch_stats") - ln_loss;
    p->gap = last_finite(run, "norm_gap/gap");
    site_measures(run, p);
    p->at[0][M_GAP] = p->at[1][M_GAP] = p->gap;
}

/* Each batch-statistics run with the LayerNorm run of its cell and seed. */
static int find_pairs(const NsLog *logs, int n, Pair *pairs)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!batch_statistics_scheme(&logs[i]))
            continue;
        for (int j = 0; j < n; j++)
            if (is_scheme(&logs[j], "layer") && ns_log_seed(&logs[j]) == ns_log_seed(&logs[i]) &&
                ns_logs_same_except(&logs[i], &logs[j], scheme_setting)) {
                pairs[m] = (Pair){.run = i, .ln = j};
                measure_pair(logs, &pairs[m++]);
                break;
            }
    }
    return m;
}

/* ------------------------------------------------------------------ grid keys */

/* A run option's value as text ("" when absent); the scheme's name for "norm". */
static void attr_text(const NsLog *log, const NsOption *o, char *buf, size_t len)
{
    long iv;
    double dv;
    buf[0] = '\0';
    switch (ns_option_stored_type(o)) {
    case NS_STORED_INT:
        if (ns_log_attr_long(log, o->attr, &iv) == 0)
            snprintf(buf, len, "%ld", iv);
        break;
    case NS_STORED_REAL:
        if (ns_log_attr_double(log, o->attr, &dv) == 0)
            snprintf(buf, len, "%g", dv);
        break;
    default:
        ns_log_attr_str(log, o->attr, buf, len);
    }
}

/* The run options (the scheme among them; not the seed, speed or cadence) whose values differ
 * among the pairs' runs; keys[] receives the option rows. */
static int grid_keys(const NsLog *logs, const Pair *pairs, int m, const NsOption **keys)
{
    int n = 0;
    for (size_t k = 0; k < NS_N_RUN_OPTIONS && n < 16; k++) {
        const NsOption *o = &NS_RUN_OPTIONS[k];
        if (!o->attr || (scheme_setting(o->attr) && strcmp(o->attr, "norm")) ||
            !strcmp(o->attr, "seed") || !strcmp(o->attr, "vocab_size"))
            continue;
        char first[256], other[256];
        attr_text(&logs[pairs[0].run], o, first, sizeof first);
        for (int i = 1; i < m; i++) {
            attr_text(&logs[pairs[i].run], o, other, sizeof other);
            if (strcmp(first, other)) {
                keys[n++] = o;
                break;
            }
        }
    }
    return n;
}

/* Spearman's rho within each level of key, pooled with the levels' pair counts as weights
 * (levels with fewer than 3 usable pairs left out); *used receives the pairs counted. */
static double within_levels(const NsLog *logs, const Pair *pairs, int m, const NsOption *key,
                            int site, int measure, int *used)
{
    double *x = ns_xmalloc(sizeof(double) * 2 * (size_t)m), *y = x + m, sum = 0;
    int *done = ns_xcalloc((size_t)m, sizeof(int));
    *used = 0;
    for (int i = 0; i < m; i++) {
        if (done[i])
            continue;
        char level[256], other[256];
        attr_text(&logs[pairs[i].run], key, level, sizeof level);
        int k = 0, n;
        for (int j = i; j < m; j++) {
            attr_text(&logs[pairs[j].run], key, other, sizeof other);
            if (!done[j] && !strcmp(level, other)) {
                done[j] = 1;
                x[k] = pairs[j].at[site][measure], y[k++] = pairs[j].deficit;
            }
        }
        double rho = ns_spearman(x, y, k, &n);
        if (isfinite(rho)) {
            sum += rho * n;
            *used += n;
        }
    }
    free(done);
    free(x);
    return *used ? sum / *used : NAN;
}

/* ------------------------------------------------------------------ the section */

static const char *num(char *buf, size_t len, double v) { return ns_window_num(buf, len, v); }

static double median_of(const Pair *pairs, int m, size_t offset)
{
    double *v = ns_xmalloc(sizeof(double) * (size_t)m);
    for (int i = 0; i < m; i++)
        v[i] = *(const double *)((const char *)&pairs[i] + offset);
    double med = ns_median(v, (size_t)m);
    free(v);
    return med;
}

static void write_deficits(NsText *t, const NsLog *logs, int n, const Pair *pairs, int m)
{
    char label[256], a[32], b[32], c[32];
    ns_text_printf(t, "### The deficit and its two parts\n\nIn nats of validation loss against "
                      "the LayerNorm run of the same cell and seed: *trained worse* is the loss "
                      "with the run's own batch statistics (`norm_gap/loss_batch_stats`) minus "
                      "LN's, *gap* what inference with the running statistics adds "
                      "(`norm_gap/gap`); they sum to the deficit.\n\n"
                      "| run | deficit | trained worse | gap |\n|---|---|---|---|\n");
    for (int i = 0; i < m; i++) {
        ns_seed_label(logs, n, pairs[i].run, label, sizeof label);
        ns_text_printf(t, "| ");
        ns_text_md(t, label);
        ns_text_printf(t, " | %s | %s | %s |\n", num(a, sizeof a, pairs[i].deficit),
                       num(b, sizeof b, pairs[i].worse), num(c, sizeof c, pairs[i].gap));
    }
    double worse = median_of(pairs, m, offsetof(Pair, worse));
    double gap = median_of(pairs, m, offsetof(Pair, gap));
    ns_text_printf(t, "\nMedians over the %d pairs: deficit %s, trained worse %s, gap %s", m,
                   num(a, sizeof a, median_of(pairs, m, offsetof(Pair, deficit))),
                   num(b, sizeof b, worse), num(c, sizeof c, gap));
    if (isfinite(worse) && isfinite(gap))
        ns_text_printf(t, ": the larger part is %s.\n\n",
                       fabs(worse) >= fabs(gap) ? "that the run trained worse"
                                                : "the train/inference gap");
    else
        ns_text_printf(t, " (runs without `/norm_gap` cannot be split).\n\n");
}

/* Where the larger part changes with a grid key: per level, the medians of the two parts. */
static void write_parts_by_level(NsText *t, const NsLog *logs, const Pair *pairs, int m,
                                 const NsOption *key)
{
    int *done = ns_xcalloc((size_t)m, sizeof(int));
    Pair *level_pairs = ns_xmalloc(sizeof(Pair) * (size_t)m);
    char level[256], other[256], a[32], b[32];
    ns_text_printf(t, "- by `%s`:", key->attr);
    for (int i = 0; i < m; i++) {
        if (done[i])
            continue;
        attr_text(&logs[pairs[i].run], key, level, sizeof level);
        int k = 0;
        for (int j = i; j < m; j++) {
            attr_text(&logs[pairs[j].run], key, other, sizeof other);
            if (!done[j] && !strcmp(level, other))
                done[j] = 1, level_pairs[k++] = pairs[j];
        }
        double worse = median_of(level_pairs, k, offsetof(Pair, worse));
        double gap = median_of(level_pairs, k, offsetof(Pair, gap));
        ns_text_printf(t, " ");
        ns_text_md(t, level);
        ns_text_printf(t, " (n = %d): trained worse %s, gap %s%s;", k, num(a, sizeof a, worse),
                       num(b, sizeof b, gap),
                       !(isfinite(worse) && isfinite(gap)) ? ""
                       : fabs(worse) >= fabs(gap)          ? " (trained worse larger)"
                                                           : " (gap larger)");
    }
    ns_text_printf(t, "\n");
    free(level_pairs);
    free(done);
}

typedef struct {
    double rho, lo, hi;
    int n;
    const char *verdict;
    const char *driven_by; /* the grid key that drives a pooled "tracks", or NULL */
} Tracking;

static Tracking track(const NsLog *logs, const Pair *pairs, int m, int site, int measure,
                      const NsOption **keys, int n_keys)
{
    double *x = ns_xmalloc(sizeof(double) * 2 * (size_t)m), *y = x + m;
    for (int i = 0; i < m; i++)
        x[i] = pairs[i].at[site][measure], y[i] = pairs[i].deficit;
    Tracking r = {0};
    r.rho = ns_spearman(x, y, m, &r.n);
    free(x);
    ns_spearman_interval(r.rho, r.n, &r.lo, &r.hi);
    r.verdict = ns_explain_verdict(r.rho, r.n);
    for (int k = 0; k < n_keys && !strcmp(r.verdict, "tracks"); k++) {
        int used;
        double within = within_levels(logs, pairs, m, keys[k], site, measure, &used);
        if (used >= 3 && !(within > 0.5 * r.rho))
            r.driven_by = keys[k]->attr;
    }
    return r;
}

static void write_tracking(NsText *t, const NsLog *logs, const Pair *pairs, int m,
                           const NsOption **keys, int n_keys, Tracking found[2][M_N * 2])
{
    char a[32], b[32], c[32], w[32];
    ns_text_printf(t, "### Does each measure track the deficit?\n\nSpearman's rank correlation "
                      "between the measure and the deficit over the pairs, with its 95 %% "
                      "interval (Fisher's z); `within <key>`: the correlation within each level "
                      "of a grid key, pooled by pairs.\n\n| measure | site | n | rho | 95 %% "
                      "interval | verdict |");
    for (int k = 0; k < n_keys; k++)
        ns_text_printf(t, " within `%s` |", keys[k]->attr);
    ns_text_printf(t, "\n|---|---|---|---|---|---|");
    for (int k = 0; k < n_keys; k++)
        ns_text_printf(t, "---|");
    ns_text_printf(t, "\n");
    for (int q = 0; q < M_N; q++)
        for (int s = 0; s < (q == M_GAP ? 1 : 2); s++) {
            Tracking r = track(logs, pairs, m, s, q, keys, n_keys);
            found[EXPLANATION[q]][q * 2 + s] = r;
            ns_text_printf(t, "| %s | %s | %d | %s | %s .. %s | %s", MEASURE[q],
                           q == M_GAP ? "(model)" : s ? "worst" : "first", r.n,
                           num(a, sizeof a, r.rho), num(b, sizeof b, r.lo),
                           num(c, sizeof c, r.hi), r.verdict);
            if (r.driven_by)
                ns_text_printf(t, ", driven by `%s`", r.driven_by);
            if (!strcmp(r.verdict, "inconclusive"))
                ns_text_printf(t, " (n = %d)", r.n);
            ns_text_printf(t, " |");
            for (int k = 0; k < n_keys; k++) {
                int used;
                double within = within_levels(logs, pairs, m, keys[k], s, q, &used);
                ns_text_printf(t, " %s (n = %d) |", num(w, sizeof w, within), used);
            }
            ns_text_printf(t, "\n");
        }
}

/* One verdict per explanation, over its k measures at once: each measure's interval is widened
 * to the two-sided level 5 %/k (Bonferroni), so that k chances of a spurious "tracks" still add
 * up to 5 %. The explanation tracks when one of its measures does at that level (and is not
 * driven by a grid key), does not when every measure is below 0.3 at that level, else it is
 * inconclusive. */
static void write_verdicts(NsText *t, Tracking found[2][M_N * 2], int m)
{
    static const char *const NAMES[2] = {
        "**Fluctuation** (PowerNorm paper: batch statistics stray more and more)",
        "**Training-inference discrepancy** (Wang et al.: TID and the loss it costs)"};
    static const double Z_BONFERRONI[] = {1.959964, 1.959964, 2.241403, 2.393980, 2.497705};
    ns_text_printf(t, "\nEach explanation over all its measures at once (every interval widened "
                      "to 5 %% / k for its k measures, Bonferroni):\n\n");
    for (int e = 0; e < 2; e++) {
        int k = 0, tracks = 0, not = 0;
        for (int j = 0; j < M_N * 2; j++)
            k += found[e][j].verdict != NULL;
        double z = Z_BONFERRONI[k < 4 ? k : 4];
        for (int j = 0; j < M_N * 2; j++) {
            const Tracking *r = &found[e][j];
            if (!r->verdict)
                continue;
            const char *v = verdict_at(r->rho, r->n, z);
            tracks += !strcmp(v, "tracks") && !r->driven_by;
            not += !strcmp(v, "does not track");
        }
        const char *word = tracks ? "tracks the deficit"
                           : k && not == k ? "does not track the deficit"
                                           : "inconclusive";
        ns_text_printf(t, "- %s: %s", NAMES[e], word);
        if (!tracks && not != k)
            ns_text_printf(t, " (n = %d)", m);
        ns_text_printf(t, " (at the 5 %%/%d level %d of its %d measures track, %d cannot).\n", k,
                       tracks, k, not);
    }
    ns_text_printf(t, "\n");
}

/* Regularized BN beside BN in the same cell and seed. */
static void write_rbn(NsText *t, const NsLog *logs, int n, const Pair *pairs, int m)
{
    Pair *bn = ns_xmalloc(sizeof(Pair) * (size_t)m), *rbn = ns_xmalloc(sizeof(Pair) * (size_t)m);
    int k = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            if (is_scheme(&logs[pairs[i].run], "batch") &&
                is_scheme(&logs[pairs[j].run], "batch-regularized") && pairs[i].ln == pairs[j].ln)
                bn[k] = pairs[i], rbn[k++] = pairs[j];
    (void)n;
    if (k) {
        static const struct { const char *name; size_t at; } ROWS[] = {
            {"deficit (nats)", offsetof(Pair, deficit)},
            {"trained worse (nats)", offsetof(Pair, worse)},
            {"train/inference gap (nats)", offsetof(Pair, gap)},
            {"TID, first site, last fifth", offsetof(Pair, at[0][M_TID])},
            {"fluctuation growth, first site", offsetof(Pair, at[0][M_FLUCT])},
            {"scale-free fluctuation growth, first site", offsetof(Pair, at[0][M_REL_FLUCT])},
        };
        char a[32], b[32];
        ns_text_printf(t, "### Regularized BN beside BN\n\nMedians over the %d cells and seeds "
                          "that have both:\n\n| | batch | batch-regularized |\n|---|---|---|\n", k);
        for (size_t r = 0; r < sizeof ROWS / sizeof ROWS[0]; r++)
            ns_text_printf(t, "| %s | %s | %s |\n", ROWS[r].name,
                           num(a, sizeof a, median_of(bn, k, ROWS[r].at)),
                           num(b, sizeof b, median_of(rbn, k, ROWS[r].at)));
        ns_text_printf(t, "\n");
    }
    free(bn);
    free(rbn);
}

void ns_report_explanations(FILE *f, const NsLog *logs, int n)
{
    NsText t = {0};
    Pair *pairs = ns_xmalloc(sizeof(Pair) * (size_t)(n > 0 ? n : 1));
    int m = find_pairs(logs, n, pairs);
    ns_text_printf(&t, "## Two explanations, tested on the same runs\n\nDoes the fluctuation of "
                       "the batch statistics (the PowerNorm paper), or the training-inference "
                       "discrepancy (Wang, Wu, Huang, NeurIPS 2022), track the deficit of the "
                       "batch-statistics runs against LayerNorm? Each run is paired with the "
                       "LayerNorm run of the same configuration and seed. Verdicts: *tracks* when "
                       "the 95 %% interval of the rank correlation lies above 0, *does not track* "
                       "when it lies below %.1f, else *inconclusive*; fewer than %d pairs are "
                       "always inconclusive. The TID floors assume independent normal rows "
                       "(docs/runlog.md), which later sites do not have.\n\n",
                   NS_EXPLAIN_NO_TRACK, NS_EXPLAIN_MIN_PAIRS);
    if (m == 0) {
        ns_text_printf(&t, "No batch-statistics run has a LayerNorm run of the same "
                           "configuration and seed among these logs: nothing to test.\n\n");
    } else {
        const NsOption *keys[16];
        int n_keys = grid_keys(logs, pairs, m, keys);
        Tracking found[2][M_N * 2] = {{{0}}};
        write_deficits(&t, logs, n, pairs, m);
        for (int k = 0; k < n_keys; k++)
            write_parts_by_level(&t, logs, pairs, m, keys[k]);
        ns_text_printf(&t, "\n");
        write_tracking(&t, logs, pairs, m, keys, n_keys, found);
        write_verdicts(&t, found, m);
        write_rbn(&t, logs, n, pairs, m);
    }
    fwrite(t.s, 1, t.len, f);
    ns_text_free(&t);
    free(pairs);
}
