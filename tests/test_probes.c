/* Tests of the probes (probes/probe_*.c) and what they record, in a scratch directory, running
 * NS_BINARY or the library in-process:
 *  1 dist_* recomputed from the recorded vectors; running vectors follow the scheme / own EMA
 *  2 every per-site series of a tiny in-process run recomputed from a replica model's x, dy, dx,
 *    and every params/ series from the parameters before and after each step
 *  3 the log read with the plain HDF5 API: attributes, docs, storage, NaN, row alignment
 *  4 probes never change training   5 --probes parsing   6 Lipschitz series
 * The run log's life (live SWMR reading, kill -9, SIGTERM + resume) is in test_runlog.c.
 * SOFT checks report and go on, failing the test at its end, so one run shows every discrepancy
 * with its numbers. NS_TEST_FILTER='*lipschitz*' runs one test. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "harness.h"
#include "logs.h"
#include "probes.h"
#include "util.h"

/* ------------------------------------------------------------ plain HDF5 reading */

/* An attribute as text: a variable-length string, or a number printed with %g. */
static const char *attr_text(hid_t obj, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "(missing)");
    if (H5Aexists(obj, name) <= 0)
        return buf;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), ft = H5Aget_type(a), mt = H5Tcopy(H5T_C_S1);
    char *v = NULL;
    double x;
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(ft)); /* HDF5 converts no ASCII <-> UTF-8 */
    if (H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) <= 0) { /* fixed length */
        size_t n = H5Tget_size(ft);
        char *t = calloc(n + 1, 1);
        hid_t fixed = H5Tcopy(ft);
        if (t && H5Aread(a, fixed, t) >= 0)
            snprintf(buf, size, "%s", t);
        free(t), H5Tclose(fixed);
    } else if (H5Tget_class(ft) == H5T_STRING && H5Aread(a, mt, &v) >= 0 && v)
        snprintf(buf, size, "%s", v), H5free_memory(v);
    else if (H5Tget_class(ft) != H5T_STRING && H5Aread(a, H5T_NATIVE_DOUBLE, &x) >= 0)
        snprintf(buf, size, "%g", x);
    H5Tclose(mt), H5Tclose(ft), H5Aclose(a);
    return buf;
}

/* ------------------------------------------------------------ 1: distances from vectors */

static void check_vectors_run(const char *norm, const char *batching)
{
    static const char *const stat[3] = {"mean", "var", "psi2"};
    const double init[3] = {0.0, 1.0, 1.0};
    const char *out = scratch("t1.h5"), *site;
    double *real, *all, *b, *r, *dist, rows[12];
    long c1, c2;
    /* one log file for every scheme and batching: each run replaces the last */
    assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 12 --eval-every 0 --probe-vectors-every 1 "
                            "--norm %s --batching %s --overwrite --out %s", norm, batching, out), 0);
    hid_t f = open_ro(out);
    assert_true(f >= 0);
    assert_int_equal(rd(f, "steps/real_tokens_per_s", &real, NULL), 12);
    assert_int_equal(rd(f, "steps/tokens_per_s", &all, NULL), 12);
    for (int k = 0; k < 12; k++) { /* real rows = B*T * (real tokens/s) / (positions/s) */
        rows[k] = round(128.0 * real[k] / all[k]);
        assert_true(rows[k] > 1 && (strcmp(batching, "stream") != 0 || rows[k] == 128.0));
    }
    free(real), free(all);
    int batch = strcmp(norm, "batch") == 0, pv = strcmp(norm, "power-v") == 0;
    for (int s = 0; s < N_TINY_SITES; s++) {
        site = TINY_SITES[s];
        assert_int_equal(upto(f, fmt("norms/%s/vectors/step", site)), 12);
        assert_int_equal(upto(f, fmt("norms/%s/step", site)), 12);
        for (int k = 0; k < 3; k++) {
            assert_int_equal(rd(f, fmt("norms/%s/vectors/batch_%s", site, stat[k]), &b, &c1), 12);
            assert_int_equal(rd(f, fmt("norms/%s/vectors/running_%s", site, stat[k]), &r, &c2), 12);
            assert_int_equal(rd(f, fmt("norms/%s/dist_%s", site, stat[k]), &dist, NULL), 12);
            assert_true(c1 == 32 && c2 == 32);
            int from_scheme = (batch && k < 2) || (pv && k == 2);
            float own[32]; /* the probe's own running average, in float like the probe */
            for (int c = 0; c < 32; c++)
                own[c] = (float)init[k];
            for (int t = 0; t < 12; t++) {
                const double *bt = b + 32 * t, *rt = r + 32 * t;
                double sq = 0.0;
                for (int c = 0; c < 32; c++)
                    sq += (bt[c] - rt[c]) * (bt[c] - rt[c]);
                SOFT(fabs(dist[t] - sqrt(sq) / 32) <= 1e-5 * sqrt(sq) / 32 + 1e-12,
                     "%s %s step %d dist_%s %.9g, from the vectors %.9g\n", norm, site, t + 1,
                     stat[k], dist[t], sqrt(sq) / 32);
                for (int c = 0; c < 32; c++) {
                    double want = own[c]; /* running value before step t+1 */
                    if (from_scheme && t == 0)
                        want = init[k];
                    else if (from_scheme) /* 0.9 r + 0.1 stat, batch variance stored unbiased */
                        want = 0.9 * r[32 * (t - 1) + c] + 0.1 * b[32 * (t - 1) + c] *
                               (batch && k == 1 ? rows[t - 1] / (rows[t - 1] - 1) : 1.0);
                    SOFT(fabs(rt[c] - want) <= 2e-6 * fmax(1.0, fabs(want)),
                         "%s/%s %s step %d running_%s[%d] = %.9g, expected %.9g\n", norm,
                         batching, site, t + 1, stat[k], c, rt[c], want);
                    own[c] += 0.1f * ((float)bt[c] - own[c]);
                }
            }
            free(b), free(r), free(dist);
        }
    }
    H5Fclose(f);
}

TEST(test_distances_from_vectors)
{
    check_vectors_run("batch", "sentences");
    check_vectors_run("batch", "stream");
    check_vectors_run("power-v", "sentences");
    check_vectors_run("layer", "sentences");
}

/* ------------------------------------------------------------ 2: independent computation */

#define T2 5  /* steps */
#define D2 8  /* d */
#define N2 32 /* B*T = 4*8 rows */
#define MAXS 5
enum { Q_DM, Q_DV, Q_DP, Q_GMU, Q_GS2, Q_GPSI2, Q_NU, Q_CORR, Q_OUT, Q_IN, Q_GAIN, Q_MAX, Q_N };
static const char *const QNAME[Q_N] = {"dist_mean", "dist_var", "dist_psi2", "g_mu", "g_sigma2",
                                       "g_psi2", "nu_norm", "correction_norm", "grad_out_norm",
                                       "grad_in_norm", "grad_gain", "grad_in_max"};

typedef struct { /* what our own hooks see in the replica model, per site */
    float x[MAXS][N2 * D2], dy[MAXS][N2 * D2], dx[MAXS][N2 * D2];
    float w[MAXS][D2], r_psi2[MAXS][D2], nu[MAXS][D2]; /* weight, state before the step */
    int64_t t[MAXS];                                    /* the site's iteration t */
    uint8_t mask[N2];
} Capture;

static void cap_forward(void *ctx, const NsNormSite *s, int i, const float *x, const uint8_t *mask,
                        int N, int training)
{
    Capture *c = ctx;
    assert_true(training && N == N2 && s->d == D2 && i < MAXS);
    memcpy(c->x[i], x, sizeof c->x[i]);
    memcpy(c->mask, mask, N2);
    for (int k = 0; k < D2; k++) {
        c->w[i][k] = s->weight ? s->weight[k] : 1.0f;
        c->r_psi2[i][k] = s->running_psi2 ? s->running_psi2[k] : NAN;
        c->nu[i][k] = s->nu ? s->nu[k] : NAN;
    }
    c->t[i] = s->step + 1;
}

static void cap_backward(void *ctx, const NsNormSite *s, int i, const float *dy, const float *dx,
                         const uint8_t *mask, int N)
{
    (void)s, (void)mask, (void)N;
    memcpy(((Capture *)ctx)->dy[i], dy, sizeof(float) * N2 * D2);
    memcpy(((Capture *)ctx)->dx[i], dx, sizeof(float) * N2 * D2);
}

static double norm_d(const double *v) /* (1/d)||v||_2 */
{
    double s = 0.0;
    for (int c = 0; c < D2; c++)
        s += v[c] * v[c];
    return sqrt(s) / D2;
}

/* The series of site i at one step from the capture, model-spec.md and the probe headers; st
 * gets mu_B, sigma2_B, psi2_B. run[3][d]: the running mean/var/psi2 the distances compare with
 * (our own, updated here). */
static void expect_site(const Capture *cap, int i, NsNormKind kind, int warmup, double eps,
                        double run[3][D2], double q[Q_N], double st[3][D2])
{
    const float *x = cap->x[i], *dy = cap->dy[i], *dx = cap->dx[i];
    int n = 0, pn = kind == NS_NORM_POWER || kind == NS_NORM_POWER_OFFICIAL;
    int warm = pn && cap->t[i] <= warmup, batch = kind == NS_NORM_BATCH;
    memset(st, 0, sizeof(double) * 3 * D2);
    for (int r = 0; r < N2; r++) { /* over the real rows */
        n += cap->mask[r] != 0;
        for (int c = 0; c < D2 && cap->mask[r]; c++)
            st[0][c] += x[r * D2 + c], st[2][c] += (double)x[r * D2 + c] * x[r * D2 + c];
    }
    for (int c = 0; c < D2; c++) {
        st[0][c] /= n, st[2][c] /= n;
        for (int r = 0; r < N2; r++) /* biased */
            st[1][c] += cap->mask[r] ? pow(x[r * D2 + c] - st[0][c], 2) / n : 0.0;
    }
    double diff[3][D2], gmu[D2], gvar[D2], gpsi[D2], nu[D2], corr = 0.0;
    for (int c = 0; c < D2; c++) {
        if (pn) /* PN schemes supply running_psi2 themselves */
            run[2][c] = cap->r_psi2[i][c];
        for (int k = 0; k < 3; k++)
            diff[k][c] = st[k][c] - run[k][c];
        /* batch: r <- 0.9 r + 0.1 stat, variance unbiased; power-v: r <- a r + (1-a) psi2_B
         * (a = 0.9); the probe's own averages: r <- r + 0.1 (stat - r) -- the same numbers */
        run[0][c] = 0.9 * run[0][c] + 0.1 * st[0][c];
        run[1][c] = 0.9 * run[1][c] + 0.1 * st[1][c] * (batch ? n / (n - 1.0) : 1.0);
        run[2][c] = 0.9 * run[2][c] + 0.1 * st[2][c];
        /* Every row r (padding too) has y_r = w (x_r - mu_B) (sigma2_B + eps)^-1/2 + b, so
         * dL/dmu_B = sum_r w dy_r * -(sigma2_B + eps)^-1/2 and dL/dsigma2_B = sum_r w dy_r
         * (x_r - mu_B) * -1/2 (sigma2_B + eps)^-3/2; PN-V: y_r = w x_r (psi2_B + eps)^-1/2 + b,
         * dL/dpsi2_B = sum_r w dy_r x_r * -1/2 (psi2_B + eps)^-3/2. */
        double sg = 0.0, sgc = 0.0, sgx = 0.0, w = cap->w[i][c];
        for (int r = 0; r < N2; r++) {
            double g = w * dy[r * D2 + c], xv = x[r * D2 + c];
            sg += g, sgc += g * (xv - st[0][c]), sgx += g * xv;
        }
        gmu[c] = -sg / sqrt(st[1][c] + eps);
        gvar[c] = -0.5 * sgc * pow(st[1][c] + eps, -1.5);
        gpsi[c] = -0.5 * sgx * pow(st[2][c] + eps, -1.5);
        /* subtracted term over real rows: power nu * x / sqrt(r + eps) after warm-up;
         * power-official (1 - a) nu z, z = x / sqrt((t <= W ? psi2_B : r) + eps) */
        nu[c] = cap->nu[i][c];
        double denom = sqrt((warm ? st[2][c] : cap->r_psi2[i][c]) + eps);
        for (int r = 0; r < N2 && pn; r++)
            corr += cap->mask[r] ? pow((kind == NS_NORM_POWER_OFFICIAL ? 0.1 : 1.0) * nu[c] *
                                       x[r * D2 + c] / denom, 2) : 0.0;
    }
    q[Q_DM] = norm_d(diff[0]), q[Q_DV] = norm_d(diff[1]), q[Q_DP] = norm_d(diff[2]);
    q[Q_GMU] = batch ? norm_d(gmu) : NAN;
    q[Q_GS2] = batch ? norm_d(gvar) : NAN;
    q[Q_GPSI2] = kind == NS_NORM_POWER_V || (kind == NS_NORM_POWER && warm) ? norm_d(gpsi) : NAN;
    q[Q_NU] = pn ? norm_d(nu) : NAN; /* nu before the step; 0 during power's warm-up */
    q[Q_CORR] = pn && !(kind == NS_NORM_POWER && warm) ? sqrt(corr) : NAN;
    double so = 0.0, si = 0.0, mx = 0.0;
    for (int k = 0; k < N2 * D2; k++)
        so += (double)dy[k] * dy[k], si += (double)dx[k] * dx[k], mx = fmax(mx, fabs(dx[k]));
    q[Q_OUT] = sqrt(so), q[Q_IN] = sqrt(si), q[Q_GAIN] = sqrt(si / so), q[Q_MAX] = mx;
}

/* The params probe's four norms of every tensor at one step, from the parameters before and
 * after the trainer's step, the replica's (unclipped) gradient and the initial parameters. */
#define MAXT 64
static const char *const PNAME[4] = {"grad_norm", "param_norm", "update_norm", "dist_init"};
static void expect_params(const NsParamLayout *L, const float *grad, const float *before,
                          const float *after, const float *init, double pq[MAXT][4])
{
    for (int i = 0; i < L->n_tensors; i++) {
        double s[4] = {0};
        for (size_t j = L->tensors[i].offset; j < L->tensors[i].offset + L->tensors[i].size; j++) {
            s[0] += (double)grad[j] * grad[j], s[1] += (double)before[j] * before[j];
            s[2] += pow((double)after[j] - before[j], 2), s[3] += pow((double)after[j] - init[j], 2);
        }
        for (int k = 0; k < 4; k++)
            pq[i][k] = sqrt(s[k]);
    }
}

static void independent_run(NsNormKind kind, NsNormPosition pos, int warmup)
{
    static double pq[T2][MAXT][4];
    static double q[T2][MAXS][Q_N], st[T2][MAXS][3][D2], run[MAXS][3][D2];
    static const char *const vec[3] = {"batch_mean", "batch_var", "batch_psi2"};
    char err[NS_ERRLEN] = "";
    NsRunConfig cfg;
    ns_run_config_default(&cfg);
    NsModelConfig *mc = &cfg.model;
    mc->d_model = D2, mc->n_heads = 2, mc->d_ff = 16, mc->n_layers = 2, mc->seq_len = 8;
    mc->batch_size = 4, mc->vocab_size = 300, mc->dropout = 0.0f, mc->norm = kind;
    mc->norm_position = pos, mc->pn_warmup = warmup;
    cfg.synth_bytes = 20000, cfg.steps = T2, cfg.threads = 1, cfg.eval_every = 0;
    cfg.batching = NS_BATCH_SENTENCES; /* padding rows, which the probes must skip */
    cfg.probe_vectors_every = 1, cfg.lipschitz_every = 0;
    snprintf(cfg.out_path, sizeof cfg.out_path, "%s", scratch("t2.h5"));
    NsTrainer tr;
    assert_int_equal(ns_trainer_init(&tr, &cfg, err), 0);
    NsProbes *set = ns_probes_attach(&tr, err);
    assert_non_null(set);
    int S = tr.model.n_sites, padded = 0;
    assert_true(S >= 4 && S <= MAXS);
    NsModel rep; /* the replica: same parameters, norm state and batch; our own hooks */
    ns_model_init(&rep, &tr.model.cfg, cfg.seed);
    Capture *cap = calloc(1, sizeof *cap);
    rep.hooks = (NsModelHooks){cap_forward, cap_backward, cap};
    NsModelSnapshot snap = {0};
    for (int s = 0; s < S; s++)
        for (int c = 0; c < D2; c++)
            run[s][0][c] = 0.0, run[s][1][c] = run[s][2][c] = 1.0;
    for (int t = 0; t < T2; t++) {
        NsStepInfo info;
        memcpy(rep.params, tr.model.params, sizeof(float) * tr.model.layout.total);
        ns_model_snapshot(&tr.model, &snap);
        ns_model_restore(&rep, &snap);
        assert_int_equal(ns_trainer_step(&tr, &info), 0);
        double loss = ns_model_forward(&rep, tr.tokens, tr.mask, 1);
        ns_model_zero_grad(&rep);
        ns_model_backward(&rep);
        assert_true(loss == info.loss); /* the replica took exactly the trainer's step */
        assert_true(tr.model.layout.n_tensors <= MAXT);
        expect_params(&tr.model.layout, rep.grads, rep.params, tr.model.params, tr.params_init,
                      pq[t]);
        for (int r = 0; r < N2; r++)
            padded += !tr.mask[r];
        for (int s = 0; s < S; s++)
            expect_site(cap, s, kind, warmup, tr.model.cfg.eps, run[s], q[t][s], st[t][s]);
    }
    assert_true(padded > 0); /* the batches had padding rows */
    assert_int_equal(ns_probes_close(set, err), 0);
    hid_t f = open_ro(cfg.out_path);
    assert_true(f >= 0);
    for (int s = 0; s < S; s++) {
        const char *site = tr.model.sites[s].path;
        double *v;
        long cols;
        for (int k = 0; k < Q_N; k++) {
            assert_int_equal(rd(f, fmt("norms/%s/%s", site, QNAME[k]), &v, NULL), T2);
            for (int t = 0; t < T2; t++) {
                double e = q[t][s][k], a = v[t];
                SOFT(isnan(e) ? isnan(a) : isfinite(a) && fabs(a - e) <= 1e-4 * fabs(e) + 1e-9,
                     "%s/%s %s step %d %s: recorded %.9g, independent %.9g\n",
                     ns_norm_name(kind), ns_position_name(pos), site, t + 1, QNAME[k], a, e);
            }
            free(v);
        }
        for (int k = 0; k < 3; k++) {
            assert_int_equal(rd(f, fmt("norms/%s/vectors/%s", site, vec[k]), &v, &cols), T2);
            assert_int_equal(cols, D2);
            for (int j = 0; j < T2 * D2; j++)
                SOFT(fabs(v[j] - st[j / D2][s][k][j % D2]) <= 1e-5 * fabs(v[j]) + 1e-7,
                     "%s %s step %d %s[%d]: %.9g, independent %.9g\n", ns_norm_name(kind), site,
                     j / D2 + 1, vec[k], j % D2, v[j], st[j / D2][s][k][j % D2]);
            free(v);
        }
    }
    for (int i = 0; i < tr.model.layout.n_tensors; i++)
        for (int k = 0; k < 4; k++) {
            double *v;
            const char *name = tr.model.layout.tensors[i].name;
            assert_int_equal(rd(f, fmt("params/%s/%s", name, PNAME[k]), &v, NULL), T2);
            for (int t = 0; t < T2; t++)
                SOFT(fabs(v[t] - pq[t][i][k]) <= 1e-6 * pq[t][i][k] + 1e-12,
                     "%s params/%s/%s step %d: recorded %.12g, independent %.12g\n",
                     ns_norm_name(kind), name, PNAME[k], t + 1, v[t], pq[t][i][k]);
            free(v);
        }
    H5Fclose(f);
    ns_model_snapshot_free(&snap);
    ns_model_free(&rep);
    free(cap);
    ns_trainer_free(&tr);
}

TEST(test_independent_tiny_model)
{
    independent_run(NS_NORM_BATCH, NS_POS_PRE, 0);
    independent_run(NS_NORM_BATCH, NS_POS_POST, 0);
    independent_run(NS_NORM_LAYER, NS_POS_PRE, 0);
    independent_run(NS_NORM_POWER_V, NS_POS_PRE, 0);
    independent_run(NS_NORM_POWER, NS_POS_PRE, 2); /* t = 1, 2 warm-up; nu != 0 from t = 4 */
    independent_run(NS_NORM_POWER_OFFICIAL, NS_POS_PRE, 2);
}

/* ------------------------------------------------------------ 3: plain HDF5 */

TEST(test_plain_hdf5_layout)
{
    static const char *const attrs[][2] = {
        {"norm", "layer"}, {"norm_position", "pre"}, {"format", "normscope-runlog-1"},
        {"probes", "all"}, {"d_model", "32"}, {"n_layers", "2"}, {"seq_len", "16"},
        {"seed", "1"}, {"steps", "12"}, {"lipschitz_every", "6"}, {"normscope_version", NULL}};
    static const char *const nan_series[] = {"g_mu", "g_sigma2", "g_psi2", "nu_norm",
                                             "correction_norm", "grad_out_norm"};
    const char *out = scratch("t3.h5");
    char buf[256], *docs = NULL;
    double *v;
    assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 12 --eval-every 5 --norm layer "
                            "--probe-vectors-every 5 --lipschitz-every 6 --hessian-iters 2 --out %s",
                            out), 0);
    hid_t f = open_ro(out);
    assert_true(f >= 0);
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        const char *got = attr_text(f, attrs[i][0], buf, sizeof buf), *want = attrs[i][1];
        SOFT(want ? !strcmp(got, want) : got[0] && strcmp(got, "(missing)"), "root attribute "
             "%s = %s, expected %s\n", attrs[i][0], got, want ? want : "a version");
    }
    hid_t d = H5Dopen2(f, "docs/paths", H5P_DEFAULT), ft = H5Dget_type(d), mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(ft));
    assert_true(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &docs) >= 0 && docs);
    H5Tclose(mt), H5Tclose(ft), H5Dclose(d);
    PathList l = datasets(f);
    assert_true(l.n > 100);
    for (int i = 0; i < l.n; i++) {
        const char *p = l.path[i];
        if (strcmp(p, "docs/paths") == 0)
            continue;
        /* named on a line of its own ("/p | units | def" or "/p [units]") */
        SOFT(strstr(docs, fmt("\n/%s ", p)), "/docs/paths does not mention %s\n", p);
        hid_t ds = H5Dopen2(f, p, H5P_DEFAULT), dcpl = H5Dget_create_plist(ds);
        hid_t space = H5Dget_space(ds);
        SOFT(strcmp(attr_text(ds, "units", buf, sizeof buf), "(missing)") && buf[0] &&
             strcmp(attr_text(ds, "definition", buf, sizeof buf), "(missing)") && buf[0],
             "%s lacks units or definition\n", p);
        hsize_t chunk[2], dims[2], maxdims[2];
        int deflate = 0;
        for (int k = 0; k < H5Pget_nfilters(dcpl); k++) {
            unsigned flags, cd[8];
            size_t ncd = 8;
            deflate |= H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, cd, 0, NULL, NULL) ==
                       H5Z_FILTER_DEFLATE;
        }
        H5Sget_simple_extent_dims(space, dims, maxdims);
        SOFT(H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 2, chunk) >= 1 && deflate &&
             maxdims[0] == H5S_UNLIMITED, "%s is not chunked + deflate + unlimited\n", p);
        H5Pclose(dcpl), H5Sclose(space), H5Dclose(ds);
    }
    for (char *line = strstr(docs, "\n/"); line; line = strstr(line + 1, "\n/"))
        if (sscanf(line + 2, "%191[^ |[\n]", buf) == 1)
            SOFT(exists(f, buf), "/docs/paths names %s, which is not in the file\n", buf);
    H5free_memory(docs);
    free(l.path);
    for (int s = 0; s < N_TINY_SITES; s++)
        for (int k = 0; k < 6; k++) { /* missing values are NaN, not 0 (layer: no such stats) */
            long n = rd(f, fmt("norms/%s/%s", TINY_SITES[s], nan_series[k]), &v, NULL);
            SOFT(n == 12, "norms/%s/%s has %ld rows\n", TINY_SITES[s], nan_series[k], n);
            for (long t = 0; t < n; t++)
                SOFT(k < 5 ? isnan(v[t]) : isfinite(v[t]) && v[t] > 0, "norms/%s/%s[%ld] = %g\n",
                     TINY_SITES[s], nan_series[k], t, v[t]);
            free(v);
        }
    long n = rd(f, "norms/final_norm/vectors/step", &v, NULL);
    SOFT(n == 3 && v[0] == 1 && v[1] == 5 && v[2] == 10, "vectors/step: not 1, 5, 10\n");
    free(v);
    n = rd(f, "eval/step", &v, NULL);
    SOFT(n == 3 && v[0] == 5 && v[1] == 10 && v[2] == 12, "eval/step: not 5, 10, 12\n");
    free(v);
    SOFT(check_alignment(f) == 0, "rows do not align with their group's step series\n");
    H5Fclose(f);
}

/* ------------------------------------------------------------ 4: probes never change training */

TEST(test_probes_do_not_change_training)
{
    static const char *const cases[] = {
        "--norm batch --dropout 0.1", "--norm power --pn-warmup 6 --dropout 0.1",
        "--norm power-official --pn-warmup 6 --dropout 0.2 --norm-position post",
        "--norm layer --dropout 0.1"};
    static const char *const series[] = {"steps/loss", "steps/grad_norm", "eval/loss"};
    const char *a = scratch("t4a.h5"), *b = scratch("t4b.h5");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 20 --eval-every 10 %s --probes all "
                                "--lipschitz-every 5 --hessian-iters 3 --probe-vectors-every 1 "
                                "--overwrite --out %s", cases[i], a), 0);
        assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 20 --eval-every 10 %s --probes none "
                                "--overwrite --out %s", cases[i], b), 0);
        hid_t fa = open_ro(a), fb = open_ro(b);
        assert_true(fa >= 0 && fb >= 0);
        for (int k = 0; k < 3; k++) {
            double *va, *vb;
            long na = rd(fa, series[k], &va, NULL), nb = rd(fb, series[k], &vb, NULL);
            assert_true(na == nb && na >= 2);
            for (long t = 0; t < na; t++)
                SOFT(memcmp(&va[t], &vb[t], sizeof(double)) == 0, "[%s] %s row %ld: probes all "
                     "%.17g, none %.17g\n", cases[i], series[k], t, va[t], vb[t]);
            free(va), free(vb);
        }
        H5Fclose(fa), H5Fclose(fb);
    }
}

/* ------------------------------------------------------------ 5: --probes */

TEST(test_probes_option)
{
    const char *err = scratch("t8.err"), *out = scratch("t8.h5");
    char line[1024], first[1024] = "";
    int lines = 0;
    int rc = run_io((Io){.err = err}, TINY_TRAIN " --steps 3 --probes bogus --out %s", out);
    assert_true(rc > 0 && rc < 127);
    FILE *fp = fopen(err, "r");
    while (fp && fgets(line, sizeof line, fp))
        if (line[0] != '\n' && lines++ == 0)
            snprintf(first, sizeof first, "%s", line);
    fclose(fp);
    assert_int_equal(lines, 1);
    assert_non_null(strstr(first, "bogus"));

    assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 6 --probes batch-stats --overwrite "
                            "--out %s", out), 0);
    hid_t f = open_ro(out);
    assert_true(f >= 0);
    for (int s = 0; s < N_TINY_SITES; s++) {
        assert_int_equal(NROWS(f, fmt("norms/%s/dist_mean", TINY_SITES[s])), 6);
        assert_int_equal(NROWS(f, fmt("norms/%s/vectors/batch_mean", TINY_SITES[s])), 1);
        assert_int_equal(NROWS(f, fmt("norms/%s/g_mu", TINY_SITES[s])), -1);
    }
    assert_true(!exists(f, "params") && !exists(f, "lipschitz") && NROWS(f, "steps/loss") == 6);
    double *ps, *wall;
    /* the probe's hook time: positive every step, and less than the step itself */
    assert_int_equal(rd(f, "steps/probe_seconds", &ps, NULL), 6);
    assert_int_equal(rd(f, "steps/wall_time", &wall, NULL), 6);
    for (int k = 1; k < 6; k++)
        SOFT(ps[k] > 0 && ps[k] < wall[k] - wall[k - 1], "probe_seconds[%d] = %g, step %g s\n",
             k, ps[k], wall[k] - wall[k - 1]);
    free(ps), free(wall);
    H5Fclose(f);

    assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 6 --probes none --lipschitz-every 2 "
                            "--overwrite --out %s", out), 0);
    f = open_ro(out);
    assert_true(f >= 0 && NROWS(f, "steps/loss") == 6 && NROWS(f, "eval/loss") == 1);
    PathList l = datasets(f);
    for (int i = 0; i < l.n; i++)
        SOFT(!strncmp(l.path[i], "steps/", 6) || !strncmp(l.path[i], "eval/", 5) ||
             !strcmp(l.path[i], "docs/paths"), "--probes none recorded %s\n", l.path[i]);
    free(l.path);
    assert_int_equal(rd(f, "steps/probe_seconds", &ps, NULL), 6); /* no probe timed */
    for (int k = 0; k < 6; k++)
        SOFT(ps[k] == 0, "--probes none: probe_seconds[%d] = %g\n", k, ps[k]);
    free(ps);
    H5Fclose(f);
}

/* ------------------------------------------------------------ 6: Lipschitz */

/* The curvature vectors of one row: the top eigenvalues start with hessian_top_eig; each
 * quadrature run's weights sum to 1; run 0 is the top-eigenvalue run (same steps), so its
 * largest-magnitude node is that eigenvalue. (Their accuracy: test_hessian.c, torch_ref.py.) */
static void check_curvature_row(hid_t f, int i, double eig)
{
    double *eigs, *nodes, *weights;
    long ce, cn, cw;
    assert_int_equal(rd(f, "lipschitz/hessian_top_eigs", &eigs, &ce), 4);
    assert_int_equal(rd(f, "lipschitz/density_nodes", &nodes, &cn), 4);
    assert_int_equal(rd(f, "lipschitz/density_weights", &weights, &cw), 4);
    assert_true(ce == 2 && cn == 8 && cw == 8);
    SOFT(eigs[2 * i] == (double)(float)eig && fabs(eigs[2 * i + 1]) <= fabs(eig),
         "hessian_top_eigs[%d] = %g %g, hessian_top_eig %g\n", i, eigs[2 * i], eigs[2 * i + 1],
         eig);
    double top = 0.0;
    for (int run = 0; run < 2; run++) {
        double sum = 0.0;
        for (int j = 0; j < 4; j++)
            sum += weights[8 * i + 4 * run + j];
        SOFT(fabs(sum - 1.0) < 1e-5, "density_weights[%d] run %d sum to %.8g\n", i, run, sum);
    }
    for (int j = 0; j < 4; j++)
        top = fabs(nodes[8 * i + j]) > fabs(top) ? nodes[8 * i + j] : top;
    SOFT(top == (double)(float)eig, "density run 0's largest node %g, hessian_top_eig %g\n", top,
         eig);
    free(eigs), free(nodes), free(weights);
}

TEST(test_lipschitz)
{
    static const char *const name[] = {"grad_predictiveness", "beta_smoothness", "seconds",
                                       "loss_range", "hessian_top_eig", "hessian_trace",
                                       "hvp_pinned"};
    enum { N_NAMES = sizeof name / sizeof name[0] };
    const char *out = scratch("t9.h5");
    double *st, *loss, *grid, *v[N_NAMES];
    long cols;
    assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 20 --eval-every 0 --lipschitz-every 5 "
                            "--hessian-iters 4 --hessian-top 2 --hutchinson-samples 2 "
                            "--density-runs 2 --density-steps 4 --dropout 0 --norm power "
                            "--pn-warmup 7 --out %s", out),
                     0);
    hid_t f = open_ro(out);
    assert_true(f >= 0);
    assert_int_equal(rd(f, "lipschitz/step", &st, NULL), 4);
    assert_int_equal(rd(f, "steps/loss", &loss, NULL), 20);
    assert_int_equal(rd(f, "lipschitz/grid_loss", &grid, &cols), 4);
    assert_int_equal(cols, 5);
    for (int k = 0; k < N_NAMES; k++)
        assert_int_equal(rd(f, fmt("lipschitz/%s", name[k]), &v[k], NULL), 4);
    for (int i = 0; i < 4; i++) {
        double lo = INFINITY, hi = -INFINITY, train = loss[(int)st[i] - 1];
        assert_true(st[i] == 5.0 * (i + 1));
        /* finite; > 0 except loss_range, pinned units (>= 0), eigenvalue and trace (any) */
        for (int k = 0; k < N_NAMES; k++)
            SOFT(isfinite(v[k][i]) && (k == 4 || k == 5 || v[k][i] > 0 ||
                                       ((k == 3 || k == 6) && v[k][i] == 0)),
                 "lipschitz/%s[%d] = %g\n", name[k], i, v[k][i]);
        check_curvature_row(f, i, v[4][i]);
        for (int c = 0; c < 5; c++)
            lo = fmin(lo, grid[5 * i + c]), hi = fmax(hi, grid[5 * i + c]);
        SOFT(fabs(v[3][i] - (hi - lo)) <= 1e-6, "loss_range[%d] = %g, grid max - min %g\n", i,
             v[3][i], hi - lo);
        /* r = 0, dropout 0, the pre-step norm state: exactly the step's training forward */
        SOFT(grid[5 * i] == (double)(float)train, "grid_loss[%d][0] = %.9g, loss of step %g = "
             "%.9g\n", i, grid[5 * i], st[i], train);
    }
    for (int k = 0; k < N_NAMES; k++)
        free(v[k]);
    free(st), free(loss), free(grid);
    H5Fclose(f);
}

/* A run shorter than --lipschitz-every is measured once, at its last step; a longer one only
 * at multiples of it (not at its last step too). */
TEST(test_lipschitz_short_run)
{
    const char *out = scratch("t10.h5");
    static const struct { int steps, every, rows; double last; } cases[] = {
        {7, 10, 1, 7.0}, {7, 3, 2, 6.0}, {7, 0, 0, 0.0}};
    for (int c = 0; c < 3; c++) {
        assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps %d --eval-every 0 "
                                "--lipschitz-every %d --hessian-iters 2 --overwrite --out %s",
                                cases[c].steps, cases[c].every, out), 0);
        hid_t f = open_ro(out);
        assert_true(f >= 0);
        double *st = NULL;
        long n = cases[c].rows ? rd(f, "lipschitz/step", &st, NULL) : 0;
        assert_int_equal(n, cases[c].rows);
        if (n)
            assert_true(st[n - 1] == cases[c].last);
        free(st);
        H5Fclose(f);
    }
}

/* ------------------------------------------------------------ main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distances_from_vectors), cmocka_unit_test(test_independent_tiny_model),
        cmocka_unit_test(test_plain_hdf5_layout), cmocka_unit_test(test_probes_do_not_change_training),
        cmocka_unit_test(test_probes_option), cmocka_unit_test(test_lipschitz),
        cmocka_unit_test(test_lipschitz_short_run),
    };
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* expected failures stay quiet */
    test_filter_from_env();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
