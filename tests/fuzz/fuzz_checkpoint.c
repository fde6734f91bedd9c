/* Fuzz target: the checkpoint reader, as `train --resume` and `eval` use it. The input is an HDF5
 * file. Its header (run configuration and vocabulary) is read; then, as a resumed run does, the
 * data are loaded with the checkpoint's vocabulary (the embedded corpus, small, stands in for
 * the corpus the file names), the model configuration is checked against it, a model, optimizer
 * and batcher are built and the whole checkpoint is loaded into them. Reading may fail with an
 * error; it must never crash, leak or hang. */
#include <stdint.h>
#include <stdlib.h>

#include "checkpoint.h"
#include "dataset.h"
#include "fuzz_common.h"
#include "model.h"
#include "optim.h"
#include "run_config.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet_hdf5();
    return 0;
}

/* A valid checkpoint may describe a model of gigabytes, which normscope would build; the fuzzer
 * builds only small ones, so that its memory limit catches leaks and overruns, not size. */
static int small_model(const NsModelConfig *m)
{
    return m->d_model <= 256 && m->n_layers <= 4 && m->d_ff <= 1024 && m->seq_len <= 128 &&
           m->batch_size <= 32 && m->vocab_size <= 8192;
}

/* What resume_from_checkpoint (src/train/train.c) does with a header that has been read. */
static void load_everything(const char *path, NsCheckpointHeader *h)
{
    char err[NS_ERRLEN];
    NsRunConfig cfg = h->cfg;
    cfg.corpus_path[0] = cfg.valid_path[0] = '\0';
    cfg.synth_bytes = 4096;
    NsDataSpec spec = ns_run_config_data_spec(&cfg);
    NsDataset ds = {0};
    if (ns_dataset_load(&ds, &spec, h->vocab, h->vocab_n, err) == 0) {
        cfg.model.vocab_size = ds.vocab.size;
        if (ns_model_config_compare(&h->cfg.model, &cfg.model, err) == 0 &&
            small_model(&cfg.model)) {
            NsModel m = {0};
            NsAdamW opt;
            int64_t step;
            ns_model_init(&m, &cfg.model, cfg.seed);
            ns_adamw_init(&opt, &cfg.optim, m.layout.total);
            float *init = ns_xmalloc(sizeof(float) * m.layout.total);
            ns_checkpoint_load(path, &m, &opt, &ds.train_batches, init, &step, err);
            free(init);
            ns_adamw_free(&opt);
            ns_model_free(&m);
        }
    }
    ns_dataset_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(0, data, size);
    char err[NS_ERRLEN];
    NsCheckpointHeader h;
    ns_run_config_default(&h.cfg);
    if (ns_checkpoint_read_header(path, &h, err) == 0 &&
        ns_run_config_validate_all(&h.cfg, err) == 0)
        load_everything(path, &h);
    ns_checkpoint_header_free(&h);
    return 0;
}
