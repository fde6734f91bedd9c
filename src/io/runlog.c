#include "runlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileguard.h"
#include "h5util.h"
#include "util.h"

#define CHUNK_ROWS 256

static size_t row_bytes(const NsRunLogSeries *s)
{
    return s->type == NS_SERIES_F32_VEC ? sizeof(float) * (size_t)s->width : 8;
}

static hid_t mem_type(const NsRunLogSeries *s)
{
    switch (s->type) {
    case NS_SERIES_I64: return H5T_NATIVE_INT64;
    case NS_SERIES_F64: return H5T_NATIVE_DOUBLE;
    default: return H5T_NATIVE_FLOAT;
    }
}

/* SWMR needs the latest file format. The writer is the only writer: metadata whose checksum
 * fails is damage (a kill inside a flush), not a flush under way, so it is not re-read (HDF5
 * retried it, sleeping, for ever). */
static hid_t latest_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    H5Pset_metadata_read_attempts(fapl, 1);
    return fapl;
}

int ns_runlog_create(NsRunLog *log, const char *path, char *err)
{
    memset(log, 0, sizeof *log);
    snprintf(log->path, sizeof log->path, "%s", path);
    hid_t fapl = latest_fapl();
    log->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (log->file < 0)
        return ns_fail(err, "cannot create run log '%s': check that its directory exists and is "
                            "writable", path);
    if (ns_h5_attr_write_str(log->file, NS_RUNLOG_FORMAT_ATTR, NS_RUNLOG_FORMAT) < 0)
        return ns_fail(err, "cannot write attributes to run log '%s'", path);
    return 0;
}

/* Copies every object under the root of src into dst (H5Ocopy rebuilds each dataset's chunk
 * index from the chunks it reaches). */
static herr_t copy_child(hid_t src, const char *name, const H5L_info_t *info, void *dst)
{
    (void)info;
    return H5Ocopy(src, name, *(hid_t *)dst, name, H5P_DEFAULT, H5P_DEFAULT) < 0 ? -1 : 0;
}

/* Copies one root attribute of src into dst (H5Ocopy copies objects, not the root's own
 * attributes, and a resumed log keeps its first segment's: model_io.h). */
static herr_t copy_root_attr(hid_t src, const char *name, const H5A_info_t *info, void *dst)
{
    (void)info;
    hid_t a = H5Aopen(src, name, H5P_DEFAULT);
    hid_t type = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    hid_t space = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    size_t bytes = type >= 0 && n >= 0 ? H5Tget_size(type) * (size_t)n : 0;
    herr_t rc = -1;
    if (bytes > 0 && bytes <= ((size_t)1 << 20) && H5Tis_variable_str(type) == 0) {
        void *buf = ns_xmalloc(bytes);
        hid_t b = -1;
        if (H5Aread(a, type, buf) >= 0 &&
            (b = H5Acreate2(*(hid_t *)dst, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
            rc = H5Awrite(b, type, buf);
        if (b >= 0)
            H5Aclose(b);
        free(buf);
    }
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (a >= 0)
        H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

int ns_runlog_rebuild(const char *path, char *err)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.resume.tmp", path);
    hid_t fapl = latest_fapl();
    hid_t src = ns_h5_open_shared_read(path, fapl);
    H5Pclose(fapl);
    if (src < 0)
        return ns_fail(err, "run log '%s' to append to does not open (damaged?); give a new "
                            "--out", path);
    NsRunLog fresh;
    int rc = ns_runlog_create(&fresh, tmp, err);
    if (rc == 0 && H5Adelete(fresh.file, NS_RUNLOG_FORMAT_ATTR) < 0)
        rc = ns_fail(err, "cannot write '%s'", tmp);
    if (rc == 0 && (H5Literate(src, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, copy_child,
                               &fresh.file) < 0 ||
                    H5Aiterate2(src, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, copy_root_attr,
                                &fresh.file) < 0))
        rc = ns_fail(err, "run log '%s' is damaged (a run killed inside a flush can leave it so) "
                          "and cannot be resumed; give a new --out", path);
    H5Fclose(src);
    if (fresh.file >= 0 && H5Fclose(fresh.file) < 0 && rc == 0)
        rc = ns_fail(err, "cannot write '%s': %s", tmp, ns_io_cause(errno));
    int e = rc == 0 ? ns_fsync_file(tmp) : 0;
    if (rc == 0 && (e != 0 || rename(tmp, path) != 0))
        rc = ns_fail(err, "cannot replace run log '%s': %s", path, ns_io_cause(e ? e : errno));
    if (rc != 0)
        remove(tmp);
    return rc;
}

int ns_runlog_open_append(NsRunLog *log, const char *path, char *err)
{
    memset(log, 0, sizeof *log);
    snprintf(log->path, sizeof log->path, "%s", path);
    if (H5Fis_hdf5(path) <= 0)
        return ns_fail(err, "run log '%s' to append to is missing or not HDF5; give the --out "
                            "of the run being resumed", path);
    hid_t fapl = latest_fapl();
    log->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    if (log->file < 0) {
        /* A SWMR writer killed without closing leaves the superblock marked "open for
         * writing"; resuming after such a crash is what --resume is for, so clear the mark
         * (what `h5clear -s` does; the property is HDF5's own, not in its public headers). */
        hbool_t clear = 1;
        if (H5Pset(fapl, "clear_status_flags", &clear) >= 0)
            log->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    }
    H5Pclose(fapl);
    if (log->file < 0)
        return ns_fail(err, "cannot open run log '%s' for appending (is it being written by "
                            "another process?)", path);
    return 0;
}

/* Chunks sized to what one flush appends. A compressed chunk that grows moves to new space in
 * the file, and a SWMR writer never reuses the space it leaves (a reader may still be reading
 * it): with 256-row chunks and a flush every 10 steps, each chunk was written 25 times and the
 * log grew to ten times its data (neither persistent free-space tracking nor reopening helps:
 * HDF5 does not free space in SWMR-write mode). A chunk of flush_every rows is written once,
 * full, for every per-step series; vectors (rarer than one row per step) get one row per
 * chunk. Series rarer still (validation, smoothness) rewrite their few small chunks. */
static hid_t create_series_dataset(hid_t file, const NsRunLogSeries *s, int chunk_rows)
{
    int rank = s->type == NS_SERIES_F32_VEC ? 2 : 1;
    hsize_t dims[2] = {0, (hsize_t)s->width}, maxdims[2] = {H5S_UNLIMITED, (hsize_t)s->width};
    hsize_t chunk[2] = {s->type == NS_SERIES_F32_VEC ? 1 : (hsize_t)chunk_rows, (hsize_t)s->width};
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 4);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dset = H5Dcreate2(file, s->path, mem_type(s), space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    return dset;
}

static size_t current_rows(hid_t dset)
{
    hid_t space = H5Dget_space(dset);
    hsize_t dims[2] = {0, 0};
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    return (size_t)dims[0];
}

int ns_runlog_add(NsRunLog *log, const char *path, NsSeriesType type, int width,
                  const char *units, const char *definition, char *err)
{
    if (log->n_series == log->cap_series) {
        log->cap_series = log->cap_series ? 2 * log->cap_series : 64;
        log->series = ns_xrealloc(log->series, sizeof(NsRunLogSeries) * (size_t)log->cap_series);
    }
    NsRunLogSeries *s = &log->series[log->n_series];
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    snprintf(s->units, sizeof s->units, "%s", units ? units : "");
    snprintf(s->definition, sizeof s->definition, "%s", definition ? definition : "");
    s->type = type;
    s->width = type == NS_SERIES_F32_VEC ? width : 1;
    if (ns_h5_exists(log->file, path)) {
        s->dset = H5Dopen2(log->file, path, H5P_DEFAULT);
        if (s->dset >= 0)
            s->rows_file = current_rows(s->dset);
    } else {
        s->dset = create_series_dataset(log->file, s,
                                        log->chunk_rows > 0 ? log->chunk_rows : CHUNK_ROWS);
        if (s->dset >= 0) {
            if (units)
                ns_h5_attr_write_str(s->dset, "units", units);
            if (definition)
                ns_h5_attr_write_str(s->dset, "definition", definition);
        }
    }
    if (s->dset < 0)
        return ns_fail(err, "cannot create series '%s' in run log '%s'", path, log->path);
    return log->n_series++;
}

static int schema_width(const NsSchemaSeries *s, const NsRunLogWidths *w)
{
    switch (s->width) {
    case NS_W_SCALAR: return 1;
    case NS_W_CHANNELS: return w ? w->channels : 0;
    case NS_W_GRID: return w ? w->grid : 0;
    case NS_W_HESSIAN_TOP: return w ? w->hessian_top : 0;
    case NS_W_DENSITY: return w ? w->density : 0;
    }
    return 0;
}

int ns_runlog_add_group(NsRunLog *log, int group, const char *path, const NsRunLogWidths *widths,
                        int *ids, char *err)
{
    const NsSchemaGroup *g = &NS_SCHEMA_GROUPS[group];
    char full[NS_RUNLOG_PATH_LEN];
    for (int i = 0; i < g->n_series; i++) {
        const NsSchemaSeries *s = &g->series[i];
        ns_runlog_path(full, sizeof full, path, s->name);
        int width = schema_width(s, widths);
        int shared = s->dtype == NS_DT_INT64 ? ns_runlog_find(log, full) : -1;
        if (shared >= 0)
            ids[i] = shared;
        else if (width == 0)
            ids[i] = -2; /* a vector of no elements: not recorded */
        else
            ids[i] = ns_runlog_add(log, full,
                                   s->dtype == NS_DT_INT64     ? NS_SERIES_I64
                                   : s->dtype == NS_DT_FLOAT32 ? NS_SERIES_F32_VEC
                                                               : NS_SERIES_F64,
                                   width, s->units, s->doc, err);
        if (ids[i] == -1)
            return -1;
    }
    return 0;
}

int ns_runlog_find(const NsRunLog *log, const char *path)
{
    for (int i = 0; i < log->n_series; i++)
        if (strcmp(log->series[i].path, path) == 0)
            return i;
    return -1;
}

int ns_runlog_write_unk_rates(NsRunLog *log, double train, double valid)
{
    if (ns_h5_attr_write_f64(log->file, NS_RUNLOG_UNK_RATE_TRAIN, train) < 0 ||
        ns_h5_attr_write_f64(log->file, NS_RUNLOG_UNK_RATE_VALID, valid) < 0)
        return -1;
    return 0;
}

int ns_runlog_describe(NsRunLog *log, const char *path, const char *key, const char *text)
{
    hid_t obj = H5Oopen(log->file, path, H5P_DEFAULT);
    if (obj < 0)
        return -1;
    int rc = ns_h5_attr_write_str(obj, key, text);
    H5Oclose(obj);
    return rc;
}

/* The group whose `step` series indexes this series' rows: the nearest ancestor with a step
 * series (params/<name>/grad_norm belongs to params, norms/<site>/vectors/x to
 * norms/<site>/vectors). Writes it into owner; empty if none. */
static void step_owner(const NsRunLog *log, const char *path, char *owner, size_t n)
{
    char group[160], step_path[NS_RUNLOG_PATH_LEN];
    snprintf(group, sizeof group, "%s", path);
    owner[0] = '\0';
    for (char *slash = strrchr(group, '/'); slash; slash = strrchr(group, '/')) {
        *slash = '\0';
        ns_runlog_path(step_path, sizeof step_path, group, NS_RUNLOG_STEP);
        if (ns_runlog_find(log, step_path) >= 0) {
            snprintf(owner, n, "%s", group);
            return;
        }
    }
}

/* Truncates `group`/step and every series it indexes to the rows with step <= last_step. */
static int truncate_group(NsRunLog *log, const char *group, int64_t last_step, char *err)
{
    char step_path[NS_RUNLOG_PATH_LEN];
    ns_runlog_path(step_path, sizeof step_path, group, NS_RUNLOG_STEP);
    long n = ns_h5_numel(log->file, step_path);
    if (n <= 0)
        return 0;
    int64_t *steps = ns_xmalloc(sizeof(int64_t) * (size_t)n);
    if (ns_h5_read(log->file, step_path, H5T_NATIVE_INT64, steps, (size_t)n, err) < 0) {
        free(steps);
        return -1;
    }
    size_t keep = 0;
    while (keep < (size_t)n && steps[keep] <= last_step)
        keep++;
    free(steps);
    for (int i = 0; i < log->n_series; i++) {
        NsRunLogSeries *s = &log->series[i];
        char owner[160];
        step_owner(log, s->path, owner, sizeof owner);
        if (strcmp(owner, group) != 0 || s->rows_file <= keep)
            continue;
        hsize_t dims[2] = {keep, (hsize_t)s->width};
        if (H5Dset_extent(s->dset, dims) < 0)
            return ns_fail(err, "cannot truncate '%s' in run log '%s'", s->path, log->path);
        s->rows_file = keep;
    }
    return 0;
}

int ns_runlog_truncate_after(NsRunLog *log, int64_t last_step, char *err)
{
    for (int i = 0; i < log->n_series; i++) {
        if (!ns_runlog_is_step_path(log->series[i].path))
            continue;
        char group[160];
        snprintf(group, sizeof group, "%s", log->series[i].path);
        *strrchr(group, '/') = '\0';
        if (truncate_group(log, group, last_step, err) < 0)
            return -1;
    }
    return 0;
}

int64_t ns_runlog_last_step(NsRunLog *log, const char *group)
{
    char step_path[NS_RUNLOG_PATH_LEN], err[512];
    ns_runlog_path(step_path, sizeof step_path, group, NS_RUNLOG_STEP);
    long n = ns_h5_numel(log->file, step_path);
    if (n <= 0 || n > (1L << 30))
        return 0;
    int64_t *steps = ns_xmalloc(sizeof(int64_t) * (size_t)n), last = 0;
    if (ns_h5_read(log->file, step_path, H5T_NATIVE_INT64, steps, (size_t)n, err) == 0)
        last = steps[n - 1];
    free(steps);
    return last;
}

int ns_runlog_write_docs(NsRunLog *log, char *err)
{
    size_t cap = 4096, len = 0;
    char *text = ns_xmalloc(cap);
    len += (size_t)snprintf(text, cap,
                            "normscope run log (%s). Rows of a group align with its 'step' "
                            "series. Missing values are NaN. Each path below is followed by "
                            "its units in brackets and, indented, its definition.\n\n",
                            NS_RUNLOG_FORMAT);
    for (int i = 0; i < log->n_series; i++) {
        const NsRunLogSeries *s = &log->series[i];
        size_t need = strlen(s->path) + strlen(s->units) + strlen(s->definition) + 24;
        if (len + need >= cap) {
            cap = 2 * (len + need);
            text = ns_xrealloc(text, cap);
        }
        len += (size_t)snprintf(text + len, cap - len, "/%s [%s]\n    %s\n", s->path, s->units,
                                s->definition);
    }
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    int rc = ns_h5_write(log->file, NS_RUNLOG_DOCS_PATHS, type, &text, 0, NULL, err);
    H5Tclose(type);
    free(text);
    return rc;
}

/* After the declarations the file is closed, and each flush reopens it in SWMR-write mode,
 * appends and closes it again. A SWMR writer that dies with the file open leaves it marked
 * "open for writing" (HDF5 then refuses ordinary opens until `h5clear -s`); closed between
 * flushes, a log killed by SIGKILL is a clean file unless the kill lands inside a flush. */
int ns_runlog_start(NsRunLog *log, char *err)
{
    for (int i = 0; i < log->n_series; i++) {
        H5Dclose(log->series[i].dset);
        log->series[i].dset = H5I_INVALID_HID;
    }
    herr_t rc = H5Fclose(log->file);
    log->file = H5I_INVALID_HID;
    if (rc < 0) {
        ns_h5_skip_exit_cleanup(); /* the failed file stays open: HDF5's exit flush crashed */
        return ns_fail(err, "cannot write run log '%s' (disk full?)", log->path);
    }
    log->swmr = 1;
    return 0;
}

void ns_runlog_append(NsRunLog *log, int series, const void *row)
{
    NsRunLogSeries *s = &log->series[series];
    size_t rb = row_bytes(s);
    if (s->n_pending == s->cap_pending) {
        s->cap_pending = s->cap_pending ? 2 * s->cap_pending : 16;
        s->pending = ns_xrealloc(s->pending, rb * s->cap_pending);
    }
    memcpy(s->pending + rb * s->n_pending, row, rb);
    s->n_pending++;
}

void ns_runlog_append_f64(NsRunLog *log, int series, double value)
{
    ns_runlog_append(log, series, &value);
}

void ns_runlog_append_i64(NsRunLog *log, int series, int64_t value)
{
    ns_runlog_append(log, series, &value);
}

/* Appends the pending rows of one series; every id it opens is closed on every path, so a
 * failed write leaves nothing open for HDF5 to trip over at exit. */
static int write_pending(hid_t file, NsRunLogSeries *s)
{
    if (s->n_pending == 0)
        return 0;
    hid_t dset = H5Dopen2(file, s->path, H5P_DEFAULT);
    if (dset < 0)
        return -1;
    int rank = s->type == NS_SERIES_F32_VEC ? 2 : 1;
    hsize_t new_dims[2] = {s->rows_file + s->n_pending, (hsize_t)s->width};
    hsize_t start[2] = {s->rows_file, 0}, count[2] = {s->n_pending, (hsize_t)s->width};
    herr_t rc = H5Dset_extent(dset, new_dims);
    hid_t fspace = rc < 0 ? H5I_INVALID_HID : H5Dget_space(dset);
    hid_t mspace = H5Screate_simple(rank, count, NULL);
    if (fspace < 0 || mspace < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(dset, mem_type(s), mspace, fspace, H5P_DEFAULT, s->pending) < 0)
        rc = -1;
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    if (H5Dclose(dset) < 0)
        rc = -1;
    if (rc < 0)
        return -1;
    s->rows_file += s->n_pending;
    s->n_pending = 0;
    return 0;
}

/* Bytes a flush may add to the file: the rows themselves (uncompressed, an upper bound), one
 * chunk per series rewritten elsewhere (a partly filled compressed chunk moves when it grows),
 * and room for metadata. */
static int64_t flush_reserve(const NsRunLog *log)
{
    int64_t bytes = 1 << 16;
    for (int i = 0; i < log->n_series; i++) {
        const NsRunLogSeries *s = &log->series[i];
        size_t chunk_rows = s->type == NS_SERIES_F32_VEC ? 1 : CHUNK_ROWS;
        bytes += (int64_t)(row_bytes(s) * (s->n_pending + chunk_rows)) + 1024;
    }
    return bytes;
}

static int any_pending(const NsRunLog *log)
{
    for (int i = 0; i < log->n_series; i++)
        if (log->series[i].n_pending)
            return 1;
    return 0;
}

static int flush_failed(NsRunLog *log, int errnum, const char *during, char *err)
{
    ns_h5_skip_exit_cleanup();
    snprintf(log->failure, sizeof log->failure, "cannot %s run log '%.300s': %s; it holds the "
             "steps up to its last good flush", during, log->path, ns_io_cause(errnum));
    return ns_fail(err, "%s", log->failure);
}

/* Data series first, each flushed, then the step series: a reader (or a file left by a
 * SIGKILL during a flush) may see data rows whose step row is not there yet, never a step row
 * without its data. */
int ns_runlog_flush(NsRunLog *log, char *err)
{
    if (log->failure[0])
        return ns_fail(err, "%s", log->failure);
    if (!log->swmr || !any_pending(log))
        return 0;
    int reserve = ns_check_space(log->path, flush_reserve(log));
    if (reserve == ENOENT)
        return flush_failed(log, 0, "reopen (was it moved or deleted?)", err);
    if (reserve != 0)
        return flush_failed(log, reserve, "append to", err);
    hid_t fapl = latest_fapl();
    H5Pset_file_locking(fapl, 0, 1);
    errno = 0;
    hid_t file = H5Fopen(log->path, H5F_ACC_RDWR | H5F_ACC_SWMR_WRITE, fapl);
    H5Pclose(fapl);
    if (file < 0)
        return flush_failed(log, errno, "reopen", err);
    int rc = 0;
    errno = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (int i = 0; i < log->n_series && rc == 0; i++) {
            NsRunLogSeries *s = &log->series[i];
            if (ns_runlog_is_step_path(s->path) == pass && write_pending(file, s) < 0)
                rc = -1;
        }
        if (pass == 0 && rc == 0 && H5Fflush(file, H5F_SCOPE_LOCAL) < 0) /* data on disk first */
            rc = -1;
    }
    int saved = errno;
    if (H5Fclose(file) < 0)
        rc = -1;
    return rc < 0 ? flush_failed(log, saved ? saved : errno, "append to", err) : 0;
}

int ns_runlog_close(NsRunLog *log, char *err)
{
    int rc = ns_runlog_flush(log, err);
    for (int i = 0; i < log->n_series; i++) {
        if (log->series[i].dset >= 0)
            H5Dclose(log->series[i].dset);
        free(log->series[i].pending);
    }
    free(log->series);
    if (log->file >= 0 && H5Fclose(log->file) < 0 && rc == 0)
        rc = ns_fail(err, "cannot close run log '%s'", log->path);
    memset(log, 0, sizeof *log);
    log->file = H5I_INVALID_HID;
    return rc;
}
