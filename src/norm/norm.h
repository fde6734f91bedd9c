/* Normalization sites and schemes.
 *
 * A *site* is one place in the network where a normalization layer sits (`layers/0/norm1`, …,
 * `final_norm`). It owns the scheme's state (running statistics, PN's nu and step counter), views
 * of its affine parameters and their gradients, and the caches its backward pass needs.
 * A *scheme* is described once, by its NsNormScheme (one file each: norm_layer.c, norm_batch.c,
 * …, listed in norm_schemes.h): its name, what it takes from a batch and keeps between steps,
 * and its forward/backward pair, which follows model-spec.md to the letter. Everything outside
 * the scheme's file (names, help, state allocation, checkpoints, probes, plots) asks the
 * descriptor instead of testing for particular schemes.
 *
 * Every scheme maps X[N][d] (rows in (b,t) order) to Y. Batch-type schemes take statistics per
 * channel over the real rows only (mask[r] != 0). Backward receives dL/dY and writes dL/dX,
 * accumulating the affine gradients. Besides dL/dX it leaves in the site what probes want to
 * see: the batch statistics it used and the gradient of the loss with respect to them. */
#ifndef NS_NORM_H
#define NS_NORM_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "config.h"

typedef struct NsNormSite NsNormSite;

/* Batch statistics a scheme takes per channel over the real rows of a training batch. */
enum { NS_STAT_MEAN = 1 << 0, NS_STAT_VAR = 1 << 1, NS_STAT_PSI2 = 1 << 2 };

/* State a site keeps between steps for its scheme: allocated (and checkpointed) only when set.
 * NS_STATE_STEP: the iteration counter is part of the state (saved, restored, in debug states). */
enum {
    NS_STATE_RUNNING_MEAN = 1 << 0, /* init 0 */
    NS_STATE_RUNNING_VAR = 1 << 1,  /* init 1 */
    NS_STATE_RUNNING_PSI2 = 1 << 2, /* init 1 */
    NS_STATE_NU = 1 << 3,           /* init 0 */
    NS_STATE_STEP = 1 << 4,
};

/* Row scaling the site applies in front of the scheme (model-spec.md, group scaling). */
typedef enum {
    NS_GROUPS_NONE,   /* none */
    NS_GROUPS_OPTION, /* pn_groups groups (0 = none): the PN schemes */
    NS_GROUPS_LAYER,  /* always one group over all d channels ("layer scaling") */
} NsGroupScaling;

typedef struct {
    const char *name;        /* the --norm value, and the `norm` attribute of logs/checkpoints */
    unsigned batch_stats;    /* NS_STAT_* taken in training (0: per-row or no statistics) */
    unsigned state;          /* NS_STATE_* kept between steps */
    int affine;              /* per-channel weight and bias after the normalization */
    NsGroupScaling groups;
    int exact_backward;      /* backward is the exact derivative of forward at every step (the
                              * PN schemes approximate it after warm-up) */
    float bn_momentum;       /* --bn-momentum when the user gives none (schemes keeping running
                              * mean/var; 0: the flag does not apply) */
    float release_bn_momentum; /* --bn-momentum under --release-defaults (0: the scheme's own) */
    /* A training-inference penalty added to the objective (batch-regularized): its default
     * weights [position][mean, var] for --rbn-penalty-mean/-var; has_penalty 0: the flags do
     * not apply. */
    int has_penalty;
    float penalty_defaults[2][2];
    int stats_all_rows;      /* the statistics are taken over all N rows of the site's scaled,
                              * mean-filled input rather than over the real rows of its input x:
                              * probes then record the site's own batch_mean/batch_var */
    /* The term the backward subtracts from g = weight * dy is k * nu * xhat, with nu as it was
     * before this step's update: returns k for this step, or NAN when this step subtracts none.
     * NULL for schemes without such a correction. Probes use it to report the term's size. */
    double (*correction_scale)(const NsNormSite *s);
    void (*forward)(NsNormSite *s, const float *x, float *y, const uint8_t *mask, int N,
                    int training);
    void (*backward)(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask, int N);
} NsNormScheme;

struct NsNormSite {
    char path[32]; /* model-spec.md name, e.g. "layers/0/norm1" */
    const NsNormScheme *scheme;
    int d, max_rows;
    float eps, momentum, alpha; /* eps, batch momentum, pn_alpha */
    int warmup;                 /* pn_warmup */
    int groups;                 /* groups of the row scaling in front of the scheme (0: none) */
    /* Ranks whose rows share this site's batch statistics (--batch-stats global): every sum
     * over rows, forward and backward, is summed over them too, so N ranks compute what one
     * process computes on the whole batch. NULL: statistics over this process's rows only. */
    NsComm *comm;

    /* batch-regularized's penalty: weights lm, lv; the real rows the objective's mean runs over
     * (the whole batch's, over all ranks, set by the model before each forward; 0: the site's
     * own real rows); this step's P (already divided by those rows; 0 without a penalty) and
     * its gradient with respect to mu_B and var_B, [2][d], which backward adds. */
    float penalty_mean, penalty_var;
    int objective_rows;
    double penalty;
    float *penalty_grad;

    /* Affine parameters and their gradients: views into the model's buffers (NULL for none). */
    float *weight, *bias, *dweight, *dbias;

    /* Scheme state ([d] each; NULL where the scheme keeps none). step counts training
     * iterations, incremented at the start of each training forward (first step: 1). */
    float *running_mean, *running_var, *running_psi2, *nu;
    int64_t step;

    /* Forward caches (valid between a training forward and its backward). */
    float *xhat;      /* [N][d] normalized input before the affine map (PN: z) */
    float *inv_std;   /* [max(N,d)] 1/sqrt(stat + eps): per channel or per row */
    float *batch_mean, *batch_var, *batch_psi2; /* [d] statistics this scheme took (or NaN) */
    int in_warmup;    /* PN schemes: this step used the batch statistic */

    /* Group scaling (groups > 0): the scaled input and per-group factors. */
    float *grouped;   /* [N][d] */
    float *group_inv; /* [N][groups] */
    float *dgrouped;  /* [N][d] */

    /* Backward results for observers: dL/d(statistic) per channel, NaN where the scheme does
     * not take a gradient through that statistic this step. */
    float *g_mean, *g_var, *g_psi2;
};

/* Allocates state and caches for up to max_rows rows and sets the state to its spec init. The
 * affine views are bound later by the model (ns_norm_site_bind). */
void ns_norm_site_init(NsNormSite *s, const char *path, const NsModelConfig *cfg, int max_rows);
void ns_norm_site_bind(NsNormSite *s, float *weight, float *bias, float *dweight, float *dbias);
void ns_norm_site_free(NsNormSite *s);
void ns_norm_site_reset_state(NsNormSite *s);

/* Forward/backward through the site: group scaling (PN schemes) then the scheme. */
void ns_norm_forward(NsNormSite *s, const float *x, float *y, const uint8_t *mask, int N,
                     int training);
void ns_norm_backward(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask, int N);

/* Names of the state tensors this scheme keeps, for checkpoints and debug states. Returns the
 * count and fills names[]/ptrs[] (at most 4: running_mean, running_var, running_psi2, nu). */
int ns_norm_state_tensors(NsNormSite *s, const char **names, float **ptrs);
int ns_norm_has_step(const NsNormSite *s); /* the step counter is part of the state */

/* The descriptor of a scheme (the none scheme for a kind out of range), or by its name (NULL
 * when unknown, e.g. a run log of a newer version). */
const NsNormScheme *ns_norm_scheme_for(NsNormKind kind);
const NsNormScheme *ns_norm_scheme_named(const char *name);

/* ---- helpers shared by the scheme files ---- */
/* Every sum over rows goes through these two: x[0..n) summed over the site's ranks (nothing
 * without s->comm), and a row count summed likewise. */
void ns_norm_reduce(const NsNormSite *s, double *x, int n);
int ns_norm_reduce_count(const NsNormSite *s, int count);
/* out[c] = mean over real rows of x[r][c] (double accumulation). Returns the real row count.
 * Rows of all the site's ranks (ns_norm_reduce), here and in the two below. */
int ns_channel_mean(const NsNormSite *s, double *out, const float *x, const uint8_t *mask, int N);
/* mean[c] as ns_channel_mean, and sqdev[c] = sum over real rows of (x[r][c] - mean[c])^2: the
 * variance's numerator, which batch and batch-official divide by different counts. Returns the
 * real row count. */
int ns_channel_mean_sqdev(const NsNormSite *s, double *mean, double *sqdev, const float *x,
                          const uint8_t *mask, int N);
/* out[c] = mean over real rows of x[r][c]^2 */
int ns_channel_sq_mean(const NsNormSite *s, double *out, const float *x, const uint8_t *mask,
                       int N);
/* y = weight * xhat + bias per channel, all rows. */
void ns_affine_forward(const NsNormSite *s, float *y, int N);
/* dweight += sum dy*xhat, dbias += sum dy over all rows; g = weight * dy. */
void ns_affine_backward(NsNormSite *s, const float *dy, float *g, int N);
void ns_fill_nan(float *x, int n);

/* batch's forward and backward (norm_batch.c), which batch-regularized wraps. */
void ns_batch_forward(NsNormSite *s, const float *x, float *y, const uint8_t *mask, int N,
                      int training);
void ns_batch_backward(NsNormSite *s, const float *dy, float *dx, const uint8_t *mask, int N);

/* The quadratic-mean pieces shared by power-v and the PN schemes (norm_power_v.c):
 * psi2_B over real rows into batch_psi2 (returns n); xhat = x / sqrt(psi2 + eps) per channel for
 * every row; and the exact backward through psi2_B, in place over g = weight * dy. */
int ns_psi2_batch(NsNormSite *s, const float *x, const uint8_t *mask, int N);
void ns_psi2_normalize(NsNormSite *s, const float *x, const float *psi2, int N);
void ns_psi2_exact_backward(NsNormSite *s, float *g, const uint8_t *mask, int N);

/* The descriptors, one per line of norm_schemes.h. */
#define NS_NORM_SCHEME_DECL(kind, scheme) extern const NsNormScheme scheme;
NS_NORM_SCHEMES(NS_NORM_SCHEME_DECL)
#undef NS_NORM_SCHEME_DECL

/* Group scaling of model-spec.md (norm_group.c). */
void ns_group_scale_forward(NsNormSite *s, const float *x, float *y, int N);
void ns_group_scale_backward(NsNormSite *s, const float *dy, const float *x, float *dx, int N);

#endif
