#include "run_binding.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5util.h"
#include "model_io.h"
#include "util.h"

void ns_run_id_generate(char *id)
{
    unsigned char bytes[(NS_RUN_ID_LEN - 1) / 2];
    /* (at most 256 bytes: never a partial read once the kernel's pool is ready; never a wait
     * for it either, which early in a boot could hold a run before its stop handlers exist) */
    if (getrandom(bytes, sizeof bytes, GRND_NONBLOCK) != (ssize_t)sizeof bytes) {
        /* no entropy source: the clock and the pid still tell two runs apart */
        NsRng rng;
        ns_rng_seed(&rng, (uint64_t)(ns_now_seconds() * 1e9) ^ ((uint64_t)getpid() << 40));
        for (size_t i = 0; i < sizeof bytes; i++)
            bytes[i] = (unsigned char)ns_rng_next(&rng);
    }
    for (size_t i = 0; i < sizeof bytes; i++)
        snprintf(id + 2 * i, 3, "%02x", bytes[i]);
}

int ns_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, b) == 0)
        return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int ns_check_output_file(const char *path, const char *what, const char *flag, char *err)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode))
        return 0;
    return ns_fail(err, "%s '%s' (%s) exists and is not a regular file; give the path of a "
                        "file", what, path, flag);
}

/* The run_id of a run log or checkpoint at path into id ("" when it has none). Returns 0, or -1
 * when the file does not open as HDF5. */
static int read_run_id(const char *path, char *id, size_t n)
{
    if (H5Fis_hdf5(path) <= 0)
        return -1;
    /* a log whose writer was killed inside a flush is still marked open for writing: a SWMR
     * reader gets in (and --resume clears the mark) */
    hid_t fapl = ns_h5_reader_fapl();
    hid_t f = ns_h5_open_shared_read(path, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return -1;
    id[0] = '\0';
    if (H5Aexists(f, NS_RUN_ID_ATTR) > 0 && ns_h5_attr_read_str(f, NS_RUN_ID_ATTR, id, n) < 0)
        id[0] = '\0';
    H5Fclose(f);
    return 0;
}

static const char *shown(const char *id) { return id[0] ? id : "none (made before run_id)"; }

/* The log the resumed run appends to: its own, or none at all with --new-log. */
static int check_log(const NsRunConfig *cfg, const NsCheckpointHeader *ckpt, char *err)
{
    const char *out = cfg->out_path, *want = ckpt->cfg.run_id;
    if (access(out, F_OK) != 0)
        return cfg->new_log ? 0
                            : ns_fail(err, "run log '%s' (--out) does not exist: --resume "
                                           "appends to the log of the run that wrote '%s'; "
                                           "give that log as --out, or --new-log to start a "
                                           "new log at step %lld", out, cfg->resume_path,
                                      (long long)ckpt->step);
    if (cfg->new_log)
        return ns_fail(err, "--new-log: run log '%s' (--out) exists; drop --new-log to append "
                            "to it, or give another --out", out);
    char id[NS_RUN_ID_LEN + 1];
    if (read_run_id(out, id, sizeof id) < 0)
        return ns_fail(err, "run log '%s' (--out) to append to does not open as HDF5; give "
                            "the log of the run that wrote '%s'", out, cfg->resume_path);
    if (strcmp(id, want) != 0)
        return ns_fail(err, "checkpoint '%s' belongs to another run than log '%s' (run_id %s "
                            "against %s): resuming would mix two runs in one log; give the "
                            "checkpoint of that log, or --new-log with a new --out",
                       cfg->resume_path, out, shown(want), shown(id));
    return 0;
}

/* The checkpoint path this run will write: never another run's checkpoint. */
static int check_checkpoint_path(const NsRunConfig *cfg, const NsCheckpointHeader *ckpt,
                                 char *err)
{
    const char *path = cfg->checkpoint_path;
    if (access(path, F_OK) != 0 || ns_same_file(path, cfg->resume_path))
        return 0;
    char id[NS_RUN_ID_LEN + 1];
    if (read_run_id(path, id, sizeof id) == 0 && strcmp(id, ckpt->cfg.run_id) == 0)
        return 0;
    return ns_fail(err, "checkpoint '%s' (--checkpoint) exists and is not a checkpoint of the "
                        "run being resumed from '%s'; give another --checkpoint", path,
                   cfg->resume_path);
}

int ns_resume_check(const NsRunConfig *cfg, const NsCheckpointHeader *ckpt, char *err)
{
    /* the model first: flags that change it are the likelier mistake (the vocabulary is the
     * checkpoint's whatever --vocab-size says) */
    NsModelConfig asked = cfg->model;
    asked.vocab_size = ckpt->cfg.model.vocab_size;
    if (ns_model_config_compare(&ckpt->cfg.model, &asked, err) < 0)
        return ns_fail_context(err, "--resume '%s'", cfg->resume_path);
    if (cfg->steps <= ckpt->step)
        return ns_fail(err, "checkpoint '%s' is at step %lld, and --steps %ld leaves nothing to "
                            "train; give --steps above %lld to continue the run",
                       cfg->resume_path, (long long)ckpt->step, cfg->steps,
                       (long long)ckpt->step);
    if (check_log(cfg, ckpt, err) < 0 || check_checkpoint_path(cfg, ckpt, err) < 0)
        return -1;
    return 0;
}
