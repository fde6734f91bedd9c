/* normscope eval: loss and perplexity of a checkpoint on a text — the run's own validation text,
 * or any --corpus tokenized with the checkpoint's vocabulary. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "train.h"
#include "util.h"

static const NsCommandSpec SPEC = {
    .name = "eval",
    .usage = "[flags]",
    .summary = "Loss and perplexity of a checkpoint (--checkpoint) on a corpus (--corpus; "
               "default: the run's own validation text), batched as the run was unless "
               "--batching is given.",
    .heading = "evaluation",
};

/* The text to evaluate on: --corpus tokenized with the checkpoint's vocabulary (the training
 * text is not needed), or the run's own validation text (rebuilt as the run built it). */
static int eval_text(const NsCheckpointHeader *h, const char *corpus_path, NsDataset *ds,
                     NsCorpus *other, char *err)
{
    memset(ds, 0, sizeof *ds);
    if (!corpus_path[0]) {
        NsDataSpec spec = ns_run_config_data_spec(&h->cfg);
        return ns_dataset_load(ds, &spec, h->vocab, h->vocab_n, err);
    }
    if (ns_vocab_from_list(&ds->vocab, h->vocab, h->vocab_n, err) < 0)
        return -1;
    return ns_load_corpus_file(corpus_path, &ds->vocab, h->cfg.tokenizer, other, err);
}

/* Evaluates the model of the checkpoint whose header h holds the configuration to evaluate with. */
static int evaluate(const char *ckpt, const NsCheckpointHeader *h, const char *corpus_path,
                    char *err)
{
    const NsRunConfig *cfg = &h->cfg;
    NsDataset ds;
    NsCorpus other = {0};
    NsModel m = {0};
    double loss = NAN;
    int rc = eval_text(h, corpus_path, &ds, &other, err);
    if (rc == 0) {
        openblas_set_num_threads(cfg->threads);
        ns_model_init(&m, &cfg->model, cfg->seed);
        rc = ns_checkpoint_load(ckpt, &m, NULL, NULL, NULL, NULL, err);
    }
    const NsCorpus *c = corpus_path[0] ? &other : &ds.valid;
    if (rc == 0) {
        loss = ns_evaluate_corpus(&m, c, cfg->batching, cfg->eval_batches, cfg->seed, err);
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
    NsOptSet set = {NS_RUN_OPTIONS, NS_N_RUN_OPTIONS, &flags, NS_CMD_EVAL, 0};
    NsParse p = {0};
    int code;
    if (!ns_cmd_parse_sets(&SPEC, &set, 1, argc, argv, &p, &code))
        return code;
    if (!flags.checkpoint_path[0])
        return ns_cmd_error(NS_EXIT_USAGE, "eval needs --checkpoint PATH (a .ckpt.h5 written by "
                                           "normscope train)");
    NsCheckpointHeader h;
    ns_run_config_default(&h.cfg);
    int rc = ns_checkpoint_read_header(flags.checkpoint_path, &h, err);
    if (rc == 0) {
        /* The run's configuration, evaluated the way it was trained unless --batching says
         * otherwise; batches and threads are this command's own. */
        if (ns_parse_given(&p, "--batching"))
            h.cfg.batching = flags.batching;
        h.cfg.eval_batches = flags.eval_batches;
        h.cfg.threads = flags.threads;
        rc = evaluate(flags.checkpoint_path, &h, flags.corpus_path, err);
    }
    ns_checkpoint_header_free(&h);
    return rc < 0 ? ns_cmd_error(NS_EXIT_ERROR, "%s", err) : NS_EXIT_OK;
}
