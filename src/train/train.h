/* The training loop: one step is batch -> forward -> backward -> clip -> AdamW, with periodic
 * validation, checkpoints, a progress line, divergence detection and a clean stop on
 * SIGINT/SIGTERM. Observers (the probes) are told about every step and evaluation through
 * NsTrainObserver, and about norm sites through the model's hooks. Both hand them const
 * pointers, and passes of their own go through ns_model_loss_grad_at (model.h), so they cannot
 * change what training computes. */
#ifndef NS_TRAIN_H
#define NS_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "dataset.h"
#include "model.h"
#include "optim.h"
#include "run_config.h"

typedef struct NsTrainer NsTrainer;

typedef struct {
    int64_t step;        /* 1-based index of the step just taken */
    double loss;         /* training loss of this step's batch (before the update) */
    double penalty;      /* the objective's penalty beside it (batch-regularized; else 0) */
    float lr;            /* learning rate of this step's update */
    double grad_norm;    /* global gradient norm before clipping */
    double step_seconds; /* wall time of forward + backward + update (observers excluded) */
    double tokens_per_s; /* B*T positions per second */
    double real_tokens_per_s; /* real (non-padding) positions per second */
    double wall_time;    /* seconds since the run (or resumed run) started */
    int n_real;          /* real positions in the batch */
    int n_positions;     /* positions of the batch, padding included (Bk*Tk, <= B*T) */
} NsStepInfo;

typedef struct {
    void *ctx;
    /* Before the step's forward pass: the norm state is still the pre-step state. */
    void (*step_begin)(void *ctx, const NsTrainer *tr, int64_t step);
    /* After backward, before clipping and the update: gradients of this step are in
     * model.grads, parameters are still those the gradients were taken at. */
    void (*after_backward)(void *ctx, const NsTrainer *tr, const NsStepInfo *info);
    /* After the update. */
    void (*step_end)(void *ctx, const NsTrainer *tr, const NsStepInfo *info);
    void (*eval_end)(void *ctx, const NsTrainer *tr, int64_t step, double loss, double ppl);
    /* Make everything recorded so far durable (called every flush_every steps, before every
     * checkpoint and at exit). */
    int (*flush)(void *ctx, char *err);
    /* The observers' own state, written into each checkpoint (so a resumed run observes exactly
     * like an uninterrupted one). */
    NsCheckpointExtra checkpoint_extra;
    /* Set: the step fills NsTrainer.tensor_sums' update sums (param_sq, update_sq, init_sq)
     * too, in the update's own pass (optim.h); grad_sq is filled every step. */
    int want_tensor_sums;
} NsTrainObserver;

struct NsTrainer {
    NsRunConfig cfg;
    NsDataset data;
    NsModel model;
    NsAdamW opt;
    float *params_init; /* parameters at initialisation (distance-from-init probes) */
    /* Per tensor, this step's sums of squares (read them in step_end): grad_sq after backward,
     * the others after the update when the observer wants them. */
    NsTensorSums *tensor_sums;
    /* --vocab-size as asked: cfg.model.vocab_size becomes the size of the vocabulary built,
     * which on the embedded corpus (generated from --seed) varies with the seed. */
    int vocab_cap;
    int32_t *tokens; /* current batch [B][T+1] */
    uint8_t *mask;   /* [B][T] */
    int64_t step;    /* steps completed */
    int64_t first_step; /* steps completed when this process started (resume) */
    double start_time;
    double last_eval_loss;
    NsTrainObserver observer;
    int quiet;
    int lock_out, lock_checkpoint; /* the writer's locks of --out and --checkpoint, or -1 */
    /* With several ranks only rank 0 writes files and talks. The others run everything the
     * same way (the probes' sums over ranks need them) but log into a private temporary file,
     * removed at the end, and write no checkpoint. */
    NsComm *comm;
    int private_log;
};

/* Takes the writer's locks of --out and --checkpoint (one run per file: a second fails at once
 * naming the first's pid), loads data, builds the model (from the checkpoint when
 * cfg->resume_path is set, reading its header here). ns_trainer_free releases the locks. */
int ns_trainer_init(NsTrainer *tr, const NsRunConfig *cfg, char *err);
/* The same for a caller that has read the header of cfg->resume_path already (normscope train
 * reads it to take the checkpoint's configuration as the base of its flags), so the file is
 * read once; ckpt NULL: a fresh run. */
int ns_trainer_init_resume(NsTrainer *tr, const NsRunConfig *cfg, const NsCheckpointHeader *ckpt,
                           char *err);
void ns_trainer_free(NsTrainer *tr);

/* Runs until cfg.steps steps are done, the loss diverges, or a stop signal arrives. Returns an
 * exit code (NS_EXIT_*) and leaves a message in err for errors and divergence. */
int ns_trainer_run(NsTrainer *tr, char *err);

/* One training step on the next batch. Returns 0, or 1 if the loss is not finite. */
int ns_trainer_step(NsTrainer *tr, NsStepInfo *info);

/* Mean loss over the validation text (inference mode, whole set or eval_batches batches). */
double ns_trainer_evaluate(NsTrainer *tr, char *err);
/* Loss of the model over any tokenized corpus, inference mode. Returns NAN on error. */
double ns_evaluate_corpus(NsModel *m, const NsCorpus *corpus, NsBatching batching, int max_batches,
                          uint64_t seed, char *err);

/* Rank > 0 of several: replaces an output path by a private temporary one (the caller removes
 * it when done) and returns 1; rank 0 keeps the path and gets 0. */
int ns_private_output(char *path, size_t n);

void ns_install_stop_handlers(void);
int ns_stop_requested(void);
/* Whether a stop signal reached any rank (a one-number sum over ranks, so every rank abandons
 * the same work at the same point: call it at the same points on every rank). */
int ns_stop_agreed(NsComm *comm);

#endif
