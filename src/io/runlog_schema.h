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
 * one (/params/<tensor>/grad_norm by /params/step). Every group, series (dtype, shape, units,
 * definition) and root attribute is declared once, in runlog.schema.json; the build turns it
 * into runlog_schema_gen.[ch] (gen_runlog_schema.py), whose tables the probes declare their
 * series from and `check-log` validates any writer's log against, and docs/runlog.md is made
 * from the same file. */
#ifndef NS_RUNLOG_SCHEMA_H
#define NS_RUNLOG_SCHEMA_H

#include <stddef.h>

/* NS_RUNLOG_FORMAT, the format version (bump it in the schema when a reader of the old version
 * would misread the new), and the index enums NS_G_<GROUP>, NS_<GROUP>_<SERIES>. */
#include "runlog_schema_gen.h"

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

/* ------------------------------------------------------------------ the declared schema */

typedef enum { NS_DT_INT64, NS_DT_FLOAT64, NS_DT_FLOAT32, NS_DT_STRING } NsSchemaDtype;
/* A series' row: a scalar, or a float32 vector whose width is the site's channel count, the
 * smoothness grid's points, --hessian-top, or the density runs' Ritz values. */
typedef enum { NS_W_SCALAR, NS_W_CHANNELS, NS_W_GRID, NS_W_HESSIAN_TOP, NS_W_DENSITY } NsSchemaWidth;
/* When a group is recorded beyond its probe being on. */
typedef enum {
    NS_WHEN_ALWAYS,
    NS_WHEN_LOCAL_RANKS,   /* --batch-stats local with world_size > 1 */
    NS_WHEN_RUNNING_STATS, /* the scheme normalizes with running statistics at inference */
    NS_WHEN_PENALTY,       /* the scheme adds a penalty to the objective (batch-regularized) */
} NsSchemaWhen;

typedef struct {
    const char *name;
    NsSchemaDtype dtype;
    NsSchemaWidth width;
    int optional; /* may be absent from a group that is present */
    const char *units, *doc;
} NsSchemaSeries;

typedef struct {
    const char *id;    /* "site" */
    const char *path;  /* "norms/{site}": {site} and {tensor} stand for a site's, a tensor's name */
    const char *probe; /* the probe that records it ("steps": always) */
    NsSchemaWhen when;
    const NsSchemaSeries *series;
    int n_series;
} NsSchemaGroup;

typedef struct {
    const char *name;
    NsSchemaDtype dtype;
    int required;
} NsSchemaAttr;

extern const NsSchemaGroup NS_SCHEMA_GROUPS[]; /* indexed by NS_G_* */
extern const int NS_SCHEMA_N_GROUPS;
extern const NsSchemaAttr NS_SCHEMA_ROOT_ATTRS[];
extern const int NS_SCHEMA_N_ROOT_ATTRS;

/* The declared root attribute called name, or NULL. */
const NsSchemaAttr *ns_schema_root_attr(const char *name);
/* Name of a dtype as the schema spells it ("int64"). */
const char *ns_schema_dtype_name(NsSchemaDtype dtype);

/* ------------------------------------------------------------------ paths */

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
