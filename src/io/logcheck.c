#include "logcheck.h"

#include <hdf5.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "logread.h"
#include "runlog_schema.h"
#include "util.h"

/* A hostile file may hold millions of objects or rows: the walk stops past MAX_OBJECTS, and a
 * step series is read in blocks, no further than the run's own `steps` allow. */
#define MAX_OBJECTS 200000
#define MAX_SERIES 16 /* series of one schema group (the generator's tables are far below) */
#define BLOCK_ROWS 65536

/* One occurrence of a schema group in the file: /norms/layers/0/norm1 for group `site`. */
typedef struct {
    int group;
    char path[NS_RUNLOG_PATH_LEN];
    unsigned seen;            /* bit i: series i of the group is in the file */
    unsigned found;           /* ... and has the declared dtype and rank */
    long long rows[MAX_SERIES];
    long long width[MAX_SERIES];
} Instance;

typedef struct {
    const char *file;
    FILE *out;
    int max_problems, problems;
    hid_t h5;
    NsLog log;
    Instance *inst;
    int n_inst, cap_inst;
    long objects;
    /* what the root attributes say */
    int64_t steps;       /* 0: unknown */
    int probes_on[NS_G_N]; /* per group: its probe recorded */
    int local_ranks, running_stats, penalty, scheme_known;
    int64_t hessian_top, density; /* expected vector widths; 0: unknown */
} Check;

static void problem(Check *c, const char *object, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(Check *c, const char *object, const char *fmt, ...)
{
    if (c->problems++ >= c->max_problems)
        return;
    fprintf(c->out, "%s: %s: ", c->file, object);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
}

/* ------------------------------------------------------------------ root attributes */

static int dtype_matches(hid_t type, NsSchemaDtype want)
{
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    switch (want) {
    case NS_DT_INT64: return cls == H5T_INTEGER && size == 8 && H5Tget_sign(type) == H5T_SGN_2;
    case NS_DT_FLOAT64: return cls == H5T_FLOAT && size == 8;
    case NS_DT_FLOAT32: return cls == H5T_FLOAT && size == 4;
    case NS_DT_STRING: return cls == H5T_STRING;
    }
    return 0;
}

static herr_t check_root_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    Check *c = data;
    char object[NS_RUNLOG_PATH_LEN];
    snprintf(object, sizeof object, "/@%.150s", name);
    const NsSchemaAttr *a = ns_schema_root_attr(name);
    if (!a) {
        problem(c, object, "root attribute not declared in the schema (docs/runlog.md)");
        return 0;
    }
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    hid_t space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    if (type < 0 || space < 0)
        problem(c, object, "unreadable attribute");
    else if (!dtype_matches(type, a->dtype))
        problem(c, object, "dtype is not %s", ns_schema_dtype_name(a->dtype));
    else if (H5Sget_simple_extent_npoints(space) != 1)
        problem(c, object, "holds %lld values, not one",
                (long long)H5Sget_simple_extent_npoints(space));
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (attr >= 0)
        H5Aclose(attr);
    return 0;
}

static int probe_listed(const char *probes, const char *probe)
{
    if (strcmp(probe, "steps") == 0 || strcmp(probes, "all") == 0)
        return 1;
    size_t n = strlen(probe);
    for (const char *p = probes; (p = strstr(p, probe)) != NULL; p += n)
        if ((p == probes || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/* What the configuration says the log must hold. */
static void read_config(Check *c)
{
    for (int i = 0; i < NS_SCHEMA_N_ROOT_ATTRS; i++)
        if (NS_SCHEMA_ROOT_ATTRS[i].required && !H5Aexists(c->h5, NS_SCHEMA_ROOT_ATTRS[i].name)) {
            char object[NS_RUNLOG_PATH_LEN];
            snprintf(object, sizeof object, "/@%s", NS_SCHEMA_ROOT_ATTRS[i].name);
            problem(c, object, "required root attribute missing");
        }
    hsize_t idx = 0;
    H5Aiterate2(c->h5, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, check_root_attr, c);
    char probes[256] = "", stats[16] = "";
    ns_h5_attr_read_str(c->h5, "probes", probes, sizeof probes);
    for (int g = 0; g < NS_G_N; g++)
        c->probes_on[g] = probe_listed(probes, NS_SCHEMA_GROUPS[g].probe);
    int64_t world = 1, iters = 0, runs = 0, dsteps = 0;
    ns_h5_attr_read_i64(c->h5, "world_size", &world);
    ns_h5_attr_read_str(c->h5, "batch_stats", stats, sizeof stats);
    c->local_ranks = world > 1 && strcmp(stats, "local") == 0;
    c->scheme_known = c->log.scheme != NULL;
    c->running_stats = c->scheme_known &&
                       (c->log.scheme->state & (NS_STATE_RUNNING_MEAN | NS_STATE_RUNNING_VAR |
                                                NS_STATE_RUNNING_PSI2)) != 0;
    c->penalty = c->scheme_known && c->log.scheme->has_penalty;
    if (ns_h5_attr_read_i64(c->h5, "steps", &c->steps) < 0 || c->steps < 0)
        c->steps = 0;
    if (ns_h5_attr_read_i64(c->h5, "hessian_iters", &iters) == 0 &&
        ns_h5_attr_read_i64(c->h5, "hessian_top", &c->hessian_top) == 0 && iters == 0)
        c->hessian_top = 0;
    if (ns_h5_attr_read_i64(c->h5, "density_runs", &runs) == 0 &&
        ns_h5_attr_read_i64(c->h5, "density_steps", &dsteps) == 0 && iters >= 0 && runs >= 0 &&
        runs < (1 << 20) && dsteps >= 0 && dsteps < (1 << 20) && iters < (1 << 20))
        c->density = runs * (dsteps ? dsteps : iters);
}

/* ------------------------------------------------------------------ finding the groups */

static Instance *instance(Check *c, int group, const char *path)
{
    for (int i = 0; i < c->n_inst; i++)
        if (c->inst[i].group == group && strcmp(c->inst[i].path, path) == 0)
            return &c->inst[i];
    if (c->n_inst == c->cap_inst) {
        c->cap_inst = c->cap_inst ? 2 * c->cap_inst : 64;
        c->inst = ns_xrealloc(c->inst, sizeof(Instance) * (size_t)c->cap_inst);
    }
    Instance *in = &c->inst[c->n_inst++];
    memset(in, 0, sizeof *in);
    in->group = group;
    snprintf(in->path, sizeof in->path, "%s", path);
    return in;
}

static int series_index(int group, const char *name)
{
    const NsSchemaGroup *g = &NS_SCHEMA_GROUPS[group];
    for (int i = 0; i < g->n_series && i < MAX_SERIES; i++)
        if (strcmp(g->series[i].name, name) == 0)
            return i;
    return -1;
}

/* The schema groups whose path pattern fits `parent` (the dataset's group, no leading '/'). */
static int groups_of(const char *parent, int *groups)
{
    int n = 0;
    if (strcmp(parent, "params") == 0) {
        groups[n++] = NS_G_PARAMS;
        return n;
    }
    if (strncmp(parent, "params/", 7) == 0) {
        groups[n++] = NS_G_TENSOR;
        return n;
    }
    if (strncmp(parent, "norms/", 6) == 0) {
        size_t len = strlen(parent);
        if (len > 14 && strcmp(parent + len - 8, "/vectors") == 0) {
            groups[n++] = NS_G_VECTORS;
            return n;
        }
        groups[n++] = NS_G_SITE;
        groups[n++] = NS_G_SITE_PENALTY;
        groups[n++] = NS_G_SITE_SPREAD;
        groups[n++] = NS_G_SITE_GRADS;
        return n;
    }
    for (int g = 0; g < NS_G_N; g++)
        if (strchr(NS_SCHEMA_GROUPS[g].path, '{') == NULL &&
            strcmp(NS_SCHEMA_GROUPS[g].path, parent) == 0)
            groups[n++] = g;
    return n;
}

static void check_units(Check *c, hid_t dset, const char *object, const NsSchemaSeries *s)
{
    char units[64] = "", definition[8] = "";
    if (ns_h5_attr_read_str(dset, "units", units, sizeof units) < 0)
        problem(c, object, "no 'units' attribute (schema: %s)", s->units);
    else if (strcmp(units, s->units) != 0)
        problem(c, object, "units '%.40s', schema says '%s'", units, s->units);
    if (ns_h5_attr_read_str(dset, "definition", definition, sizeof definition) < 0)
        problem(c, object, "no 'definition' attribute");
}

/* dtype, rank and width of one declared series; its rows and width into the instance. */
static void check_dataset(Check *c, hid_t dset, const char *object, Instance *in, int k)
{
    const NsSchemaSeries *s = &NS_SCHEMA_GROUPS[in->group].series[k];
    in->seen |= 1u << k;
    hid_t type = H5Dget_type(dset), space = H5Dget_space(dset);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[H5S_MAX_RANK] = {0};
    if (type < 0 || rank < 0 || rank > H5S_MAX_RANK)
        problem(c, object, "unreadable dataset");
    else if (!dtype_matches(type, s->dtype))
        problem(c, object, "dtype is not %s", ns_schema_dtype_name(s->dtype));
    else if (rank != (s->width == NS_W_SCALAR ? 1 : 2))
        problem(c, object, "rank %d, schema says %d", rank, s->width == NS_W_SCALAR ? 1 : 2);
    else {
        H5Sget_simple_extent_dims(space, dims, NULL);
        in->found |= 1u << k;
        in->rows[k] = (long long)dims[0];
        in->width[k] = rank == 2 ? (long long)dims[1] : 1;
        if (rank == 2 && dims[1] == 0)
            problem(c, object, "vector series of width 0");
    }
    check_units(c, dset, object, s);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
}

static void visit_dataset(Check *c, const char *name)
{
    char object[NS_RUNLOG_PATH_LEN + 1], parent[NS_RUNLOG_PATH_LEN];
    snprintf(object, sizeof object, "/%s", name);
    if (strcmp(name, NS_RUNLOG_DOCS_PATHS) == 0)
        return;
    const char *slash = strrchr(name, '/');
    int groups[4], n = 0;
    if (slash && (size_t)(slash - name) < sizeof parent) {
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - name), name);
        n = groups_of(parent, groups);
    }
    int declared = 0;
    for (int i = 0; i < n; i++) {
        int k = series_index(groups[i], slash + 1);
        if (k < 0)
            continue;
        declared = 1;
        hid_t dset = H5Dopen2(c->h5, name, H5P_DEFAULT);
        if (dset < 0) {
            problem(c, object, "unreadable dataset");
            return;
        }
        check_dataset(c, dset, object, instance(c, groups[i], parent), k);
        H5Dclose(dset);
    }
    if (!declared)
        problem(c, object, "dataset not declared in the schema (docs/runlog.md)");
}

static herr_t visit_link(hid_t loc, const char *name, const H5L_info_t *info, void *data)
{
    Check *c = data;
    char object[NS_RUNLOG_PATH_LEN + 1];
    snprintf(object, sizeof object, "/%.*s", NS_RUNLOG_PATH_LEN - 1, name);
    if (++c->objects > MAX_OBJECTS) {
        problem(c, "/", "more than %d objects: not a run log of any model normscope knows; "
                        "stopped looking", MAX_OBJECTS);
        return 1;
    }
    if (strlen(name) >= NS_RUNLOG_PATH_LEN - 1) {
        problem(c, object, "path longer than %d characters", NS_RUNLOG_PATH_LEN - 2);
        return 0;
    }
    if (info->type != H5L_TYPE_HARD) {
        problem(c, object, "soft or external link: a run log holds none (not followed)");
        return 0;
    }
    H5O_info_t oinfo;
    if (H5Oget_info_by_name2(loc, name, &oinfo, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        problem(c, object, "unreadable object");
    else if (oinfo.type == H5O_TYPE_DATASET)
        visit_dataset(c, name);
    else if (oinfo.type != H5O_TYPE_GROUP)
        problem(c, object, "neither a group nor a dataset");
    return 0;
}

/* ------------------------------------------------------------------ what the groups hold */

static int group_required(const Check *c, int group)
{
    const NsSchemaGroup *g = &NS_SCHEMA_GROUPS[group];
    if (!c->probes_on[group])
        return 0;
    switch (g->when) {
    case NS_WHEN_ALWAYS: return 1;
    case NS_WHEN_LOCAL_RANKS: return c->local_ranks;
    case NS_WHEN_RUNNING_STATS: return c->running_stats;
    case NS_WHEN_PENALTY: return c->penalty;
    }
    return 0;
}

/* The series that counts this instance's rows: its own step series, or the step series of
 * another group at its path (the groups of a site share one; /steps/penalty is indexed by
 * /steps/step), or /params/step for a tensor. */
static const Instance *index_of(Check *c, const Instance *in, int *k)
{
    const char *path = in->group == NS_G_TENSOR ? NS_RUNLOG_PARAMS : in->path;
    *k = series_index(in->group, NS_RUNLOG_STEP);
    if (*k >= 0 && (in->found & (1u << *k)))
        return in;
    for (int i = 0; i < c->n_inst; i++) {
        const Instance *x = &c->inst[i];
        if (strcmp(x->path, path) == 0 && (*k = series_index(x->group, NS_RUNLOG_STEP)) >= 0 &&
            (x->found & (1u << *k)))
            return x;
    }
    return NULL;
}

/* Step values increase strictly and lie in [lo, steps]; read in blocks, and not at all when
 * the series holds more rows than the run has steps. */
static void check_steps(Check *c, const Instance *in, int k)
{
    char object[NS_RUNLOG_PATH_LEN + 8];
    snprintf(object, sizeof object, "/%s/%s", in->path, NS_RUNLOG_STEP);
    int64_t lo = in->group == NS_G_EVAL || in->group == NS_G_NORM_GAP ? 0 : 1;
    long long rows = in->rows[k];
    if (c->steps > 0 && rows > c->steps + 1) {
        problem(c, object, "%lld rows, more than the run's %lld steps", rows,
                (long long)c->steps);
        return;
    }
    hid_t dset = H5Dopen2(c->h5, object, H5P_DEFAULT);
    hid_t fspace = dset >= 0 ? H5Dget_space(dset) : H5I_INVALID_HID;
    int64_t *block = ns_xmalloc(sizeof(int64_t) * BLOCK_ROWS), prev = INT64_MIN;
    for (long long at = 0; fspace >= 0 && at < rows; at += BLOCK_ROWS) {
        hsize_t start = (hsize_t)at, count = (hsize_t)(rows - at < BLOCK_ROWS ? rows - at
                                                                            : BLOCK_ROWS);
        hid_t mspace = H5Screate_simple(1, &count, NULL);
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL);
        herr_t rc = H5Dread(dset, H5T_NATIVE_INT64, mspace, fspace, H5P_DEFAULT, block);
        H5Sclose(mspace);
        if (rc < 0) {
            problem(c, object, "rows from %lld unreadable", at);
            break;
        }
        for (hsize_t i = 0; i < count; i++) {
            int64_t v = block[i];
            if (v <= prev || v < lo || (c->steps > 0 && v > c->steps)) {
                problem(c, object, "row %lld holds step %lld: %s", at + (long long)i,
                        (long long)v, v <= prev ? "steps must increase strictly"
                                                : "outside the run's steps");
                at = rows; /* one line per series */
                break;
            }
            prev = v;
        }
    }
    free(block);
    if (fspace >= 0)
        H5Sclose(fspace);
    if (dset >= 0)
        H5Dclose(dset);
}

static void check_width(Check *c, const Instance *in, int k, long long channels)
{
    const NsSchemaSeries *s = &NS_SCHEMA_GROUPS[in->group].series[k];
    long long want = s->width == NS_W_CHANNELS       ? channels
                     : s->width == NS_W_HESSIAN_TOP ? c->hessian_top
                     : s->width == NS_W_DENSITY     ? c->density
                                                    : 0;
    if (want > 0 && in->width[k] != want) {
        char object[NS_RUNLOG_PATH_LEN * 2];
        snprintf(object, sizeof object, "/%s/%s", in->path, s->name);
        problem(c, object, "rows of %lld values, expected %lld", in->width[k], want);
    }
}

/* Every series the group declares is there (unless optional), has the index's rows and the
 * width the configuration implies. */
static void check_instance(Check *c, const Instance *in)
{
    const NsSchemaGroup *g = &NS_SCHEMA_GROUPS[in->group];
    int step_k = series_index(in->group, NS_RUNLOG_STEP);
    unsigned own = in->found & ~(step_k >= 0 ? 1u << step_k : 0u);
    if (!own && !group_required(c, in->group))
        return; /* only the step series that a site's groups share */
    int idx_k = -1;
    const Instance *idx = index_of(c, in, &idx_k);
    long long channels = 0;
    char object[NS_RUNLOG_PATH_LEN * 2];
    for (int k = 0; k < g->n_series && k < MAX_SERIES; k++) {
        snprintf(object, sizeof object, "/%s/%s", in->path, g->series[k].name);
        if (!(in->found & (1u << k))) {
            if (!(in->seen & (1u << k)) && !g->series[k].optional && !(k == step_k && idx && idx != in))
                problem(c, object, "missing (declared in the schema's group '%s')", g->id);
            continue;
        }
        if (g->series[k].width == NS_W_CHANNELS && channels == 0)
            channels = in->width[k];
        check_width(c, in, k, channels);
        if (!idx)
            continue;
        long long want = idx->rows[idx_k];
        if (in->rows[k] != want)
            problem(c, object, "%lld rows, but its step series /%s/step has %lld",
                    in->rows[k], idx->path, want);
    }
    snprintf(object, sizeof object, "/%s", in->path);
    if (idx == in)
        check_steps(c, in, step_k);
    else if (!idx && step_k < 0)
        problem(c, object, "no step series to index its rows");
}

static int has_instance(const Check *c, int group, const char *path)
{
    for (int i = 0; i < c->n_inst; i++)
        if (c->inst[i].group == group && (!path || strcmp(c->inst[i].path, path) == 0))
            return 1;
    return 0;
}

/* Groups the configuration requires but the file lacks: fixed ones by path; for every site
 * found, its groups; at least one site and one tensor when their probes recorded. */
static void check_required_groups(Check *c)
{
    char object[NS_RUNLOG_PATH_LEN + 16];
    for (int g = 0; g < NS_G_N; g++) {
        const char *path = NS_SCHEMA_GROUPS[g].path;
        if (group_required(c, g) && !strchr(path, '{') && !has_instance(c, g, path)) {
            snprintf(object, sizeof object, "/%s", path);
            problem(c, object, "group missing (probe '%s' recorded)", NS_SCHEMA_GROUPS[g].probe);
        }
    }
    int sites = 0;
    for (int i = 0; i < c->n_inst; i++) {
        const Instance *in = &c->inst[i];
        if (in->group != NS_G_SITE)
            continue;
        sites++;
        snprintf(object, sizeof object, "/%s", in->path);
        static const int per_site[] = {NS_G_SITE_PENALTY, NS_G_SITE_SPREAD, NS_G_SITE_GRADS};
        for (size_t j = 0; j < sizeof per_site / sizeof per_site[0]; j++)
            if (group_required(c, per_site[j]) && !has_instance(c, per_site[j], in->path))
                problem(c, object, "site without its '%s' series",
                        NS_SCHEMA_GROUPS[per_site[j]].id);
        char vectors[NS_RUNLOG_PATH_LEN + 16];
        snprintf(vectors, sizeof vectors, "%s/vectors", in->path);
        if (group_required(c, NS_G_VECTORS) && !has_instance(c, NS_G_VECTORS, vectors))
            problem(c, object, "site without its vectors group");
    }
    if (!sites && (group_required(c, NS_G_SITE) || group_required(c, NS_G_SITE_GRADS)))
        problem(c, "/norms", "no norm site (a group under /norms with a step series)");
    if (group_required(c, NS_G_TENSOR) && !has_instance(c, NS_G_TENSOR, NULL))
        problem(c, "/params", "no parameter tensor");
}

int ns_log_check(const char *path, FILE *out, int max_problems)
{
    Check c = {.file = path, .out = out, .max_problems = max_problems};
    char err[NS_ERRLEN];
    if (ns_log_open(&c.log, path, err) < 0) {
        fprintf(out, "%s\n", err);
        return 1;
    }
    c.h5 = c.log.file;
    read_config(&c);
    H5Lvisit(c.h5, H5_INDEX_NAME, H5_ITER_NATIVE, visit_link, &c);
    for (int i = 0; i < c.n_inst; i++)
        check_instance(&c, &c.inst[i]);
    check_required_groups(&c);
    if (c.problems > c.max_problems)
        fprintf(out, "%s: %d more problems not shown\n", path, c.problems - c.max_problems);
    free(c.inst);
    ns_log_close(&c.log);
    return c.problems;
}
