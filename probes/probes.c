#include "probes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_io.h"
#include "util.h"

typedef void (*ProbeConstructor)(NsProbe *p);

static const struct { const char *name; ProbeConstructor make; } OPTIONAL_PROBES[] = {
    {"batch-stats", ns_probe_batch_stats},
    {"gradients", ns_probe_gradients},
    {"params", ns_probe_params},
    {"lipschitz", ns_probe_lipschitz},
};
#define N_OPTIONAL (sizeof OPTIONAL_PROBES / sizeof OPTIONAL_PROBES[0])

const char *ns_probe_names(void) { return "batch-stats, gradients, params, lipschitz"; }

/* ------------------------------------------------------------ fan-out */

/* Evaluation passes run the same sites in inference mode; the probes record training steps. */
static void on_norm_forward(void *ctx, const NsNormSite *site, int index, const float *x,
                            const uint8_t *mask, int N, int training)
{
    NsProbes *set = ctx;
    if (!training)
        return;
    for (int i = 0; i < set->n_probes; i++)
        if (set->probes[i].norm_forward_begin)
            set->probes[i].norm_forward_begin(&set->probes[i], set, site, index, x, mask, N);
}

static void on_norm_backward(void *ctx, const NsNormSite *site, int index, const float *dy,
                             const float *dx, const uint8_t *mask, int N)
{
    NsProbes *set = ctx;
    for (int i = 0; i < set->n_probes; i++)
        if (set->probes[i].norm_backward_end)
            set->probes[i].norm_backward_end(&set->probes[i], set, site, index, dy, dx, mask, N);
}

static void on_step_begin(void *ctx, const NsTrainer *tr, int64_t step)
{
    (void)tr;
    NsProbes *set = ctx;
    set->step = step;
    for (int i = 0; i < set->n_probes; i++)
        if (set->probes[i].step_begin)
            set->probes[i].step_begin(&set->probes[i], set, step);
}

static void on_after_backward(void *ctx, const NsTrainer *tr, const NsStepInfo *info)
{
    (void)tr;
    NsProbes *set = ctx;
    for (int i = 0; i < set->n_probes; i++)
        if (set->probes[i].after_backward)
            set->probes[i].after_backward(&set->probes[i], set, info);
}

static void on_step_end(void *ctx, const NsTrainer *tr, const NsStepInfo *info)
{
    (void)tr;
    NsProbes *set = ctx;
    for (int i = 0; i < set->n_probes; i++)
        if (set->probes[i].step_end)
            set->probes[i].step_end(&set->probes[i], set, info);
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

/* A fresh log is created; a resumed run appends to the log it wrote before. */
static int open_log(NsProbes *set, int fresh, char *err)
{
    const NsRunConfig *c = &set->tr->cfg;
    if (!fresh) { /* the configuration attributes now describe the resumed run (e.g. steps) */
        if (ns_runlog_open_append(&set->log, c->out_path, err) < 0)
            return -1;
        if (ns_write_run_attrs(set->log.file, c) < 0)
            return ns_fail(err, "cannot update attributes of run log '%s'", c->out_path);
        return 0;
    }
    if (ns_runlog_create(&set->log, c->out_path, err) < 0)
        return -1;
    if (ns_write_run_attrs(set->log.file, c) < 0)
        return ns_fail(err, "cannot write attributes to run log '%s'", c->out_path);
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
    return ns_runlog_truncate_after(&set->log, set->tr->step, err);
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
        declare_all(set, fresh, err) < 0 || ns_runlog_start(&set->log, err) < 0) {
        char ignored[NS_ERRLEN];
        ns_probes_close(set, ignored);
        return NULL;
    }
    tr->model.hooks = (NsModelHooks){on_norm_forward, on_norm_backward, set};
    tr->observer = (NsTrainObserver){set, on_step_begin, on_after_backward, on_step_end,
                                     on_eval_end, on_flush};
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
