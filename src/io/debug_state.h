/* Debug states (debug-state.md): a file that pins down a few training steps — parameters, norm
 * state, batch, loss, every gradient and the norm state after — so another implementation of
 * model-spec.md can recompute and compare them. */
#ifndef NS_DEBUG_STATE_H
#define NS_DEBUG_STATE_H

#include <hdf5.h>
#include <stdint.h>

#include "model.h"
#include "optim.h"

/* Creates the file and writes the root attributes. */
hid_t ns_debug_state_create(const char *path, const NsModelConfig *mc, const NsOptimConfig *oc,
                            char *err);

/* What a step's caller adds before the update (debug-step --lipschitz): called after the
 * step's backward with the model still at the step's parameters and `before`, the norm state
 * the step started from. Returns 0, or -1 with err set. */
typedef int (*NsDebugMeasure)(void *ctx, hid_t file, int k, const NsModel *m,
                              const NsModelSnapshot *before, const int32_t *tokens,
                              const uint8_t *mask, char *err);

/* Runs one training step on (tokens, mask) as group step_<k>: writes the batch, parameters and
 * state before, runs forward and backward, writes loss, gradients, state after and the learning
 * rate, calls measure (when not NULL), then applies the AdamW update (no clipping: debug states
 * record the plain optimizer). Returns 0, or -1 with err set. */
int ns_debug_state_record_step(hid_t file, int k, NsModel *m, NsAdamW *opt,
                               const int32_t *tokens, const uint8_t *mask, double *loss,
                               NsDebugMeasure measure, void *ctx, char *err);

/* The curvature group step_<k>/lipschitz/ of debug-state.md, from the caller's numbers. */
typedef struct {
    int n_grid;
    const double *r, *grid_loss, *grad_diff_norm; /* [n_grid], [n_grid + 1], [n_grid] */
    double beta_smoothness;
    const char *solver; /* "lanczos" or "power" */
    int64_t iters;
    double top_eig;
    const float *start;  /* the solver's start vector, laid out like the parameters */
    int samples;         /* Hutchinson vectors (0: no trace) */
    double trace;
    const float *probes; /* [samples][P] */
} NsDebugLipschitz;

int ns_debug_state_write_lipschitz(hid_t file, int k, const NsParamLayout *layout,
                                   const NsDebugLipschitz *lip, char *err);

#endif
