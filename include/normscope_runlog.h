/* normscope's run-log writer as a small, stable C API (libnormscope-runlog.so), so that any
 * trainer — the Python recorder (python/normscope, through ctypes), a C or C++ training loop —
 * writes logs that `normscope watch`, `plot`, `compare`, `export-notebook` and `check-log` read,
 * with the C writer's layout, chunking, SWMR flushing, one-writer lock and crash behaviour.
 *
 * The file's groups and series are those of the schema (src/io/runlog.schema.json, documented in
 * docs/runlog.md). A log is used in two phases:
 *   1. declare: nsrl_create, nsrl_set_attr_*, nsrl_add_group (any number), then nsrl_start;
 *   2. record:  nsrl_append_* (rows buffered in memory), nsrl_flush every few steps, nsrl_close.
 * Every call returns 0 (or a handle >= 0) on success and -1 on failure; nsrl_error then says what
 * failed in one line. A failed flush is final (later flushes repeat it): the file keeps the rows
 * of its last good flush. Only plain C types cross the interface; the handle is opaque.
 *
 * Thread safety: one log per thread (the writer is not locked against itself); HDF5 itself must
 * be the serial library the shared object links. */
#ifndef NORMSCOPE_RUNLOG_H
#define NORMSCOPE_RUNLOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NSRL_API_VERSION 1

typedef struct NsrlLog NsrlLog;

/* NSRL_API_VERSION of the library, and the run-log format it writes ("normscope-runlog-1"). */
int nsrl_api_version(void);
const char *nsrl_format(void);

/* Creates the log at path, taking its one-writer lock (path + ".lock"). An existing file is
 * refused unless overwrite is non-zero. flush_every (> 0) is the caller's flush cadence: scalar
 * series are chunked by it, as `normscope train` chunks by --flush-every. On failure returns
 * NULL and writes the reason into err (err_len bytes, may be 0). */
NsrlLog *nsrl_create(const char *path, int overwrite, int flush_every, char *err,
                     size_t err_len);

/* The last failure on this log, in one line ("" when none). */
const char *nsrl_error(const NsrlLog *log);

/* Root attributes (before nsrl_start): name must be a root attribute the schema declares with
 * this dtype (string, int64 or float64); `format` is the writer's own. */
/* The schema's dtype of root attribute name: 0 int64, 1 float64, 3 string; -1 if undeclared. */
int nsrl_attr_dtype(const char *name);
int nsrl_set_attr_str(NsrlLog *log, const char *name, const char *value);
int nsrl_set_attr_i64(NsrlLog *log, const char *name, int64_t value);
int nsrl_set_attr_f64(NsrlLog *log, const char *name, double value);

/* Declares every series of schema group group_id ("steps", "eval", "site", "vectors",
 * "site_grads", "params", "tensor", "lipschitz", ...) at path, the group's path with its {site}
 * or {tensor} filled in ("norms/layer1/0/bn1", "params/conv1/weight"). A group's int64 step
 * series already declared at path is shared. Vector widths come from channels, grid,
 * hessian_top and density, by the schema's width kind; a width of 0 leaves that vector out.
 * Before nsrl_start only. */
int nsrl_add_group(NsrlLog *log, const char *group_id, const char *path, int channels, int grid,
                   int hessian_top, int density);

/* The handle of the declared series at path ("norms/x/dist_mean"), or -1. */
int nsrl_series(const NsrlLog *log, const char *path);
/* Its row width (1 for scalars) and dtype: 0 float64, 1 int64, 2 float32 vector; -1 if none. */
int nsrl_series_width(const NsrlLog *log, int series);
int nsrl_series_dtype(const NsrlLog *log, int series);

/* Declarations done: writes /docs/paths and closes the file until the first flush. */
int nsrl_start(NsrlLog *log);

/* Buffers one row of a series (after nsrl_start), type-checked against its declaration. */
int nsrl_append_f64(NsrlLog *log, int series, double value);
int nsrl_append_i64(NsrlLog *log, int series, int64_t value);
int nsrl_append_f32(NsrlLog *log, int series, const float *row, int width);

/* Appends the buffered rows to the file (data series first, then step series). */
int nsrl_flush(NsrlLog *log);

/* Flushes, closes the file, releases the lock and frees the handle (NULL: nothing). Returns the
 * flush's result; on failure the reason goes into err (err_len bytes, may be 0). */
int nsrl_close(NsrlLog *log, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
