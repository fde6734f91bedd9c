/* Thin helpers over the HDF5 C API for the few shapes normscope writes: whole datasets at a
 * slash-separated path (intermediate groups created on the way), scalar attributes, and
 * existence checks. Every function that can fail because of the file returns < 0 and explains
 * in err, naming the path. The HDF5 library's own error stack printing is switched off by
 * ns_h5_quiet() so the user sees one line, not a stack dump. */
#ifndef NS_H5UTIL_H
#define NS_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

void ns_h5_quiet(void);
/* After a failed write: the library is not closed at exit (see h5util.c). */
void ns_h5_skip_exit_cleanup(void);

/* The file access properties of every reader: SWMR metadata retries bounded, so a corrupt file
 * is an error within a second or so, never a hang. Close with H5Pclose. */
#define NS_H5_READ_ATTEMPTS 10
hid_t ns_h5_reader_fapl(void);

/* Opens a run log (or checkpoint) read-only with fapl: as a SWMR reader first, so a log being
 * written, or left marked open by a killed writer, opens; then plainly, for files not written
 * in SWMR mode. Returns a file id or H5I_INVALID_HID; reports nothing. */
hid_t ns_h5_open_shared_read(const char *path, hid_t fapl);

/* Creates (truncating) or opens a file. Returns a file id or H5I_INVALID_HID. */
hid_t ns_h5_create(const char *path, char *err);
hid_t ns_h5_open(const char *path, int writable, char *err);

int ns_h5_exists(hid_t loc, const char *path);

/* Writes a whole dataset (ndim 0 = scalar) of memory type mtype at path. */
int ns_h5_write(hid_t loc, const char *path, hid_t mtype, const void *data, int ndim,
                const hsize_t *dims, char *err);
/* As ns_h5_write, chunked with a Fletcher-32 checksum that every read verifies (1-D or 2-D). */
int ns_h5_write_checked(hid_t loc, const char *path, hid_t mtype, const void *data, int ndim,
                        const hsize_t *dims, char *err);
int ns_h5_write_f32(hid_t loc, const char *path, const float *data, int ndim,
                    const hsize_t *dims, char *err);
int ns_h5_write_scalar_f32(hid_t loc, const char *path, float value, char *err);
int ns_h5_write_scalar_i64(hid_t loc, const char *path, int64_t value, char *err);

/* Reads a whole dataset into out, which holds `count` elements of mtype; a dataset of another
 * size is an error naming both sizes. */
int ns_h5_read(hid_t loc, const char *path, hid_t mtype, void *out, size_t count, char *err);
/* Number of elements of a dataset, or -1 if absent. */
long ns_h5_numel(hid_t loc, const char *path);

int ns_h5_attr_write_i64(hid_t loc, const char *name, int64_t value);
int ns_h5_attr_write_f64(hid_t loc, const char *name, double value);
int ns_h5_attr_write_str(hid_t loc, const char *name, const char *value); /* fixed length */
/* A variable-length UTF-8 string (in the global heap, unchecksummed): only for files whose
 * format asks for it (debug states follow the spec's reference files). */
int ns_h5_attr_write_vlen_str(hid_t loc, const char *name, const char *value);
/* The readers check what they read: a numeric attribute must hold exactly one number (else -1,
 * as if absent), a string attribute one string. */
int ns_h5_attr_read_i64(hid_t loc, const char *name, int64_t *value);
int ns_h5_attr_read_f64(hid_t loc, const char *name, double *value);
/* Reads a string attribute (fixed or variable length) into buf. */
int ns_h5_attr_read_str(hid_t loc, const char *name, char *buf, size_t buflen);

#endif
