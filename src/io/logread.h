/* The run-log reader, for analysis and the notebook export. They read only the HDF5 log (never
 * the engine's state): configuration from root attributes, series by the paths of the schema
 * (runlog_schema.h, shared with the writer), and what the run's scheme is from its static
 * description (norm.h). Logs are opened in SWMR-read mode, so a log that a training run is still
 * writing can be read too. */
#ifndef NS_LOGREAD_H
#define NS_LOGREAD_H

#include <hdf5.h>
#include <stddef.h>

#include "norm.h"
#include "runlog_schema.h"

typedef struct {
    char path[1024];
    hid_t file;
    char norm[32];          /* root attribute `norm` (scheme name) */
    const NsNormScheme *scheme; /* its descriptor; NULL for a scheme this version does not know */
    char position[8];       /* `norm_position` */
    char version[32];       /* `normscope_version` */
    char label[96];         /* legend label: "<norm> (<position>)" */
    long d_model, n_layers; /* from root attributes */
} NsLog;

/* Opens a run log. Errors (one line, naming the file): missing, not HDF5, not a normscope run
 * log, or written by an unknown log format version. */
int ns_log_open(NsLog *log, const char *path, char *err);
void ns_log_close(NsLog *log);

int ns_log_has(const NsLog *log, const char *path);

/* Every reader is bounded by the log itself: a series (or matrix) with more rows than
 * NS_LOG_ROWS_PER_STEP x (root attribute `steps` + 1) + NS_LOG_ROWS_SLACK is refused as damaged,
 * and so is a step series (a path ending in "step") that is not whole numbers from 0 up,
 * never decreasing, below 2^53. */
#define NS_LOG_ROWS_PER_STEP 4.0
#define NS_LOG_ROWS_SLACK 1024.0

/* Reads a 1-D series (float64 or int64 on disk) as doubles; malloc'd, *n rows. NULL + err if
 * absent. Re-reads the current extent (SWMR). */
double *ns_log_read_series(const NsLog *log, const char *path, size_t *n, char *err);
/* Reads rows [from, end) of a 1-D series as doubles (*n of them; NULL when none, or + err on
 * error); *rows receives the series' current length. A follower (watch) reads only what is new
 * or the last few rows, so its cost per refresh does not grow with the run. */
double *ns_log_read_rows(const NsLog *log, const char *path, size_t from, size_t *n,
                         size_t *rows, char *err);
/* Reads a 2-D float32 series [rows][cols]; malloc'd. */
float *ns_log_read_matrix(const NsLog *log, const char *path, size_t *rows, size_t *cols,
                          char *err);

/* The batch statistic the run's scheme normalizes by, which its forward distance is judged by:
 * "psi2" for schemes that take psi2_B (the PN family), "var" for every other (and unknown) one. */
const char *ns_log_scheme_stat(const NsLog *log);

/* Norm sites recorded under /norms, in model order (layers/0/norm1, layers/0/norm2, …,
 * final_norm); for a log of another model (no Transformer site: a CNN recorded by the PyTorch
 * recorder), every group under /norms holding a `step` series, in natural order of their names
 * ("bn", "layer1/0/bn1", …, "layer2/0/bn1"). Returns the count; *sites is malloc'd (free with
 * ns_log_free_sites). */
int ns_log_sites(const NsLog *log, char ***sites);
void ns_log_free_sites(char **sites, int n);

/* String/integer/real root attribute, or -1 if absent. */
int ns_log_attr_str(const NsLog *log, const char *name, char *buf, size_t len);
int ns_log_attr_long(const NsLog *log, const char *name, long *value);
int ns_log_attr_double(const NsLog *log, const char *name, double *value);

#endif
