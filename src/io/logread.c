#include "logread.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "sanitize.h"
#include "util.h"

int ns_log_open(NsLog *log, const char *path, char *err)
{
    memset(log, 0, sizeof *log);
    log->file = H5I_INVALID_HID;
    snprintf(log->path, sizeof log->path, "%s", path);
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return ns_fail(err, "cannot open run log '%s': no such file or not readable", path);
    fclose(probe);
    if (H5Fis_hdf5(path) <= 0)
        return ns_fail(err, "'%s' is not an HDF5 file (expected a run log written by "
                            "'normscope train --out')", path);
    hid_t fapl = ns_h5_reader_fapl();
    log->file = ns_h5_open_shared_read(path, fapl);
    H5Pclose(fapl);
    if (log->file < 0)
        return ns_fail(err, "cannot open HDF5 file '%s'", path);
    char format[64] = "";
    if (ns_h5_attr_read_str(log->file, NS_RUNLOG_FORMAT_ATTR, format, sizeof format) < 0) {
        ns_log_close(log);
        return ns_fail(err, "'%s' is an HDF5 file but not a normscope run log (no 'format' "
                            "attribute)", path);
    }
    if (strcmp(format, NS_RUNLOG_FORMAT) != 0) {
        ns_log_close(log);
        /* Another normscope file (a checkpoint, a debug state) is not a log from another
         * version: re-running would not help, giving the run log would. */
        if (strncmp(format, "normscope-runlog-", 17) != 0)
            return ns_fail(err, "'%s' is a %s file, not a run log; give the run log that "
                                "'normscope train --out' wrote (RUN.h5 beside RUN.ckpt.h5)",
                           path, format);
        return ns_fail(err, "'%s' is a run log of unknown format '%s' (this normscope reads %s); "
                            "re-run it with this version", path, format, NS_RUNLOG_FORMAT);
    }
    ns_log_attr_str(log, "norm", log->norm, sizeof log->norm);
    log->scheme = ns_norm_scheme_named(log->norm);
    ns_log_attr_str(log, "norm_position", log->position, sizeof log->position);
    ns_log_attr_str(log, "normscope_version", log->version, sizeof log->version);
    ns_log_attr_long(log, "d_model", &log->d_model);
    ns_log_attr_long(log, "n_layers", &log->n_layers);
    /* Sizes that index or allocate are checked here, once, for every reader. */
    if (log->d_model < 0 || log->d_model > (1L << 24) || log->n_layers < 0 ||
        log->n_layers > (1L << 16)) {
        ns_log_close(log);
        return ns_fail(err, "run log '%s' is damaged: d_model = %ld, n_layers = %ld are "
                            "impossible", path, log->d_model, log->n_layers);
    }
    snprintf(log->label, sizeof log->label, "%s (%s)", log->norm, log->position);
    return 0;
}

void ns_log_close(NsLog *log)
{
    if (log->file >= 0)
        H5Fclose(log->file);
    log->file = H5I_INVALID_HID;
}

int ns_log_has(const NsLog *log, const char *path) { return ns_h5_exists(log->file, path); }

static hid_t open_dataset(const NsLog *log, const char *path, char *err)
{
    if (!ns_h5_exists(log->file, path)) {
        ns_fail(err, "run log '%s' has no '%s'", log->path, path);
        return H5I_INVALID_HID;
    }
    hid_t d = H5Dopen2(log->file, path, H5P_DEFAULT);
    if (d >= 0)
        H5Drefresh(d); /* see rows appended since the file was opened (SWMR) */
    else
        ns_fail(err, "cannot open '%s' in '%s'", path, log->path);
    return d;
}

/* The most rows a series of this log can hold: one per step and a few more (an evaluation at
 * step 0, the smoothness probe's rows per step), by the log's own `steps` attribute. A file can
 * declare any extent (a few kB of compressed fill can claim millions of rows); rows past this
 * bound are damage, and reading or drawing them would take minutes and gigabytes. No bound
 * when the log does not say its steps. */
static double max_rows(const NsLog *log)
{
    long steps = 0;
    if (ns_log_attr_long(log, "steps", &steps) < 0 || steps < 0)
        return INFINITY;
    return NS_LOG_ROWS_PER_STEP * ((double)steps + 1) + NS_LOG_ROWS_SLACK;
}

static int too_many_rows(const NsLog *log, const char *path, hsize_t rows, char *err)
{
    double most = max_rows(log);
    if ((double)rows <= most)
        return 0;
    return ns_fail(err, "'%s' in '%s' claims %.0f rows, more than the %.0f its `steps` "
                        "attribute allows: the file is damaged", path, log->path, (double)rows,
                   most);
}

/* A step series (a path ending in "step") counts up from 0: whole numbers in [0, 2^53),
 * never decreasing. Anything else (negative, decreasing, fractional, huge) is a damaged or
 * crafted file, refused before any reader does arithmetic on the steps. */
static int bad_steps(const NsLog *log, const char *path, const double *v, size_t n, char *err)
{
    size_t len = strlen(path);
    if (len < 4 || strcmp(path + len - 4, "step") != 0 || (len > 4 && path[len - 5] != '/'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        int ok = isfinite(v[i]) && v[i] >= 0 && v[i] < 9007199254740992.0 &&
                 v[i] == floor(v[i]) && (i == 0 || v[i] >= v[i - 1]);
        if (!ok)
            return ns_fail(err, "'%s' in '%s' is damaged: row %zu holds step %.17g (steps must "
                                "be whole numbers from 0 up, never decreasing)", path, log->path,
                           i, v[i]);
    }
    return 0;
}

/* Reads a whole dataset of the given rank as mtype (elem bytes each); dims gets its shape. */
static void *read_whole(const NsLog *log, const char *path, int want_rank, hid_t mtype,
                        size_t elem, hsize_t dims[2], char *err)
{
    dims[0] = dims[1] = 0;
    hid_t d = open_dataset(log, path, err);
    if (d < 0)
        return NULL;
    hid_t space = H5Dget_space(d);
    int rank = H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    if (rank != want_rank) {
        H5Dclose(d);
        ns_fail(err, "'%s' in '%s' is not a %d-D series", path, log->path, want_rank);
        return NULL;
    }
    if (too_many_rows(log, path, dims[0], err) < 0) {
        H5Dclose(d);
        return NULL;
    }
    /* A damaged file can claim any extent: more than the machine's memory is an error, not an
     * abort in malloc. */
    double bytes = (double)dims[0] * (want_rank == 2 ? (double)dims[1] : 1.0) * (double)elem;
    double have = ns_physical_memory();
    if (bytes > (have > 0 ? have / 2 : 1e12)) {
        H5Dclose(d);
        ns_fail(err, "'%s' in '%s' claims %.3g bytes: the file is damaged", path, log->path,
                bytes);
        return NULL;
    }
    size_t count = (size_t)dims[0] * (want_rank == 2 ? (size_t)dims[1] : 1);
    void *out = ns_xmalloc(elem * (count ? count : 1));
    if (count && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        free(out);
        H5Dclose(d);
        ns_fail(err, "cannot read '%s' in '%s'", path, log->path);
        return NULL;
    }
    H5Dclose(d);
    return out;
}

double *ns_log_read_series(const NsLog *log, const char *path, size_t *n, char *err)
{
    hsize_t dims[2];
    double *out = read_whole(log, path, 1, H5T_NATIVE_DOUBLE, sizeof(double), dims, err);
    *n = out ? (size_t)dims[0] : 0;
    if (out && bad_steps(log, path, out, *n, err) < 0) {
        free(out);
        *n = 0;
        return NULL;
    }
    return out;
}

float *ns_log_read_matrix(const NsLog *log, const char *path, size_t *rows, size_t *cols,
                          char *err)
{
    hsize_t dims[2];
    float *out = read_whole(log, path, 2, H5T_NATIVE_FLOAT, sizeof(float), dims, err);
    *rows = out ? (size_t)dims[0] : 0;
    *cols = out ? (size_t)dims[1] : 0;
    return out;
}

double *ns_log_read_rows(const NsLog *log, const char *path, size_t from, size_t *n,
                         size_t *rows, char *err)
{
    *n = *rows = 0;
    hid_t d = open_dataset(log, path, err);
    if (d < 0)
        return NULL;
    hid_t space = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    int rank = space >= 0 ? H5Sget_simple_extent_dims(space, dims, NULL) : -1;
    double *out = NULL;
    if (rank != 1) {
        ns_fail(err, "'%s' in '%s' is not a 1-D series", path, log->path);
    } else if (too_many_rows(log, path, dims[0], err) < 0) {
        rank = -1;
    } else if (dims[0] > from) {
        hsize_t start[1] = {from}, count[1] = {dims[0] - from};
        hid_t mspace = H5Screate_simple(1, count, NULL);
        out = count[0] <= (1u << 26) ? ns_xmalloc(sizeof(double) * count[0]) : NULL;
        if (!out || H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(d, H5T_NATIVE_DOUBLE, mspace, space, H5P_DEFAULT, out) < 0) {
            free(out);
            out = NULL;
            ns_fail(err, "cannot read '%s' in '%s' (damaged?)", path, log->path);
        } else if (bad_steps(log, path, out, (size_t)count[0], err) < 0) {
            free(out);
            out = NULL;
            rank = -1;
        } else {
            *n = (size_t)count[0];
        }
        H5Sclose(mspace);
    }
    if (rank == 1)
        *rows = (size_t)dims[0];
    if (space >= 0)
        H5Sclose(space);
    H5Dclose(d);
    return out;
}

const char *ns_log_scheme_stat(const NsLog *log)
{
    return log->scheme && (log->scheme->batch_stats & NS_STAT_PSI2) ? "psi2" : "var";
}

#define MAX_OTHER_SITES 4096

/* Sites of another model (a CNN's, from the PyTorch recorder): every group under /norms that
 * holds a `step` series, except a site's vectors group. */
typedef struct {
    char **names;
    int n, cap;
} SiteList;

static herr_t collect_site(hid_t norms, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    SiteList *list = data;
    const char *last = strrchr(name, '/');
    if (strcmp(last ? last + 1 : name, "vectors") == 0)
        return 0;
    char step[NS_RUNLOG_PATH_LEN + 8];
    if (snprintf(step, sizeof step, "%s/%s", name, NS_RUNLOG_STEP) >= (int)sizeof step ||
        !ns_h5_exists(norms, step) || H5Oexists_by_name(norms, name, H5P_DEFAULT) <= 0)
        return 0;
    if (list->n >= MAX_OTHER_SITES)
        return 1; /* a hostile file cannot make the list unbounded */
    if (list->n == list->cap) {
        list->cap = list->cap ? 2 * list->cap : 16;
        list->names = ns_xrealloc(list->names, sizeof(char *) * (size_t)list->cap);
    }
    list->names[list->n++] = ns_xstrdup(name);
    return 0;
}

/* Natural order ("layer2" before "layer10"), so sites come in model order when their names
 * number them. */
static int natural_compare(const void *pa, const void *pb)
{
    const char *a = *(const char *const *)pa, *b = *(const char *const *)pb;
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            char *ea, *eb;
            unsigned long long x = strtoull(a, &ea, 10), y = strtoull(b, &eb, 10);
            if (x != y)
                return x < y ? -1 : 1;
            a = ea, b = eb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        a++, b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

static int other_model_sites(const NsLog *log, char ***sites)
{
    SiteList list = {0};
    hid_t norms = ns_h5_exists(log->file, NS_RUNLOG_NORMS) ?
                      H5Gopen2(log->file, NS_RUNLOG_NORMS, H5P_DEFAULT) : H5I_INVALID_HID;
    if (norms >= 0) {
        H5Lvisit(norms, H5_INDEX_NAME, H5_ITER_INC, collect_site, &list);
        H5Gclose(norms);
    }
    if (list.n > 1)
        qsort(list.names, (size_t)list.n, sizeof(char *), natural_compare);
    *sites = list.names ? list.names : ns_xcalloc(1, sizeof(char *));
    return list.n;
}

int ns_log_sites(const NsLog *log, char ***sites)
{
    int cap = (int)(2 * log->n_layers + 1), n = 0;
    *sites = ns_xcalloc((size_t)(cap > 0 ? cap : 1), sizeof(char *));
    char site[64], path[NS_RUNLOG_PATH_LEN];
    for (long l = 0; l < log->n_layers; l++) {
        for (int k = 1; k <= 2; k++) {
            snprintf(site, sizeof site, "layers/%ld/norm%d", l, k);
            if (ns_h5_exists(log->file, ns_runlog_site_path(path, sizeof path, site, NULL)))
                (*sites)[n++] = ns_xstrdup(site);
        }
    }
    if (ns_h5_exists(log->file, ns_runlog_site_path(path, sizeof path, "final_norm", NULL)) &&
        n < cap)
        (*sites)[n++] = ns_xstrdup("final_norm");
    if (n > 0)
        return n;
    free(*sites);
    return other_model_sites(log, sites);
}

void ns_log_free_sites(char **sites, int n)
{
    for (int i = 0; i < n; i++)
        free(sites[i]);
    free(sites);
}

int ns_log_attr_str(const NsLog *log, const char *name, char *buf, size_t len)
{
    /* A log may come from anyone: its strings reach terminals and comments of every artifact,
     * so none of them carries a control character or an escape sequence (sanitize.h). What a
     * kind of artifact needs beyond that (gnuplot, Markdown, Python) its writer adds. */
    char raw[4096];
    if (ns_h5_attr_read_str(log->file, name, raw, sizeof raw) < 0)
        return -1;
    ns_text_printable(buf, len, raw);
    return 0;
}

int ns_log_attr_long(const NsLog *log, const char *name, long *value)
{
    int64_t v;
    if (ns_h5_attr_read_i64(log->file, name, &v) < 0)
        return -1;
    *value = (long)v;
    return 0;
}

int ns_log_attr_double(const NsLog *log, const char *name, double *value)
{
    return ns_h5_attr_read_f64(log->file, name, value);
}
