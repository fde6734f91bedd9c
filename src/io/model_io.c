#include "model_io.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "h5util.h"
#include "util.h"

static void join(char *out, size_t n, const char *prefix, const char *name)
{
    snprintf(out, n, "%s%s%s", prefix, prefix[0] ? "/" : "", name);
}

int ns_write_tensors(hid_t loc, const char *prefix, const NsParamLayout *L, const float *buffer,
                     char *err)
{
    char path[256];
    for (int i = 0; i < L->n_tensors; i++) {
        const NsTensorInfo *t = &L->tensors[i];
        hsize_t dims[2] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1]};
        join(path, sizeof path, prefix, t->name);
        if (ns_h5_write_f32(loc, path, buffer + t->offset, t->ndim, dims, err) < 0)
            return -1;
    }
    return 0;
}

int ns_read_tensors(hid_t loc, const char *prefix, const NsParamLayout *L, float *buffer,
                    char *err)
{
    char path[256];
    for (int i = 0; i < L->n_tensors; i++) {
        const NsTensorInfo *t = &L->tensors[i];
        join(path, sizeof path, prefix, t->name);
        if (ns_h5_read(loc, path, H5T_NATIVE_FLOAT, buffer + t->offset, t->size, err) < 0)
            return -1;
    }
    return 0;
}

int ns_write_norm_state(hid_t loc, const char *prefix, NsModel *m, char *err)
{
    char path[256], site_prefix[200];
    for (int i = 0; i < m->n_sites; i++) {
        NsNormSite *s = &m->sites[i];
        const char *names[4];
        float *ptrs[4];
        int n = ns_norm_state_tensors(s, names, ptrs);
        join(site_prefix, sizeof site_prefix, prefix, s->path);
        hsize_t dims[1] = {(hsize_t)s->d};
        for (int k = 0; k < n; k++) {
            join(path, sizeof path, site_prefix, names[k]);
            if (ns_h5_write_f32(loc, path, ptrs[k], 1, dims, err) < 0)
                return -1;
        }
        if (ns_norm_has_step(s)) {
            join(path, sizeof path, site_prefix, "step");
            if (ns_h5_write_scalar_i64(loc, path, s->step, err) < 0)
                return -1;
        }
    }
    return 0;
}

int ns_read_norm_state(hid_t loc, const char *prefix, NsModel *m, char *err)
{
    char path[256], site_prefix[200];
    for (int i = 0; i < m->n_sites; i++) {
        NsNormSite *s = &m->sites[i];
        const char *names[4];
        float *ptrs[4];
        int n = ns_norm_state_tensors(s, names, ptrs);
        join(site_prefix, sizeof site_prefix, prefix, s->path);
        for (int k = 0; k < n; k++) {
            join(path, sizeof path, site_prefix, names[k]);
            if (ns_h5_read(loc, path, H5T_NATIVE_FLOAT, ptrs[k], (size_t)s->d, err) < 0)
                return -1;
        }
        if (ns_norm_has_step(s)) {
            join(path, sizeof path, site_prefix, "step");
            int64_t step = 0;
            if (ns_h5_read(loc, path, H5T_NATIVE_INT64, &step, 1, err) < 0)
                return -1;
            s->step = step;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ configuration attributes
 * Every row of NS_RUN_OPTIONS with an attribute name is one root attribute: integers as int64,
 * reals as float64, names and paths as strings (model_io.h). */

/* Model and optimizer rows are the debug-state attributes; the others describe the run. */
static int is_config_row(const NsOption *o)
{
    return o->section == NS_SEC_MODEL || o->section == NS_SEC_OPTIM;
}

/* vlen_strings: debug states, whose reference files hold variable-length strings. */
static int write_attr(hid_t loc, const NsOption *o, const NsRunConfig *c, int vlen_strings)
{
    char text[NS_PATH_LEN];
    switch (ns_option_stored_type(o)) {
    case NS_STORED_INT: return ns_h5_attr_write_i64(loc, o->attr, ns_option_int(o, c));
    case NS_STORED_REAL: return ns_h5_attr_write_f64(loc, o->attr, ns_option_real(o, c));
    default:
        ns_option_text(o, c, text, sizeof text);
        return vlen_strings ? ns_h5_attr_write_vlen_str(loc, o->attr, text)
                            : ns_h5_attr_write_str(loc, o->attr, text);
    }
}

/* Reads one attribute into c. A missing or unreadable one keeps the value already in c, unless
 * the row is NS_OPT_REQUIRED. */
static int read_attr(hid_t loc, const NsOption *o, NsRunConfig *c, char *err)
{
    int64_t i;
    double r;
    char text[NS_PATH_LEN];
    int required = o->traits & NS_OPT_REQUIRED;
    switch (ns_option_stored_type(o)) {
    case NS_STORED_INT:
        if (ns_h5_attr_read_i64(loc, o->attr, &i) < 0)
            return required ? ns_fail(err, "attribute '%s' is missing or not a single number",
                                      o->attr)
                            : 0;
        ns_option_set_int(o, c, i);
        return 0;
    case NS_STORED_REAL:
        if (ns_h5_attr_read_f64(loc, o->attr, &r) == 0)
            ns_option_set_real(o, c, r);
        return 0;
    default:
        if ((ns_h5_attr_read_str(loc, o->attr, text, sizeof text) < 0 ||
             ns_option_set_text(o, c, text) < 0) && required)
            return ns_fail(err, "attribute '%s' is missing or not one of the known names",
                           o->attr);
        return 0;
    }
}

/* Writes (or reads) the rows with attributes, only the model and optimizer ones when
 * config_only: a debug state's, whose strings are variable-length like the spec's files. */
static int write_attrs(hid_t loc, const NsRunConfig *c, int config_only)
{
    int rc = 0;
    for (size_t k = 0; k < NS_N_RUN_OPTIONS; k++) {
        const NsOption *o = &NS_RUN_OPTIONS[k];
        if (o->attr && (!config_only || is_config_row(o)))
            rc |= write_attr(loc, o, c, config_only);
    }
    return rc ? -1 : 0;
}

static int read_attrs(hid_t loc, NsRunConfig *c, int config_only, char *err)
{
    for (size_t k = 0; k < NS_N_RUN_OPTIONS; k++) {
        const NsOption *o = &NS_RUN_OPTIONS[k];
        if (o->attr && (!config_only || is_config_row(o)) && read_attr(loc, o, c, err) < 0)
            return -1;
    }
    return 0;
}

/* Debug states hold a model and optimizer configuration without the rest of a run: the rows
 * address an NsRunConfig, so the two parts travel in one. */
int ns_write_config_attrs(hid_t loc, const NsModelConfig *mc, const NsOptimConfig *oc)
{
    NsRunConfig c;
    memset(&c, 0, sizeof c);
    c.model = *mc;
    c.optim = *oc;
    return write_attrs(loc, &c, 1);
}

int ns_read_config_attrs(hid_t loc, NsModelConfig *mc, NsOptimConfig *oc, char *err)
{
    NsRunConfig c;
    memset(&c, 0, sizeof c);
    c.model = *mc;
    c.optim = *oc;
    int rc = read_attrs(loc, &c, 1, err);
    *mc = c.model;
    *oc = c.optim;
    return rc;
}

/* run_id is no row of the option table: it identifies a run, it does not configure one (the
 * tables' readers, e.g. "differ only in seed", compare configurations). */
int ns_write_run_attrs(hid_t loc, const NsRunConfig *c)
{
    int rc = write_attrs(loc, c, 0);
    if (rc == 0 && c->run_id[0])
        rc = ns_h5_attr_write_str(loc, NS_RUN_ID_ATTR, c->run_id);
    return rc;
}

int ns_read_run_attrs(hid_t loc, NsRunConfig *c, char *err)
{
    if (read_attrs(loc, c, 0, err) < 0)
        return -1;
    char id[NS_RUN_ID_LEN + 1];
    if (H5Aexists(loc, NS_RUN_ID_ATTR) > 0) {
        if (ns_h5_attr_read_str(loc, NS_RUN_ID_ATTR, id, sizeof id) < 0 ||
            strlen(id) != NS_RUN_ID_LEN - 1)
            return ns_fail(err, "attribute '%s' is not a run identifier (%d hex digits)",
                           NS_RUN_ID_ATTR, NS_RUN_ID_LEN - 1);
        snprintf(c->run_id, sizeof c->run_id, "%s", id);
    }
    return 0;
}

/* ------------------------------------------------------------------ resumed segments */

/* Drops the records of segments that began at or after `step`: a resume from an earlier
 * checkpoint takes their rows again. Returns the number of records kept. */
static int drop_later_segments(hid_t group, int64_t step)
{
    int kept = 0;
    for (int k = 1;; k++) {
        char name[32];
        snprintf(name, sizeof name, "%d", k);
        if (H5Lexists(group, name, H5P_DEFAULT) <= 0)
            return kept;
        hid_t g = H5Gopen2(group, name, H5P_DEFAULT);
        int64_t start = INT64_MAX;
        if (g >= 0) {
            ns_h5_attr_read_i64(g, "start_step", &start);
            H5Gclose(g);
        }
        if (start >= step)
            H5Ldelete(group, name, H5P_DEFAULT);
        else
            kept = k;
    }
}

static hid_t open_or_create_group(hid_t loc, const char *name)
{
    if (H5Lexists(loc, name, H5P_DEFAULT) > 0)
        return H5Gopen2(loc, name, H5P_DEFAULT);
    return H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

/* The settings of this segment that differ from the root's (the first segment's). */
static int write_changed(hid_t seg, const NsRunConfig *root, const NsRunConfig *now)
{
    int rc = 0;
    for (size_t k = 0; k < NS_N_RUN_OPTIONS; k++) {
        const NsOption *o = &NS_RUN_OPTIONS[k];
        if (o->attr && ns_options_first_difference(o, 1, 0, root, now))
            rc |= write_attr(seg, o, now, 0);
    }
    return rc;
}

int ns_runlog_record_segment(hid_t file, const NsRunConfig *now, int64_t start_step,
                             int new_log, char *err)
{
    NsRunConfig root = *now;
    root.run_id[0] = '\0'; /* the file's own, if it has one */
    if (ns_read_run_attrs(file, &root, err) < 0)
        return -1;
    hid_t segments = open_or_create_group(file, NS_SEGMENTS_GROUP);
    if (segments < 0)
        return ns_fail(err, "cannot write group /%s", NS_SEGMENTS_GROUP);
    char name[32];
    snprintf(name, sizeof name, "%d", drop_later_segments(segments, start_step) + 1);
    hid_t seg = H5Gcreate2(segments, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = seg < 0;
    if (seg >= 0) {
        rc |= ns_h5_attr_write_i64(seg, "start_step", start_step);
        rc |= ns_h5_attr_write_i64(seg, "new_log", new_log);
        rc |= ns_h5_attr_write_str(seg, "checkpoint", now->resume_path);
        rc |= write_changed(seg, &root, now);
        H5Gclose(seg);
    }
    H5Gclose(segments);
    /* The root's `steps` is the whole log's plan (the rows it will hold), and a log from
     * before run_id takes the identifier its resumed run now has. */
    rc |= ns_h5_attr_write_i64(file, "steps", now->steps);
    if (!root.run_id[0] && now->run_id[0])
        rc |= ns_h5_attr_write_str(file, NS_RUN_ID_ATTR, now->run_id);
    return rc ? ns_fail(err, "cannot record the resumed segment in /%s", NS_SEGMENTS_GROUP) : 0;
}
