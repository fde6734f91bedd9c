#include "model_io.h"

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

int ns_write_config_attrs(hid_t loc, const NsModelConfig *mc, const NsOptimConfig *oc)
{
    struct { const char *name; int64_t value; } ints[] = {
        {"vocab_size", mc->vocab_size}, {"d_model", mc->d_model}, {"n_heads", mc->n_heads},
        {"d_ff", mc->d_ff}, {"n_layers", mc->n_layers}, {"seq_len", mc->seq_len},
        {"batch_size", mc->batch_size}, {"pn_warmup", mc->pn_warmup},
        {"pn_groups", mc->pn_groups}, {"tie_embeddings", 1},
    };
    struct { const char *name; double value; } reals[] = {
        {"eps", mc->eps}, {"bn_momentum", mc->bn_momentum}, {"pn_alpha", mc->pn_alpha},
        {"dropout", mc->dropout}, {"lr", oc->lr}, {"weight_decay", oc->weight_decay},
        {"adam_beta1", oc->adam_beta1}, {"adam_beta2", oc->adam_beta2},
        {"adam_eps", oc->adam_eps}, {"clip", oc->clip},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        rc |= ns_h5_attr_write_i64(loc, ints[i].name, ints[i].value);
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        rc |= ns_h5_attr_write_f64(loc, reals[i].name, reals[i].value);
    rc |= ns_h5_attr_write_i64(loc, "warmup", oc->warmup);
    rc |= ns_h5_attr_write_str(loc, "norm", ns_norm_name(mc->norm));
    rc |= ns_h5_attr_write_str(loc, "norm_position", ns_position_name(mc->norm_position));
    return rc ? -1 : 0;
}

static int read_int(hid_t loc, const char *name, int *out, int required, char *err)
{
    int64_t v;
    if (ns_h5_attr_read_i64(loc, name, &v) < 0)
        return required ? ns_fail(err, "attribute '%s' is missing from the file", name) : 0;
    *out = (int)v;
    return 0;
}

static void read_float(hid_t loc, const char *name, float *out)
{
    double v;
    if (ns_h5_attr_read_f64(loc, name, &v) == 0)
        *out = (float)v;
}

int ns_read_config_attrs(hid_t loc, NsModelConfig *mc, NsOptimConfig *oc, char *err)
{
    int rc = read_int(loc, "vocab_size", &mc->vocab_size, 1, err);
    rc = rc ? rc : read_int(loc, "d_model", &mc->d_model, 1, err);
    rc = rc ? rc : read_int(loc, "n_heads", &mc->n_heads, 1, err);
    rc = rc ? rc : read_int(loc, "d_ff", &mc->d_ff, 1, err);
    rc = rc ? rc : read_int(loc, "n_layers", &mc->n_layers, 1, err);
    rc = rc ? rc : read_int(loc, "seq_len", &mc->seq_len, 1, err);
    rc = rc ? rc : read_int(loc, "batch_size", &mc->batch_size, 1, err);
    rc = rc ? rc : read_int(loc, "pn_warmup", &mc->pn_warmup, 0, err);
    rc = rc ? rc : read_int(loc, "pn_groups", &mc->pn_groups, 0, err);
    rc = rc ? rc : read_int(loc, "warmup", &oc->warmup, 0, err);
    if (rc)
        return rc;
    read_float(loc, "eps", &mc->eps);
    read_float(loc, "bn_momentum", &mc->bn_momentum);
    read_float(loc, "pn_alpha", &mc->pn_alpha);
    read_float(loc, "dropout", &mc->dropout);
    read_float(loc, "lr", &oc->lr);
    read_float(loc, "weight_decay", &oc->weight_decay);
    read_float(loc, "adam_beta1", &oc->adam_beta1);
    read_float(loc, "adam_beta2", &oc->adam_beta2);
    read_float(loc, "adam_eps", &oc->adam_eps);
    read_float(loc, "clip", &oc->clip);
    char name[64];
    if (ns_h5_attr_read_str(loc, "norm", name, sizeof name) < 0 ||
        ns_norm_from_name(name, &mc->norm) < 0)
        return ns_fail(err, "attribute 'norm' is missing or names no known scheme");
    if (ns_h5_attr_read_str(loc, "norm_position", name, sizeof name) < 0 ||
        ns_position_from_name(name, &mc->norm_position) < 0)
        return ns_fail(err, "attribute 'norm_position' is missing or not 'post'/'pre'");
    return 0;
}

int ns_write_run_attrs(hid_t loc, const NsRunConfig *c)
{
    int rc = ns_write_config_attrs(loc, &c->model, &c->optim);
    rc |= ns_h5_attr_write_str(loc, "normscope_version", NORMSCOPE_VERSION);
    rc |= ns_h5_attr_write_str(loc, "corpus", c->corpus_path[0] ? c->corpus_path : "(embedded)");
    rc |= ns_h5_attr_write_str(loc, "valid", c->valid_path[0] ? c->valid_path : "(held out)");
    rc |= ns_h5_attr_write_str(loc, "tokenizer", ns_tokenizer_name(c->tokenizer));
    rc |= ns_h5_attr_write_str(loc, "batching", ns_batching_name(c->batching));
    rc |= ns_h5_attr_write_str(loc, "probes", c->probes);
    struct { const char *name; int64_t value; } ints[] = {
        {"synth_bytes", c->synth_bytes}, {"steps", c->steps}, {"seed", (int64_t)c->seed},
        {"threads", c->threads}, {"eval_every", c->eval_every},
        {"eval_batches", c->eval_batches}, {"probe_vectors_every", c->probe_vectors_every},
        {"lipschitz_every", c->lipschitz_every}, {"hessian_iters", c->hessian_iters},
        {"flush_every", c->flush_every},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        rc |= ns_h5_attr_write_i64(loc, ints[i].name, ints[i].value);
    return rc ? -1 : 0;
}

static void read_i64_into_long(hid_t loc, const char *name, long *out)
{
    int64_t v;
    if (ns_h5_attr_read_i64(loc, name, &v) == 0)
        *out = (long)v;
}

static void read_i64_into_int(hid_t loc, const char *name, int *out)
{
    int64_t v;
    if (ns_h5_attr_read_i64(loc, name, &v) == 0)
        *out = (int)v;
}

int ns_read_run_attrs(hid_t loc, NsRunConfig *c, char *err)
{
    if (ns_read_config_attrs(loc, &c->model, &c->optim, err) < 0)
        return -1;
    char buf[NS_PATH_LEN];
    if (ns_h5_attr_read_str(loc, "corpus", buf, sizeof buf) == 0)
        snprintf(c->corpus_path, sizeof c->corpus_path, "%s",
                 strcmp(buf, "(embedded)") == 0 ? "" : buf);
    if (ns_h5_attr_read_str(loc, "valid", buf, sizeof buf) == 0)
        snprintf(c->valid_path, sizeof c->valid_path, "%s",
                 strcmp(buf, "(held out)") == 0 ? "" : buf);
    if (ns_h5_attr_read_str(loc, "tokenizer", buf, sizeof buf) == 0)
        c->tokenizer = strcmp(buf, "char") == 0 ? NS_TOK_CHAR : NS_TOK_WORD;
    if (ns_h5_attr_read_str(loc, "batching", buf, sizeof buf) == 0)
        c->batching = strcmp(buf, "stream") == 0 ? NS_BATCH_STREAM : NS_BATCH_SENTENCES;
    if (ns_h5_attr_read_str(loc, "probes", buf, sizeof buf) == 0)
        snprintf(c->probes, sizeof c->probes, "%.*s", (int)sizeof c->probes - 1, buf);
    long seed = (long)c->seed;
    read_i64_into_long(loc, "synth_bytes", &c->synth_bytes);
    read_i64_into_long(loc, "steps", &c->steps);
    read_i64_into_long(loc, "seed", &seed);
    c->seed = (uint64_t)seed;
    read_i64_into_int(loc, "threads", &c->threads);
    read_i64_into_int(loc, "eval_every", &c->eval_every);
    read_i64_into_int(loc, "eval_batches", &c->eval_batches);
    read_i64_into_int(loc, "probe_vectors_every", &c->probe_vectors_every);
    read_i64_into_int(loc, "lipschitz_every", &c->lipschitz_every);
    read_i64_into_int(loc, "hessian_iters", &c->hessian_iters);
    read_i64_into_int(loc, "flush_every", &c->flush_every);
    return 0;
}
