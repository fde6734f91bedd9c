/* The train/inference gap of schemes that normalize with running statistics at inference
 * (batch, batch-official and the PN family): after every validation pass, the same validation
 * batches once more with the batch statistics of each batch, as a training step would normalize
 * them (dropout off, no update). The paper's argument against BN in Transformers is that its
 * running statistics at inference differ from the batch statistics it trained with; this is the
 * loss that difference costs. The passes run in the probe's own scratch model
 * (ns_evaluate_corpus_batch_stats), so the model being trained is only read. Schemes without
 * running statistics (layer, rms, none, power-v) normalize the same way in both modes: the probe
 * records nothing for them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "eval_stats.h"
#include "probes.h"
#include "util.h"

typedef struct {
    int active; /* the scheme keeps running statistics */
    int ids[NS_NORM_GAP_N]; /* the schema's group norm_gap */
    NsModelScratch scratch;
} GapState;

static int declare(NsProbe *p, NsProbes *set, char *err)
{
    GapState *st = p->state;
    const NsModel *m = &set->tr->model;
    st->active = ns_norm_keeps_running_stats(m);
    if (!st->active)
        return 0;
    ns_model_scratch_init(&st->scratch, m);
    return ns_runlog_add_group(&set->log, NS_G_NORM_GAP, NS_SCHEMA_GROUPS[NS_G_NORM_GAP].path,
                               NULL, st->ids, err);
}

static void eval_end(NsProbe *p, NsProbes *set, int64_t step, double loss, double ppl)
{
    (void)ppl;
    GapState *st = p->state;
    if (!st->active)
        return;
    const NsTrainer *tr = set->tr;
    char err[NS_ERRLEN] = "";
    double t0 = ns_now_seconds();
    double batch = ns_evaluate_corpus_batch_stats(&tr->model, &tr->data.valid, tr->cfg.batching,
                                                  tr->cfg.eval_batches, tr->cfg.seed,
                                                  &st->scratch, err);
    /* The text made batches for the validation pass just run, so this cannot fail; if it did,
     * the row says so with NaN rather than stopping training. */
    if (isnan(batch) && err[0])
        fprintf(stderr, "normscope: warning: norm-gap probe: %s\n", err);
    ns_runlog_append_i64(&set->log, st->ids[NS_NORM_GAP_STEP], step);
    ns_runlog_append_f64(&set->log, st->ids[NS_NORM_GAP_LOSS_RUNNING], loss);
    ns_runlog_append_f64(&set->log, st->ids[NS_NORM_GAP_LOSS_BATCH_STATS], batch);
    ns_runlog_append_f64(&set->log, st->ids[NS_NORM_GAP_GAP], loss - batch);
    ns_runlog_append_f64(&set->log, st->ids[NS_NORM_GAP_SECONDS], ns_now_seconds() - t0);
}

static void destroy(NsProbe *p)
{
    GapState *st = p->state;
    ns_model_scratch_free(&st->scratch);
    free(st);
}

void ns_probe_norm_gap(NsProbe *p)
{
    *p = (NsProbe){.name = "norm-gap", .state = ns_xcalloc(1, sizeof(GapState)),
                   .declare = declare, .eval_end = eval_end, .destroy = destroy};
}
