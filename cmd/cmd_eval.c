/* normscope eval: loss and perplexity of a checkpoint on a text — the run's own validation text,
 * or any --corpus tokenized with the checkpoint's vocabulary — normalized with the running
 * statistics (inference, as every validation pass) or with each batch's own statistics
 * (--norm-stats batch: as a training step normalizes, without its update). */
#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "eval_stats.h"
#include "train.h"
#include "util.h"

/* eval's flags: a few settings of the run it evaluates, and its own. */
typedef struct {
    NsRunConfig run;
    char norm_stats[NS_OPT_STR_LEN];
    int stored_paths; /* --stored-paths: read the texts at the paths the checkpoint names */
} EvalFlags;

#define EVAL_ROW(flag_, kind_, field_, metavar_, help_, shown_)                                   \
    {.flag = flag_, .kind = NS_OPT_##kind_, .offset = offsetof(EvalFlags, field_),             \
     .metavar = metavar_, .help = help_, .shown = shown_}

static const NsOption EVAL_OPTIONS[] = {
    EVAL_ROW("--checkpoint", PATH, run.checkpoint_path, "CKPT",
             "the checkpoint to evaluate (a .ckpt.h5 written by normscope train)", "required"),
    EVAL_ROW("--corpus", PATH, run.corpus_path, "PATH",
             "text to evaluate, one sentence per line (empty lines skipped),\ntokenized with "
             "the checkpoint's vocabulary (words it lacks count\nas <unk>)",
             "the run's validation text"),
    EVAL_ROW("--stored-paths", SWITCH, stored_paths, NULL,
             "without --corpus: read the run's texts at the paths the checkpoint\nstores "
             "(a checkpoint from elsewhere can name any file, so eval\nopens them only when "
             "asked)", NULL),
    EVAL_ROW("--max-corpus-bytes", LONG, run.max_corpus_bytes, "N",
             "largest text file read, in bytes (1073741824 = 1 GiB)", NULL),
    EVAL_ROW("--corpus-any-file", SWITCH, run.corpus_any_file, NULL,
             "read a text that is not a regular file (a pipe, a device)", NULL),
    EVAL_ROW("--batching", BATCHING, run.batching, "MODE",
             "sentences (one padded line per row) | stream (contiguous chunks)",
             "the run's"),
    EVAL_ROW("--eval-batches", INT, run.eval_batches, "N",
             "cap on evaluation batches (0 = the whole text)", NULL),
    EVAL_ROW("--norm-stats", STR, norm_stats, "WHICH",
             "running: inference with the running statistics, as validation\npasses do | "
             "batch: each batch normalized with its own statistics,\nas a training step does "
             "(dropout off, no update). They differ only\nfor schemes with running statistics "
             "(batch, batch-regularized, batch-official,\npower, power-official)", NULL),
    EVAL_ROW("--threads", INT, run.threads, "N",
             "BLAS threads; 0: 1 for small models (under 8 GFLOP a training\nstep), else the "
             "number of cores", NULL),
};

static const NsCommandSpec SPEC = {
    .name = "eval",
    .usage = "--checkpoint CKPT [flags]",
    .summary = "Loss and perplexity of a checkpoint on a text (--corpus; default: the run's own "
               "validation text, rebuilt as\nthe run built it), batched as the run was unless "
               "--batching is given. The model, vocabulary and\ntokenizer are the checkpoint's.",
    .options = EVAL_OPTIONS,
    .n_options = sizeof EVAL_OPTIONS / sizeof EVAL_OPTIONS[0],
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
    NsTextLimits lim = {h->cfg.max_corpus_bytes, h->cfg.corpus_any_file};
    return ns_load_corpus_file(corpus_path, &lim, &ds->vocab, h->cfg.tokenizer, other, err);
}

/* A checkpoint names the files its run read; one made by someone else can name any local file,
 * so without --corpus they are read only when the user asks (--stored-paths). */
static int check_stored_paths(const NsCheckpointHeader *h, const char *ckpt, int allowed,
                              char *err)
{
    const char *path = h->cfg.corpus_path[0] ? h->cfg.corpus_path : h->cfg.valid_path;
    if (allowed || !path[0])
        return 0;
    return ns_fail(err, "checkpoint '%s' names its texts by path ('%s'); give --corpus PATH, "
                        "or --stored-paths to read the paths it stores", ckpt, path);
}

/* In eval's own terms: the checkpoint fixes the batch, so the text has to be long enough. */
static int check_text_length(const NsCorpus *c, const NsRunConfig *cfg, char *err)
{
    size_t need = (size_t)cfg->model.batch_size * ((size_t)cfg->model.seq_len + 1);
    if (cfg->batching != NS_BATCH_STREAM || c->n_ids >= need)
        return 0;
    return ns_fail(err, "the text has %zu tokens, fewer than one batch of the checkpoint's "
                        "%d x %d = %zu; give a longer text or --batching sentences", c->n_ids,
                   cfg->model.batch_size, cfg->model.seq_len + 1, need);
}

/* The mean loss over corpus c with the statistics `batch_stats` says. */
static double loss_over(NsModel *m, const NsCorpus *c, const NsRunConfig *cfg, int batch_stats,
                        char *err)
{
    if (!batch_stats)
        return ns_evaluate_corpus(m, c, cfg->batching, cfg->eval_batches, cfg->seed, err);
    NsModelScratch scratch;
    ns_model_scratch_init(&scratch, m);
    double loss = ns_evaluate_corpus_batch_stats(m, c, cfg->batching, cfg->eval_batches,
                                                 cfg->seed, &scratch, err);
    ns_model_scratch_free(&scratch);
    return loss;
}

/* Evaluates the model of the checkpoint whose header h holds the configuration to evaluate with. */
static int evaluate(const char *ckpt, const NsCheckpointHeader *h, const char *corpus_path,
                    int batch_stats, char *err)
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
    if (rc == 0)
        rc = check_text_length(c, cfg, err);
    if (rc == 0) {
        loss = loss_over(&m, c, cfg, batch_stats, err);
        rc = isnan(loss) ? -1 : 0;
    }
    if (rc < 0 && corpus_path[0] && !strstr(err, corpus_path))
        ns_fail_context(err, "text '%s'", corpus_path);
    if (rc == 0)
        printf("corpus %s\ntokens %zu (unk rate %.4f)\nnorm-stats %s\nloss %.6f\n"
               "perplexity %.4f\n", corpus_path[0] ? corpus_path : "(validation text of the run)",
               c->n_ids, ns_corpus_unk_rate(c),
               batch_stats ? "batch (each batch's own statistics)" : "running (inference)", loss,
               exp(loss));
    if (m.params)
        ns_model_free(&m);
    ns_corpus_free(&other);
    ns_dataset_free(&ds);
    return rc;
}

int ns_cmd_eval(int argc, char **argv)
{
    char err[NS_ERRLEN] = "";
    EvalFlags flags;
    ns_run_config_default(&flags.run);
    snprintf(flags.norm_stats, sizeof flags.norm_stats, "running");
    flags.stored_paths = 0;
    NsParse p = {0};
    int code;
    if (!ns_cmd_parse(&SPEC, &flags, argc, argv, &p, &code))
        return code;
    if (!flags.run.checkpoint_path[0])
        return ns_cmd_error(NS_EXIT_USAGE, "eval needs --checkpoint PATH (a .ckpt.h5 written by "
                                           "normscope train)");
    int batch_stats = strcmp(flags.norm_stats, "batch") == 0;
    if (!batch_stats && strcmp(flags.norm_stats, "running") != 0)
        return ns_cmd_error(NS_EXIT_USAGE, "--norm-stats: unknown value '%s' (choose running | "
                                           "batch)", flags.norm_stats);
    if (flags.run.max_corpus_bytes <= 0)
        return ns_cmd_error(NS_EXIT_USAGE, "--max-corpus-bytes must be a positive number of "
                            "bytes (got %ld)", flags.run.max_corpus_bytes);
    if (flags.run.threads < 0)
        return ns_cmd_error(NS_EXIT_USAGE, "--threads must be a positive integer, or 0 for the "
                            "model size's default (got %d)", flags.run.threads);
    NsCheckpointHeader h;
    ns_run_config_default(&h.cfg);
    int rc = ns_checkpoint_read_header(flags.run.checkpoint_path, &h, err);
    if (rc == 0)
        rc = check_stored_paths(&h, flags.run.checkpoint_path,
                                flags.stored_paths || flags.run.corpus_path[0], err);
    if (rc == 0) {
        h.cfg.max_corpus_bytes = flags.run.max_corpus_bytes;
        h.cfg.corpus_any_file = flags.run.corpus_any_file;
        /* The run's configuration, evaluated the way it was trained unless --batching says
         * otherwise; batches and threads are this command's own. */
        if (ns_parse_given(&p, "--batching"))
            h.cfg.batching = flags.run.batching;
        h.cfg.eval_batches = flags.run.eval_batches;
        h.cfg.threads = flags.run.threads;
        ns_run_config_resolve_threads(&h.cfg); /* 0: from the checkpoint's model size */
        rc = evaluate(flags.run.checkpoint_path, &h, flags.run.corpus_path, batch_stats, err);
    }
    ns_checkpoint_header_free(&h);
    return rc < 0 ? ns_cmd_error(NS_EXIT_ERROR, "%s", err) : NS_EXIT_OK;
}
