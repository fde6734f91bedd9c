/* The stable C API of the run-log writer (include/normscope_runlog.h): a thin, checking layer
 * over runlog.c, so that the shared library's callers (the Python recorder through ctypes, other
 * trainers) get the same file as `normscope train`, and their mistakes (an undeclared attribute,
 * a path outside its group, a row of the wrong type) are one-line errors, not corrupt logs. */
#include "normscope_runlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileguard.h"
#include "h5util.h"
#include "runlog.h"
#include "util.h"

struct NsrlLog {
    NsRunLog log;
    int lock;    /* the one-writer lock's descriptor */
    int started; /* nsrl_start done: appends allowed, declarations not */
    char path[1024];
    char error[NS_ERRLEN];
};

static int failed(NsrlLog *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failed(NsrlLog *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->error, sizeof l->error, fmt, ap);
    va_end(ap);
    return -1;
}

static void copy_error(char *err, size_t err_len, const char *text)
{
    if (err && err_len > 0)
        snprintf(err, err_len, "%s", text);
}

int nsrl_api_version(void) { return NSRL_API_VERSION; }

const char *nsrl_format(void) { return NS_RUNLOG_FORMAT; }

NsrlLog *nsrl_create(const char *path, int overwrite, int flush_every, char *err, size_t err_len)
{
    char e[NS_ERRLEN] = "";
    if (!path || !path[0] || flush_every <= 0) {
        copy_error(err, err_len, "run log: a path and a flush cadence > 0 are required");
        return NULL;
    }
    if (!overwrite && access(path, F_OK) == 0) {
        snprintf(e, sizeof e, "run log '%.400s' exists: choose another path or ask to overwrite "
                              "it", path);
        copy_error(err, err_len, e);
        return NULL;
    }
    NsrlLog *l = ns_xcalloc(1, sizeof *l);
    snprintf(l->path, sizeof l->path, "%s", path);
    l->lock = ns_lock_acquire(path, "run log", "path", e);
    if (l->lock < 0 || ns_runlog_create(&l->log, path, e) < 0) {
        copy_error(err, err_len, e);
        if (l->lock >= 0) {
            ns_runlog_close(&l->log, e);
            ns_lock_release(l->lock, path);
        }
        free(l);
        return NULL;
    }
    /* one chunk per flush, as normscope train (runlog.c says why) */
    l->log.chunk_rows = flush_every < 4096 ? flush_every : 4096;
    return l;
}

const char *nsrl_error(const NsrlLog *log) { return log ? log->error : "no log"; }

/* Whether attribute name may be written with dtype now. */
static int attr_allowed(NsrlLog *l, const char *name, NsSchemaDtype dtype)
{
    l->error[0] = 0;
    if (l->started)
        return failed(l, "run log '%s': attribute '%s' set after start", l->path, name);
    const NsSchemaAttr *a = name ? ns_schema_root_attr(name) : NULL;
    if (!a)
        return failed(l, "run log '%s': '%s' is not a root attribute the schema declares "
                         "(docs/runlog.md)", l->path, name ? name : "(null)");
    if (strcmp(name, NS_RUNLOG_FORMAT_ATTR) == 0)
        return failed(l, "run log '%s': the writer sets 'format' itself", l->path);
    if (a->dtype != dtype)
        return failed(l, "run log '%s': attribute '%s' is %s in the schema", l->path, name,
                      ns_schema_dtype_name(a->dtype));
    return 0;
}

int nsrl_set_attr_str(NsrlLog *log, const char *name, const char *value)
{
    if (attr_allowed(log, name, NS_DT_STRING) < 0)
        return -1;
    if (ns_h5_attr_write_str(log->log.file, name, value ? value : "") < 0)
        return failed(log, "cannot write attribute '%s' to run log '%s'", name, log->path);
    return 0;
}

int nsrl_set_attr_i64(NsrlLog *log, const char *name, int64_t value)
{
    if (attr_allowed(log, name, NS_DT_INT64) < 0)
        return -1;
    if (ns_h5_attr_write_i64(log->log.file, name, value) < 0)
        return failed(log, "cannot write attribute '%s' to run log '%s'", name, log->path);
    return 0;
}

int nsrl_set_attr_f64(NsrlLog *log, const char *name, double value)
{
    if (attr_allowed(log, name, NS_DT_FLOAT64) < 0)
        return -1;
    if (ns_h5_attr_write_f64(log->log.file, name, value) < 0)
        return failed(log, "cannot write attribute '%s' to run log '%s'", name, log->path);
    return 0;
}

int nsrl_attr_dtype(const char *name)
{
    const NsSchemaAttr *a = name ? ns_schema_root_attr(name) : NULL;
    return a ? (int)a->dtype : -1;
}

static int group_index(const char *id)
{
    for (int g = 0; id && g < NS_SCHEMA_N_GROUPS; g++)
        if (strcmp(NS_SCHEMA_GROUPS[g].id, id) == 0)
            return g;
    return -1;
}

/* Whether path is the group's template ("norms/{site}/vectors") with its one {name} filled by a
 * non-empty relative path with no empty component. */
static int path_fits(const char *template, const char *path)
{
    const char *open = strchr(template, '{'), *close = open ? strchr(open, '}') : NULL;
    if (!close)
        return strcmp(template, path) == 0;
    size_t pre = (size_t)(open - template), post = strlen(close + 1), n = strlen(path);
    if (n <= pre + post || strncmp(path, template, pre) != 0 ||
        strcmp(path + n - post, close + 1) != 0)
        return 0;
    const char *name = path + pre, *end = path + n - post;
    if (name[0] == '/' || end[-1] == '/')
        return 0;
    for (const char *c = name; c + 1 < end; c++)
        if (c[0] == '/' && c[1] == '/')
            return 0;
    return 1;
}

int nsrl_add_group(NsrlLog *log, const char *group_id, const char *path, int channels, int grid,
                   int hessian_top, int density)
{
    log->error[0] = 0;
    if (log->started)
        return failed(log, "run log '%s': group '%s' declared after start", log->path,
                      group_id ? group_id : "(null)");
    int g = group_index(group_id);
    if (g < 0)
        return failed(log, "run log '%s': no schema group '%s' (docs/runlog.md)", log->path,
                      group_id ? group_id : "(null)");
    if (!path || strlen(path) >= NS_RUNLOG_PATH_LEN - 32 ||
        !path_fits(NS_SCHEMA_GROUPS[g].path, path))
        return failed(log, "run log '%s': path '%.200s' is not of group '%s' (%s)", log->path,
                      path ? path : "(null)", group_id, NS_SCHEMA_GROUPS[g].path);
    if (channels < 0 || grid < 0 || hessian_top < 0 || density < 0)
        return failed(log, "run log '%s': negative vector width for '%s'", log->path, path);
    NsRunLogWidths widths = {channels, grid, hessian_top, density};
    int *ids = ns_xcalloc((size_t)NS_SCHEMA_GROUPS[g].n_series, sizeof(int));
    int rc = ns_runlog_add_group(&log->log, g, path, &widths, ids, log->error);
    free(ids);
    return rc;
}

int nsrl_series(const NsrlLog *log, const char *path)
{
    return path ? ns_runlog_find(&log->log, path) : -1;
}

static const NsRunLogSeries *series_at(const NsrlLog *log, int series)
{
    return series >= 0 && series < log->log.n_series ? &log->log.series[series] : NULL;
}

int nsrl_series_width(const NsrlLog *log, int series)
{
    const NsRunLogSeries *s = series_at(log, series);
    return s ? s->width : -1;
}

int nsrl_series_dtype(const NsrlLog *log, int series)
{
    const NsRunLogSeries *s = series_at(log, series);
    return s ? (int)s->type : -1;
}

int nsrl_start(NsrlLog *log)
{
    log->error[0] = 0;
    if (log->started)
        return failed(log, "run log '%s' started twice", log->path);
    if (ns_runlog_write_docs(&log->log, log->error) < 0 ||
        ns_runlog_start(&log->log, log->error) < 0)
        return -1;
    log->started = 1;
    return 0;
}

/* Whether a row of type may be appended to series now. */
static int append_allowed(NsrlLog *log, int series, NsSeriesType type, int width)
{
    const NsRunLogSeries *s = series_at(log, series);
    if (!log->started)
        return failed(log, "run log '%s': row appended before start", log->path);
    if (!s)
        return failed(log, "run log '%s': no series %d", log->path, series);
    if (s->type != type || s->width != width)
        return failed(log, "run log '%s': series '%s' takes %s rows of width %d", log->path,
                      s->path, s->type == NS_SERIES_I64 ? "int64" :
                      s->type == NS_SERIES_F64 ? "float64" : "float32", s->width);
    return 0;
}

int nsrl_append_f64(NsrlLog *log, int series, double value)
{
    if (append_allowed(log, series, NS_SERIES_F64, 1) < 0)
        return -1;
    ns_runlog_append_f64(&log->log, series, value);
    return 0;
}

int nsrl_append_i64(NsrlLog *log, int series, int64_t value)
{
    if (append_allowed(log, series, NS_SERIES_I64, 1) < 0)
        return -1;
    ns_runlog_append_i64(&log->log, series, value);
    return 0;
}

int nsrl_append_f32(NsrlLog *log, int series, const float *row, int width)
{
    if (!row || append_allowed(log, series, NS_SERIES_F32_VEC, width) < 0)
        return row ? -1 : failed(log, "run log '%s': NULL row", log->path);
    ns_runlog_append(&log->log, series, row);
    return 0;
}

int nsrl_flush(NsrlLog *log)
{
    log->error[0] = 0;
    return ns_runlog_flush(&log->log, log->error);
}

int nsrl_close(NsrlLog *log, char *err, size_t err_len)
{
    if (!log)
        return 0;
    /* a log closed before start still gets its docs, so that it is a complete (empty) log */
    int rc = log->started ? 0 : nsrl_start(log);
    char e[NS_ERRLEN] = "";
    if (ns_runlog_close(&log->log, e) < 0 && rc == 0) {
        rc = -1;
        snprintf(log->error, sizeof log->error, "%s", e);
    }
    if (rc < 0)
        copy_error(err, err_len, log->error);
    ns_lock_release(log->lock, log->path);
    free(log);
    return rc;
}
