#include "study_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comparable.h"
#include "explanations.h"
#include "report_smoothness.h"
#include "report_stability.h"
#include "seeds.h"
#include "stats.h"
#include "study_claims.h"
#include "table.h"
#include "util.h"
#include "sanitize.h"
#include "window.h"

#define BUCKETS 5

/* The forward distance a scheme is judged by: variance for mean-subtracting schemes, the
 * quadratic mean for the PN family (which never uses a variance). */
static const char *primary_distance(const NsLog *log)
{
    return strcmp(ns_log_scheme_stat(log), "psi2") == 0 ? "dist_psi2" : "dist_var";
}

/* The gradient through the batch statistic: sigma2_B for schemes that take a batch variance,
 * psi2_B otherwise (NaN where the scheme takes none). */
static const char *primary_gradient(const NsLog *log)
{
    return log->scheme && (log->scheme->batch_stats & NS_STAT_VAR) ? "g_sigma2" : "g_psi2";
}

/* Median of a site series in each 20 % of training; NaN where there is nothing. */
static int bucket_medians(const NsLog *log, const char *site, const char *name,
                          double out[BUCKETS])
{
    char path[NS_RUNLOG_PATH_LEN], err[NS_ERRLEN];
    size_t n, m;
    double *steps = ns_log_read_series(
        log, ns_runlog_site_path(path, sizeof path, site, NS_RUNLOG_STEP), &n, err);
    double *v =
        steps ? ns_log_read_series(log, ns_runlog_site_path(path, sizeof path, site, name), &m, err)
              : NULL;
    for (int b = 0; b < BUCKETS; b++)
        out[b] = NAN;
    int rc = -1;
    if (v && m == n && n > 0) {
        double max_step = steps[n - 1];
        for (int b = 0; b < BUCKETS; b++) {
            size_t lo, hi;
            ns_progress_range(steps, n, max_step, (double)b / BUCKETS, (double)(b + 1) / BUCKETS,
                              &lo, &hi);
            out[b] = hi > lo ? ns_median(v + lo, hi - lo) : NAN;
        }
        rc = 0;
    }
    free(steps);
    free(v);
    return rc;
}

/* Why a claim that does not hold is no surprise on a CPU, and what the one run that showed a
 * large growth really showed (README, "What to expect at CPU scale"). */
static const char NO_CLAIM_AT_SCALE[] =
    "The claim does not hold here. At CPU scale that is what to expect (README, \"What to "
    "expect\"): across docs/onset.md's maps BN's growth stays within 2.7x, a growth of the "
    "input's scale. The reference run where BN's dist_var grew by four orders of magnitude "
    "(PyTorch, post-norm, d=512, 6 layers, 4,000 steps) was unstable: its training loss rose for "
    "BN (median of the first fifth 4.5, of the second 5.7, of the last 5.4), LN (4.4 to 5.6) "
    "and PN (4.4 to 5.6), only PN-V kept improving (4.4 to 3.7), and LN's dist_var grew "
    "2,000-fold in it too. It shows what instability looks like, not the paper's effect.\n\n";

/* %.3g, or n/a for a run that lacks the series (a site it does not have, another writer). */
static const char *num3(double v)
{
    static _Thread_local char buf[8][32];
    static _Thread_local int next;
    char *b = buf[next++ % 8];
    if (isnan(v))
        snprintf(b, 32, "n/a");
    else
        snprintf(b, 32, "%.3g", v);
    return b;
}

static const NsLog *find_scheme(const NsLog *logs, int n, const char *norm)
{
    for (int i = 0; i < n; i++)
        if (strcmp(logs[i].norm, norm) == 0)
            return &logs[i];
    return NULL;
}

void ns_study_report_config(FILE *f, const NsLog *log)
{
    char corpus[512] = "?", tok[16] = "?", batching[16] = "?";
    long d = 0, L = 0, H = 0, F = 0, T = 0, B = 0, V = 0, steps = 0, seed = 0, warmup = 0;
    double lr = NAN;
    ns_log_attr_str(log, "corpus", corpus, sizeof corpus);
    ns_log_attr_str(log, "tokenizer", tok, sizeof tok);
    ns_log_attr_str(log, "batching", batching, sizeof batching);
    ns_log_attr_long(log, "d_model", &d);
    ns_log_attr_long(log, "n_layers", &L);
    ns_log_attr_long(log, "n_heads", &H);
    ns_log_attr_long(log, "d_ff", &F);
    ns_log_attr_long(log, "seq_len", &T);
    ns_log_attr_long(log, "batch_size", &B);
    ns_log_attr_long(log, "vocab_size", &V);
    ns_log_attr_long(log, "steps", &steps);
    ns_log_attr_long(log, "seed", &seed);
    ns_log_attr_long(log, "warmup", &warmup);
    ns_log_attr_double(log, "lr", &lr);
    char md[5][sizeof corpus * 6]; /* the log's strings as Markdown text */
    fprintf(f, "- corpus: %s (%s tokens, %s batching)\n- model: d=%ld, L=%ld, H=%ld, F=%ld, "
               "T=%ld, B=%ld, V=%ld, norm position %s\n- training: %ld steps, lr %g, warm-up "
               "%ld, seed %ld; normscope %s\n\n", ns_md_text(md[0], sizeof md[0], corpus),
            ns_md_text(md[1], sizeof md[1], tok), ns_md_text(md[2], sizeof md[2], batching), d,
            L, H, F, T, B, V, ns_md_text(md[3], sizeof md[3], log->position), steps, lr, warmup,
            seed, ns_md_text(md[4], sizeof md[4], log->version));
}

static void write_forward(FILE *f, const NsLog *logs, int n, const char *site, int largest)
{
    if (largest)
        fprintf(f, "### At `%s`, where the effect is largest\n\n", site);
    else
        fprintf(f, "## Forward: batch statistics against running statistics\n\n");
    fprintf(f, "Median distance at "
               "`%s` in each 20 %% of training (dist_var for mean-subtracting schemes, "
               "dist_psi2 for the PN family; the paper's Figure 2 and box plots), and the "
               "scale-free rel_dist_* = ||stat_B - running|| / ||running||, comparable across "
               "schemes whose inputs differ in scale:\n\n"
               "| run | distance | 0-20 %% | 20-40 %% | 40-60 %% | 60-80 %% | 80-100 %% | "
               "last / first |\n|---|---|---|---|---|---|---|---|\n", site);
    /* each run twice: the paper's absolute distance, then the scale-free rel_dist_* */
    for (int i = 0; i < 2 * n; i++) {
        const NsLog *log = &logs[i / 2];
        char name[40], label[128];
        ns_seed_label_md(logs, n, i / 2, label, sizeof label);
        snprintf(name, sizeof name, "%s%s", i % 2 ? "rel_" : "", primary_distance(log));
        double med[BUCKETS];
        bucket_medians(log, site, name, med);
        fprintf(f, "| %s | %s |", label, name);
        for (int b = 0; b <= BUCKETS; b++) /* the buckets, then last / first */
            fprintf(f, " %s |", num3(b < BUCKETS ? med[b] : med[BUCKETS - 1] / med[0]));
        fprintf(f, "\n");
    }
    const NsLog *bn = find_scheme(logs, n, "batch"), *pnv = find_scheme(logs, n, "power-v");
    if (!bn || !pnv)
        return;
    double b[BUCKETS], p[BUCKETS];
    bucket_medians(bn, site, "dist_var", b);
    bucket_medians(pnv, site, "dist_psi2", p);
    double growth = b[BUCKETS - 1] / b[0], ratio = b[BUCKETS - 1] / p[BUCKETS - 1];
    int grows = growth > 2.0, above = ratio > 10.0;
    char why[300];
    int unstable = ns_unstable_why(bn, why, sizeof why);
    fprintf(f, "\n**Paper's claim: BN's batch variance strays from its running value more and "
               "more as training goes on, far more than PN-V's quadratic mean.** Measured at `%s` "
               "(first runs of each; every site and every seed: \"The claims at every site\"): BN's "
               "dist_var changes %.3g-fold from the first to the last 20 %% of training "
               "(%s), and in the last 20 %% it is %.3g times PN-V's dist_psi2 (%s). ",
            site, growth, grows ? "it grows" : "it does not grow by more than 2x",
            ratio, above ? "far above" : "not an order of magnitude above");
    if (grows && unstable)
        fprintf(f, "BN's distance grew %.3g-fold while %s: unstable run, not the paper's "
                   "effect.\n\n", growth, why);
    else if (grows && above)
        fprintf(f, "The claim holds here.\n\n");
    else
        fprintf(f, "%s", NO_CLAIM_AT_SCALE);
}

static void gradient_stats(const NsLog *log, const char *site, double *med, double *p99,
                           double *mx)
{
    char path[NS_RUNLOG_PATH_LEN], err[NS_ERRLEN];
    size_t n;
    ns_runlog_site_path(path, sizeof path, site, primary_gradient(log));
    double *v = ns_log_read_series(log, path, &n, err);
    *med = v ? ns_median(v, n) : NAN;
    *p99 = v ? ns_quantile(v, n, 0.99) : NAN;
    *mx = v ? ns_finite_max(v, n) : NAN;
    free(v);
}

static void write_backward(FILE *f, const NsLog *logs, int n, const char *site)
{
    fprintf(f, "## Backward: gradients through the batch statistics\n\nAt `%s`, "
               "(1/d)||dL/dsigma2_B|| for BN and (1/d)||dL/dpsi2_B|| for PN-V (and PN during "
               "its warm-up) over all steps where the scheme takes that gradient:\n\n"
               "| run | series | median | 99th pct | max | max / median |\n"
               "|---|---|---|---|---|---|\n", site);
    for (int i = 0; i < n; i++) {
        double med, p99, mx;
        gradient_stats(&logs[i], site, &med, &p99, &mx);
        if (isnan(med))
            continue;
        char label[128];
        ns_seed_label_md(logs, n, i, label, sizeof label);
        fprintf(f, "| %s | %s | %.3g | %.3g | %.3g | %.3g |\n", label,
                primary_gradient(&logs[i]), med, p99, mx, mx / med);
    }
    const NsLog *bn = find_scheme(logs, n, "batch"), *pnv = find_scheme(logs, n, "power-v");
    if (bn && pnv) {
        double bm, bp, bx, pm, pp, px;
        gradient_stats(bn, site, &bm, &bp, &bx);
        gradient_stats(pnv, site, &pm, &pp, &px);
        fprintf(f, "\n**Paper's claim: BN's backward pass has large outliers.** Measured: BN's "
                   "largest g_sigma2 is %.3g times its median; PN-V's largest g_psi2 is %.3g "
                   "times its median. %s\n\n", bx / bm, px / pm,
                bx / bm > px / pm ? "BN's gradient has the heavier tail here."
                                  : "BN's gradient does not have the heavier tail here.");
    }
}

static double final_ppl(const NsLog *log)
{
    char err[NS_ERRLEN];
    size_t n;
    double *ppl = ns_log_read_series(log, "eval/ppl", &n, err);
    double v = ppl && n ? ppl[n - 1] : NAN;
    free(ppl);
    return v;
}

static void write_training(FILE *f, const NsLog *logs, int n)
{
    fprintf(f, "## Training\n\nFinal validation perplexity: ");
    int *order = ns_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = 0; i < n; i++) /* insertion sort by ppl, NaN last */
        for (int j = i; j > 0; j--) {
            double a = final_ppl(&logs[order[j - 1]]), b = final_ppl(&logs[order[j]]);
            if (!(isnan(b) || b >= a) || isnan(a)) {
                int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        }
    int shown = 0;
    for (int i = 0; i < n; i++) {
        double ppl = final_ppl(&logs[order[i]]);
        char label[128];
        ns_seed_label_md(logs, n, order[i], label, sizeof label);
        if (isfinite(ppl))
            fprintf(f, "%s%s %.2f", shown++ ? " < " : "", label, ppl);
    }
    fprintf(f, " (lower is better; the paper reports PN below LN below BN).");
    for (int i = 0; i < n; i++) {
        char label[512];
        if (!isfinite(final_ppl(&logs[order[i]])))
            fprintf(f, " %s has no finite final validation loss: it diverged (see the table's "
                       "\"diverged at\" column).",
                    ns_md_text(label, sizeof label, logs[order[i]].label));
    }
    fprintf(f, "\n\n");
    free(order);
    ns_report_training_seeds(f, logs, n);
}

/* figures/<base>.png, or the first of .svg and .pdf that was made (--format); NULL if none. */
static const char *figure_file(const char *out_dir, const char *base, char *buf, size_t len)
{
    static const char *const EXT[] = {"png", "svg", "pdf"};
    for (int k = 0; k < 3; k++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/figures/%s.%s", out_dir, base, EXT[k]);
        FILE *probe = fopen(path, "rb");
        if (probe) {
            fclose(probe);
            snprintf(buf, len, "figures/%s.%s", base, EXT[k]);
            return buf;
        }
    }
    return NULL;
}

static void write_figures(FILE *f, const char *out_dir, const char *site)
{
    char fluct[200];
    snprintf(fluct, sizeof fluct, "Distances between batch and running statistics at `%s` "
             "(the paper's Figure 2).", site);
    const struct { const char *base, *alt, *caption; } figs[] = {
        {"training", NULL, "Training loss and validation perplexity."},
        {"fluctuation", NULL, fluct},
        {"boxes-bn-vs-pnv-forward", "boxes-forward",
         "BN's dist_var against PN-V's dist_psi2 per 20 % of training (the paper's BN vs PN-V "
         "box plots)."},
        {"boxes-bn-vs-pnv-backward", "boxes-backward",
         "The gradients through the batch statistics, per 20 % of training."},
        {"gradients", NULL, "Gradient contributions through the statistics, gradient gain and "
                            "max |dL/dx| per layer."},
        {"lipschitz", NULL, "Loss smoothness: beta-smoothness, gradient predictiveness, Hessian "
                            "top eigenvalue."},
        {"layers", NULL, "dist_var over (layer, step) for each run: where in depth the effect "
                         "is."},
    };
    fprintf(f, "## Figures\n\nEach figure's data (.dat) and gnuplot script (.gp) are next to it "
               "in `figures/`; edit the script and run `gnuplot NAME.gp` to restyle. Each scheme "
               "has one colour, dash and marker in every figure; runs that differ only in seed "
               "are drawn as their mean with a band from their minimum to their maximum.\n\n");
    for (size_t i = 0; i < sizeof figs / sizeof figs[0]; i++) {
        char file[300];
        const char *path = figure_file(out_dir, figs[i].base, file, sizeof file);
        if (!path && figs[i].alt) /* a study of BN and PN-V alone draws the pair once */
            path = figure_file(out_dir, figs[i].alt, file, sizeof file);
        if (path)
            fprintf(f, "![%s](%s)\n\n*%s*\n\n", figs[i].caption, path, figs[i].caption);
    }
}

/* Copies the comparison table into the report, without its own top-level title. */
static void copy_table_into(FILE *out, const char *path)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return;
    char line[8192];
    while (fgets(line, sizeof line, in))
        if (strncmp(line, "# ", 2) != 0)
            fputs(line, out);
    fclose(in);
}

/* The first norm site of the first run that records any ("" if none). */
static void first_site(const NsLog *logs, int n, char *site, size_t len)
{
    site[0] = '\0';
    for (int i = 0; i < n && !site[0]; i++) {
        char **sites;
        int m = ns_log_sites(&logs[i], &sites);
        if (m > 0)
            snprintf(site, len, "%s", sites[0]);
        ns_log_free_sites(sites, m);
    }
}

/* Which runs the site-by-site sections compare, when the runs are of several model shapes. */
static void write_compared(FILE *f, const NsLog *logs, int n)
{
    NsText t = {0};
    if (ns_comparable_text(&t, logs, n))
        fprintf(f, "**Runs compared.** The sections that judge runs against each other at the "
                   "same norm site (Every site, Forward, Backward, The claims at every site) "
                   "need runs of one model shape: %s. The table, Training, Stability, smoothness "
                   "and the figures take every run.\n\n", t.s);
    ns_text_free(&t);
}

/* The sections that compare runs at the same norm site, over runs of one model shape. */
static void write_site_sections(FILE *f, const NsLog *logs, int n)
{
    NsLog *cmp = ns_xcalloc((size_t)n, sizeof *cmp);
    int m = ns_comparable_logs(logs, n, cmp);
    char site[64], largest[64];
    first_site(cmp, m, site, sizeof site);
    if (site[0]) {
        ns_report_sites(f, cmp, m, site, largest, sizeof largest);
        write_forward(f, cmp, m, site, 0);
        if (largest[0] && strcmp(largest, site) != 0)
            write_forward(f, cmp, m, largest, 1); /* where the effect is largest, beside it */
        write_backward(f, cmp, m, site);
        ns_report_claims(f, cmp, m);
    } else {
        fprintf(f, "No run records norm-site probes (--probes none?): no distances to report."
                   "\n\n");
    }
    free(cmp);
}

int ns_study_report(const char *out_dir, NsLog *logs, int n, char *err)
{
    char path[1100], site[64];
    if (n < 1)
        return ns_fail(err, "report: no run logs");
    first_site(logs, n, site, sizeof site);
    snprintf(path, sizeof path, "%s/report.md", out_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return ns_fail(err, "cannot write '%s'", path);
    fprintf(f, "# normscope study\n\nWhy does batch normalization fail in NLP Transformers "
               "while layer normalization works, and does Power Normalization fix it? Every "
               "number below is computed from the run logs (the table names them).\n\n");
    ns_study_report_config(f, &logs[0]);
    write_compared(f, logs, n);
    fprintf(f, "## Comparison\n\n");
    snprintf(path, sizeof path, "%s/compare.md", out_dir);
    copy_table_into(f, path);
    fprintf(f, "\n");
    write_training(f, logs, n);
    ns_report_stability(f, logs, n);
    write_site_sections(f, logs, n);
    ns_report_explanations(f, logs, n);
    ns_report_smoothness(f, logs, n);
    write_figures(f, out_dir, site[0] ? site : "the first norm site");
    int rc = fclose(f) == 0 ? 0 : ns_fail(err, "cannot finish writing the report in '%s'",
                                          out_dir);
    return rc;
}
