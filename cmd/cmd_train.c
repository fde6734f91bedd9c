/* normscope train: trains the model of model-spec.md with the probes attached, writing the run
 * log (--out) and checkpoints; --resume continues a run exactly where its checkpoint left it. */
#include <math.h>
#include <stdio.h>

#include "commands.h"
#include "probes.h"
#include "train.h"
#include "util.h"

static const NsCommandSpec SPEC = {
    .name = "train",
    .usage = "[flags]",
    .summary = "Trains the language model of model-spec.md and records the probes into an HDF5 "
               "run log (--out).",
};

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

/* Trains with the probes attached; returns the exit code. */
static int train(NsTrainer *tr, char *err)
{
    NsProbes *probes = ns_probes_attach(tr, err);
    if (!probes)
        return ns_cmd_error(NS_EXIT_ERROR, "%s", err);
    print_run_header(tr);
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
    return NS_EXIT_OK;
}

int ns_cmd_train(int argc, char **argv)
{
    char err[NS_ERRLEN] = "";
    NsRunConfig cfg;
    NsCheckpointHeader ckpt;
    int code;
    ns_run_config_default(&cfg);
    if (ns_cmd_parse_run(&SPEC, NS_CMD_TRAIN, argc, argv, &cfg, &ckpt, &code)) {
        NsTrainer tr;
        if (ns_trainer_init_resume(&tr, &cfg, cfg.resume_path[0] ? &ckpt : NULL, err) < 0)
            code = ns_cmd_error(NS_EXIT_ERROR, "%s", err);
        else
            code = train(&tr, err);
        ns_trainer_free(&tr);
    }
    ns_checkpoint_header_free(&ckpt);
    return code;
}
