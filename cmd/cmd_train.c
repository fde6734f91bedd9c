/* normscope train: trains the model of model-spec.md with the probes attached, writing the run
 * log (--out) and checkpoints; --resume continues a run exactly where its checkpoint left it. */
#include <math.h>
#include <stdio.h>

#include "commands.h"
#include "probes.h"
#include "run_binding.h"
#include "train.h"
#include "util.h"

static const NsCommandSpec SPEC = {
    .name = "train",
    .usage = "[flags]",
    .summary = "Trains the language model of docs/model.md and records the probes into an HDF5 "
               "run log (--out).",
};

static void print_run_header(const NsTrainer *tr)
{
    const NsRunConfig *c = &tr->cfg;
    fprintf(stderr, "normscope train: norm=%s position=%s L=%d d=%d H=%d F=%d T=%d B=%d V=%d "
                    "params=%zu\n  data: %s (%s, %s batching), %zu training tokens, unigram "
                    "entropy %.3f nats, <unk> %.2f%% of training and %.2f%% of validation tokens"
                    "\n  lr %g warmup %d clip %g dropout %g seed %llu threads %d"
                    " steps %ld%s\n  log: %s  checkpoint: %s\n",
            ns_norm_name(c->model.norm), ns_position_name(c->model.norm_position),
            c->model.n_layers, c->model.d_model, c->model.n_heads, c->model.d_ff,
            c->model.seq_len, c->model.batch_size, c->model.vocab_size, tr->model.layout.total,
            tr->data.source, ns_tokenizer_name(c->tokenizer), ns_batching_name(c->batching),
            tr->data.train.n_ids, tr->data.unigram_entropy, 100.0 * tr->data.unk_rate_train,
            100.0 * tr->data.unk_rate_valid, (double)c->optim.lr,
            c->optim.warmup, (double)c->optim.clip, (double)c->model.dropout,
            (unsigned long long)c->seed, c->threads, c->steps,
            c->resume_path[0] ? " (resumed)" : "", c->out_path, c->checkpoint_path);
}

/* Above this fraction of <unk> tokens the model learns to predict <unk> for real words, and
 * perplexities stop comparing with other vocabularies: say so before training. */
#define UNK_WARN_RATE 0.05

static void warn_unknown_tokens(const NsTrainer *tr)
{
    double worst = fmax(tr->data.unk_rate_train, tr->data.unk_rate_valid);
    if (worst > UNK_WARN_RATE)
        fprintf(stderr, "normscope: warning: <unk> is %.1f%% of the training and %.1f%% of the "
                        "validation tokens (above %.0f%%): the vocabulary of %d cuts real words; "
                        "raise --vocab-size\n", 100.0 * tr->data.unk_rate_train,
                100.0 * tr->data.unk_rate_valid, 100.0 * UNK_WARN_RATE,
                tr->cfg.model.vocab_size);
}

/* With several ranks: what summing over them cost (scripts/bench_mpi.sh reads this line). */
static void print_rank_costs(const NsTrainer *tr)
{
    const NsComm *c = tr->comm;
    double steps = (double)(tr->step - tr->first_step);
    if (c->size < 2 || steps <= 0)
        return;
    printf("ranks: %d, batch statistics %s; per step: %.6f s summing gradients, %.6f s in all "
           "sums over ranks, %.0f bytes summed\n", c->size, tr->cfg.model.batch_stats,
           tr->model.grad_sum_seconds / steps, c->reduce_seconds / steps,
           (double)c->reduce_bytes / steps);
}

/* Trains with the probes attached; returns the exit code. */
static int train(NsTrainer *tr, char *err)
{
    NsProbes *probes = ns_probes_attach(tr, err);
    if (!probes)
        return ns_cmd_error(NS_EXIT_ERROR, "%s", err);
    print_run_header(tr);
    if (tr->comm->size > 1)
        fprintf(stderr, "  ranks: %d, %d rows each, batch statistics %s\n", tr->comm->size,
                tr->cfg.model.batch_size / tr->comm->size, tr->cfg.model.batch_stats);
    warn_unknown_tokens(tr);
    ns_install_stop_handlers();
    int code = ns_trainer_run(tr, err);
    char close_err[NS_ERRLEN] = "";
    if (ns_probes_close(probes, close_err) < 0 && code == NS_EXIT_OK) {
        snprintf(err, NS_ERRLEN, "%s", close_err);
        code = NS_EXIT_ERROR;
    }
    if (code != NS_EXIT_OK)
        return ns_cmd_error(code, "%s", err);
    printf("done: %lld steps, final validation loss %.4f (perplexity %.2f); log %s, "
           "checkpoint %s\n", (long long)tr->step, tr->last_eval_loss, exp(tr->last_eval_loss),
           tr->cfg.out_path, tr->cfg.checkpoint_path);
    print_rank_costs(tr);
    return NS_EXIT_OK;
}

/* Before anything is written: what the run would replace, and with --resume whether the log
 * and checkpoint paths belong to the run being resumed (run_binding.h). */
static int check_outputs(NsRunConfig *cfg, const NsCheckpointHeader *ckpt, char *err)
{
    if (ns_run_config_check_overwrite(cfg, err) < 0 ||
        ns_check_output_file(cfg->out_path, "run log", "--out", err) < 0 ||
        ns_check_output_file(cfg->checkpoint_path, "checkpoint", "--checkpoint", err) < 0)
        return -1;
    if (ns_same_file(cfg->out_path, cfg->checkpoint_path))
        return ns_fail(err, "--out and --checkpoint name the same file '%s'; give the "
                            "checkpoint another path", cfg->out_path);
    return cfg->resume_path[0] ? ns_resume_check(cfg, ckpt, err) : 0;
}

int ns_cmd_train(int argc, char **argv)
{
    char err[NS_ERRLEN] = "";
    NsRunConfig cfg;
    NsCheckpointHeader ckpt;
    int code;
    ns_run_config_default(&cfg);
    if (ns_cmd_parse_run(&SPEC, NS_CMD_TRAIN, argc, argv, &cfg, &ckpt, &code)) {
        NsTrainer tr = {.lock_out = -1, .lock_checkpoint = -1};
        /* rank 0 alone: the others would find the log rank 0 creates meanwhile */
        if (ns_comm_world()->rank == 0 && check_outputs(&cfg, &ckpt, err) < 0)
            code = ns_cmd_error(NS_EXIT_ERROR, "%s", err);
        else if (ns_trainer_init_resume(&tr, &cfg, cfg.resume_path[0] ? &ckpt : NULL, err) < 0)
            code = ns_cmd_error(NS_EXIT_ERROR, "%s", err);
        else
            code = train(&tr, err);
        ns_trainer_free(&tr);
    }
    ns_checkpoint_header_free(&ckpt);
    return code;
}
