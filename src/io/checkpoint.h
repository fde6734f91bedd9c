/* Checkpoints (HDF5): everything needed to continue a run exactly where it stopped.
 *   root attributes  the full run configuration (model_io.h) and format/version
 *   params/<name>    parameters, model-spec.md names
 *   state/<site>/…   norm state (running statistics, nu, step)
 *   optim/m/<name>, optim/v/<name>, optim/t   AdamW moments and update count
 *   step             training steps completed
 *   rng/dropout      dropout RNG state (uint64[4])
 *   data/batcher     position of the training batcher (int64[])
 *   vocab/tokens     the vocabulary, id order (variable-length UTF-8 strings)
 *   init/<name>      the parameters at initialisation (distance-from-init probes)
 *   probes/<name>/…  state of the probes that keep some (running averages), via extra
 * Files are written to a temporary name in the same directory, with room for them reserved
 * first, fsync'ed, renamed over the old one, and the directory fsync'ed: a crash or a full disk
 * never leaves a torn checkpoint, and the previous one stays intact until the new one is whole. */
#ifndef NS_CHECKPOINT_H
#define NS_CHECKPOINT_H

#include <hdf5.h>
#include <stdint.h>

#include "batcher.h"
#include "corpus.h"
#include "model.h"
#include "optim.h"
#include "run_config.h"

/* Extra content of a checkpoint written by a layer above (the probes' state), into the open
 * file; returns 0 or -1 with err. */
typedef struct {
    int (*write)(void *ctx, hid_t file, char *err);
    void *ctx;
} NsCheckpointExtra;

int ns_checkpoint_save(const char *path, const NsRunConfig *cfg, NsModel *m, const NsAdamW *opt,
                       const NsBatcher *batches, const NsVocab *vocab, const float *params_init,
                       int64_t step, const NsCheckpointExtra *extra, char *err);

/* What must be known of a checkpoint before a model can be built from it: the run configuration
 * it was made with and its vocabulary (id order). */
typedef struct {
    NsRunConfig cfg; /* cfg.run_id: the run it belongs to (empty: made before run_id) */
    char **vocab;
    int vocab_n;
    int64_t step; /* training steps completed */
} NsCheckpointHeader;

/* Reads the header of the checkpoint at path. h->cfg holds a base on entry (the caller's
 * defaults): what the file stores overwrites it. Free with ns_checkpoint_header_free, also after
 * an error. */
int ns_checkpoint_read_header(const char *path, NsCheckpointHeader *h, char *err);
void ns_checkpoint_header_free(NsCheckpointHeader *h);

/* Loads parameters, norm state and, when opt/batches are non-NULL, the optimizer, RNG and data
 * position (and params_init, when non-NULL). The model must have been built with the
 * configuration of the checkpoint's header; a caller that may differ from it (a resumed run with
 * flags of its own) checks with ns_model_config_compare first. */
int ns_checkpoint_load(const char *path, NsModel *m, NsAdamW *opt, NsBatcher *batches,
                       float *params_init, int64_t *step, char *err);

/* The checkpoint-compatibility check: 0 if every NS_OPT_SHAPE row of NS_RUN_OPTIONS is equal,
 * else -1 with err naming the first that differs and both values. */
int ns_model_config_compare(const NsModelConfig *saved, const NsModelConfig *run, char *err);

#endif
