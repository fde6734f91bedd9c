/* A checkpoint belongs to one run log. Every run gets a random identifier (run_id, 128 bits in
 * hex) when it starts; its log and each of its checkpoints carry it as a root attribute, so
 * `train --resume` can refuse what would mix two runs in one file: a checkpoint of another run,
 * a log that is missing (unless --new-log), a --checkpoint path holding another run's
 * checkpoint, or a plan that is already done (--steps at or below the checkpoint's step).
 * Files from before run_id lack it: a resume is allowed when the log and the checkpoint both
 * lack it (the resumed run then gives them one), refused when only one has it. */
#ifndef NS_RUN_BINDING_H
#define NS_RUN_BINDING_H

#include "checkpoint.h"
#include "run_config.h"

/* A new random identifier (getrandom) into id[NS_RUN_ID_LEN]. */
void ns_run_id_generate(char *id);

/* Whether two paths name one file (the same text, or the same device and inode). */
int ns_same_file(const char *a, const char *b);

/* An output path that exists must be a regular file: replacing a device (--out /dev/null
 * --overwrite) or writing HDF5 into one is refused, one line naming it and its flag. */
int ns_check_output_file(const char *path, const char *what, const char *flag, char *err);

/* The checks above for `train --resume` of cfg (checkpoint_path already filled in) from the
 * checkpoint whose header is ckpt. Reads only; returns 0, or -1 with one line in err. */
int ns_resume_check(const NsRunConfig *cfg, const NsCheckpointHeader *ckpt, char *err);

#endif
