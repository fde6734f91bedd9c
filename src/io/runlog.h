/* The run-log writer: an HDF5 file of appendable time series, written in SWMR mode so readers
 * can follow a run while it trains, and flushed every few steps so a killed run loses at most the
 * steps since the last flush. Paths and the format version come from the schema
 * (runlog_schema.h), which the reader (logread.h) shares.
 *
 * SWMR forbids creating objects after writing starts, so every series is declared first
 * (ns_runlog_add), then ns_runlog_start closes the file; each flush reopens it in SWMR-write
 * mode, appends the rows buffered in memory (one write per series) and closes it, so between
 * flushes the file on disk is always complete and clean. A series is a chunked, extendible,
 * deflate-compressed dataset of rows: scalars (float64 or int64) or fixed-width float32
 * vectors ([n][width]). */
#ifndef NS_RUNLOG_H
#define NS_RUNLOG_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "runlog_schema.h"

typedef enum { NS_SERIES_F64, NS_SERIES_I64, NS_SERIES_F32_VEC } NsSeriesType;

typedef struct {
    char path[160];
    char units[48];
    char definition[320];
    NsSeriesType type;
    int width;        /* elements per row (1 for scalars) */
    hid_t dset;
    size_t rows_file; /* rows already in the file */
    unsigned char *pending;
    size_t n_pending, cap_pending;
} NsRunLogSeries; /* one declared series of the log being written */

typedef struct {
    hid_t file;
    char path[1024];
    NsRunLogSeries *series;
    int n_series, cap_series;
    int swmr;
    int chunk_rows;    /* rows per chunk of scalar series: set to the flush cadence (0: 256) */
    char failure[512]; /* set by a failed flush: the log stops there, later flushes repeat it */
} NsRunLog;

/* Creates a new log (truncating) stamped with the schema's format version, or opens an
 * existing one to append after a resume. */
int ns_runlog_create(NsRunLog *log, const char *path, char *err);
int ns_runlog_open_append(NsRunLog *log, const char *path, char *err);
/* Before a resume appends: rewrites the log at path into a fresh file (every object copied, so
 * every chunk index rebuilt) and renames it over the old one. HDF5 1.10's SWMR writer is not
 * crash-safe inside a flush: a run killed there can leave a chunk index that a later append
 * trips over. A damaged index in the part that is kept is an error naming the file. */
int ns_runlog_rebuild(const char *path, char *err);

/* Declares a series (creating it unless it already exists in an appended file), with its unit
 * and definition as dataset attributes. Returns its index, or -1. */
int ns_runlog_add(NsRunLog *log, const char *path, NsSeriesType type, int width,
                  const char *units, const char *definition, char *err);
/* The widths of a group's vector series, by the schema's width kinds (runlog_schema.h). */
typedef struct {
    int channels, grid, hessian_top, density;
} NsRunLogWidths;
/* Declares every series the schema gives group NS_G_* at path (the group's path with its {site}
 * or {tensor} filled in), in the schema's order, their indices into ids[] (indexed by the
 * group's NS_<GROUP>_* enum). A `step` series already declared at path is shared, not declared
 * again; a vector series whose width is 0 is not recorded (its id is -2). widths may be NULL
 * for a group of scalars. Returns 0, or -1 with err set. */
int ns_runlog_add_group(NsRunLog *log, int group, const char *path, const NsRunLogWidths *widths,
                        int *ids, char *err);
/* Index of an already declared series, or -1. */
int ns_runlog_find(const NsRunLog *log, const char *path);
/* Root attributes unk_rate_train and unk_rate_valid (float64, 0..1): the fractions of the
 * training and validation tokens mapped to <unk> (before start only). */
int ns_runlog_write_unk_rates(NsRunLog *log, double train, double valid);
/* Writes a string attribute on a group or dataset path (before start only). */
int ns_runlog_describe(NsRunLog *log, const char *path, const char *key, const char *text);

/* After a resume the log may hold steps the checkpoint does not: drops, in every group with a
 * declared step series, the rows whose step is > last_step (from the step series and every
 * series it indexes). Call after the declarations, before start. */
int ns_runlog_truncate_after(NsRunLog *log, int64_t last_step, char *err);

/* The last step recorded in <group>/step of the file (0 if none), for a resume to check that the
 * log reaches its checkpoint. Call before start. */
int64_t ns_runlog_last_step(NsRunLog *log, const char *group);

/* Writes /docs/paths: every declared series with its units and definition, generated from the
 * declarations so it cannot drift from what is written. Call before start. */
int ns_runlog_write_docs(NsRunLog *log, char *err);

int ns_runlog_start(NsRunLog *log, char *err); /* declarations done: close until flushes */

void ns_runlog_append(NsRunLog *log, int series, const void *row);
void ns_runlog_append_f64(NsRunLog *log, int series, double value);
void ns_runlog_append_i64(NsRunLog *log, int series, int64_t value);

/* Appends the buffered rows. Room for them is reserved on disk first, so a full disk (or a file
 * size limit) stops the run before HDF5 writes anything and the file stays as it was at the
 * last good flush. Any failure is final: err names the file and the cause, and every later
 * flush returns the same error without touching the file. */
int ns_runlog_flush(NsRunLog *log, char *err);
int ns_runlog_close(NsRunLog *log, char *err);

#endif
