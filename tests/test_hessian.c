/* Tests of the curvature machinery (probes/hessian.[ch]) on models small enough to check by
 * brute force:
 *  1 Hessian-vector products against finite differences of v.g(theta), one coordinate at a
 *    time with the objective accumulated in double (fdcheck), at a random direction and at the
 *    top eigenvector, for every scheme with an exact backward, both norm positions; in a model
 *    large enough that products pin ReLU units, their symmetry and linearity
 *  2 Lanczos against LAPACK's dsyev on the dense Hessian (built column by column); the Jacobi
 *    solver against dsyev on a random matrix
 *  3 Hutchinson with many samples against the dense trace, within 4 standard deviations
 *  4 stochastic Lanczos quadrature: weights sum to 1, moments match trace/n and ||H||_F^2/n
 *  5 plot hessian's data (density integrates to 1, series as logged) and the report section
 * The float64 comparison with exact (double-backward) products is bench/torch_ref.py's (README).
 * NS_TEST_FILTER='*lanczos*' runs one test. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fdcheck.h"
#include "harness.h"
#include "hessian.h"
#include "logs.h"
#include "model.h"
#include "plot.h"
#include "report_smoothness.h"

/* LAPACK (OpenBLAS carries it): eigenvalues (jobz "N") or also eigenvectors ("V"). */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                   double *w, double *work, const int *lwork, int *info);

typedef struct {
    NsModel m;
    NsModelSnapshot snap;
    NsModelScratch scratch, fd_scratch;
    NsCurvature curv;
    int32_t *tokens;
    uint8_t *mask;
    float *theta;      /* the point, perturbed by fdcheck */
    const float *v;    /* direction of the product under test */
    float *g;
} Tiny;

/* Tiny: d=8, H=2, F=8, L=1, T=4, B=2, V=10, about 560 parameters. Mid: d=32, H=2, F=64, L=2,
 * T=16, B=8, V=50, 16 k ReLU units: products there cross kinks on both sides, so the pinned
 * path of ns_curv_hvp is taken. Parameters are moved off their initial values (zero biases,
 * unit norm weights) so no derivative vanishes by symmetry. */
static void model_init(Tiny *t, const char *norm, NsNormPosition pos, uint64_t seed, int mid)
{
    memset(t, 0, sizeof *t);
    NsModelConfig c;
    ns_model_config_default(&c);
    c.vocab_size = mid ? 50 : 10, c.d_model = mid ? 32 : 8, c.n_heads = 2;
    c.d_ff = mid ? 64 : 8, c.n_layers = mid ? 2 : 1;
    c.seq_len = mid ? 16 : 4, c.batch_size = mid ? 8 : 2, c.dropout = 0.0f, c.norm_position = pos;
    c.pn_warmup = 1000; /* PN schemes stay in warm-up: exact gradients */
    assert_int_equal(ns_norm_from_name(norm, &c.norm), 0);
    ns_model_init(&t->m, &c, seed);
    NsRng rng;
    ns_rng_seed(&rng, seed * 7 + 1);
    for (size_t i = 0; i < t->m.layout.total; i++)
        t->m.params[i] += (float)(0.1 * ns_rng_normal(&rng));
    int B = c.batch_size, T = c.seq_len, len[8];
    t->tokens = calloc((size_t)B * (T + 1), sizeof(int32_t));
    t->mask = calloc((size_t)B * T, 1);
    for (int i = 0; i < B * (T + 1); i++)
        t->tokens[i] = (int32_t)ns_rng_below(&rng, (uint64_t)c.vocab_size);
    for (int b = 0; b < B; b++) /* one padded position: masks matter for batch statistics */
        len[b] = b == 1 ? T - 1 : T;
    make_mask(t->mask, len, B, T);
    ns_model_snapshot(&t->m, &t->snap);
    ns_model_scratch_init(&t->scratch, &t->m);
    ns_model_scratch_init(&t->fd_scratch, &t->m);
    ns_curv_init(&t->curv, &t->m, &t->scratch);
    ns_curv_bind(&t->curv, &t->snap, t->m.params, t->tokens, t->mask);
    t->theta = falloc(t->m.layout.total);
    memcpy(t->theta, t->m.params, sizeof(float) * t->m.layout.total);
    t->g = falloc(t->m.layout.total);
}

static void tiny_init(Tiny *t, const char *norm, NsNormPosition pos, uint64_t seed)
{
    model_init(t, norm, pos, seed, 0);
}

static void tiny_free(Tiny *t)
{
    free(t->tokens);
    free(t->mask);
    ns_curv_free(&t->curv);
    ns_model_scratch_free(&t->scratch);
    ns_model_scratch_free(&t->fd_scratch);
    ns_model_snapshot_free(&t->snap);
    ns_model_free(&t->m);
    free(t->theta);
    free(t->g);
}

/* v . g(theta) in double; flags a ReLU whose side differs from theta0's (fdcheck's kinks). */
static double v_dot_grad(void *ctx)
{
    Tiny *t = ctx;
    size_t P = t->m.layout.total;
    ns_model_loss_grad_at(&t->m, &t->snap, t->theta, t->tokens, t->mask, t->g, &t->fd_scratch);
    double s = 0.0;
    for (size_t i = 0; i < P; i++)
        s += (double)t->v[i] * t->g[i];
    const NsModel *w = &t->fd_scratch.work;
    size_t units = (size_t)w->B * w->T * w->cfg.d_ff;
    for (int l = 0; l < w->cfg.n_layers; l++)
        for (size_t i = 0; i < units; i++)
            fd_crossed |= (w->acts[l].ffh[i] > 0.0f) != t->curv.relu0[l * units + i];
    return s;
}

static void dense_op(void *ctx, const float *v, float *out)
{
    const double *a = ((void **)ctx)[0];
    int n = *(const int *)((void **)ctx)[1];
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < n; j++)
            s += a[(size_t)i * n + j] * v[j];
        out[i] = (float)s;
    }
}

/* The top eigenvector of the Lanczos run: its Ritz vector of largest magnitude. */
static void top_ritz_vector(Tiny *t, int steps, float *out)
{
    size_t P = t->m.layout.total;
    float *start = falloc(P), *basis = falloc(P * steps);
    double *alpha = calloc(steps, sizeof(double)), *beta = calloc(steps, sizeof(double));
    NsRng rng;
    ns_rng_seed(&rng, 99);
    ns_fill_unit_gaussian(start, P, &rng);
    int k = ns_lanczos(ns_curv_op, &t->curv, P, start, steps, basis, alpha, beta);
    double *tri = calloc((size_t)k * k, sizeof(double)), *val = calloc(k, sizeof(double));
    double *vec = calloc((size_t)k * k, sizeof(double));
    for (int i = 0; i < k; i++) {
        tri[i * k + i] = alpha[i];
        if (i + 1 < k)
            tri[i * k + i + 1] = tri[(i + 1) * k + i] = beta[i];
    }
    ns_sym_eigen(tri, k, val, vec);
    int top = fabs(val[0]) > fabs(val[k - 1]) ? 0 : k - 1;
    for (size_t p = 0; p < P; p++) {
        double s = 0.0;
        for (int j = 0; j < k; j++)
            s += vec[j * k + top] * basis[(size_t)j * P + p];
        out[p] = (float)s;
    }
    free(start), free(basis), free(alpha), free(beta), free(tri), free(val), free(vec);
}

/* ------------------------------------------------------------ 1: products vs finite differences */

static void check_products(const char *norm, NsNormPosition pos)
{
    Tiny t;
    model_init(&t, norm, pos, 3, 0);
    size_t P = t.m.layout.total;
    float *v = falloc(P), *hv = falloc(P);
    NsRng rng;
    ns_rng_seed(&rng, 5);
    for (int which = 0; which < 2; which++) {
        if (which == 0)
            ns_fill_unit_gaussian(v, P, &rng);
        else
            top_ritz_vector(&t, 30, v);
        ns_curv_hvp(&t.curv, v, hv);
        t.v = v;
        char what[64];
        snprintf(what, sizeof what, "%s %s Hv (%s)", norm, pos ? "pre" : "post",
                 which ? "top eigenvector" : "random v");
        fd_check(what, v_dot_grad, &t, t.theta, P, hv, 60, 1e-3f, 0.0, &rng);
    }
    printf("    %s %s: %ld products, %ld one-sided, %ld ReLU units pinned\n", norm,
           pos ? "pre" : "post", t.curv.products, t.curv.one_sided, t.curv.pinned);
    free(v), free(hv);
    tiny_free(&t);
}

static void test_products_match_differences(void **state)
{
    (void)state;
    static const char *const exact[] = {"layer", "rms", "none", "batch", "batch-official",
                                        "batch-regularized", "power-v", "power"};
    for (size_t k = 0; k < sizeof exact / sizeof exact[0]; k++)
        for (int pos = 0; pos < 2; pos++)
            check_products(exact[k], (NsNormPosition)pos);
}

/* In the mid model, where products cross kinks (one side or both), coordinate-wise differences are
 * too noisy to check a product to 1 % (their float32 noise is of that order there), so the
 * pinned products are checked for what exact ones satisfy: symmetry, u.Hv = v.Hu, and
 * linearity, H(u + v) = Hu + Hv. Unpinned differences fail both by factors (a kink's jump
 * divided by 2h). Their accuracy against float64 double backward: torch_ref.py (README). */
static void check_pinned(const char *norm, NsNormPosition pos)
{
    Tiny t;
    model_init(&t, norm, pos, 3, 1);
    size_t P = t.m.layout.total;
    float *u = falloc(P), *v = falloc(P), *w = falloc(P), *hu = falloc(P), *hv = falloc(P),
          *hw = falloc(P);
    NsRng rng;
    ns_rng_seed(&rng, 41);
    for (int trial = 0; trial < 2; trial++) {
        ns_fill_unit_gaussian(u, P, &rng);
        ns_fill_unit_gaussian(v, P, &rng);
        for (size_t i = 0; i < P; i++)
            w[i] = u[i] + v[i];
        ns_curv_hvp(&t.curv, u, hu);
        ns_curv_hvp(&t.curv, v, hv);
        ns_curv_hvp(&t.curv, w, hw);
        double uhv = 0.0, vhu = 0.0, lin = 0.0, sum = 0.0;
        for (size_t i = 0; i < P; i++) {
            uhv += (double)u[i] * hv[i], vhu += (double)v[i] * hu[i];
            double s = (double)hu[i] + hv[i];
            lin += (hw[i] - s) * (hw[i] - s), sum += s * s;
        }
        double scale = 0.5 * (sqrt(ns_sumsq(hu, P)) + sqrt(ns_sumsq(hv, P)));
        printf("    mid %s %s: |u.Hv - v.Hu| / ||H.|| %.2e, ||H(u+v) - Hu - Hv|| / ||Hu + Hv|| "
               "%.2e\n", norm, pos ? "pre" : "post", fabs(uhv - vhu) / scale, sqrt(lin / sum));
        assert_true(fabs(uhv - vhu) <= 1e-2 * scale && sqrt(lin / sum) <= 1e-2);
    }
    printf("    mid %s %s: %ld products, %ld one-sided, %ld ReLU units pinned, %ld halvings\n",
           norm, pos ? "pre" : "post", t.curv.products, t.curv.one_sided, t.curv.pinned,
           t.curv.halved);
    assert_true(t.curv.one_sided + t.curv.pinned > 0); /* the case this model is for */
    free(u), free(v), free(w), free(hu), free(hv), free(hw);
    tiny_free(&t);
}

static void test_kinked_products_are_symmetric_and_linear(void **state)
{
    (void)state;
    check_pinned("layer", NS_POS_PRE);
    check_pinned("batch", NS_POS_POST);
}

/* ------------------------------------------------------------ 2-4: against the dense Hessian */

/* H column by column from products with unit vectors, symmetrized; returns its asymmetry. */
static double dense_hessian(Tiny *t, double *h)
{
    int n = (int)t->m.layout.total;
    float *e = falloc(n), *col = falloc(n);
    for (int j = 0; j < n; j++) {
        e[j] = 1.0f;
        ns_curv_hvp(&t->curv, e, col);
        e[j] = 0.0f;
        for (int i = 0; i < n; i++)
            h[(size_t)i * n + j] = col[i];
    }
    double asym = 0.0, all = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) {
            double a = h[(size_t)i * n + j], b = h[(size_t)j * n + i];
            asym += (a - b) * (a - b), all += a * a + b * b;
            h[(size_t)i * n + j] = h[(size_t)j * n + i] = 0.5 * (a + b);
        }
    free(e), free(col);
    return sqrt(asym / all);
}

static void eigenvalues(const double *a, int n, double *w)
{
    double *copy = malloc(sizeof(double) * (size_t)n * n), q;
    memcpy(copy, a, sizeof(double) * (size_t)n * n);
    int lwork = -1, info;
    dsyev_("N", "U", &n, copy, &n, w, &q, &lwork, &info);
    lwork = (int)q;
    double *work = malloc(sizeof(double) * (size_t)lwork);
    dsyev_("N", "U", &n, copy, &n, w, work, &lwork, &info);
    assert_int_equal(info, 0);
    free(work), free(copy);
}

typedef struct {
    Tiny t;
    int n;
    double *h, *w, trace, frob2, diag2;
    void *op_ctx[2];
} Dense;

static void dense_init(Dense *d, const char *norm, NsNormPosition pos)
{
    tiny_init(&d->t, norm, pos, 11);
    d->n = (int)d->t.m.layout.total;
    d->h = malloc(sizeof(double) * (size_t)d->n * d->n);
    d->w = malloc(sizeof(double) * (size_t)d->n);
    double asym = dense_hessian(&d->t, d->h);
    printf("    dense Hessian %s %s: n = %d, asymmetry %.2e\n", norm, pos ? "pre" : "post", d->n,
           asym);
    assert_true(asym < 1e-2); /* products are accurate, so H is symmetric to their accuracy */
    eigenvalues(d->h, d->n, d->w);
    d->trace = d->frob2 = d->diag2 = 0.0;
    for (int i = 0; i < d->n; i++) {
        d->trace += d->h[(size_t)i * d->n + i];
        d->diag2 += d->h[(size_t)i * d->n + i] * d->h[(size_t)i * d->n + i];
        for (int j = 0; j < d->n; j++)
            d->frob2 += d->h[(size_t)i * d->n + j] * d->h[(size_t)i * d->n + j];
    }
    d->op_ctx[0] = d->h, d->op_ctx[1] = &d->n;
}

static void dense_free(Dense *d)
{
    free(d->h), free(d->w);
    tiny_free(&d->t);
}

static void lanczos_top(NsSymOp op, void *ctx, int n, int steps, int top, double *out)
{
    float *start = falloc(n), *basis = falloc((size_t)n * steps);
    double *alpha = calloc(steps, sizeof(double)), *beta = calloc(steps, sizeof(double));
    double *val = calloc(steps, sizeof(double));
    NsRng rng;
    ns_rng_seed(&rng, 17);
    ns_fill_unit_gaussian(start, n, &rng);
    int k = ns_lanczos(op, ctx, n, start, steps, basis, alpha, beta);
    ns_tridiag_eigen(alpha, beta, k, val, NULL);
    ns_largest_magnitude(val, k, out, top);
    free(start), free(basis), free(alpha), free(beta), free(val);
}

static void test_lanczos_vs_dense(void **state)
{
    (void)state;
    for (int pos = 0; pos < 2; pos++) {
        Dense d;
        dense_init(&d, pos ? "batch" : "layer", (NsNormPosition)pos);
        double want[3], got[3], got_hvp[1];
        ns_largest_magnitude(d.w, d.n, want, 3);
        lanczos_top(dense_op, d.op_ctx, d.n, 80, 3, got);
        lanczos_top(ns_curv_op, &d.t.curv, d.n, 30, 1, got_hvp);
        for (int k = 0; k < 3; k++) {
            printf("    eigenvalue %d: dense %.8g, Lanczos(dense) %.8g\n", k, want[k], got[k]);
            assert_true(fabs(got[k] - want[k]) <= 1e-5 * fabs(want[0]));
        }
        printf("    top eigenvalue, Lanczos on products (30 steps): %.8g (rel %.1e)\n",
               got_hvp[0], fabs(got_hvp[0] / want[0] - 1));
        assert_true(fabs(got_hvp[0] / want[0] - 1) < 1e-2);
        dense_free(&d);
    }
}

static void test_jacobi_vs_lapack(void **state)
{
    (void)state;
    enum { N = 30 };
    double a[N * N], copy[N * N], want[N], got[N], vec[N * N];
    NsRng rng;
    ns_rng_seed(&rng, 23);
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++)
            a[i * N + j] = a[j * N + i] = ns_rng_normal(&rng);
    eigenvalues(a, N, want);
    memcpy(copy, a, sizeof a);
    ns_sym_eigen(copy, N, got, vec);
    for (int k = 0; k < N; k++) {
        assert_true(fabs(got[k] - want[k]) < 1e-10 * fabs(want[N - 1]));
        double r = 0.0; /* ||A x - lambda x|| for column k */
        for (int i = 0; i < N; i++) {
            double s = -got[k] * vec[i * N + k];
            for (int j = 0; j < N; j++)
                s += a[i * N + j] * vec[j * N + k];
            r += s * s;
        }
        assert_true(sqrt(r) < 1e-9 * fabs(want[N - 1]));
    }
}

static void test_hutchinson_vs_dense_trace(void **state)
{
    (void)state;
    Dense d;
    dense_init(&d, "rms", NS_POS_PRE);
    enum { S = 3000 };
    float *z = falloc(d.n), *hz = falloc(d.n);
    NsRng rng;
    ns_rng_seed(&rng, 29);
    double est = ns_hutchinson(dense_op, d.op_ctx, d.n, S, &rng, z, hz, NULL);
    /* Var(z.Hz) = 2 sum_{i != j} H_ij^2 for Rademacher z */
    double sd = sqrt(2.0 * (d.frob2 - d.diag2) / S);
    printf("    trace %.6g, Hutchinson (%d samples) %.6g, sd %.3g\n", d.trace, S, est, sd);
    assert_true(fabs(est - d.trace) <= 4.0 * sd);
    free(z), free(hz);
    dense_free(&d);
}

static void test_quadrature_moments(void **state)
{
    (void)state;
    Dense d;
    dense_init(&d, "power-v", NS_POS_POST);
    enum { RUNS = 300, STEPS = 12 };
    float *start = falloc(d.n), *basis = falloc((size_t)d.n * STEPS);
    double alpha[STEPS], beta[STEPS], val[STEPS], wt[STEPS], m1[RUNS], m2[RUNS];
    NsRng rng;
    ns_rng_seed(&rng, 31);
    for (int r = 0; r < RUNS; r++) {
        ns_fill_unit_gaussian(start, d.n, &rng);
        int k = ns_lanczos(dense_op, d.op_ctx, d.n, start, STEPS, basis, alpha, beta);
        ns_tridiag_eigen(alpha, beta, k, val, wt);
        double sum = 0.0;
        m1[r] = m2[r] = 0.0;
        for (int j = 0; j < k; j++)
            sum += wt[j], m1[r] += wt[j] * val[j], m2[r] += wt[j] * val[j] * val[j];
        assert_true(fabs(sum - 1.0) < 1e-9); /* the density integrates to 1 */
    }
    const double want[2] = {d.trace / d.n, d.frob2 / d.n};
    const double *got[2] = {m1, m2};
    for (int k = 0; k < 2; k++) {
        double mean = 0.0, var = 0.0;
        for (int r = 0; r < RUNS; r++)
            mean += got[k][r] / RUNS;
        for (int r = 0; r < RUNS; r++)
            var += (got[k][r] - mean) * (got[k][r] - mean) / (RUNS - 1);
        double se = sqrt(var / RUNS);
        printf("    moment %d: quadrature %.6g, dense %.6g, standard error %.3g\n", k + 1, mean,
               want[k], se);
        assert_true(fabs(mean - want[k]) <= 4.0 * se);
    }
    free(start), free(basis);
    dense_free(&d);
}

/* ------------------------------------------------------------ 5: plot and report */

/* Reads block `index` of a .dat file (blocks separated by two blank lines, # comments). */
static int dat_block(const char *path, int index, double *x, double *y, int cap)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[512];
    int block = 0, blank = 0, n = 0;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '\n') {
            block += ++blank == 2;
            continue;
        }
        if (line[0] == '#')
            continue;
        blank = 0;
        if (block == index && n < cap && sscanf(line, "%lf %lf", &x[n], &y[n]) == 2)
            n++;
    }
    fclose(fp);
    return n;
}

static void test_plot_and_report(void **state)
{
    (void)state;
    const char *run = scratch("hessian-run.h5");
    assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 10 --eval-every 0 --lipschitz-every 5 "
                            "--hessian-iters 6 --density-runs 2 --hutchinson-samples 2 "
                            "--overwrite --out %s", run), 0);
    NsLog log;
    const char *paths[1] = {run};
    open_logs(&log, paths, 1);
    NsPlotOptions opt = {.out_dir = scratch("hessian-figs")};
    char err[NS_ERRLEN];
    assert_true(ns_plot("hessian", &log, 1, &opt, err) >= 1);
    /* blocks: density, top eigenvalue, trace */
    static double x[512], y[512];
    int n = dat_block(scratch("hessian-figs/hessian.dat"), 0, x, y, 512);
    double integral = 0.0;
    for (int i = 1; i < n; i++)
        integral += 0.5 * (y[i] + y[i - 1]) * (x[i] - x[i - 1]);
    printf("    density: %d points, integral %.6f\n", n, integral);
    assert_true(n == 400 && fabs(integral - 1.0) < 1e-3);
    size_t rows;
    double *eig = series(&log, "lipschitz/hessian_top_eig", &rows);
    double *trace = series(&log, "lipschitz/hessian_trace", &rows);
    for (int b = 1; b <= 2; b++) {
        assert_int_equal(dat_block(scratch("hessian-figs/hessian.dat"), b, x, y, 512), 2);
        for (int i = 0; i < 2; i++)
            assert_true(x[i] == 5.0 * (i + 1) &&
                        fabs(y[i] - (b == 1 ? eig : trace)[i]) <= 1e-6 * fabs(y[i]));
    }
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    ns_report_smoothness(mem, &log, 1);
    fclose(mem);
    char median[64]; /* second half of training: the row of step 10 only, as printed */
    snprintf(median, sizeof median, "| %.4g [%.4g, %.4g] |", fabs(eig[1]), fabs(eig[1]),
             fabs(eig[1]));
    printf("%s", text);
    assert_non_null(strstr(text, "## Smoothness and curvature"));
    assert_non_null(strstr(text, median));
    assert_non_null(strstr(text, "no other configuration recorded it"));
    free(text);
    /* a run beside a repetition of itself (same configuration and seed): one configuration,
     * so the report names no runner-up instead of comparing the run with itself */
    NsLog twice[2] = {log, log};
    mem = open_memstream(&text, &len);
    ns_report_smoothness(mem, twice, 2);
    fclose(mem);
    assert_null(strstr(text, ", then "));
    assert_non_null(strstr(text, "no other configuration recorded it"));
    free(text), free(eig), free(trace);
    close_logs(&log, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_products_match_differences),
        cmocka_unit_test(test_kinked_products_are_symmetric_and_linear),
        cmocka_unit_test(test_jacobi_vs_lapack),
        cmocka_unit_test(test_lanczos_vs_dense),
        cmocka_unit_test(test_hutchinson_vs_dense_trace),
        cmocka_unit_test(test_quadrature_moments),
        cmocka_unit_test(test_plot_and_report),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
