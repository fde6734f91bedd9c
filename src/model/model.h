/* The Transformer language model of model-spec.md: parameters, activations, norm sites, and
 * the forward and backward passes over one batch. Follow a batch through ns_model_forward:
 * embedding + positions -> L layers (attention and feed-forward, each with its norm site in post
 * or pre position) -> [final norm] -> tied output projection -> cross-entropy over real positions.
 *
 * Observers (probes) attach through NsModelHooks; hooks see the norm sites' inputs, outputs and
 * gradients but cannot change them (const pointers), so training computes the same numbers with
 * or without observers. */
#ifndef NS_MODEL_H
#define NS_MODEL_H

#include <stdint.h>

#include "comm.h"
#include "config.h"
#include "norm.h"
#include "params.h"
#include "util.h"

typedef struct {
    /* Called before a site's forward (running statistics still hold their pre-step values). */
    void (*norm_forward_begin)(void *ctx, const NsNormSite *site, int site_index, const float *x,
                               const uint8_t *mask, int N, int training);
    /* Called after a site's backward with dL/dy and the site's own dL/dx (before any residual
     * gradient is added), while the site's g_* fields hold this step's statistic gradients. */
    void (*norm_backward_end)(void *ctx, const NsNormSite *site, int site_index, const float *dy,
                              const float *dx, const uint8_t *mask, int N);
    void *ctx;
} NsModelHooks;

/* Activations of one layer. Aliases make the two norm positions one code path:
 * post: a_in = x_in, n1_in = x_in + attn, f_in = n1_out, n2_in = n1_out + ffn, x_out = n2_out;
 * pre:  n1_in = x_in, a_in = n1_out, n2_in = x_in + attn, f_in = n2_out, x_out = n2_in + ffn. */
typedef struct {
    float *x_in, *a_in, *f_in, *x_out; /* aliases */
    float *n1_in, *n1_out, *n2_in, *n2_out;
    float *qkv;               /* [N][3d] */
    float *att;               /* [B][H][T][T] attention probabilities */
    float *ctx;               /* [N][d] heads concatenated */
    float *attn_out, *attn_keep; /* [N][d] after the output projection and dropout, mask */
    float *ffh;               /* [N][F] after ReLU */
    float *ffn_out, *ffn_keep;   /* [N][d] */
    float *res_out;           /* [N][d] pre position's layer output (x_out) */
} NsLayerActs;

typedef struct {
    NsModelConfig cfg;
    NsParamLayout layout;
    float *params, *grads; /* contiguous, laid out by `layout` */
    NsParamView p, g;      /* named views into params and grads */

    NsNormSite *sites; /* norm1/norm2 of each layer (2l, 2l+1), then final_norm (pre) */
    int n_sites;

    /* Data parallelism (docs/distributed.md): callers hand every rank the whole batch; this
     * rank runs rows [row0, row0 + B) of it. comm sums the loss and gradients over ranks (and,
     * with --batch-stats global, the norm sites' statistics); with local statistics, the norm
     * state is taken from rank 0 before every forward pass (what DDP does with buffers). */
    NsComm *comm;
    int local_stats;
    int max_rows;   /* rows of the largest share, what the buffers hold: ceil(B / ranks) */
    int B_global;   /* rows of the current batch over all ranks */
    int row0;       /* this rank's first row */
    int n_real_global; /* real positions of the last forward's whole batch */
    /* The sites' penalties of the last training forward (batch-regularized's P, summed over
     * sites, and over ranks with local statistics, where each rank's differ; 0 for schemes
     * without one): the training objective is the cross-entropy plus this. */
    double penalty;
    double grad_sum_seconds; /* wall time spent summing gradients over ranks, for benchmarks */

    /* Activations for the largest share (max_rows * T rows). */
    float *pe;             /* [T][d] positional table */
    float *x0, *x0_keep;   /* [N][d] embedding output, its dropout mask */
    NsLayerActs *acts;
    float *final_out;      /* [N][d] pre position: final_norm output */
    float *logits;         /* [N][V] logits, then their gradient (training) or probabilities */
    /* Backward scratch. */
    float *d_res, *d_a, *d_b, *d_ctx, *d_norm, *d_qkv, *d_ffh, *d_att;

    NsRng dropout_rng;
    NsModelHooks hooks;

    /* Shape of this rank's share of the current batch: B <= max_rows rows (B_global <=
     * cfg.batch_size over all ranks) and T <= cfg.seq_len (token-budget batches are smaller
     * than the buffers, which are sized for the largest). */
    int B, T;
    /* This rank's share of the batch of the last forward, needed by backward. */
    const int32_t *tokens;
    const uint8_t *mask;
    int last_training;
} NsModel;

/* Allocates everything and initialises parameters from `seed` (Xavier-uniform weights, normal
 * embeddings with std d^-1/2, zero biases, unit norm weights) and norm state to its spec init. */
void ns_model_init(NsModel *m, const NsModelConfig *cfg, uint64_t seed);
void ns_model_free(NsModel *m);

/* Forward over tokens[B][T+1] / mask[B][T]; returns the mean cross-entropy over real positions
 * (without the penalty, which is left in m->penalty).
 * training: dropout on, norm schemes use and update batch statistics. With several ranks every
 * rank passes the whole batch, runs its share, and gets the whole batch's loss. */
double ns_model_forward(NsModel *m, const int32_t *tokens, const uint8_t *mask, int training);
void ns_model_zero_grad(NsModel *m);
/* Shape of the batches that the following forward passes get (tokens [B][T+1], mask [B][T]);
 * at most the configured B and T, which is also the shape after init. Backward and
 * ns_model_loss_grad_at use the shape of the last forward. B counts the rows of all ranks: each
 * takes a contiguous share, B / ranks rows (the first B % ranks ranks one more). */
void ns_model_set_batch_shape(NsModel *m, int B, int T);
/* Backward of the last training forward; accumulates into m->grads and updates the norm state
 * that the schemes update in backward (PN's nu). With several ranks, m->grads ends up summed
 * over them: the gradient of the whole batch, on every rank. */
void ns_model_backward(NsModel *m);

/* A copy of every site's state (running statistics, nu, step) and the dropout RNG, so a probe
 * can run extra passes and put the model back exactly as it was. */
typedef struct {
    float *values;
    int64_t *steps;
    size_t n_values;
    NsRng dropout_rng;
} NsModelSnapshot;

void ns_model_snapshot(const NsModel *m, NsModelSnapshot *snap); /* allocates on first use */
void ns_model_restore(NsModel *m, const NsModelSnapshot *snap);
void ns_model_snapshot_free(NsModelSnapshot *snap);

/* Passes that leave the model untouched. An observer that wants the loss and gradient at other
 * parameters (the smoothness probe) must not disturb training, which it could by writing the
 * parameters, gradients, norm state, dropout RNG or hooks of the model being trained. So such a
 * pass runs in an NsModelScratch: a private model of the same configuration, with its own
 * buffers and norm sites, dropout off and no hooks, reused from pass to pass. */
typedef struct {
    NsModel work;
    NsModelSnapshot state; /* m's norm state, for passes given none */
} NsModelScratch;

void ns_model_scratch_init(NsModelScratch *scratch, const NsModel *m);
void ns_model_scratch_free(NsModelScratch *scratch);

/* Objective and gradient (into grad, layout.total floats) at `params` on the batch tokens/mask
 * (the objective: the cross-entropy, plus the penalty of batch-regularized),
 * computed as a training step of m computes them (batch statistics; the norm state, and with it
 * PN's phase, taken from `state`, or m's current state when NULL) but with dropout off and
 * without firing hooks. Nothing of m is written. Returns the loss. */
double ns_model_loss_grad_at(const NsModel *m, const NsModelSnapshot *state, const float *params,
                             const int32_t *tokens, const uint8_t *mask, float *grad,
                             NsModelScratch *scratch);

/* Site lookup by model-spec.md path ("layers/1/norm2", "final_norm"): index or -1. */
int ns_model_find_site(const NsModel *m, const char *path);

#endif
