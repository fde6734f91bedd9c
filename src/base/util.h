/* Small shared utilities: error reporting, checked allocation, a seeded RNG and timing.
 *
 * Error convention: library code never exits. Functions that can fail because of user input
 * return a negative value (or NULL) and write one human-readable line into an error buffer
 * (`char err[NS_ERRLEN]`) saying what failed, which file or flag, and what to do. Only main()
 * prints it and chooses the exit code. Allocation failure is the one exception: ns_xmalloc
 * aborts, since nothing sensible can continue. */
#ifndef NS_UTIL_H
#define NS_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define NS_ERRLEN 512

/* Exit codes of the normscope program. */
enum {
    NS_EXIT_OK = 0,
    NS_EXIT_ERROR = 1,     /* bad input, I/O failure */
    NS_EXIT_USAGE = 2,     /* bad command line */
    NS_EXIT_DIVERGED = 3,  /* training loss became NaN/Inf */
    NS_EXIT_INTERRUPTED = 130,
};

void *ns_xmalloc(size_t bytes);
void *ns_xcalloc(size_t count, size_t size);
void *ns_xrealloc(void *ptr, size_t bytes);
char *ns_xstrdup(const char *s);

/* snprintf into an error buffer; returns -1 so callers can `return ns_fail(err, ...)`. */
int ns_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Puts "<context>: " in front of the message already in err (e.g. which file or flag an inner
 * error is about); returns -1 like ns_fail. */
int ns_fail_context(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Deterministic RNG (splitmix64 seeding + xoshiro256**). Its whole state is 4 words so it can
 * be checkpointed and restored exactly. */
typedef struct {
    uint64_t s[4];
} NsRng;

void ns_rng_seed(NsRng *rng, uint64_t seed);
uint64_t ns_rng_next(NsRng *rng);
double ns_rng_uniform(NsRng *rng);         /* [0, 1) */
uint64_t ns_rng_below(NsRng *rng, uint64_t n); /* [0, n), unbiased */
double ns_rng_normal(NsRng *rng);          /* standard normal (Box-Muller) */

double ns_now_seconds(void); /* monotonic clock */

/* Bytes of physical memory of this machine (what a configuration's needs are checked against
 * before anything is allocated); 0 if unknown. */
double ns_physical_memory(void);
/* "12.3 GB", "450 MB", … into out. */
void ns_format_bytes(char *out, size_t n, double bytes);
/* Whether need bytes are more than this machine's physical memory (0 when they fit or it is
 * unknown); when they are, both amounts as text into need_text and have_text (n bytes each),
 * for the one-line error every configuration check gives. */
int ns_exceeds_memory(double need, char *need_text, char *have_text, size_t n);

/* Sum of squares in double precision: used wherever a norm is reported. */
double ns_sumsq(const float *x, size_t n);
/* ||a - b||_2 in double precision: used wherever a distance is reported. */
double ns_l2_distance(const float *a, const float *b, size_t n);
/* An AVX2 clone and a plain one of a hot loop, the one for this CPU chosen when the program
 * loads. clang before 15 names the dispatcher "<function>.ifunc", which callers in other files
 * cannot link against (the fuzz build, -Dfuzz=enabled, is clang 14 on Debian 12): there, the
 * plain version only. */
#if defined(__clang__) && __clang_major__ < 15
#define NS_CPU_CLONES
#else
#define NS_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#endif
/* These sums keep NS_SUM_LANES independent double sums; ns_lane_total adds them up in the
 * one fixed order every such sum uses (also the optimizer's observed step). */
enum { NS_SUM_LANES = 8 };
double ns_lane_total(const double *s);
/* sum x^2 (returned) and max |x| (in *absmax) in one pass; NaN in x gives a NaN sum. */
double ns_sumsq_absmax(const float *x, size_t n, float *absmax);

#endif
