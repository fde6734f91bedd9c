/* NS_RUN_OPTIONS: every setting of a run, once. A row with a flag is parsed and listed by --help
 * for the commands named in its `commands`; a row with an attribute is written to and read from
 * every run log, checkpoint and (model and optimizer rows) debug state under that name, and shown
 * in the notebook's configuration cell; NS_OPT_SHAPE rows must match for a checkpoint to be
 * resumed. Rows are in --help order; rows without a flag sit where they read best in the
 * notebook. Attribute names and value formats are those of debug-state.md and of every log
 * written so far: do not rename them. */
#include <stddef.h>

#include "run_config.h"

#define TDS (NS_CMD_TRAIN | NS_CMD_DEBUG_STEP | NS_CMD_STUDY)
#define FIXED (NS_OPT_SHAPE | NS_OPT_REQUIRED)

/* flag, attribute, kind, field, section, commands, traits, help */
#define RUN(flag_, attr_, kind_, field_, section_, commands_, traits_, help_)                     \
    {.flag = flag_, .attr = attr_, .kind = NS_OPT_##kind_,                                     \
     .offset = offsetof(NsRunConfig, field_), .section = NS_SEC_##section_,                    \
     .commands = commands_, .traits = traits_, .help = help_}
/* A path whose empty value is stored as the text `empty_`. */
#define RUN_PATH(flag_, attr_, field_, commands_, help_, empty_)                                 \
    {.flag = flag_, .attr = attr_, .kind = NS_OPT_PATH, .offset = offsetof(NsRunConfig, field_), \
     .section = NS_SEC_DATA, .commands = commands_, .help = help_, .stored = empty_}
/* An attribute with a fixed value and no field. */
#define CONST(attr_, kind_, section_, value_)                                                    \
    {.attr = attr_, .kind = NS_OPT_##kind_, .section = NS_SEC_##section_, .help = "",            \
     .stored = value_}

const NsOption NS_RUN_OPTIONS[] = {
    /* --norm's help is the list of schemes, from the schemes themselves (options.c). */
    RUN("--norm", "norm", NORM, model.norm, MODEL, NS_CMD_TRAIN | NS_CMD_DEBUG_STEP, FIXED, NULL),
    RUN("--norm-position", "norm_position", POSITION, model.norm_position, MODEL, TDS, FIXED,
        "post | pre"),
    RUN("--layers", "n_layers", INT, model.n_layers, MODEL, TDS, FIXED,
        "number of Transformer layers L"),
    RUN("--d-model", "d_model", INT, model.d_model, MODEL, TDS, FIXED, "model width d"),
    RUN("--heads", "n_heads", INT, model.n_heads, MODEL, TDS, FIXED,
        "attention heads H (divides d)"),
    RUN("--d-ff", "d_ff", INT, model.d_ff, MODEL, TDS, FIXED, "feed-forward width F"),
    RUN("--seq-len", "seq_len", INT, model.seq_len, MODEL, TDS, FIXED, "positions per row T"),
    RUN("--batch-size", "batch_size", INT, model.batch_size, MODEL, TDS, FIXED,
        "rows per batch B"),
    RUN("--vocab-size", "vocab_size", INT, model.vocab_size, MODEL, TDS, FIXED,
        "vocabulary cap (rarer tokens become <unk>)"),
    CONST("tie_embeddings", CONST_INT, MODEL, "1"),
    RUN("--dropout", "dropout", FLOAT, model.dropout, MODEL, TDS, 0, "dropout probability"),
    /* with several ranks (mpirun; docs/distributed.md) */
    RUN("--batch-stats", "batch_stats", STR, model.batch_stats, MODEL, TDS, 0,
        "global (batch statistics over all ranks' rows) | local (each rank's own)"),
    RUN("--pn-alpha", "pn_alpha", FLOAT, model.pn_alpha, MODEL, TDS, NS_OPT_SHAPE,
        "PN running-average factor alpha in (0,1)"),
    RUN("--pn-warmup", "pn_warmup", INT, model.pn_warmup, MODEL, TDS, NS_OPT_SHAPE,
        "PN warm-up iterations using batch statistics"),
    RUN("--pn-groups", "pn_groups", INT, model.pn_groups, MODEL, TDS, NS_OPT_SHAPE,
        "PN group scaling groups (0 = off; divides d)"),
    /* Its default is the scheme's (NsNormScheme.bn_momentum), set by ns_run_config_resolve. */
    {.flag = "--bn-momentum", .attr = "bn_momentum", .kind = NS_OPT_FLOAT,
     .offset = offsetof(NsRunConfig, model.bn_momentum), .section = NS_SEC_MODEL,
     .commands = TDS, .help = "batch norm running-statistics momentum",
     .shown = "the scheme's: batch 0.1,\nbatch-regularized 0.1, batch-official 0.05 (the release's)"},
    /* Defaults by position (NsNormScheme.penalty_defaults), set by ns_run_config_resolve. Not
     * study's: its flags reach every scheme's run, where other schemes refuse them. */
    {.flag = "--rbn-penalty-mean", .attr = "rbn_penalty_mean", .kind = NS_OPT_FLOAT,
     .offset = offsetof(NsRunConfig, model.rbn_penalty_mean), .section = NS_SEC_MODEL,
     .commands = NS_CMD_TRAIN | NS_CMD_DEBUG_STEP, .help = "batch-regularized: weight lm of the penalty on (running_mean -\n"
     "mu_B)^2 (an error for other schemes)",
     .shown = "the release's IWSLT14:\npost 60, pre 0.1"},
    {.flag = "--rbn-penalty-var", .attr = "rbn_penalty_var", .kind = NS_OPT_FLOAT,
     .offset = offsetof(NsRunConfig, model.rbn_penalty_var), .section = NS_SEC_MODEL,
     .commands = NS_CMD_TRAIN | NS_CMD_DEBUG_STEP, .help = "batch-regularized: weight lv of the penalty on |running_var -\n"
     "var_B| (an error for other schemes)",
     .shown = "the release's IWSLT14:\npost 0, pre 0.01"},
    RUN("--no-layer-scaling", "no_layer_scaling", SWITCH, model.no_layer_scaling, MODEL,
        NS_CMD_TRAIN | NS_CMD_DEBUG_STEP, NS_OPT_SHAPE,
        "batch-official without the release's layer scaling (an ablation;\nan error for other "
        "schemes)"),
    RUN("--release-defaults", "release_defaults", SWITCH, release_defaults, MODEL, TDS, 0,
        "what the authors' release does: --pn-groups = --heads, --pn-warmup =\n--warmup, "
        "--bn-momentum 0.05 for batch-official and\nbatch-regularized; explicit flags win"),
    RUN(NULL, "eps", FLOAT, model.eps, MODEL, 0, NS_OPT_SHAPE, ""),

    RUN("--lr", "lr", FLOAT, optim.lr, OPTIM, TDS, 0, "peak learning rate"),
    RUN("--warmup", "warmup", INT, optim.warmup, OPTIM, TDS, 0,
        "learning-rate warm-up steps (then inverse square root)"),
    RUN("--weight-decay", "weight_decay", FLOAT, optim.weight_decay, OPTIM, TDS, 0,
        "decoupled AdamW weight decay"),
    RUN(NULL, "adam_beta1", FLOAT, optim.adam_beta1, OPTIM, 0, 0, ""),
    RUN(NULL, "adam_beta2", FLOAT, optim.adam_beta2, OPTIM, 0, 0, ""),
    RUN(NULL, "adam_eps", FLOAT, optim.adam_eps, OPTIM, 0, 0, ""),
    RUN("--clip", "clip", FLOAT, optim.clip, OPTIM, TDS, 0, "global gradient-norm clip (0 = off)"),

    /* eval has rows of its own for the few run settings it takes (cmd_eval.c) */
    RUN_PATH("--corpus", "corpus", corpus_path, TDS,
             "training text, one sentence per line; empty and blank lines are\nskipped, "
             "a line longer than --seq-len continues on the next rows\nwith sentences "
             "batching (default: embedded synthetic corpus)",
             "(embedded)"),
    RUN_PATH("--valid", "valid", valid_path, TDS,
             "validation text (default: last 5% of --corpus lines)", "(held out)"),
    RUN("--tokenizer", "tokenizer", TOKENIZER, tokenizer, DATA, TDS, 0, "word | char"),
    RUN("--batching", "batching", BATCHING, batching, DATA, TDS, 0,
        "sentences (one padded line per row) | stream (contiguous chunks)"),
    RUN("--max-tokens", "max_tokens", INT, max_tokens, DATA, TDS, 0,
        "sentences: rows of similar length per batch, rows x longest <= N, at most "
        "--batch-size rows (0 = off)"),
    RUN("--synth-bytes", "synth_bytes", LONG, synth_bytes, DATA, TDS, 0,
        "size of the embedded corpus in bytes"),
    /* a corpus is read whole: bounded, so a device, a pipe or a huge file is one line */
    RUN("--max-corpus-bytes", NULL, LONG, max_corpus_bytes, DATA, TDS, 0,
        "largest --corpus or --valid file read, in bytes (1073741824 = 1 GiB)"),
    RUN("--corpus-any-file", NULL, SWITCH, corpus_any_file, DATA, TDS, 0,
        "read --corpus and --valid even when they are not regular files\n(a pipe, a device), "
        "still within --max-corpus-bytes"),

    RUN("--steps", "steps", LONG, steps, SCHEDULE, TDS, 0, "training steps"),
    RUN("--seed", "seed", U64, seed, SCHEDULE, TDS, 0,
        "seed for initialisation, data order, dropout"),
    RUN("--threads", "threads", INT, threads, SCHEDULE, TDS, 0,
        "BLAS threads; 0: 1 for small models (under 8 GFLOP a training\nstep: one thread is "
        "faster there), else the number of cores"),
    RUN("--eval-every", "eval_every", INT, eval_every, SCHEDULE, TDS, 0,
        "steps between validation passes (0 = end only)"),
    RUN("--eval-batches", "eval_batches", INT, eval_batches, SCHEDULE, TDS, 0,
        "cap on validation batches (0 = whole set)"),
    RUN("--log-every", NULL, INT, log_every, SCHEDULE, TDS, 0,
        "steps between log lines when not on a terminal"),

    /* study names each run's log and checkpoint itself (cmd_study.c) */
    RUN("--out", NULL, PATH, out_path, OUTPUT, NS_CMD_TRAIN | NS_CMD_DEBUG_STEP, 0,
        "output HDF5 file"),
    /* debug-step writes no checkpoint and resumes nothing: these two are unknown to it */
    RUN("--checkpoint", NULL, PATH, checkpoint_path, OUTPUT, NS_CMD_TRAIN, 0,
        "checkpoint file (default: OUT with .ckpt.h5)"),
    RUN("--checkpoint-every", NULL, INT, checkpoint_every, OUTPUT, TDS, 0,
        "steps between checkpoints (0 = at the end and on SIGINT/SIGTERM)"),
    RUN("--resume", NULL, PATH, resume_path, OUTPUT, NS_CMD_TRAIN, 0,
        "continue from this checkpoint, appending to --out (which must be\nthat run's log)"),
    RUN("--new-log", NULL, SWITCH, new_log, OUTPUT, NS_CMD_TRAIN, 0,
        "with --resume and no --out file: start a new log at the checkpoint's\nstep (without "
        "it a missing log is an error)"),
    RUN("--overwrite", NULL, SWITCH, overwrite, OUTPUT, NS_CMD_TRAIN | NS_CMD_DEBUG_STEP, 0,
        "replace an existing --out (and train's checkpoint); without it an\nexisting file "
        "is refused (by train unless --resume)"),
    RUN("--flush-every", "flush_every", INT, flush_every, OUTPUT, TDS, 0,
        "steps between flushes of the HDF5 log"),

    RUN("--probes", "probes", STR, probes, PROBES, NS_CMD_TRAIN | NS_CMD_STUDY, 0,
        "comma list of probes, 'all' or 'none'"),
    RUN("--probe-vectors-every", "probe_vectors_every", INT, probe_vectors_every, PROBES,
        NS_CMD_TRAIN | NS_CMD_STUDY, 0, "record full statistic vectors every N steps (0 = never)"),
    RUN("--lipschitz-every", "lipschitz_every", INT, lipschitz_every, PROBES,
        NS_CMD_TRAIN | NS_CMD_STUDY, 0,
        "loss-smoothness probes every N steps, and once at the last step of a shorter run "
        "(0 = off)"),
    RUN("--hessian-iters", "hessian_iters", INT, hessian_iters, PROBES, TDS, 0,
        "Lanczos steps for the Hessian's top eigenvalues (0 = none)"),
    RUN("--hessian-top", "hessian_top", INT, hessian_top, PROBES, NS_CMD_TRAIN | NS_CMD_STUDY, 0,
        "top eigenvalues recorded (largest magnitude, at most --hessian-iters)"),
    RUN("--hutchinson-samples", "hutchinson_samples", INT, hutchinson_samples, PROBES, TDS, 0,
        "Rademacher vectors of the Hutchinson trace estimate (0 = off)"),
    RUN("--density-runs", "density_runs", INT, density_runs, PROBES,
        NS_CMD_TRAIN | NS_CMD_STUDY, 0, "stochastic Lanczos quadrature runs of the eigenvalue "
        "density\n(0 = off; run 1 is the top-eigenvalue run when the steps agree)"),
    RUN("--density-steps", "density_steps", INT, density_steps, PROBES,
        NS_CMD_TRAIN | NS_CMD_STUDY, 0,
        "Lanczos steps of each density run (0 = --hessian-iters)"),
    RUN("--lipschitz", NULL, SWITCH, lipschitz, PROBES, NS_CMD_DEBUG_STEP, 0,
        "also write each step's curvature group lipschitz/ (docs/debug-state.md)"),

    /* figures of plot and study (analysis/plot.h); not stored in run logs */
    {.flag = "--format", .kind = NS_OPT_TEXT, .offset = offsetof(NsRunConfig, fig_format),
     .section = NS_SEC_OUTPUT, .commands = NS_CMD_PLOT | NS_CMD_STUDY, .metavar = "LIST",
     .help = "figure image formats, a comma list of png, svg, pdf (gnuplot's\npngcairo, svg, "
             "pdfcairo)", .shown = "png,svg"},
    {.flag = "--size", .kind = NS_OPT_TEXT, .offset = offsetof(NsRunConfig, fig_size),
     .section = NS_SEC_OUTPUT, .commands = NS_CMD_PLOT | NS_CMD_STUDY, .metavar = "WxH",
     .help = "figure size in pixels (PDF: 72 pixels per inch)", .shown = "1200x800"},
    {.flag = "--font", .kind = NS_OPT_TEXT, .offset = offsetof(NsRunConfig, fig_font),
     .section = NS_SEC_OUTPUT, .commands = NS_CMD_PLOT | NS_CMD_STUDY, .metavar = "NAME,PT",
     .help = "figure font, gnuplot's \"Name,points\"", .shown = "Sans,10"},

    CONST("normscope_version", CONST_STR, NONE, NORMSCOPE_VERSION),
    RUN(NULL, "world_size", INT, world_size, SCHEDULE, 0, 0, ""),
};
_Static_assert(NS_BATCH_STATS_LEN == NS_OPT_STR_LEN, "--batch-stats is a text option's field");

const size_t NS_N_RUN_OPTIONS = sizeof NS_RUN_OPTIONS / sizeof NS_RUN_OPTIONS[0];
