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

/* Runs one training step on (tokens, mask) as group step_<k>: writes the batch, parameters and
 * state before, runs forward and backward, writes loss, gradients, state after and the learning
 * rate, then applies the AdamW update (no clipping: debug states record the plain optimizer).
 * Returns 0, or -1 with err set. */
int ns_debug_state_record_step(hid_t file, int k, NsModel *m, NsAdamW *opt,
                               const int32_t *tokens, const uint8_t *mask, double *loss,
                               char *err);

#endif
