#include "h5util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* HDF5's own exit clean-up flushes every file still open, and a file whose write failed (disk
 * full) stays open after its failed H5Fclose: flushing it again at exit crashed in
 * H5F__close_cb. So HDF5's handler is replaced by ours (H5dont_atexit must come before any other
 * HDF5 call), which closes the library unless a write failed; then there is nothing to flush
 * that could succeed, and the process just ends. */
static int exit_cleanup_skipped = 0;

static void close_library(void)
{
    if (!exit_cleanup_skipped)
        H5close();
}

void ns_h5_skip_exit_cleanup(void) { exit_cleanup_skipped = 1; }

void ns_h5_quiet(void)
{
    static int done = 0;
    if (!done) {
        H5dont_atexit();
        atexit(close_library);
        done = 1;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

hid_t ns_h5_reader_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* A SWMR reader re-reads metadata whose checksum fails, assuming a writer is midway, with
     * a doubling sleep between attempts: HDF5's default of 100 attempts makes a corrupt byte a
     * hang. A few attempts cover a live writer's flush (tens of ms); then the read fails. */
    H5Pset_metadata_read_attempts(fapl, NS_H5_READ_ATTEMPTS);
    return fapl;
}

hid_t ns_h5_open_shared_read(const char *path, hid_t fapl)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    return f >= 0 ? f : H5Fopen(path, H5F_ACC_RDONLY, fapl);
}

hid_t ns_h5_create(const char *path, char *err)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        ns_fail(err, "cannot create HDF5 file '%s': check that the directory exists and is "
                     "writable", path);
    return f;
}

hid_t ns_h5_open(const char *path, int writable, char *err)
{
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        ns_fail(err, "cannot open '%s': no such file or not readable", path);
        return H5I_INVALID_HID;
    }
    fclose(probe);
    if (H5Fis_hdf5(path) <= 0) {
        ns_fail(err, "'%s' is not an HDF5 file", path);
        return H5I_INVALID_HID;
    }
    hid_t fapl = ns_h5_reader_fapl();
    hid_t f = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f < 0)
        ns_fail(err, "cannot open HDF5 file '%s'%s", path,
                writable ? " for writing (is another process writing it?)" : "");
    return f;
}

int ns_h5_exists(hid_t loc, const char *path)
{
    /* H5Lexists must be asked one component at a time: it fails on a missing parent. */
    char partial[512];
    size_t len = strlen(path);
    if (len >= sizeof partial)
        return 0;
    for (size_t i = 1; i <= len; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            memcpy(partial, path, i);
            partial[i] = '\0';
            if (H5Lexists(loc, partial, H5P_DEFAULT) <= 0)
                return 0;
        }
    }
    return 1;
}

/* A dataset of dims, with dcpl (H5P_DEFAULT: contiguous), written whole. */
static int write_with(hid_t loc, const char *path, hid_t mtype, const void *data, int ndim,
                      const hsize_t *dims, hid_t dcpl, char *err)
{
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dset = H5Dcreate2(loc, path, mtype, space, lcpl, dcpl, H5P_DEFAULT);
    int rc = -1;
    if (dset >= 0 && H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0)
        rc = 0;
    if (dset >= 0 && H5Dclose(dset) < 0)
        rc = -1;
    H5Pclose(lcpl);
    H5Sclose(space);
    if (rc < 0)
        ns_fail(err, "cannot write dataset '%s' (disk full, or the path exists already?)", path);
    return rc;
}

int ns_h5_write(hid_t loc, const char *path, hid_t mtype, const void *data, int ndim,
                const hsize_t *dims, char *err)
{
    return write_with(loc, path, mtype, data, ndim, dims, H5P_DEFAULT, err);
}

/* Arrays a checkpoint depends on (parameters, moments, norm state, the vocabulary) carry a
 * Fletcher-32 checksum, which H5Dread verifies: a flipped byte in a checkpoint is an error at
 * load, not a silently different model (or a crash inside libhdf5 on a corrupt string heap).
 * The filter needs chunks: one per dataset, or slices of rows under 64 M elements. */
int ns_h5_write_checked(hid_t loc, const char *path, hid_t mtype, const void *data, int ndim,
                        const hsize_t *dims, char *err)
{
    hsize_t chunk[2] = {0, 0}, row, n = 1;
    for (int i = 0; i < ndim && i < 2; i++)
        n *= dims[i];
    if (ndim < 1 || ndim > 2 || n == 0)
        return ns_h5_write(loc, path, mtype, data, ndim, dims, err);
    row = ndim == 2 ? dims[1] : 1;
    hsize_t max_rows = (1u << 26) / row > 0 ? (1u << 26) / row : 1;
    chunk[0] = dims[0] < max_rows ? dims[0] : max_rows;
    chunk[1] = row;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, ndim, chunk);
    H5Pset_fletcher32(dcpl);
    int rc = write_with(loc, path, mtype, data, ndim, dims, dcpl, err);
    H5Pclose(dcpl);
    return rc;
}

int ns_h5_write_f32(hid_t loc, const char *path, const float *data, int ndim,
                    const hsize_t *dims, char *err)
{
    return ns_h5_write_checked(loc, path, H5T_NATIVE_FLOAT, data, ndim, dims, err);
}

int ns_h5_write_scalar_f32(hid_t loc, const char *path, float value, char *err)
{
    return ns_h5_write(loc, path, H5T_NATIVE_FLOAT, &value, 0, NULL, err);
}

int ns_h5_write_scalar_i64(hid_t loc, const char *path, int64_t value, char *err)
{
    return ns_h5_write(loc, path, H5T_NATIVE_INT64, &value, 0, NULL, err);
}

long ns_h5_numel(hid_t loc, const char *path)
{
    if (!ns_h5_exists(loc, path))
        return -1;
    hid_t dset = H5Dopen2(loc, path, H5P_DEFAULT);
    if (dset < 0)
        return -1;
    hid_t space = H5Dget_space(dset);
    long n = (long)H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    H5Dclose(dset);
    return n;
}

int ns_h5_read(hid_t loc, const char *path, hid_t mtype, void *out, size_t count, char *err)
{
    long n = ns_h5_numel(loc, path);
    if (n < 0)
        return ns_fail(err, "dataset '%s' is missing", path);
    if ((size_t)n != count)
        return ns_fail(err, "dataset '%s' has %ld elements, expected %zu (a file written for "
                            "another configuration?)", path, n, count);
    hid_t dset = H5Dopen2(loc, path, H5P_DEFAULT);
    herr_t rc = H5Dread(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(dset);
    return rc < 0 ? ns_fail(err, "cannot read dataset '%s': its checksum or format is wrong (a "
                                 "damaged file)", path)
                  : 0;
}

static int attr_write(hid_t loc, const char *name, hid_t type, const void *value)
{
    if (H5Aexists(loc, name) > 0)
        H5Adelete(loc, name);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = attr >= 0 ? H5Awrite(attr, type, value) : -1;
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

int ns_h5_attr_write_i64(hid_t loc, const char *name, int64_t value)
{
    return attr_write(loc, name, H5T_NATIVE_INT64, &value);
}

int ns_h5_attr_write_f64(hid_t loc, const char *name, double value)
{
    return attr_write(loc, name, H5T_NATIVE_DOUBLE, &value);
}

int ns_h5_attr_write_str(hid_t loc, const char *name, const char *value)
{
    /* Fixed-length UTF-8, so the text lives in the attribute message itself, which the
     * object header's checksum covers. A variable-length string lives in the file's global
     * heap, which HDF5 does not checksum: one flipped byte there made libhdf5 copy from
     * overlapping memory while reading the attribute (a byte-flip fault test found it). h5py
     * reads these as bytes; ns_h5_attr_read_str reads both kinds. */
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    H5Tset_strpad(type, H5T_STR_NULLTERM);
    H5Tset_cset(type, H5T_CSET_UTF8);
    int rc = attr_write(loc, name, type, value);
    H5Tclose(type);
    return rc;
}

int ns_h5_attr_write_vlen_str(hid_t loc, const char *name, const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    int rc = attr_write(loc, name, type, &value);
    H5Tclose(type);
    return rc;
}

/* 1 if the attribute holds exactly one value (a scalar, or an array of one element): a file
 * may carry anything under a known name, and reading an array into one variable overflows it. */
static int attr_is_single(hid_t attr)
{
    hid_t space = H5Aget_space(attr);
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0)
        H5Sclose(space);
    return n == 1;
}

/* Reads a numeric attribute of one value, converted to type; -1 if absent, not one value, or
 * not a number (a string, a compound). */
static int attr_read(hid_t loc, const char *name, hid_t type, void *value)
{
    if (H5Aexists(loc, name) <= 0)
        return -1;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    if (attr < 0)
        return -1;
    hid_t ftype = H5Aget_type(attr);
    H5T_class_t cls = ftype >= 0 ? H5Tget_class(ftype) : H5T_NO_CLASS;
    int ok = (cls == H5T_INTEGER || cls == H5T_FLOAT) && attr_is_single(attr);
    herr_t rc = ok ? H5Aread(attr, type, value) : -1;
    if (ftype >= 0)
        H5Tclose(ftype);
    H5Aclose(attr);
    return rc < 0 ? -1 : 0;
}

int ns_h5_attr_read_i64(hid_t loc, const char *name, int64_t *value)
{
    return attr_read(loc, name, H5T_NATIVE_INT64, value);
}

int ns_h5_attr_read_f64(hid_t loc, const char *name, double *value)
{
    return attr_read(loc, name, H5T_NATIVE_DOUBLE, value);
}

int ns_h5_attr_read_str(hid_t loc, const char *name, char *buf, size_t buflen)
{
    if (H5Aexists(loc, name) <= 0)
        return -1;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    if (attr < 0)
        return -1;
    hid_t ftype = H5Aget_type(attr);
    int rc = -1;
    if (ftype >= 0 && H5Tget_class(ftype) == H5T_STRING && attr_is_single(attr)) {
        if (H5Tis_variable_str(ftype) > 0) {
            hid_t mtype = H5Tcopy(H5T_C_S1);
            H5Tset_size(mtype, H5T_VARIABLE);
            H5Tset_cset(mtype, H5Tget_cset(ftype));
            char *s = NULL;
            if (H5Aread(attr, mtype, &s) >= 0 && s) {
                snprintf(buf, buflen, "%s", s);
                H5free_memory(s);
                rc = 0;
            }
            H5Tclose(mtype);
        } else {
            size_t size = H5Tget_size(ftype);
            if (size > (1 << 20)) /* a fixed-length string of megabytes is no attribute of ours */
                size = 0;
            char *tmp = size ? ns_xcalloc(size + 1, 1) : NULL;
            hid_t mtype = H5Tcopy(ftype);
            if (tmp && H5Aread(attr, mtype, tmp) >= 0) {
                snprintf(buf, buflen, "%s", tmp);
                rc = 0;
            }
            H5Tclose(mtype);
            free(tmp);
        }
    }
    if (ftype >= 0)
        H5Tclose(ftype);
    H5Aclose(attr);
    return rc;
}
