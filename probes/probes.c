#include "probes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "model_io.h"
#include "util.h"

typedef void (*ProbeConstructor)(NsProbe *p);

static const struct { const char *name; ProbeConstructor make; } OPTIONAL_PROBES[] = {
    {"batch-stats", ns_probe_batch_stats},
    {"gradients", ns_probe_gradients},
    {"params", ns_probe_params},
    {"lipschitz", ns_probe_lipschitz},
    {"norm-gap", ns_probe_norm_gap},
};
#define N_OPTIONAL (sizeof OPTIONAL_PROBES / sizeof OPTIONAL_PROBES[0])

const char *ns_probe_names(void)
{
    return "batch-stats, gradients, params, lipschitz, norm-gap";
}

/* ------------------------------------------------------------ fan-out */

/* The per-step probes are timed where they are called (steps/probe_seconds), so a run's log
 * says what its probes cost, measured in the run itself: the steps probe records the total and
 * the smoothness probe its own (lipschitz/seconds). */
static int timed(const NsProbe *p)
{
    return strcmp(p->name, "steps") != 0 && strcmp(p->name, "lipschitz") != 0;
}

#define FAN_OUT(set, hook, ...)                                                       \
    for (int i_ = 0; i_ < (set)->n_probes; i_++) {                                    \
        NsProbe *p_ = &(set)->probes[i_];                                             \
        if (!p_->hook)                                                                \
            continue;                                                                 \
        int timed_ = timed(p_);                                                       \
        double t0_ = timed_ ? ns_now_seconds() : 0.0;                                 \
        p_->hook(p_, (set), __VA_ARGS__);                                             \
        if (timed_)                                                                   \
            (set)->probe_seconds += ns_now_seconds() - t0_;                           \
    }

/* Evaluation passes run the same sites in inference mode; the probes record training steps. */
static void on_norm_forward(void *ctx, const NsNormSite *site, int index, const float *x,
                            const uint8_t *mask, int N, int training)
{
    NsProbes *set = ctx;
    if (training)
        FAN_OUT(set, norm_forward_begin, site, index, x, mask, N);
}

static void on_norm_backward(void *ctx, const NsNormSite *site, int index, const float *dy,
                             const float *dx, const uint8_t *mask, int N)
{
    NsProbes *set = ctx;
    FAN_OUT(set, norm_backward_end, site, index, dy, dx, mask, N);
}

static void on_step_begin(void *ctx, const NsTrainer *tr, int64_t step)
{
    (void)tr;
    NsProbes *set = ctx;
    set->step = step;
    FAN_OUT(set, step_begin, step);
}

static void on_after_backward(void *ctx, const NsTrainer *tr, const NsStepInfo *info)
{
    (void)tr;
    NsProbes *set = ctx;
    FAN_OUT(set, after_backward, info);
}

/* The steps probe comes first: the step_end hooks after it count in the next row. */
static void on_step_end(void *ctx, const NsTrainer *tr, const NsStepInfo *info)
{
    (void)tr;
    NsProbes *set = ctx;
    FAN_OUT(set, step_end, info);
}

static void on_eval_end(void *ctx, const NsTrainer *tr, int64_t step, double loss, double ppl)
{
    (void)tr;
    NsProbes *set = ctx;
    for (int i = 0; i < set->n_probes; i++)
        if (set->probes[i].eval_end)
            set->probes[i].eval_end(&set->probes[i], set, step, loss, ppl);
}

static int on_flush(void *ctx, char *err) { return ns_runlog_flush(&((NsProbes *)ctx)->log, err); }

/* ------------------------------------------------------------ state in checkpoints */

static int checkpoint_probes(void *ctx, hid_t file, char *err)
{
    NsProbes *set = ctx;
    for (int i = 0; i < set->n_probes; i++) {
        NsProbe *p = &set->probes[i];
        if (!p->save_state)
            continue;
        char path[96];
        snprintf(path, sizeof path, "probes/%s", p->name);
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t group = H5Gcreate2(file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Pclose(lcpl);
        if (group < 0)
            return ns_fail(err, "cannot write the state of probe %s", p->name);
        int rc = p->save_state(p, set, group, err);
        H5Gclose(group);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* On --resume: the probes' state as the checkpoint saved it. A checkpoint without it (made
 * before probes kept state) leaves the probes as fresh, and says so. */
static int restore_probes(NsProbes *set, const char *ckpt, char *err)
{
    hid_t file = ns_h5_open(ckpt, 0, err);
    if (file < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < set->n_probes && rc == 0; i++) {
        NsProbe *p = &set->probes[i];
        char path[96];
        snprintf(path, sizeof path, "probes/%s", p->name);
        if (!p->load_state)
            continue;
        if (!ns_h5_exists(file, path)) {
            fprintf(stderr, "normscope: note: checkpoint '%s' has no state of probe %s; its "
                            "series continue from a fresh state\n", ckpt, p->name);
            continue;
        }
        hid_t group = H5Gopen2(file, path, H5P_DEFAULT);
        rc = group < 0 ? ns_fail(err, "cannot open '%s'", path) : p->load_state(p, set, group, err);
        if (group >= 0)
            H5Gclose(group);
    }
    H5Fclose(file);
    return rc < 0 ? ns_fail_context(err, "checkpoint '%s'", ckpt) : 0;
}

/* ------------------------------------------------------------ set-up */

static int known_probe(const char *name)
{
    for (size_t k = 0; k < N_OPTIONAL; k++)
        if (strcmp(OPTIONAL_PROBES[k].name, name) == 0)
            return 1;
    return strcmp(name, "steps") == 0;
}

/* Checks every name of a --probes list: `all` and `none` stand alone, others must exist. */
static int check_probe_list(const char *list, char *err)
{
    if (strcmp(list, "all") == 0 || strcmp(list, "none") == 0)
        return 0;
    if (!list[0])
        return ns_fail(err, "--probes is empty: give all, none, or names from %s",
                       ns_probe_names());
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (strcmp(tok, "all") == 0 || strcmp(tok, "none") == 0)
            return ns_fail(err, "--probes: '%s' cannot be combined with other names", tok);
        if (!known_probe(tok))
            return ns_fail(err, "--probes: unknown probe '%s' (choose from %s, or all, none)",
                           tok, ns_probe_names());
    }
    return 0;
}

static int select_probes(NsProbes *set, const char *list, char *err)
{
    if (check_probe_list(list, err) < 0)
        return -1;
    ns_probe_steps(&set->probes[set->n_probes++]);
    int all = strcmp(list, "all") == 0;
    for (size_t k = 0; k < N_OPTIONAL; k++) {
        int wanted = all;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", list);
        for (char *tok = strtok(buf, ","); tok && !wanted; tok = strtok(NULL, ","))
            wanted = strcmp(tok, OPTIONAL_PROBES[k].name) == 0;
        if (wanted)
            OPTIONAL_PROBES[k].make(&set->probes[set->n_probes++]);
    }
    return 0;
}

/* The run configuration and what the data made of it (the unknown-token rates). */
static int write_root_attrs(NsProbes *set)
{
    const NsTrainer *tr = set->tr;
    if (ns_write_run_attrs(set->log.file, &tr->cfg) < 0)
        return -1;
    /* the cap the first segment asked for (a resumed run's is the checkpoint's vocabulary) */
    if (H5Aexists(set->log.file, "vocab_cap") <= 0 &&
        ns_h5_attr_write_i64(set->log.file, "vocab_cap", tr->vocab_cap) < 0)
        return -1;
    return ns_runlog_write_unk_rates(&set->log, tr->data.unk_rate_train, tr->data.unk_rate_valid);
}

/* A fresh log is created; a resumed run appends to the log it wrote before, whose root
 * attributes keep the first segment's settings: the resumed segment records what it changed
 * (model_io.h). A resume with --new-log starts a fresh log and records where it began. */
static int open_log(NsProbes *set, int fresh, char *err)
{
    const NsTrainer *tr = set->tr;
    const NsRunConfig *c = &tr->cfg;
    if (!fresh) {
        if (ns_runlog_rebuild(c->out_path, err) < 0 ||
            ns_runlog_open_append(&set->log, c->out_path, err) < 0)
            return -1;
        if (ns_runlog_record_segment(set->log.file, c, tr->step, 0, err) < 0)
            return ns_fail_context(err, "run log '%s'", c->out_path);
        return 0;
    }
    if (ns_runlog_create(&set->log, c->out_path, err) < 0)
        return -1;
    /* one chunk per flush (runlog.c says why), within what compresses well and indexes cheaply */
    set->log.chunk_rows = c->flush_every < 4096 ? (int)c->flush_every : 4096;
    if (write_root_attrs(set) < 0)
        return ns_fail(err, "cannot write attributes to run log '%s'", c->out_path);
    if (c->resume_path[0] && ns_runlog_record_segment(set->log.file, c, tr->step, 1, err) < 0)
        return ns_fail_context(err, "run log '%s'", c->out_path);
    return 0;
}

static int declare_all(NsProbes *set, int fresh, char *err)
{
    for (int i = 0; i < set->n_probes; i++)
        if (set->probes[i].declare && set->probes[i].declare(&set->probes[i], set, err) < 0)
            return -1;
    /* A resumed log may hold steps past the checkpoint: they are taken again. */
    if (fresh)
        return ns_runlog_write_docs(&set->log, err);
    if (ns_runlog_truncate_after(&set->log, set->tr->step, err) < 0)
        return -1;
    /* Checkpoints follow a flush, so the log reaches the checkpoint, unless the run stopped on
     * a failed flush and saved its progress anyway: then say which steps the log lacks. */
    int64_t last = ns_runlog_last_step(&set->log, NS_RUNLOG_STEPS);
    if (last < set->tr->step)
        fprintf(stderr, "normscope: warning: run log '%s' ends at step %lld but the checkpoint "
                        "is at step %lld: steps %lld to %lld were never written to the log (the "
                        "run stopped on a write failure)\n", set->tr->cfg.out_path,
                (long long)last, (long long)set->tr->step, (long long)last + 1,
                (long long)set->tr->step);
    return 0;
}

NsProbes *ns_probes_attach(NsTrainer *tr, char *err)
{
    NsProbes *set = ns_xcalloc(1, sizeof *set);
    set->tr = tr;
    set->host = tr;
    set->step = tr->step + 1;
    set->log.file = H5I_INVALID_HID;
    int fresh = !(tr->cfg.resume_path[0] && H5Fis_hdf5(tr->cfg.out_path) > 0);
    if (select_probes(set, tr->cfg.probes, err) < 0 || open_log(set, fresh, err) < 0 ||
        declare_all(set, fresh, err) < 0 || ns_runlog_start(&set->log, err) < 0 ||
        (tr->cfg.resume_path[0] && restore_probes(set, tr->cfg.resume_path, err) < 0)) {
        char ignored[NS_ERRLEN];
        ns_probes_close(set, ignored);
        return NULL;
    }
    tr->model.hooks = (NsModelHooks){on_norm_forward, on_norm_backward, set};
    tr->observer = (NsTrainObserver){.ctx = set, .step_begin = on_step_begin,
                                     .after_backward = on_after_backward,
                                     .step_end = on_step_end, .eval_end = on_eval_end,
                                     .flush = on_flush,
                                     .checkpoint_extra = {checkpoint_probes, set}};
    for (int i = 0; i < set->n_probes; i++)
        tr->observer.want_tensor_sums |= set->probes[i].wants_tensor_sums;
    return set;
}

int ns_probes_close(NsProbes *set, char *err)
{
    if (!set)
        return 0;
    if (set->host) {
        memset(&set->host->model.hooks, 0, sizeof set->host->model.hooks);
        memset(&set->host->observer, 0, sizeof set->host->observer);
    }
    int rc = ns_runlog_close(&set->log, err);
    for (int i = 0; i < set->n_probes; i++)
        if (set->probes[i].destroy)
            set->probes[i].destroy(&set->probes[i]);
    free(set);
    return rc;
}
