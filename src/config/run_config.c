#include "run_config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "norm.h"
#include "util.h"

void ns_run_config_default(NsRunConfig *c)
{
    memset(c, 0, sizeof *c);
    ns_model_config_default(&c->model);
    ns_optim_config_default(&c->optim);
    c->tokenizer = NS_TOK_WORD;
    c->batching = NS_BATCH_STREAM;
    c->synth_bytes = 2 * 1024 * 1024;
    c->steps = 1000;
    c->seed = 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->threads = cores > 0 ? (int)cores : 1;
    c->eval_every = 200;
    c->eval_batches = 0;
    c->log_every = 50;
    snprintf(c->out_path, sizeof c->out_path, "run.h5");
    c->checkpoint_every = 0;
    c->flush_every = 10;
    snprintf(c->probes, sizeof c->probes, "all");
    c->probe_vectors_every = 100;
    c->lipschitz_every = 250; /* ~15 passes per call: about 6 % of training time */
    c->hessian_iters = 10;
}

int ns_run_config_validate(const NsRunConfig *c, char *err)
{
    if (c->steps <= 0)
        return ns_fail(err, "--steps must be a positive integer (got %ld)", c->steps);
    if (c->threads <= 0)
        return ns_fail(err, "--threads must be a positive integer (got %d)", c->threads);
    if (c->eval_every < 0 || c->eval_batches < 0 || c->log_every <= 0 ||
        c->checkpoint_every < 0 || c->flush_every <= 0)
        return ns_fail(err, "--eval-every, --eval-batches and --checkpoint-every must be >= 0, "
                            "--log-every and --flush-every > 0");
    if (c->probe_vectors_every < 0 || c->lipschitz_every < 0 || c->hessian_iters < 0)
        return ns_fail(err, "--probe-vectors-every, --lipschitz-every and --hessian-iters must "
                            "be >= 0");
    if (c->synth_bytes < 4096)
        return ns_fail(err, "--synth-bytes must be at least 4096 (got %ld)", c->synth_bytes);
    if (!c->out_path[0])
        return ns_fail(err, "--out must name a file");
    return 0;
}

int ns_run_config_validate_all(const NsRunConfig *c, char *err)
{
    if (ns_model_config_validate(&c->model, err) < 0 ||
        ns_optim_config_validate(&c->optim, err) < 0 || ns_run_config_validate(c, err) < 0)
        return -1;
    return 0;
}

int ns_run_config_resolve(NsRunConfig *c, const NsParse *p, char *err)
{
    NsModelConfig *m = &c->model;
    const NsNormScheme *scheme = ns_norm_scheme_for(m->norm);
    if (scheme->bn_momentum > 0 && !ns_parse_given(p, "--bn-momentum"))
        m->bn_momentum = scheme->bn_momentum;
    if (c->release_defaults) {
        if (!ns_parse_given(p, "--pn-groups"))
            m->pn_groups = m->n_heads;
        if (!ns_parse_given(p, "--pn-warmup"))
            m->pn_warmup = c->optim.warmup;
    }
    /* Only batch-official has layer scaling to drop; elsewhere the switch would be a silent
     * no-op and a mislabelled run. */
    if (m->no_layer_scaling && scheme->groups != NS_GROUPS_LAYER)
        return ns_fail(err, "--no-layer-scaling applies to --norm batch-official only (got "
                            "--norm %s); drop the flag", scheme->name);
    return 0;
}

void ns_run_config_finish(NsRunConfig *c)
{
    if (c->checkpoint_path[0])
        return;
    size_t n = strlen(c->out_path);
    int has_ext = n > 3 && strcmp(c->out_path + n - 3, ".h5") == 0;
    snprintf(c->checkpoint_path, sizeof c->checkpoint_path, "%.*s.ckpt.h5",
             (int)(has_ext ? n - 3 : n), c->out_path);
}

const char *ns_tokenizer_name(NsTokenizer t) { return t == NS_TOK_CHAR ? "char" : "word"; }

const char *ns_batching_name(NsBatching b)
{
    return b == NS_BATCH_STREAM ? "stream" : "sentences";
}

int ns_tokenizer_from_name(const char *name, NsTokenizer *t)
{
    if (strcmp(name, "word") && strcmp(name, "char"))
        return -1;
    *t = name[0] == 'c' ? NS_TOK_CHAR : NS_TOK_WORD;
    return 0;
}

int ns_batching_from_name(const char *name, NsBatching *b)
{
    if (strcmp(name, "stream") && strcmp(name, "sentences"))
        return -1;
    *b = name[1] == 't' ? NS_BATCH_STREAM : NS_BATCH_SENTENCES;
    return 0;
}

NsDataSpec ns_run_config_data_spec(const NsRunConfig *c)
{
    return (NsDataSpec){
        .corpus_path = c->corpus_path,
        .valid_path = c->valid_path,
        .tokenizer = c->tokenizer,
        .batching = c->batching,
        .synth_bytes = c->synth_bytes,
        .seed = c->seed,
        .vocab_cap = c->model.vocab_size,
        .batch_size = c->model.batch_size,
        .seq_len = c->model.seq_len,
        .max_tokens = c->max_tokens,
    };
}
