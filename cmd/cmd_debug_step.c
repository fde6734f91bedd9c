/* normscope debug-step: a few training steps pinned down (dropout 0, no clipping), each written
 * as a debug state (debug-state.md) for parity checks against other implementations. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "debug_state.h"
#include "hessian.h"
#include "run_binding.h"
#include "train.h"
#include "util.h"

static const NsCommandSpec SPEC = {
    .name = "debug-step",
    .usage = "[flags]",
    .summary = "Runs --steps training steps (dropout 0, no clipping) and writes each as a debug "
               "state (the format of docs/debug-state.md) to --out.",
};

/* train's defaults, but a debug state is a few steps in a file of its own. */
static void debug_step_defaults(NsRunConfig *cfg)
{
    ns_run_config_default(cfg);
    cfg->steps = 3;
    snprintf(cfg->out_path, sizeof cfg->out_path, "debug-state.h5");
}

/* --lipschitz: the curvature measurements of the smoothness probe (hessian.h) at each step,
 * with their random vectors, so another implementation can replay them. The grid's step
 * lengths use the peak --lr, not the warm-up's first rates: a step of 1e-7 per coordinate is
 * below float32 resolution of the parameters and would record round-off. */
typedef struct {
    const NsRunConfig *cfg;
    NsModelScratch scratch;
    NsCurvature curv;
    NsSmoothPlan plan;
    NsSmoothness found;
    NsRng rng;
} Lipschitz;

static int measure_lipschitz(void *ctx, hid_t f, int k, const NsModel *m,
                             const NsModelSnapshot *before, const int32_t *tokens,
                             const uint8_t *mask, char *err)
{
    Lipschitz *lip = ctx;
    if (!lip->curv.P) { /* first step: the model exists now */
        ns_model_scratch_init(&lip->scratch, m);
        ns_curv_init(&lip->curv, m, &lip->scratch);
        ns_smooth_init(&lip->found, &lip->plan, m->layout.total);
    }
    ns_curv_bind(&lip->curv, before, m->params, tokens, mask);
    ns_smooth_measure(&lip->found, &lip->curv, &lip->plan, &lip->rng);
    const NsSmoothness *s = &lip->found;
    NsDebugLipschitz out = {.n_grid = NS_GRID_N, .r = s->r, .grid_loss = s->grid_loss,
                            .grad_diff_norm = s->grad_diff, .beta_smoothness = s->beta,
                            .solver = "lanczos", .iters = lip->plan.iters,
                            .top_eig = s->top_eigs[0], .start = s->start,
                            .samples = lip->plan.samples, .trace = s->trace,
                            .probes = s->probes};
    return ns_debug_state_write_lipschitz(f, k, &m->layout, &out, err);
}

static void lipschitz_init(Lipschitz *lip, const NsRunConfig *cfg)
{
    memset(lip, 0, sizeof *lip);
    lip->plan = (NsSmoothPlan){.lr = cfg->optim.lr, .iters = cfg->hessian_iters, .top = 1,
                               .samples = cfg->hutchinson_samples, .keep_vectors = 1};
    ns_rng_seed(&lip->rng, cfg->seed ^ 0x11b5c417ULL);
}

static void lipschitz_free(Lipschitz *lip)
{
    if (!lip->curv.P)
        return;
    ns_smooth_free(&lip->found);
    ns_curv_free(&lip->curv);
    ns_model_scratch_free(&lip->scratch);
}

static int record_debug_steps(const NsRunConfig *cfg, char *err)
{
    NsDataset ds;
    NsDataSpec spec = ns_run_config_data_spec(cfg);
    if (ns_dataset_load(&ds, &spec, NULL, 0, err) < 0) {
        ns_dataset_free(&ds);
        return -1;
    }
    NsModelConfig mc = cfg->model;
    mc.vocab_size = ds.vocab.size;
    mc.dropout = 0.0f; /* debug states are deterministic */
    NsModel m;
    ns_model_init(&m, &mc, cfg->seed);
    NsAdamW opt;
    ns_adamw_init(&opt, &cfg->optim, m.layout.total);
    hid_t f = ns_debug_state_create(cfg->out_path, &mc, &cfg->optim, err);
    int rc = f < 0 ? -1 : 0;
    int32_t *tokens = ns_xcalloc((size_t)mc.batch_size * (mc.seq_len + 1), sizeof(int32_t));
    uint8_t *mask = ns_xcalloc((size_t)mc.batch_size * mc.seq_len, 1);
    Lipschitz lip;
    lipschitz_init(&lip, cfg);
    for (long k = 0; rc == 0 && k < cfg->steps; k++) {
        double loss;
        ns_batcher_next(&ds.train_batches, tokens, mask);
        rc = ns_debug_state_record_step(f, (int)k, &m, &opt, tokens, mask, &loss,
                                        cfg->lipschitz ? measure_lipschitz : NULL, &lip, err);
        if (rc == 0)
            printf("step_%ld loss %.6f\n", k, loss);
    }
    if (f >= 0 && H5Fclose(f) < 0 && rc == 0)
        rc = ns_fail(err, "cannot finish writing '%s'", cfg->out_path);
    lipschitz_free(&lip);
    free(tokens);
    free(mask);
    ns_adamw_free(&opt);
    ns_model_free(&m);
    ns_dataset_free(&ds);
    return rc;
}

int ns_cmd_debug_step(int argc, char **argv)
{
    char err[NS_ERRLEN] = "";
    NsRunConfig cfg;
    NsCheckpointHeader ckpt; /* --resume: only its configuration is used */
    int code;
    debug_step_defaults(&cfg);
    int go = ns_cmd_parse_run(&SPEC, NS_CMD_DEBUG_STEP, argc, argv, &cfg, &ckpt, &code);
    ns_checkpoint_header_free(&ckpt);
    if (!go)
        return code;
    /* like train: recorded data is replaced only when asked (rank 0 alone: it writes --out) */
    if (ns_comm_world()->rank == 0 && !cfg.overwrite && access(cfg.out_path, F_OK) == 0)
        return ns_cmd_error(NS_EXIT_ERROR, "debug state '%s' exists (--out); give --overwrite "
                            "to replace it, or another --out", cfg.out_path);
    if (ns_check_output_file(cfg.out_path, "debug state", "--out", err) < 0)
        return ns_cmd_error(NS_EXIT_ERROR, "%s", err);
    openblas_set_num_threads(cfg.threads);
    /* mpirun: rank 0 writes --out, the other ranks a private file removed here */
    int private_out = ns_private_output(cfg.out_path, sizeof cfg.out_path);
    int rc = record_debug_steps(&cfg, err);
    if (private_out)
        remove(cfg.out_path);
    if (rc < 0)
        return ns_cmd_error(NS_EXIT_ERROR, "%s", err);
    printf("wrote %s\n", cfg.out_path);
    return NS_EXIT_OK;
}
