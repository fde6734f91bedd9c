#include "checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileguard.h"
#include "h5util.h"
#include "model_io.h"
#include "util.h"

#define CHECKPOINT_FORMAT "normscope-checkpoint-1"

/* The vocabulary as one checksummed byte array, tokens each followed by a NUL: variable-length
 * strings live in a heap HDF5 cannot checksum, and a flipped byte there crashed libhdf5. */
static int write_vocab(hid_t f, const NsVocab *v, char *err)
{
    size_t len = 0;
    for (int i = 0; i < v->size; i++)
        len += strlen(v->tokens[i]) + 1;
    char *blob = ns_xmalloc(len), *p = blob;
    for (int i = 0; i < v->size; i++)
        p = stpcpy(p, v->tokens[i]) + 1;
    hsize_t dims[1] = {(hsize_t)len};
    int rc = ns_h5_write_checked(f, "vocab/blob", H5T_NATIVE_CHAR, blob, 1, dims, err);
    free(blob);
    return rc;
}

static int write_body(hid_t f, const NsRunConfig *cfg, NsModel *m, const NsAdamW *opt,
                      const NsBatcher *batches, const NsVocab *vocab, const float *params_init,
                      int64_t step, char *err)
{
    if (ns_write_run_attrs(f, cfg) < 0 || ns_h5_attr_write_str(f, "format", CHECKPOINT_FORMAT))
        return ns_fail(err, "cannot write checkpoint attributes");
    if (ns_write_tensors(f, "params", &m->layout, m->params, err) < 0 ||
        ns_write_norm_state(f, "state", m, err) < 0 ||
        ns_write_tensors(f, "optim/m", &m->layout, opt->m, err) < 0 ||
        ns_write_tensors(f, "optim/v", &m->layout, opt->v, err) < 0 ||
        ns_h5_write_scalar_i64(f, "optim/t", opt->t, err) < 0 ||
        ns_h5_write_scalar_i64(f, "step", step, err) < 0 ||
        (params_init && ns_write_tensors(f, "init", &m->layout, params_init, err) < 0))
        return -1;
    hsize_t four[1] = {4};
    if (ns_h5_write(f, "rng/dropout", H5T_NATIVE_UINT64, m->dropout_rng.s, 1, four, err) < 0)
        return -1;
    int n = ns_batcher_state_size(batches);
    int64_t *state = ns_xmalloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    ns_batcher_get_state(batches, state);
    hsize_t dims[1] = {(hsize_t)n};
    int rc = ns_h5_write(f, "data/batcher", H5T_NATIVE_INT64, state, 1, dims, err);
    free(state);
    return rc < 0 ? -1 : write_vocab(f, vocab, err);
}

/* An upper bound of the file's size: parameters, both moments, the initial parameters and the
 * norm state are each at most a copy of the parameters; a dataset's metadata is under 1 kB
 * (measured: 0.5 kB); then the vocabulary. */
static int64_t checkpoint_bytes(const NsModel *m, const NsVocab *vocab)
{
    int64_t bytes = (int64_t)(5 * sizeof(float) * m->layout.total) + (1 << 16) +
                    5 * 1024 * (int64_t)m->layout.n_tensors;
    for (int i = 0; i < vocab->size; i++)
        bytes += (int64_t)strlen(vocab->tokens[i]) + 32;
    return bytes;
}

/* Renames the finished temporary file over path, durably: the file's data first, then the
 * directory entry. Returns 0 or an errno. */
static int commit_file(const char *tmp, const char *path)
{
    int rc = ns_fsync_file(tmp);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = errno;
    return rc ? rc : ns_fsync_dir_of(path);
}

int ns_checkpoint_save(const char *path, const NsRunConfig *cfg, NsModel *m, const NsAdamW *opt,
                       const NsBatcher *batches, const NsVocab *vocab, const float *params_init,
                       int64_t step, const NsCheckpointExtra *extra, char *err)
{
    char tmp[NS_PATH_LEN + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = ns_h5_create(tmp, err);
    if (f < 0)
        return -1;
    int space = ns_check_space(tmp, checkpoint_bytes(m, vocab)), rc = 0;
    if (space != 0)
        rc = ns_fail(err, "cannot write checkpoint '%s': %s", path, ns_io_cause(space));
    if (rc == 0)
        rc = write_body(f, cfg, m, opt, batches, vocab, params_init, step, err);
    if (rc == 0 && extra && extra->write)
        rc = extra->write(extra->ctx, f, err);
    errno = 0;
    if (H5Fclose(f) < 0 && rc == 0)
        rc = ns_fail(err, "cannot finish writing checkpoint '%s': %s", tmp, ns_io_cause(errno));
    int committed = rc == 0 ? commit_file(tmp, path) : 0;
    if (committed != 0)
        rc = ns_fail(err, "cannot save checkpoint '%s': %s", path, ns_io_cause(committed));
    if (rc != 0) {
        ns_h5_skip_exit_cleanup();
        remove(tmp);
        if (space == 0 && committed == 0)
            ns_fail_context(err, "checkpoint '%s'", path);
    }
    return rc;
}

/* Checkpoints before the checksummed blob stored the tokens as variable-length strings. */
static int read_vocab_strings(hid_t f, char ***out, int *n_out, char *err)
{
    long n = ns_h5_numel(f, "vocab/tokens");
    if (n <= 0)
        return ns_fail(err, "checkpoint has no vocabulary (vocab/blob)");
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    char **raw = ns_xcalloc((size_t)n, sizeof(char *));
    int rc = ns_h5_read(f, "vocab/tokens", type, raw, (size_t)n, err);
    char **tokens = ns_xcalloc((size_t)n, sizeof(char *));
    for (long i = 0; i < n; i++) {
        tokens[i] = ns_xstrdup(raw[i] ? raw[i] : "");
        if (raw[i])
            H5free_memory(raw[i]);
    }
    free(raw);
    H5Tclose(type);
    *out = tokens;
    *n_out = (int)n;
    return rc;
}

static int read_vocab(hid_t f, char ***out, int *n_out, char *err)
{
    if (!ns_h5_exists(f, "vocab/blob"))
        return read_vocab_strings(f, out, n_out, err);
    long len = ns_h5_numel(f, "vocab/blob");
    if (len <= 0)
        return ns_fail(err, "checkpoint's vocabulary (vocab/blob) is empty");
    char *blob = ns_xmalloc((size_t)len);
    if (ns_h5_read(f, "vocab/blob", H5T_NATIVE_CHAR, blob, (size_t)len, err) < 0) {
        free(blob);
        return -1;
    }
    if (blob[len - 1] != '\0') {
        free(blob);
        return ns_fail(err, "checkpoint's vocabulary (vocab/blob) does not end a token");
    }
    int n = 0;
    for (long i = 0; i < len; i++)
        n += blob[i] == '\0';
    char **tokens = ns_xcalloc((size_t)n, sizeof(char *));
    const char *p = blob;
    for (int i = 0; i < n; i++, p += strlen(p) + 1)
        tokens[i] = ns_xstrdup(p);
    free(blob);
    *out = tokens;
    *n_out = n;
    return 0;
}

void ns_checkpoint_header_free(NsCheckpointHeader *h)
{
    for (int i = 0; i < h->vocab_n; i++)
        free(h->vocab[i]);
    free(h->vocab);
    h->vocab = NULL;
    h->vocab_n = 0;
}

static hid_t open_checkpoint(const char *path, char *err)
{
    hid_t f = ns_h5_open(path, 0, err);
    if (f < 0)
        return f;
    char format[64];
    if (ns_h5_attr_read_str(f, "format", format, sizeof format) < 0 ||
        strcmp(format, CHECKPOINT_FORMAT) != 0) {
        H5Fclose(f);
        ns_fail(err, "'%s' is not a normscope checkpoint (expected format %s); checkpoints are "
                     "the .ckpt.h5 files written by 'normscope train'", path, CHECKPOINT_FORMAT);
        return H5I_INVALID_HID;
    }
    return f;
}

/* A file's configuration is checked like flags are (sizes, memory, divisibility), and its
 * names must be known ones: a stored name this version does not know (tokenizer 'bpe') would
 * otherwise leave the default in place and evaluate the wrong model. */
static const NsOption *option_of_attr(const char *attr)
{
    for (size_t k = 0; k < NS_N_RUN_OPTIONS; k++)
        if (NS_RUN_OPTIONS[k].attr && strcmp(NS_RUN_OPTIONS[k].attr, attr) == 0)
            return &NS_RUN_OPTIONS[k];
    return NULL;
}

static int check_header_config(hid_t f, const NsRunConfig *c, char *err)
{
    static const char *const names[] = {"norm", "norm_position", "tokenizer", "batching"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[64];
        NsRunConfig probe = *c;
        const NsOption *o = option_of_attr(names[i]);
        if (o && ns_h5_attr_read_str(f, names[i], text, sizeof text) == 0 &&
            ns_option_set_text(o, &probe, text) < 0)
            return ns_fail(err, "attribute '%s' = '%s' is not one this version knows", names[i],
                           text);
    }
    if (ns_model_config_validate(&c->model, err) < 0)
        return ns_fail_context(err, "its stored configuration is impossible");
    return 0;
}

int ns_checkpoint_read_header(const char *path, NsCheckpointHeader *h, char *err)
{
    h->vocab = NULL;
    h->vocab_n = 0;
    h->step = 0;
    hid_t f = open_checkpoint(path, err);
    if (f < 0)
        return -1;
    int rc = ns_read_run_attrs(f, &h->cfg, err);
    if (rc == 0)
        rc = check_header_config(f, &h->cfg, err);
    if (rc == 0)
        rc = read_vocab(f, &h->vocab, &h->vocab_n, err);
    if (rc == 0)
        rc = ns_h5_read(f, "step", H5T_NATIVE_INT64, &h->step, 1, err);
    if (rc == 0 && (h->step < 0 || h->step > (int64_t)1 << 48))
        rc = ns_fail(err, "step = %lld is impossible: the file is damaged", (long long)h->step);
    if (rc == 0 && h->vocab_n != h->cfg.model.vocab_size)
        rc = ns_fail(err, "its vocabulary has %d tokens but its vocab_size is %d", h->vocab_n,
                     h->cfg.model.vocab_size);
    H5Fclose(f);
    return rc < 0 ? ns_fail_context(err, "checkpoint '%s'", path) : 0;
}

int ns_model_config_compare(const NsModelConfig *saved, const NsModelConfig *run, char *err)
{
    NsRunConfig a, b; /* the rows address a whole run configuration */
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.model = *saved;
    b.model = *run;
    const NsOption *o =
        ns_options_first_difference(NS_RUN_OPTIONS, NS_N_RUN_OPTIONS, NS_OPT_SHAPE, &a, &b);
    if (!o)
        return 0;
    char x[64], y[64];
    ns_option_text(o, &a, x, sizeof x);
    ns_option_text(o, &b, y, sizeof y);
    return ns_fail(err, "checkpoint was made with %s = %s but this run has %s; resume with the "
                        "checkpoint's settings", o->attr, x, y);
}

static int load_training_state(hid_t f, NsModel *m, NsAdamW *opt, NsBatcher *batches, char *err)
{
    int64_t t;
    if (ns_read_tensors(f, "optim/m", &m->layout, opt->m, err) < 0 ||
        ns_read_tensors(f, "optim/v", &m->layout, opt->v, err) < 0 ||
        ns_h5_read(f, "optim/t", H5T_NATIVE_INT64, &t, 1, err) < 0 ||
        ns_h5_read(f, "rng/dropout", H5T_NATIVE_UINT64, m->dropout_rng.s, 4, err) < 0)
        return -1;
    opt->t = t;
    long n = ns_h5_numel(f, "data/batcher");
    if (n < 0)
        return ns_fail(err, "checkpoint has no data position (data/batcher)");
    int64_t *state = ns_xmalloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    int rc = ns_h5_read(f, "data/batcher", H5T_NATIVE_INT64, state, (size_t)n, err);
    if (rc == 0)
        rc = ns_batcher_set_state(batches, state, (int)n, err);
    free(state);
    return rc;
}

/* Numbers a run never saves: NaN or Inf in a tensor (a damaged file would train to NaN). */
static int check_finite(const char *what, const float *x, size_t n, char *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return ns_fail(err, "%s holds NaN or Inf (element %zu): the file is damaged", what, i);
    return 0;
}

static int check_loaded(const NsModel *m, const NsAdamW *opt, const int64_t *step, char *err)
{
    size_t n = m->layout.total;
    if (check_finite("params", m->params, n, err) < 0 ||
        (opt && (check_finite("optim/m", opt->m, n, err) < 0 ||
                 check_finite("optim/v", opt->v, n, err) < 0)))
        return -1;
    if (opt && opt->t < 0)
        return ns_fail(err, "optim/t = %lld is negative: the file is damaged", (long long)opt->t);
    if (step && (*step < 0 || *step > (int64_t)1 << 48))
        return ns_fail(err, "step = %lld is impossible: the file is damaged", (long long)*step);
    return 0;
}

int ns_checkpoint_load(const char *path, NsModel *m, NsAdamW *opt, NsBatcher *batches,
                       float *params_init, int64_t *step, char *err)
{
    hid_t f = open_checkpoint(path, err);
    if (f < 0)
        return -1;
    int rc = ns_read_tensors(f, "params", &m->layout, m->params, err);
    if (rc == 0)
        rc = ns_read_norm_state(f, "state", m, err);
    if (rc == 0 && step)
        rc = ns_h5_read(f, "step", H5T_NATIVE_INT64, step, 1, err);
    if (rc == 0 && opt && batches)
        rc = load_training_state(f, m, opt, batches, err);
    if (rc == 0 && params_init)
        rc = ns_read_tensors(f, "init", &m->layout, params_init, err);
    if (rc == 0)
        rc = check_loaded(m, opt && batches ? opt : NULL, step, err);
    H5Fclose(f);
    if (rc != 0)
        ns_fail_context(err, "checkpoint '%s'", path);
    return rc;
}
