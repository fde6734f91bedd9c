/* normscope debug-step: a few training steps pinned down (dropout 0, no clipping), each written
 * as a debug state (debug-state.md) for parity checks against other implementations. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "debug_state.h"
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
    for (long k = 0; rc == 0 && k < cfg->steps; k++) {
        double loss;
        ns_batcher_next(&ds.train_batches, tokens, mask);
        rc = ns_debug_state_record_step(f, (int)k, &m, &opt, tokens, mask, &loss, err);
        if (rc == 0)
            printf("step_%ld loss %.6f\n", k, loss);
    }
    if (f >= 0 && H5Fclose(f) < 0 && rc == 0)
        rc = ns_fail(err, "cannot finish writing '%s'", cfg->out_path);
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
    openblas_set_num_threads(cfg.threads);
    if (record_debug_steps(&cfg, err) < 0)
        return ns_cmd_error(NS_EXIT_ERROR, "%s", err);
    printf("wrote %s\n", cfg.out_path);
    return NS_EXIT_OK;
}
