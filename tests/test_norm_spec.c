/* The parts of the norm schemes that finite differences cannot check, against model-spec.md
 * reimplemented here in double precision (from the spec's text, not from the C code):
 *  - `power` after warm-up and `power-official` use approximate backward passes by design: one
 *    training step at a time we compare y, dL/dx, dweight, dbias, running_psi2, nu and step with
 *    the reference, over runs that cross warm-up, with and without group scaling, with padding;
 *  - batch-type statistics are over real rows only: a padding row's input changes neither a real
 *    row's output nor the state;
 *  - training-mode forward and running-statistic updates of `batch` and `power-v`;
 *  - `batch-official`: the variance over all N rows of the mean-filled, layer-scaled input is
 *    `batch`'s variance of the same scaled rows times the real fraction n/N, and padded rows
 *    come out as exactly `bias`;
 *  - inference (training = 0) uses the running statistics and leaves the state alone. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "norm.h"
#include "util.h"

enum { B = 3, T = 4, N = B * T, D = 8 };
static const int lens[B] = {4, 3, 2}; /* padding at the tail of sequences 1 and 2 */
#define EPS 1e-5

typedef struct {
    NsNormSite site;
    float x[N * D], y[N * D], dy[N * D], dx[N * D];
    float weight[D], bias[D], dweight[D], dbias[D];
    uint8_t mask[N];
    NsRng rng;
} Site;

static void site_init(Site *s, NsNormKind kind, int warmup, int groups, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    NsModelConfig cfg;
    ns_model_config_default(&cfg);
    cfg.norm = kind;
    cfg.d_model = D;
    cfg.pn_warmup = warmup;
    cfg.pn_groups = groups;
    ns_norm_site_init(&s->site, "spec/norm", &cfg, N);
    ns_rng_seed(&s->rng, seed);
    for (int c = 0; c < D; c++) {
        s->weight[c] = (float)(0.5 + ns_rng_uniform(&s->rng));
        s->bias[c] = (float)(0.5 * ns_rng_normal(&s->rng));
    }
    ns_norm_site_bind(&s->site, s->weight, s->bias, s->dweight, s->dbias);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            s->mask[b * T + t] = t < lens[b];
}

/* A fresh batch: per-channel offsets and scales so that every channel's statistic differs. */
static void new_batch(Site *s)
{
    for (int r = 0; r < N; r++)
        for (int c = 0; c < D; c++) {
            s->x[r * D + c] = (float)(0.2 * c - 0.6 + (0.4 + 0.25 * c) * ns_rng_normal(&s->rng));
            s->dy[r * D + c] = (float)ns_rng_normal(&s->rng);
        }
}

static void train_step(Site *s)
{
    ns_norm_forward(&s->site, s->x, s->y, s->mask, N, 1);
    memset(s->dweight, 0, sizeof s->dweight);
    memset(s->dbias, 0, sizeof s->dbias);
    ns_norm_backward(&s->site, s->dy, s->dx, s->mask, N);
}

/* max |a - b| / max |b| over n values */
static double rel_err(const float *a, const double *b, int n)
{
    double diff = 0.0, scale = 1e-30;
    for (int i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        diff = fmax(diff, fabs(a[i] - b[i]));
        scale = fmax(scale, fabs(b[i]));
    }
    return diff / scale;
}

static double worst_spec;

static void expect_close(const char *what, int step, const float *got, const double *ref, int n,
                         double tol)
{
    double e = rel_err(got, ref, n);
    worst_spec = fmax(worst_spec, e);
    if (!(e <= tol))
        fail_msg("step %d: %s relative error %.3g > %.3g", step, what, e, tol);
}

/* ------------------------------------------------------------------ PN reference */

typedef struct {
    double r[D], nu[D]; /* running_psi2 (init 1), nu (init 0) */
    long t;
    double y[N * D], dx[N * D], dweight[D], dbias[D];
} RefPN;

/* One training step of `power` or `power-official` as model-spec.md words it. */
static void ref_pn_step(RefPN *P, NsNormKind kind, int W, int G, double a, const Site *s)
{
    const float *x = s->x, *dy = s->dy, *gamma = s->weight, *beta = s->bias;
    const uint8_t *mask = s->mask;
    double u[N * D], z[N * D], du[N * D], gs[N * D], psi2[D], den[D];
    long t = ++P->t;
    int w = G > 0 ? D / G : D, n = 0;
    /* group scaling: u = x / sqrt(mean over the group of x^2 + eps); gs keeps that divisor */
    for (int r = 0; r < N; r++)
        for (int g = 0; g < (G > 0 ? G : 1); g++) {
            double ms = 0.0;
            for (int c = g * w; c < (g + 1) * w; c++)
                ms += (double)x[r * D + c] * x[r * D + c] / w;
            for (int c = g * w; c < (g + 1) * w; c++) {
                gs[r * D + c] = G > 0 ? sqrt(ms + EPS) : 1.0;
                u[r * D + c] = x[r * D + c] / gs[r * D + c];
            }
        }
    for (int r = 0; r < N; r++)
        n += mask[r] != 0;
    for (int c = 0; c < D; c++) {
        psi2[c] = 0.0;
        for (int r = 0; r < N; r++)
            if (mask[r])
                psi2[c] += u[r * D + c] * u[r * D + c] / n;
    }
    int batch_stat = t <= W; /* both schemes: forward divides by psi2_B during warm-up */
    for (int c = 0; c < D; c++) {
        den[c] = sqrt((batch_stat ? psi2[c] : P->r[c]) + EPS);
        if (kind == NS_NORM_POWER) {
            P->r[c] = batch_stat ? P->r[c] * (t - 1) / t + psi2[c] / t
                                 : a * P->r[c] + (1 - a) * psi2[c];
        } else {
            if (t < W)
                P->r[c] = P->r[c] * (t - 1) / t + psi2[c] / t;
            P->r[c] = a * P->r[c] + (1 - a) * psi2[c];
        }
        P->dweight[c] = P->dbias[c] = 0.0;
    }
    for (int i = 0; i < N * D; i++) {
        int c = i % D;
        z[i] = u[i] / den[c];
        P->y[i] = gamma[c] * z[i] + beta[c];
        P->dweight[c] += dy[i] * z[i];
        P->dbias[c] += dy[i];
    }
    for (int c = 0; c < D; c++) {
        double sum_gu = 0.0, gamma_sum = 0.0, gz_all = 0.0;
        for (int r = 0; r < N; r++) {
            int i = r * D + c;
            double g = gamma[c] * dy[i];
            sum_gu += g * u[i];
            if (kind == NS_NORM_POWER && !batch_stat) {
                double gp = g - P->nu[c] * z[i]; /* g' = g - nu xhat */
                du[i] = mask[r] ? gp / den[c] : 0.0;
                if (mask[r])
                    gamma_sum += z[i] * gp;
            } else if (kind == NS_NORM_POWER_OFFICIAL) {
                double gp = g - (1 - a) * P->nu[c] * z[i];
                du[i] = gp / sqrt(psi2[c] + EPS); /* batch statistic, every phase, every row */
                gz_all += gp * z[i];
            }
        }
        if (kind == NS_NORM_POWER && batch_stat) {
            /* exact: z_j = u_j (psi2 + eps)^-1/2 with d psi2 / d u_i = 2 u_i / n for i in S */
            for (int r = 0; r < N; r++) {
                int i = r * D + c;
                du[i] = gamma[c] * dy[i] / den[c] -
                        (mask[r] ? u[i] * sum_gu / (n * den[c] * den[c] * den[c]) : 0.0);
            }
        } else if (kind == NS_NORM_POWER) {
            P->nu[c] += (1 - a) * gamma_sum / n;
        } else {
            P->nu[c] += gz_all / N;
        }
    }
    /* back through group scaling: u_j = x_j / s, s = sqrt(mean_grp x^2 + eps) */
    for (int r = 0; r < N; r++)
        for (int g = 0; g < (G > 0 ? G : 1); g++) {
            double dot = 0.0;
            for (int c = g * w; c < (g + 1) * w; c++)
                dot += du[r * D + c] * x[r * D + c];
            for (int c = g * w; c < (g + 1) * w; c++) {
                int i = r * D + c;
                double sg = gs[i];
                P->dx[i] = G > 0 ? du[i] / sg - x[i] * dot / (w * sg * sg * sg) : du[i];
            }
        }
}

static void check_pn_run(NsNormKind kind, int W, int G, int steps)
{
    Site s;
    site_init(&s, kind, W, G, 1000 + (uint64_t)kind * 10 + (uint64_t)W + 100 * (uint64_t)G);
    RefPN P;
    memset(&P, 0, sizeof P);
    for (int c = 0; c < D; c++)
        P.r[c] = 1.0;
    double a = s.site.alpha;
    printf("  %s W=%d G=%d:", ns_norm_name(kind), W, G);
    for (int k = 1; k <= steps; k++) {
        new_batch(&s);
        train_step(&s);
        ref_pn_step(&P, kind, W, G, a, &s);
        double before = worst_spec;
        worst_spec = 0.0;
        assert_int_equal(s.site.step, P.t);
        expect_close("y", k, s.y, P.y, N * D, 2e-5);
        expect_close("dx", k, s.dx, P.dx, N * D, 2e-5);
        expect_close("dweight", k, s.dweight, P.dweight, D, 2e-5);
        expect_close("dbias", k, s.dbias, P.dbias, D, 2e-5);
        expect_close("running_psi2", k, s.site.running_psi2, P.r, D, 2e-5);
        expect_close("nu", k, s.site.nu, P.nu, D, 2e-5);
        printf(" t=%d%s %.1e", k, k <= W ? "(warm)" : "", worst_spec);
        worst_spec = fmax(worst_spec, before);
        double pad = 0.0; /* largest |dx| at padded rows */
        for (int r = 0; r < N; r++)
            for (int c = 0; c < D && !s.mask[r]; c++)
                pad = fmax(pad, fabs(s.dx[r * D + c]));
        if (kind == NS_NORM_POWER && k > W)
            assert_true(pad == 0.0);
        if (kind == NS_NORM_POWER_OFFICIAL)
            assert_true(pad > 1e-3);
    }
    printf("\n");
    ns_norm_site_free(&s.site);
}

static void test_power_crossing_warmup(void **st)
{
    (void)st;
    check_pn_run(NS_NORM_POWER, 2, 0, 4); /* warm, warm, then nu = 0 and nu != 0 */
}

static void test_power_groups(void **st)
{
    (void)st;
    check_pn_run(NS_NORM_POWER, 1, 2, 3);
}

static void test_official_crossing_warmup(void **st)
{
    (void)st;
    check_pn_run(NS_NORM_POWER_OFFICIAL, 3, 0, 5); /* t < W twice, t == W, then t > W */
}

static void test_official_groups_no_warmup(void **st)
{
    (void)st;
    check_pn_run(NS_NORM_POWER_OFFICIAL, 2, 4, 3);
    check_pn_run(NS_NORM_POWER_OFFICIAL, 0, 0, 2);
}

/* ------------------------------------------------------------------ padding rows */
static void check_padding_isolated(NsNormKind kind, int W, int G, int presteps)
{
    Site s;
    site_init(&s, kind, W, G, 2000 + (uint64_t)kind);
    for (int k = 0; k < presteps; k++) {
        new_batch(&s);
        train_step(&s);
    }
    new_batch(&s);
    NormState before, after;
    norm_state_save(&s.site, &before);
    ns_norm_forward(&s.site, s.x, s.y, s.mask, N, 1);
    norm_state_save(&s.site, &after);
    float y0[N * D];
    memcpy(y0, s.y, sizeof y0);
    for (int r = 0; r < N; r++) /* very different padding rows */
        for (int c = 0; c < D && !s.mask[r]; c++)
            s.x[r * D + c] = (float)(5.0 + 10.0 * ns_rng_normal(&s.rng));
    norm_state_restore(&s.site, &before);
    ns_norm_forward(&s.site, s.x, s.y, s.mask, N, 1);
    for (int r = 0; r < N; r++)
        if (s.mask[r] && memcmp(s.y + r * D, y0 + r * D, sizeof(float) * D) != 0)
            fail_msg("%s: padding rows changed the output of real row %d",
                     ns_norm_name(kind), r);
    if (!norm_state_equal(&s.site, &after))
        fail_msg("%s: padding rows changed the state update", ns_norm_name(kind));
    norm_state_free(&before);
    norm_state_free(&after);
    ns_norm_site_free(&s.site);
}

static void test_padding_rows(void **st)
{
    (void)st;
    check_padding_isolated(NS_NORM_BATCH, 0, 0, 1);
    check_padding_isolated(NS_NORM_BATCH_OFFICIAL, 0, 0, 1);
    check_padding_isolated(NS_NORM_POWER_V, 0, 0, 1);
    check_padding_isolated(NS_NORM_POWER, 5, 0, 1); /* warm-up: batch statistic */
    check_padding_isolated(NS_NORM_POWER, 1, 2, 2); /* after warm-up: running update */
    check_padding_isolated(NS_NORM_POWER_OFFICIAL, 3, 0, 1);
    check_padding_isolated(NS_NORM_POWER_OFFICIAL, 1, 2, 2);
}

/* ------------------------------------------------------------------ batch, power-v training */

static void test_batch_and_power_v_training(void **st)
{
    (void)st;
    NsNormKind kinds[2] = {NS_NORM_BATCH, NS_NORM_POWER_V};
    for (int kk = 0; kk < 2; kk++) {
        NsNormKind kind = kinds[kk];
        Site s;
        site_init(&s, kind, 0, 0, 3000 + (uint64_t)kind);
        double rm[D], rv[D], rp[D], y[N * D];
        for (int c = 0; c < D; c++)
            rm[c] = 0.0, rv[c] = 1.0, rp[c] = 1.0;
        for (int k = 1; k <= 3; k++) {
            new_batch(&s);
            train_step(&s);
            for (int c = 0; c < D; c++) {
                double mu = 0.0, var = 0.0, ms = 0.0;
                int n = 0;
                for (int r = 0; r < N; r++)
                    if (s.mask[r])
                        mu += s.x[r * D + c], ms += (double)s.x[r * D + c] * s.x[r * D + c], n++;
                mu /= n, ms /= n;
                for (int r = 0; r < N; r++)
                    if (s.mask[r])
                        var += (s.x[r * D + c] - mu) * (s.x[r * D + c] - mu) / n;
                for (int r = 0; r < N; r++) {
                    double xh = kind == NS_NORM_BATCH ? (s.x[r * D + c] - mu) / sqrt(var + EPS)
                                                      : s.x[r * D + c] / sqrt(ms + EPS);
                    y[r * D + c] = s.weight[c] * xh + s.bias[c];
                }
                rm[c] = 0.9 * rm[c] + 0.1 * mu;
                rv[c] = 0.9 * rv[c] + 0.1 * var * n / (n - 1);
                rp[c] = 0.9 * rp[c] + 0.1 * ms;
            }
            expect_close("training y", k, s.y, y, N * D, 1e-5);
            if (kind == NS_NORM_BATCH) {
                expect_close("running_mean", k, s.site.running_mean, rm, D, 1e-5);
                expect_close("running_var", k, s.site.running_var, rv, D, 1e-5);
            } else {
                expect_close("running_psi2", k, s.site.running_psi2, rp, D, 1e-5);
            }
        }
        ns_norm_site_free(&s.site);
    }
}

/* ------------------------------------------------------------------ batch-official */

/* Layer scaling of model-spec.md: each row divided by sqrt(mean over d of x^2 + eps). */
static void layer_scale(const float *x, float *u)
{
    for (int r = 0; r < N; r++) {
        double ms = 0.0;
        for (int c = 0; c < D; c++)
            ms += (double)x[r * D + c] * x[r * D + c] / D;
        for (int c = 0; c < D; c++)
            u[r * D + c] = (float)(x[r * D + c] / sqrt(ms + EPS));
    }
}

/* Against `batch` on the same (scaled) input and mask: the same mean, the variance times n/N,
 * for two paddings of the same real rows; padded outputs equal bias bit for bit. */
static void check_official_against_batch(const int *row_lens)
{
    Site off, plain;
    site_init(&off, NS_NORM_BATCH_OFFICIAL, 0, 0, 5000);
    site_init(&plain, NS_NORM_BATCH, 0, 0, 5000);
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            off.mask[b * T + t] = plain.mask[b * T + t] = t < row_lens[b];
            n += t < row_lens[b];
        }
    new_batch(&off);
    layer_scale(off.x, plain.x);
    ns_norm_forward(&off.site, off.x, off.y, off.mask, N, 1);
    ns_norm_forward(&plain.site, plain.x, plain.y, plain.mask, N, 1);
    double mean[D], var[D];
    for (int c = 0; c < D; c++) {
        mean[c] = plain.site.batch_mean[c];
        var[c] = (double)plain.site.batch_var[c] * n / N;
    }
    expect_close("batch-official mean", n, off.site.batch_mean, mean, D, 1e-6);
    expect_close("batch-official variance = batch variance * n/N", n, off.site.batch_var, var, D,
                 1e-6);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < D && !off.mask[r]; c++)
            if (off.y[r * D + c] != off.bias[c])
                fail_msg("batch-official: padded row %d channel %d is %g, not bias %g", r, c,
                         (double)off.y[r * D + c], (double)off.bias[c]);
    ns_norm_site_free(&off.site);
    ns_norm_site_free(&plain.site);
}

static void test_batch_official_statistics(void **st)
{
    (void)st;
    static const int some_padding[B] = {4, 3, 2}, mostly_padding[B] = {2, 1, 1};
    check_official_against_batch(some_padding);
    check_official_against_batch(mostly_padding);
}

/* ------------------------------------------------------------------ inference */

static void check_inference(NsNormKind kind, int G)
{
    Site s;
    site_init(&s, kind, 2, G, 4000 + (uint64_t)kind + 10 * (uint64_t)G);
    new_batch(&s);
    train_step(&s); /* leaves batch statistics behind that inference must not use */
    for (int c = 0; c < D; c++) { /* a state no training step would leave behind */
        float *st[4] = {s.site.running_mean, s.site.running_var, s.site.running_psi2, s.site.nu};
        for (int k = 0; k < 4; k++)
            if (st[k])
                st[k][c] = (float)(k == 0 || k == 3 ? ns_rng_normal(&s.rng)
                                                    : 0.2 + 2.0 * ns_rng_uniform(&s.rng));
    }
    s.site.step = 7;
    new_batch(&s);
    NormState before;
    norm_state_save(&s.site, &before);
    ns_norm_forward(&s.site, s.x, s.y, s.mask, N, 0);
    assert_true(norm_state_equal(&s.site, &before));
    double y[N * D];
    if (kind == NS_NORM_BATCH_OFFICIAL) /* layer scaling: always one group */
        G = 1;
    int w = G > 0 ? D / G : D;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < D; c++) {
            double u = s.x[r * D + c], xh;
            if (G > 0) {
                double ms = 0.0;
                for (int j = c / w * w; j < (c / w + 1) * w; j++)
                    ms += (double)s.x[r * D + j] * s.x[r * D + j] / w;
                u /= sqrt(ms + EPS);
            }
            if (kind == NS_NORM_BATCH || kind == NS_NORM_BATCH_OFFICIAL)
                xh = (u - s.site.running_mean[c]) / sqrt(s.site.running_var[c] + EPS);
            else
                xh = u / sqrt(s.site.running_psi2[c] + EPS);
            y[r * D + c] = s.weight[c] * xh + s.bias[c];
        }
    expect_close(ns_norm_name(kind), 0, s.y, y, N * D, 1e-5);
    norm_state_free(&before);
    ns_norm_site_free(&s.site);
}

static void test_inference(void **st)
{
    (void)st;
    check_inference(NS_NORM_BATCH, 0);
    check_inference(NS_NORM_BATCH_OFFICIAL, 0);
    check_inference(NS_NORM_POWER_V, 0);
    check_inference(NS_NORM_POWER, 0);
    check_inference(NS_NORM_POWER, 2);
    check_inference(NS_NORM_POWER_OFFICIAL, 0);
}

static int report(void **st)
{
    (void)st;
    printf("worst relative error against the float64 reimplementation: %.2e\n", worst_spec);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_crossing_warmup),
        cmocka_unit_test(test_power_groups),
        cmocka_unit_test(test_official_crossing_warmup),
        cmocka_unit_test(test_official_groups_no_warmup),
        cmocka_unit_test(test_padding_rows),
        cmocka_unit_test(test_batch_and_power_v_training),
        cmocka_unit_test(test_batch_official_statistics),
        cmocka_unit_test(test_inference),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, report);
}
