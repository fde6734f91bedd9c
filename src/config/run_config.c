#include "run_config.h"

#include <limits.h>
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
    c->max_corpus_bytes = 1L << 30;
    c->steps = 1000;
    c->seed = 1;
    c->threads = 0; /* auto: ns_run_config_resolve_threads */
    c->eval_every = 200;
    c->eval_batches = 0;
    c->log_every = 50;
    snprintf(c->out_path, sizeof c->out_path, "run.h5");
    c->checkpoint_every = 0;
    c->flush_every = 10;
    snprintf(c->probes, sizeof c->probes, "all");
    c->probe_vectors_every = 100;
    c->lipschitz_every = 2000; /* ~40-60 steps of time per call: 2-3 % of training (README) */
    c->hessian_iters = 10;
    c->hessian_top = 1;
    c->hutchinson_samples = 4;
    c->density_runs = 1;  /* the top-eigenvalue run itself (hessian.h) */
    c->density_steps = 0; /* = hessian_iters */
}

/* The smoothness probe's buffers (probes/hessian_measure.c), counted before anything is
 * allocated like the model's: a Lanczos basis of max(--hessian-iters, --density-steps)
 * parameter vectors and four more, debug-step's kept Hutchinson vectors, the density's runs x
 * steps nodes and weights, and two scratch models. */
static int check_probe_memory(const NsRunConfig *c, char *err)
{
    if (c->lipschitz_every == 0 && !c->lipschitz)
        return 0;
    int steps = c->density_steps > c->hessian_iters ? c->density_steps : c->hessian_iters;
    double cells = (double)c->density_runs * (c->density_steps ? c->density_steps
                                                                : c->hessian_iters);
    if (cells > (double)(INT_MAX / 16))
        return ns_fail(err, "--density-runs %d x --density-steps %d: %.3g density nodes are "
                            "more than a run log row holds; give smaller values",
                       c->density_runs, c->density_steps, cells);
    double vectors = steps + 4.0 + (c->lipschitz ? c->hutchinson_samples : 0);
    double model = ns_model_config_memory(&c->model);
    double need = 4.0 * ns_model_param_count(&c->model) * vectors + 16.0 * cells + 3.0 * model;
    char a[32], b[32];
    if (!ns_exceeds_memory(need, a, b, sizeof a))
        return 0;
    return ns_fail(err, "--hessian-iters %d --density-steps %d --density-runs %d: training with "
                        "the smoothness probe needs about %s of memory, more than this "
                        "machine's %s; give smaller values (or --lipschitz-every 0)",
                   c->hessian_iters, c->density_steps, c->density_runs, a, b);
}

int ns_run_config_validate(const NsRunConfig *c, char *err)
{
    if (c->steps <= 0)
        return ns_fail(err, "--steps must be a positive integer (got %ld)", c->steps);
    if (c->threads < 0)
        return ns_fail(err, "--threads must be a positive integer, or 0 for the size's default "
                            "(got %d)", c->threads);
    if (c->eval_every < 0 || c->eval_batches < 0 || c->log_every <= 0 ||
        c->checkpoint_every < 0 || c->flush_every <= 0)
        return ns_fail(err, "--eval-every, --eval-batches and --checkpoint-every must be >= 0, "
                            "--log-every and --flush-every > 0");
    if (c->probe_vectors_every < 0 || c->lipschitz_every < 0 || c->hessian_iters < 0)
        return ns_fail(err, "--probe-vectors-every, --lipschitz-every and --hessian-iters must "
                            "be >= 0");
    if (c->hessian_top < 1 || c->hessian_top > c->hessian_iters + (c->hessian_iters == 0) ||
        c->hutchinson_samples < 0 || c->density_runs < 0 || c->density_steps < 0)
        return ns_fail(err, "--hessian-top must be in 1..--hessian-iters, --hutchinson-samples, "
                            "--density-runs and --density-steps >= 0");
    if (c->max_corpus_bytes <= 0)
        return ns_fail(err, "--max-corpus-bytes must be a positive number of bytes (got %ld)",
                       c->max_corpus_bytes);
    if (c->new_log && !c->resume_path[0])
        return ns_fail(err, "--new-log goes with --resume CKPT (a new run starts a new log "
                            "anyway); drop it");
    if (c->synth_bytes < 4096)
        return ns_fail(err, "--synth-bytes must be at least 4096 (got %ld)", c->synth_bytes);
    if (!c->out_path[0])
        return ns_fail(err, "--out must name a file");
    return check_probe_memory(c, err);
}

int ns_run_config_validate_all(const NsRunConfig *c, char *err)
{
    if (ns_model_config_validate(&c->model, err) < 0 ||
        ns_optim_config_validate(&c->optim, err) < 0 || ns_run_config_validate(c, err) < 0)
        return -1;
    return 0;
}

double ns_model_step_flops(const NsModelConfig *m)
{
    double d = m->d_model, F = m->d_ff, T = m->seq_len, V = m->vocab_size;
    double per_token = m->n_layers * (8.0 * d * d + 4.0 * d * F + 4.0 * T * d) + 2.0 * d * V;
    return 3.0 * per_token * T * m->batch_size;
}

int ns_threads_for_model(const NsModelConfig *m, int cores)
{
    if (cores < 1)
        cores = 1;
    return ns_model_step_flops(m) < NS_THREADS_MIN_STEP_FLOPS ? 1 : cores;
}

void ns_run_config_resolve_threads(NsRunConfig *c)
{
    if (c->threads != 0)
        return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->threads = ns_threads_for_model(&c->model, cores > 0 ? (int)cores : 1);
}

/* batch-regularized's penalty weights: the scheme's defaults for the position unless given;
 * other schemes have no penalty, so the flags there would be silent no-ops (an error) and the
 * stored weights are 0. */
static int resolve_penalty(NsModelConfig *m, const NsNormScheme *scheme, const NsParse *p,
                           char *err)
{
    static const char *const flags[2] = {"--rbn-penalty-mean", "--rbn-penalty-var"};
    float *weights[2] = {&m->rbn_penalty_mean, &m->rbn_penalty_var};
    for (int k = 0; k < 2; k++) {
        int given = ns_parse_given(p, flags[k]);
        if (!scheme->has_penalty && given)
            return ns_fail(err, "%s applies to --norm batch-regularized only (got --norm %s); "
                                "drop the flag", flags[k], scheme->name);
        if (!scheme->has_penalty)
            *weights[k] = 0.0f;
        else if (!given)
            *weights[k] = scheme->penalty_defaults[m->norm_position][k];
    }
    return 0; /* the values themselves: ns_model_config_validate */
}

int ns_run_config_resolve(NsRunConfig *c, const NsParse *p, char *err)
{
    ns_run_config_resolve_threads(c);
    NsModelConfig *m = &c->model;
    const NsNormScheme *scheme = ns_norm_scheme_for(m->norm);
    if (scheme->bn_momentum > 0 && !ns_parse_given(p, "--bn-momentum"))
        m->bn_momentum = scheme->bn_momentum;
    if (c->release_defaults) {
        if (scheme->release_bn_momentum > 0 && !ns_parse_given(p, "--bn-momentum"))
            m->bn_momentum = scheme->release_bn_momentum;
        if (!ns_parse_given(p, "--pn-groups"))
            m->pn_groups = m->n_heads;
        if (!ns_parse_given(p, "--pn-warmup"))
            m->pn_warmup = c->optim.warmup;
    }
    if (resolve_penalty(m, scheme, p, err) < 0)
        return -1;
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

/* One path that a new run would replace: an error unless --overwrite. */
static int refuse_existing(const char *path, const char *what, char *err)
{
    if (access(path, F_OK) != 0)
        return 0;
    return ns_fail(err, "%s '%s' exists; give --overwrite to replace it, or --resume CKPT to "
                        "continue that run", what, path);
}

int ns_run_config_check_overwrite(NsRunConfig *c, char *err)
{
    ns_run_config_finish(c);
    if (c->overwrite || c->resume_path[0])
        return 0;
    if (refuse_existing(c->out_path, "run log", err) < 0 ||
        refuse_existing(c->checkpoint_path, "checkpoint", err) < 0)
        return -1;
    return 0;
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
        .max_bytes = c->max_corpus_bytes,
        .any_file = c->corpus_any_file,
    };
}
