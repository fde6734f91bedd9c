/* The engine's subcommands: train, eval, debug-step. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "options.h"
#include "commands.h"
#include "debug_state.h"
#include "probes.h"
#include "train.h"
#include "util.h"

#define TRAIN_FLAGS (NS_FLAGS_MODEL | NS_FLAGS_OPTIM | NS_FLAGS_DATA | NS_FLAGS_SCHEDULE | \
                     NS_FLAGS_OUTPUT | NS_FLAGS_PROBES)

static int fail(const char *msg, int code)
{
    fprintf(stderr, "normscope: %s\n", msg);
    return code;
}

static int validate_all(const NsRunConfig *cfg, char *err)
{
    if (ns_model_config_validate(&cfg->model, err) < 0 ||
        ns_optim_config_validate(&cfg->optim, err) < 0 || ns_run_config_validate(cfg, err) < 0)
        return -1;
    return 0;
}

/* Parses flags for a command; on --resume the checkpoint's configuration is the base that the
 * given flags override. Returns 0 to go on, or an exit code + 1000 to stop with. */
static int parse_run_flags(int argc, char **argv, unsigned groups, const char *command,
                           const char *summary, NsRunConfig *cfg, char *err)
{
    const char *resume = (groups & NS_FLAGS_OUTPUT) ? ns_cli_find(argc, argv, "--resume") : NULL;
    if (resume) {
        char **vocab;
        int n;
        if (ns_checkpoint_read_header(resume, cfg, &vocab, &n, err) < 0)
            return 1000 + fail(err, NS_EXIT_ERROR);
        ns_checkpoint_free_vocab(vocab, n);
        cfg->checkpoint_path[0] = '\0';
    }
    int rc = ns_cli_parse(argc, argv, groups, command, cfg, err);
    if (rc == 1) {
        ns_cli_print_help(command, summary, groups);
        return 1000 + NS_EXIT_OK;
    }
    if (rc < 0 || validate_all(cfg, err) < 0)
        return 1000 + fail(err, NS_EXIT_USAGE);
    return 0;
}

static void print_run_header(const NsTrainer *tr)
{
    const NsRunConfig *c = &tr->cfg;
    fprintf(stderr, "normscope train: norm=%s position=%s L=%d d=%d H=%d F=%d T=%d B=%d V=%d "
                    "params=%zu\n  data: %s (%s, %s batching), %zu training tokens, unigram "
                    "entropy %.3f nats\n  lr %g warmup %d clip %g dropout %g seed %llu threads %d"
                    " steps %ld%s\n  log: %s  checkpoint: %s\n",
            ns_norm_name(c->model.norm), ns_position_name(c->model.norm_position),
            c->model.n_layers, c->model.d_model, c->model.n_heads, c->model.d_ff,
            c->model.seq_len, c->model.batch_size, c->model.vocab_size, tr->model.layout.total,
            tr->data.source, ns_tokenizer_name(c->tokenizer), ns_batching_name(c->batching),
            tr->data.train.n_ids, tr->data.unigram_entropy, (double)c->optim.lr,
            c->optim.warmup, (double)c->optim.clip, (double)c->model.dropout,
            (unsigned long long)c->seed, c->threads, c->steps,
            c->resume_path[0] ? " (resumed)" : "", c->out_path, c->checkpoint_path);
}

int ns_cmd_train(int argc, char **argv)
{
    char err[NS_ERRLEN] = "";
    NsRunConfig cfg;
    ns_run_config_default(&cfg);
    int stop = parse_run_flags(argc, argv, TRAIN_FLAGS, "train",
                               "Trains the language model of model-spec.md and records the probes "
                               "into an HDF5 run log (--out).", &cfg, err);
    if (stop)
        return stop - 1000;
    NsTrainer tr;
    if (ns_trainer_init(&tr, &cfg, err) < 0) {
        ns_trainer_free(&tr);
        return fail(err, NS_EXIT_ERROR);
    }
    NsProbes *probes = ns_probes_attach(&tr, err);
    if (!probes) {
        ns_trainer_free(&tr);
        return fail(err, NS_EXIT_ERROR);
    }
    print_run_header(&tr);
    ns_install_stop_handlers();
    int code = ns_trainer_run(&tr, err);
    char close_err[NS_ERRLEN] = "";
    if (ns_probes_close(probes, close_err) < 0 && code == NS_EXIT_OK) {
        snprintf(err, NS_ERRLEN, "%s", close_err);
        code = NS_EXIT_ERROR;
    }
    if (code == NS_EXIT_OK)
        printf("done: %lld steps, final validation loss %.4f (perplexity %.2f); log %s, "
               "checkpoint %s\n", (long long)tr.step, tr.last_eval_loss, exp(tr.last_eval_loss),
               tr.cfg.out_path, tr.cfg.checkpoint_path);
    else
        fail(err, code);
    ns_trainer_free(&tr);
    return code;
}

/* The text to evaluate on: --corpus tokenized with the checkpoint's vocabulary (the training
 * text is not needed), or the run's own validation text (rebuilt as the run built it). */
static int eval_text(const NsRunConfig *cfg, const char *corpus_path, char **vocab_list,
                     int vocab_n, NsDataset *ds, NsCorpus *other, char *err)
{
    memset(ds, 0, sizeof *ds);
    if (!corpus_path[0]) {
        NsDataSpec spec = ns_run_config_data_spec(cfg);
        return ns_dataset_load(ds, &spec, vocab_list, vocab_n, err);
    }
    if (ns_vocab_from_list(&ds->vocab, vocab_list, vocab_n, err) < 0)
        return -1;
    return ns_load_corpus_file(corpus_path, &ds->vocab, cfg->tokenizer, other, err);
}

static int eval_checkpoint(const char *ckpt, const char *corpus_path, const NsRunConfig *flags,
                           int batching_given, char *err)
{
    NsRunConfig cfg;
    ns_run_config_default(&cfg);
    char **vocab_list;
    int vocab_n;
    if (ns_checkpoint_read_header(ckpt, &cfg, &vocab_list, &vocab_n, err) < 0)
        return -1;
    if (batching_given) /* else evaluate the way the run was trained */
        cfg.batching = flags->batching;
    cfg.eval_batches = flags->eval_batches;
    cfg.threads = flags->threads;
    NsDataset ds;
    NsCorpus other = {0};
    int rc = eval_text(&cfg, corpus_path, vocab_list, vocab_n, &ds, &other, err);
    ns_checkpoint_free_vocab(vocab_list, vocab_n);
    NsModel m = {0};
    double loss = NAN;
    if (rc == 0) {
        openblas_set_num_threads(cfg.threads);
        ns_model_init(&m, &cfg.model, cfg.seed);
        rc = ns_checkpoint_load(ckpt, &m, NULL, NULL, NULL, NULL, err);
    }
    const NsCorpus *c = corpus_path[0] ? &other : &ds.valid;
    if (rc == 0) {
        loss = ns_evaluate_corpus(&m, c, cfg.batching, cfg.eval_batches, cfg.seed, err);
        rc = isnan(loss) ? -1 : 0;
        if (rc < 0 && corpus_path[0])
            ns_fail_context(err, "text '%s'", corpus_path);
    }
    if (rc == 0)
        printf("corpus %s\ntokens %zu (unk rate %.4f)\nloss %.6f\nperplexity %.4f\n",
               corpus_path[0] ? corpus_path : "(validation text of the run)", c->n_ids,
               ns_corpus_unk_rate(c), loss, exp(loss));
    if (m.params)
        ns_model_free(&m);
    ns_corpus_free(&other);
    ns_dataset_free(&ds);
    return rc;
}

int ns_cmd_eval(int argc, char **argv)
{
    char err[NS_ERRLEN] = "";
    NsRunConfig flags;
    ns_run_config_default(&flags);
    int rc = ns_cli_parse(argc, argv, NS_FLAGS_EVAL, "eval", &flags, err);
    if (rc == 1) {
        ns_cli_print_help("eval", "Loss and perplexity of a checkpoint (--checkpoint) on a corpus "
                                  "(--corpus; default: the run's own validation text), batched "
                                  "as the run was unless --batching is given.",
                          NS_FLAGS_EVAL);
        return NS_EXIT_OK;
    }
    if (rc < 0)
        return fail(err, NS_EXIT_USAGE);
    if (!flags.checkpoint_path[0])
        return fail("eval needs --checkpoint PATH (a .ckpt.h5 written by normscope train)",
                    NS_EXIT_USAGE);
    int batching_given = ns_cli_find(argc, argv, "--batching") != NULL;
    if (eval_checkpoint(flags.checkpoint_path, flags.corpus_path, &flags, batching_given, err) < 0)
        return fail(err, NS_EXIT_ERROR);
    return NS_EXIT_OK;
}

static int record_debug_steps(const NsRunConfig *cfg, char *err)
{
    NsDataset ds;
    NsDataSpec spec = ns_run_config_data_spec(cfg);
    if (ns_dataset_load(&ds, &spec, NULL, 0, err) < 0) {
        ns_dataset_free(&ds);
        return -1;
    }
    NsModelConfig mc = cfg->model;
    mc.vocab_size = ds.vocab.size;
    mc.dropout = 0.0f; /* debug states are deterministic */
    NsModel m;
    ns_model_init(&m, &mc, cfg->seed);
    NsAdamW opt;
    ns_adamw_init(&opt, &cfg->optim, m.layout.total);
    hid_t f = ns_debug_state_create(cfg->out_path, &mc, &cfg->optim, err);
    int rc = f < 0 ? -1 : 0;
    int32_t *tokens = ns_xcalloc((size_t)mc.batch_size * (mc.seq_len + 1), sizeof(int32_t));
    uint8_t *mask = ns_xcalloc((size_t)mc.batch_size * mc.seq_len, 1);
    for (long k = 0; rc == 0 && k < cfg->steps; k++) {
        double loss;
        ns_batcher_next(&ds.train_batches, tokens, mask);
        rc = ns_debug_state_record_step(f, (int)k, &m, &opt, tokens, mask, &loss, err);
        if (rc == 0)
            printf("step_%ld loss %.6f\n", k, loss);
    }
    if (f >= 0 && H5Fclose(f) < 0 && rc == 0)
        rc = ns_fail(err, "cannot finish writing '%s'", cfg->out_path);
    free(tokens);
    free(mask);
    ns_adamw_free(&opt);
    ns_model_free(&m);
    ns_dataset_free(&ds);
    return rc;
}

int ns_cmd_debug_step(int argc, char **argv)
{
    char err[NS_ERRLEN] = "";
    NsRunConfig cfg;
    ns_run_config_default(&cfg);
    cfg.steps = 3;
    snprintf(cfg.out_path, sizeof cfg.out_path, "debug-state.h5");
    int stop = parse_run_flags(argc, argv,
                               NS_FLAGS_MODEL | NS_FLAGS_OPTIM | NS_FLAGS_DATA | NS_FLAGS_SCHEDULE |
                                   NS_FLAGS_OUTPUT,
                               "debug-step",
                               "Runs --steps training steps (dropout 0, no clipping) and writes "
                               "each as a debug state (docs of debug-state.md) to --out.",
                               &cfg, err);
    if (stop)
        return stop - 1000;
    openblas_set_num_threads(cfg.threads);
    if (record_debug_steps(&cfg, err) < 0)
        return fail(err, NS_EXIT_ERROR);
    printf("wrote %s\n", cfg.out_path);
    return NS_EXIT_OK;
}
