/* The matmul ceiling of a training step: times cblas_sgemm on exactly the products one step of
 * the model makes (forward and backward of every linear map, the per-head attention products,
 * the tied output projection), in the same row-major layouts, and prints
 *   flops_per_token  gflops  ceiling_tokens_per_s
 * where the ceiling is the tokens/s a step would reach if it were nothing but these sgemm calls.
 * Used by scripts/bench.sh; a benchmark, not a test.
 *
 * usage: sgemm_ceiling d L H F T B V threads */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    int ta, tb, m, n, k, count; /* C[m][n] = op(A)[m][k] op(B)[k][n], `count` times per step */
} Gemm;

static float *buf(size_t n)
{
    float *p = malloc(sizeof(float) * n);
    if (!p) {
        fprintf(stderr, "sgemm_ceiling: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

static double run(const Gemm *g, int reps)
{
    size_t sa = (size_t)g->m * g->k, sb = (size_t)g->k * g->n, sc = (size_t)g->m * g->n;
    float *a = buf(sa), *b = buf(sb), *c = buf(sc);
    int lda = g->ta ? g->m : g->k, ldb = g->tb ? g->k : g->n;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < g->count; i++)
            cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                        g->tb ? CblasTrans : CblasNoTrans, g->m, g->n, g->k, 1.0f, a, lda, b,
                        ldb, 0.0f, c, g->n);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    free(a), free(b), free(c);
    return best;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: sgemm_ceiling d L H F T B V threads\n");
        return 2;
    }
    int d = atoi(argv[1]), L = atoi(argv[2]), H = atoi(argv[3]), F = atoi(argv[4]);
    int T = atoi(argv[5]), B = atoi(argv[6]), V = atoi(argv[7]);
    openblas_set_num_threads(atoi(argv[8]));
    int N = B * T, dk = d / H, heads = B * H;
    /* Each linear map y = x W^T: forward NT, backward dx = dy W (NN) and dW = dy^T x (TN). */
    const Gemm gemms[] = {
        {0, 1, N, d, d, 4 * L},   {0, 0, N, d, d, 4 * L},  {1, 0, d, d, N, 4 * L},  /* q k v o */
        {0, 1, N, F, d, L},       {0, 0, N, d, F, L},      {1, 0, F, d, N, L},      /* w1 */
        {0, 1, N, d, F, L},       {0, 0, N, F, d, L},      {1, 0, d, F, N, L},      /* w2 */
        {0, 1, N, V, d, 1},       {0, 0, N, d, V, 1},      {1, 0, V, d, N, 1},      /* logits */
        {0, 1, T, T, dk, heads * L}, {0, 0, T, dk, T, heads * L},                  /* scores, pv */
        {0, 1, T, T, dk, heads * L}, {1, 0, T, dk, T, heads * L},                  /* dp, dv */
        {0, 0, T, dk, T, heads * L}, {1, 0, T, dk, T, heads * L},                  /* dq, dk */
    };
    int n = (int)(sizeof gemms / sizeof gemms[0]);
    double flops = 0.0, seconds = 0.0;
    for (int i = 0; i < n; i++) {
        flops += 2.0 * gemms[i].m * gemms[i].n * gemms[i].k * gemms[i].count;
        seconds += run(&gemms[i], 5);
    }
    double per_token = flops / N;
    printf("%.0f %.1f %.0f\n", per_token, flops / seconds * 1e-9, N / seconds);
    return 0;
}
