/* The run-log schema: what a normscope run log is, defined once. The writer (runlog.h, used by
 * the probes) and the reader (logread.h, used by the analysis and the notebook export) build
 * every path here and stamp or check the same format version, so the two cannot drift apart.
 *
 *   /                                 attribute `format` = NS_RUNLOG_FORMAT, the run configuration
 *   /steps/<series>                   one row per training step
 *   /eval/<series>                    one row per validation pass
 *   /norms/<site>/<series>            per norm site (model-spec.md path), one row per step
 *   /norms/<site>/vectors/<series>    per norm site, [n][d] rows every --probe-vectors-every
 *   /params/step, /params/<tensor>/<series>   per parameter tensor, one row per step
 *   /lipschitz/<series>               every --lipschitz-every steps
 *   /docs/paths                       every series with its units and definition
 *
 * The rows of a series are indexed by the `step` series of its nearest ancestor group that has
 * one (/params/<tensor>/grad_norm by /params/step). Which series each group holds, with units
 * and definitions, is declared by the probe that records it (probes/), and listed in the log
 * itself under /docs/paths. */
#ifndef NS_RUNLOG_SCHEMA_H
#define NS_RUNLOG_SCHEMA_H

#include <stddef.h>

/* The format version: bump it when a reader of the old version would misread the new. */
#define NS_RUNLOG_FORMAT "normscope-runlog-1"
#define NS_RUNLOG_FORMAT_ATTR "format"
/* Root attributes beside the configuration: fractions of the tokens that are <unk>. */
#define NS_RUNLOG_UNK_RATE_TRAIN "unk_rate_train"
#define NS_RUNLOG_UNK_RATE_VALID "unk_rate_valid"

/* Top-level groups, and the series that indexes a group's rows. */
#define NS_RUNLOG_STEPS "steps"
#define NS_RUNLOG_EVAL "eval"
#define NS_RUNLOG_NORMS "norms"
#define NS_RUNLOG_PARAMS "params"
#define NS_RUNLOG_LIPSCHITZ "lipschitz"
#define NS_RUNLOG_DOCS_PATHS "docs/paths"
#define NS_RUNLOG_STEP "step"

#define NS_RUNLOG_PATH_LEN 200 /* fits every path the builders make for model-spec.md names */

/* The builders write into buf (truncating to n) and return it, so they can be used inline:
 * ns_log_has(log, ns_runlog_site_path(p, sizeof p, site, NS_RUNLOG_STEP)). */
/* "<group>/<series>" */
const char *ns_runlog_path(char *buf, size_t n, const char *group, const char *series);
/* "norms/<site>/<series>", or the site's group "norms/<site>" when series is NULL */
const char *ns_runlog_site_path(char *buf, size_t n, const char *site, const char *series);
/* "norms/<site>/vectors/<series>" */
const char *ns_runlog_vector_path(char *buf, size_t n, const char *site, const char *series);
/* "params/<tensor>/<series>" */
const char *ns_runlog_param_path(char *buf, size_t n, const char *tensor, const char *series);

/* Whether path names a group's step series ("<group>/step"). */
int ns_runlog_is_step_path(const char *path);
/* The site a user wrote as "layers/0/norm1", "norms/layers/0/norm1" or "/norms/layers/0/norm1":
 * a pointer into `name` past any leading "/norms/". */
const char *ns_runlog_site_name(const char *name);

#endif
