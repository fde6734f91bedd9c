/* Reading and writing the model to HDF5 under model-spec.md's names: parameter-shaped buffers
 * (parameters, gradients, AdamW moments), norm state, and the configuration as root attributes
 * named as in debug-state.md. Checkpoints, debug states and run logs all go through here, so
 * the three agree on every name. */
#ifndef NS_MODEL_IO_H
#define NS_MODEL_IO_H

#include <hdf5.h>

#include "model.h"
#include "optim.h"
#include "run_config.h"

/* Writes each tensor of the layout as prefix/<name> (shape from the layout). */
int ns_write_tensors(hid_t loc, const char *prefix, const NsParamLayout *layout,
                     const float *buffer, char *err);
/* Reads prefix/<name> for every tensor; a missing tensor or a shape mismatch is an error. */
int ns_read_tensors(hid_t loc, const char *prefix, const NsParamLayout *layout, float *buffer,
                    char *err);

/* Norm state as prefix/<site>/<state> ([d] float32) and prefix/<site>/step (int64 scalar). */
int ns_write_norm_state(hid_t loc, const char *prefix, NsModel *m, char *err);
int ns_read_norm_state(hid_t loc, const char *prefix, NsModel *m, char *err);

/* The configuration as root attributes, one per row of NS_RUN_OPTIONS (run_config.h) that names
 * one: integers as int64, reals as float64, names and paths as strings. */

/* The model and optimizer rows: debug-state.md's vocab_size, d_model, …, norm, norm_position,
 * eps, lr, …, tie_embeddings. */
int ns_write_config_attrs(hid_t loc, const NsModelConfig *mc, const NsOptimConfig *oc);
/* Reads them back; missing attributes keep the values already in mc/oc, except the rows marked
 * NS_OPT_REQUIRED (the sizes, norm and norm_position). */
int ns_read_config_attrs(hid_t loc, NsModelConfig *mc, NsOptimConfig *oc, char *err);

/* Every row: the model and optimizer attributes plus data, schedule, probe settings and the
 * program version. */
int ns_write_run_attrs(hid_t loc, const NsRunConfig *rc);
/* Reads what ns_write_run_attrs wrote, over the values already in rc. */
int ns_read_run_attrs(hid_t loc, NsRunConfig *rc, char *err);

/* The run identifier (NsRunConfig.run_id): a root attribute of run logs and checkpoints. */
#define NS_RUN_ID_ATTR "run_id"

/* A resumed run leaves the log's root attributes as its first segment wrote them (but `steps`,
 * the whole log's plan) and records itself in /segments/<k>, k = 1, 2, ...: start_step (the
 * checkpoint's step it continued after), new_log (1: the log began there, --new-log),
 * checkpoint (the --resume path) and each setting whose value differs from the root's, under
 * its root name. Records of segments that began at or after start_step are dropped first (a
 * resume from an earlier checkpoint takes their rows again). Returns 0 or -1 with err. */
#define NS_SEGMENTS_GROUP "segments"
int ns_runlog_record_segment(hid_t file, const NsRunConfig *now, int64_t start_step,
                             int new_log, char *err);

#endif
