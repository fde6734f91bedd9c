/* The probe set: opens the run log, attaches every selected probe to the trainer (step and
 * evaluation events) and to the model (norm-site hooks), fans events out to them, and flushes
 * the log on the trainer's cadence. Probes see the engine through const pointers only (the
 * trainer, the model, the norm sites), compute on their own copies, and run any extra pass
 * through ns_model_loss_grad_at, which leaves the model untouched; so a run with probes trains
 * exactly like one without. They write nothing but the run log (runlog.h, paths from the
 * schema in runlog_schema.h). */
#ifndef NS_PROBES_H
#define NS_PROBES_H

#include "runlog.h"
#include "train.h"

typedef struct NsProbes NsProbes;

/* One probe: a name for --probes and the callbacks it needs (any may be NULL). */
typedef struct NsProbe {
    const char *name;
    void *state;
    /* Declares its series in the log (before SWMR starts). */
    int (*declare)(struct NsProbe *p, NsProbes *set, char *err);
    void (*norm_forward_begin)(struct NsProbe *p, NsProbes *set, const NsNormSite *site,
                               int site_index, const float *x, const uint8_t *mask, int N);
    void (*norm_backward_end)(struct NsProbe *p, NsProbes *set, const NsNormSite *site,
                              int site_index, const float *dy, const float *dx,
                              const uint8_t *mask, int N);
    void (*step_begin)(struct NsProbe *p, NsProbes *set, int64_t step);
    void (*after_backward)(struct NsProbe *p, NsProbes *set, const NsStepInfo *info);
    void (*step_end)(struct NsProbe *p, NsProbes *set, const NsStepInfo *info);
    void (*eval_end)(struct NsProbe *p, NsProbes *set, int64_t step, double loss, double ppl);
    /* A probe that carries state from step to step (running averages, an RNG) saves it into its
     * group of each checkpoint (probes/<name>) and loads it back on --resume, after declare, so
     * a resumed log equals an uninterrupted run's. */
    int (*save_state)(struct NsProbe *p, NsProbes *set, hid_t group, char *err);
    int (*load_state)(struct NsProbe *p, NsProbes *set, hid_t group, char *err);
    void (*destroy)(struct NsProbe *p);
    int wants_tensor_sums; /* reads NsTrainer.tensor_sums' update sums in step_end */
} NsProbe;

#define NS_MAX_PROBES 8

struct NsProbes {
    const NsTrainer *tr; /* what the probes observe */
    NsTrainer *host;     /* the same trainer, kept only to detach from it on close */
    NsRunLog log;
    NsProbe probes[NS_MAX_PROBES];
    int n_probes;
    int64_t step;        /* the step being taken (1-based) */
    /* Seconds spent in the per-step probes' hooks since the steps probe last recorded them
     * (steps/probe_seconds): every probe but the steps probe itself and the smoothness probe,
     * whose time is lipschitz/seconds. */
    double probe_seconds;
};

/* Opens (or, on --resume, appends to) the run log and attaches the probes named by
 * tr->cfg.probes. Returns NULL with err set on failure. */
NsProbes *ns_probes_attach(NsTrainer *tr, char *err);
int ns_probes_close(NsProbes *set, char *err);

/* Names accepted by --probes, for messages. */
const char *ns_probe_names(void);

/* Constructors, one per file in probes/. */
void ns_probe_steps(NsProbe *p);
void ns_probe_batch_stats(NsProbe *p);
void ns_probe_gradients(NsProbe *p);
void ns_probe_params(NsProbe *p);
void ns_probe_lipschitz(NsProbe *p);
void ns_probe_norm_gap(NsProbe *p);

#endif
