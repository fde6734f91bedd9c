/* The full configuration of a training run: model and optimizer (config.h) plus data, schedule,
 * output and probe options. Its option table, NS_RUN_OPTIONS (run_options.c), describes every
 * field: the command line fills it, and checkpoints and run logs store it as root attributes,
 * so every file says exactly how it was made. */
#ifndef NS_RUN_CONFIG_H
#define NS_RUN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "batcher.h"
#include "config.h"
#include "corpus.h"
#include "dataset.h"
#include "options.h"

#define NS_RUN_ID_LEN 33 /* 128 bits in hex, and the NUL */

typedef struct {
    NsModelConfig model;
    NsOptimConfig optim;

    /* Data. Empty corpus path = the embedded synthetic corpus. Empty valid path = hold out the
     * last 5 % of the corpus lines (embedded corpus: a second text from seed + 1). */
    char corpus_path[NS_PATH_LEN];
    char valid_path[NS_PATH_LEN];
    NsTokenizer tokenizer;
    NsBatching batching;
    int max_tokens;   /* sentences: token budget per batch, fairseq's --max-tokens (0 = off) */
    long synth_bytes; /* size of the embedded corpus */
    long max_corpus_bytes; /* largest corpus or validation file read */
    int corpus_any_file;   /* read corpus files that are not regular files (pipes, devices) */

    int release_defaults; /* --release-defaults was given (resolved by ns_run_config_resolve) */

    /* Schedule. */
    long steps;
    uint64_t seed;
    int threads;      /* BLAS threads; 0 = auto (ns_run_config_resolve_threads) */
    int world_size;   /* ranks of the run that wrote the file (set by the trainer) */
    int eval_every;   /* steps between validation passes (0 = only at the end) */
    int eval_batches; /* cap on validation batches per pass (0 = whole validation set) */
    int log_every;    /* plain log line cadence when stderr is not a terminal */

    /* Outputs. */
    char out_path[NS_PATH_LEN];        /* run log (HDF5) */
    char checkpoint_path[NS_PATH_LEN]; /* default: <out without .h5>.ckpt.h5 */
    char resume_path[NS_PATH_LEN];
    int overwrite;        /* --overwrite: an existing log/checkpoint may be replaced */
    int new_log;          /* --new-log: --resume into a log that does not exist yet */
    /* Random identifier of the run (hex), in its log and every checkpoint: a resume continues
     * only the log of the same run (resume_check.h). Empty: a file from before run_id. */
    char run_id[NS_RUN_ID_LEN];
    int checkpoint_every; /* 0 = only at the end / on interruption */
    int flush_every;      /* run-log flush cadence in steps */

    /* Probes (probes/). */
    char probes[NS_OPT_STR_LEN]; /* comma list, "all" or "none" */
    int probe_vectors_every; /* full statistic vectors every N steps (0 = never) */
    int lipschitz_every;     /* smoothness probes every N steps (0 = off) */
    int hessian_iters;       /* Lanczos steps of the top-eigenvalue run */
    int hessian_top;         /* top eigenvalues recorded (largest magnitude) */
    int hutchinson_samples;  /* Rademacher vectors of the trace estimate (0 = off) */
    int density_runs;        /* stochastic Lanczos quadrature runs (0 = off) */
    int density_steps;       /* Lanczos steps of each run */
    int lipschitz;           /* debug-step: write each step's lipschitz/ group */

    /* Figures (plot and study; never stored): image formats, size, font; NULL = default. */
    const char *fig_format, *fig_size, *fig_font;
} NsRunConfig;

/* The commands that run the engine, for NsOption.commands: which of them accept a flag. */
enum {
    NS_CMD_TRAIN = 1 << 0,
    NS_CMD_EVAL = 1 << 1,
    NS_CMD_DEBUG_STEP = 1 << 2,
    NS_CMD_STUDY = 1 << 3, /* flags study checks and passes on to every run */
    NS_CMD_PLOT = 1 << 4,  /* the figure flags of plot (and study) */
};

/* The option table of NsRunConfig (offsets into it), in --help order. To add a setting: a
 * field above, a default in ns_run_config_default, a row in run_options.c. */
extern const NsOption NS_RUN_OPTIONS[];
extern const size_t NS_N_RUN_OPTIONS;

void ns_run_config_default(NsRunConfig *c);
/* Checks data/schedule/output options (model and optimizer have their own validators). */
int ns_run_config_validate(const NsRunConfig *c, char *err);
/* Checks everything: model, optimizer, then the rest; one line in err for the first problem. */
int ns_run_config_validate_all(const NsRunConfig *c, char *err);
/* Settings whose default depends on others, for a new run (not a resumed one, whose
 * checkpoint holds them resolved): --bn-momentum from the scheme (NsNormScheme.bn_momentum)
 * and, with --release-defaults, --pn-groups = --heads and --pn-warmup = --warmup; a flag the user
 * gave (ns_parse_given(p, flag)) is kept. Then checks the flags that apply to one scheme only
 * (--no-layer-scaling). Returns 0, or -1 with one line in err. */
int ns_run_config_resolve(NsRunConfig *c, const NsParse *p, char *err);
/* The default thread count follows the model: on small models the BLAS threads cost more in
 * synchronization than they gain (2 threads were 1.2x slower than 1 at the study's d=64, 4
 * layers, T=32, B=32; README "Performance" has the measurements). Matmul FLOPs of one
 * training step (forward and backward): per token and layer 8d^2 + 4dF + 4Td, plus 2dV for the
 * output, times 3 for the backward, times B*T tokens. */
#define NS_THREADS_MIN_STEP_FLOPS 8e9
double ns_model_step_flops(const NsModelConfig *m);
/* 1 below NS_THREADS_MIN_STEP_FLOPS per step, else `cores` (which a caller running several
 * trainings at once can divide). */
int ns_threads_for_model(const NsModelConfig *m, int cores);
/* --threads 0 (the default) becomes ns_threads_for_model(model, this machine's cores); called by
 * ns_run_config_resolve, and by a resumed run or eval, whose model comes from a checkpoint. */
void ns_run_config_resolve_threads(NsRunConfig *c);
/* Fills checkpoint_path from out_path when it is empty. */
void ns_run_config_finish(NsRunConfig *c);
/* A new run (no --resume) never replaces recorded data unless told: -1 with one line in err when
 * --out or the checkpoint path (as ns_run_config_finish makes it) exists and --overwrite is not
 * given. */
int ns_run_config_check_overwrite(NsRunConfig *c, char *err);

/* The data layer's view of this configuration (points into c). */
NsDataSpec ns_run_config_data_spec(const NsRunConfig *c);

const char *ns_tokenizer_name(NsTokenizer t);
const char *ns_batching_name(NsBatching b);
int ns_tokenizer_from_name(const char *name, NsTokenizer *t); /* 0, or -1 for an unknown name */
int ns_batching_from_name(const char *name, NsBatching *b);

#endif
