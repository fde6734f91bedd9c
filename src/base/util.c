#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void out_of_memory(size_t bytes)
{
    fprintf(stderr, "normscope: out of memory allocating %zu bytes; reduce --batch-size, "
                    "--seq-len or --vocab-size\n", bytes);
    abort();
}

void *ns_xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        out_of_memory(bytes);
    return p;
}

void *ns_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory(count * size);
    return p;
}

void *ns_xrealloc(void *ptr, size_t bytes)
{
    void *p = realloc(ptr, bytes ? bytes : 1);
    if (!p)
        out_of_memory(bytes);
    return p;
}

char *ns_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ns_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

int ns_fail(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, NS_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int ns_fail_context(char *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char inner[NS_ERRLEN];
    snprintf(inner, sizeof inner, "%s", err);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(err, NS_ERRLEN, fmt, ap);
    va_end(ap);
    /* Append ": inner", cut at the buffer's end as ns_fail cuts long messages. */
    size_t used = k < 0 ? 0 : (size_t)k, room = used + 3 < NS_ERRLEN ? NS_ERRLEN - used - 3 : 0;
    if (room > 0) {
        size_t n = strlen(inner) < room ? strlen(inner) : room;
        memcpy(err + used, ": ", 2);
        memcpy(err + used + 2, inner, n);
        err[used + 2 + n] = '\0';
    }
    return -1;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ns_rng_seed(NsRng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ns_rng_next(NsRng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ns_rng_uniform(NsRng *rng) { return (double)(ns_rng_next(rng) >> 11) * 0x1.0p-53; }

uint64_t ns_rng_below(NsRng *rng, uint64_t n)
{
    if (n == 0)
        return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
    uint64_t r;
    do {
        r = ns_rng_next(rng);
    } while (r >= limit);
    return r % n;
}

double ns_rng_normal(NsRng *rng)
{
    double u1 = ns_rng_uniform(rng), u2 = ns_rng_uniform(rng);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double ns_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The sums below keep LANES independent double sums: one running sum makes every add wait for
 * the one before (about 4 cycles an element), which made these passes a third of the probes'
 * cost on `small`; with 8 lanes the AVX2 clone (chosen at load time) is bound by memory. Same
 * operations in the same order in every clone, so the result does not depend on the CPU; the
 * order differs from a single running sum (a double rounding of a few ulp, far below float). */
enum { LANES = NS_SUM_LANES };

double ns_lane_total(const double *s)
{
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

NS_CPU_CLONES
double ns_sumsq(const float *restrict x, size_t n)
{
    double s[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++)
            s[k] += (double)x[i + k] * x[i + k];
    for (; i < n; i++)
        s[0] += (double)x[i] * x[i];
    return ns_lane_total(s);
}

NS_CPU_CLONES
double ns_sumsq_absmax(const float *restrict x, size_t n, float *absmax)
{
    double s[LANES] = {0};
    float m[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            float a = fabsf(x[i + k]);
            s[k] += (double)a * a;
            m[k] = a > m[k] ? a : m[k];
        }
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        s[0] += (double)a * a;
        m[0] = a > m[0] ? a : m[0];
    }
    float mx = m[0];
    for (int k = 1; k < LANES; k++)
        mx = m[k] > mx ? m[k] : mx;
    *absmax = mx;
    return ns_lane_total(s);
}

NS_CPU_CLONES
double ns_l2_distance(const float *restrict a, const float *restrict b, size_t n)
{
    double s[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            double t = (double)a[i + k] - b[i + k];
            s[k] += t * t;
        }
    for (; i < n; i++) {
        double t = (double)a[i] - b[i];
        s[0] += t * t;
    }
    return sqrt(ns_lane_total(s));
}

double ns_physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0.0;
}

int ns_exceeds_memory(double need, char *need_text, char *have_text, size_t n)
{
    double have = ns_physical_memory();
    if (have <= 0 || need <= have)
        return 0;
    ns_format_bytes(need_text, n, need);
    ns_format_bytes(have_text, n, have);
    return 1;
}

void ns_format_bytes(char *out, size_t n, double bytes)
{
    static const char *const units[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB"};
    int u = 0;
    while (bytes >= 1000.0 && u < 6) {
        bytes /= 1000.0;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}
