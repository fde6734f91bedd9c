#include "train.h"

#include <cblas.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "eval_stats.h"
#include "fileguard.h"
#include "run_binding.h"
#include "util.h"

/* ------------------------------------------------------------ stop signals */

static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) { stop_signal = sig; }

void ns_install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int ns_stop_requested(void) { return stop_signal != 0; }

/* Every rank stops after the same step: a signal may reach the ranks during different steps,
 * so they agree on it (a one-number allreduce per step). */
int ns_stop_agreed(NsComm *comm)
{
    int64_t stop = stop_signal != 0;
    if (comm->size > 1)
        comm->max_i64(comm, &stop, 1);
    return stop != 0;
}

int ns_private_output(char *path, size_t n)
{
    NsComm *comm = ns_comm_world();
    if (comm->rank == 0)
        return 0;
    const char *dir = getenv("TMPDIR");
    snprintf(path, n, "%s/normscope-rank%d-%ld.h5", dir && dir[0] ? dir : "/tmp", comm->rank,
             (long)getpid());
    return 1;
}

/* Rank > 0: the run log goes to a private temporary file (see train.h). */
static void use_private_log(NsTrainer *tr)
{
    tr->private_log = ns_private_output(tr->cfg.out_path, sizeof tr->cfg.out_path);
}

/* ------------------------------------------------------------ set-up */

/* Builds the model from the checkpoint whose header h the caller has read. */
static int resume_from_checkpoint(NsTrainer *tr, const NsCheckpointHeader *h, char *err)
{
    /* The data must be tokenized with the checkpoint's vocabulary, so ids mean the same. */
    NsDataSpec spec = ns_run_config_data_spec(&tr->cfg);
    spec.tokenizer = h->cfg.tokenizer;
    if (ns_dataset_load(&tr->data, &spec, h->vocab, h->vocab_n, err) < 0)
        return -1;
    tr->cfg.model.vocab_size = tr->data.vocab.size;
    /* Flags given with --resume may change the model; the one check that they did not. */
    if (ns_model_config_compare(&h->cfg.model, &tr->cfg.model, err) < 0)
        return ns_fail_context(err, "--resume '%s'", tr->cfg.resume_path);
    ns_model_init(&tr->model, &tr->cfg.model, tr->cfg.seed);
    ns_adamw_init(&tr->opt, &tr->cfg.optim, tr->model.layout.total);
    tr->params_init = ns_xmalloc(sizeof(float) * tr->model.layout.total);
    return ns_checkpoint_load(tr->cfg.resume_path, &tr->model, &tr->opt, &tr->data.train_batches,
                              tr->params_init, &tr->step, err);
}

/* Outputs that cannot be written should stop the run before it trains, not after: checks that
 * the directory of `path` exists and is writable. */
static int check_writable(const char *path, const char *what, const char *flag, char *err)
{
    char dir[NS_PATH_LEN];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if (access(dir, W_OK) != 0)
        return ns_fail(err, "cannot write %s '%s': directory '%s' does not exist or is not "
                            "writable (%s)", what, path, dir, flag);
    return 0;
}

/* The data's memory, checked with the model's (ns_model_config_validate) before anything is
 * allocated: the embedded corpus is text, then ids and a copy per batching (about 12 bytes per
 * byte of text); a --threads far beyond the cores only slows every thread down. */
static int check_resources(const NsRunConfig *c, char *err)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && c->threads > 4 * cores)
        return ns_fail(err, "--threads %d is more than 4 times this machine's %ld cores; give "
                            "at most %ld", c->threads, cores, 4 * cores);
    double need = ns_model_config_memory(&c->model) + 12.0 * (double)c->synth_bytes;
    char a[32], b[32];
    if (c->corpus_path[0] || !ns_exceeds_memory(need, a, b, sizeof a))
        return 0;
    return ns_fail(err, "--synth-bytes %ld: the corpus and model need about %s of memory, more "
                        "than this machine's %s; give a smaller --synth-bytes", c->synth_bytes,
                   a, b);
}

int ns_trainer_init(NsTrainer *tr, const NsRunConfig *cfg, char *err)
{
    if (!cfg->resume_path[0])
        return ns_trainer_init_resume(tr, cfg, NULL, err);
    memset(tr, 0, sizeof *tr); /* ns_trainer_free must work after an error here */
    tr->lock_out = tr->lock_checkpoint = -1;
    NsCheckpointHeader h;
    ns_run_config_default(&h.cfg);
    int rc = ns_checkpoint_read_header(cfg->resume_path, &h, err);
    if (rc == 0)
        rc = ns_trainer_init_resume(tr, cfg, &h, err);
    ns_checkpoint_header_free(&h);
    return rc;
}

int ns_trainer_init_resume(NsTrainer *tr, const NsRunConfig *cfg, const NsCheckpointHeader *ckpt,
                           char *err)
{
    memset(tr, 0, sizeof *tr);
    tr->lock_out = tr->lock_checkpoint = -1;
    tr->cfg = *cfg;
    tr->vocab_cap = cfg->model.vocab_size;
    ns_run_config_finish(&tr->cfg);
    tr->comm = ns_comm_world();
    tr->cfg.world_size = tr->comm->size;
    /* a new run, or a resumed one from before run_id: from here on its files carry one; a
     * resume into a new log (--new-log) is a branch of its run, with an identity of its own */
    if (!tr->cfg.run_id[0] || tr->cfg.new_log)
        ns_run_id_generate(tr->cfg.run_id);
    if (check_resources(&tr->cfg, err) < 0)
        return -1;
    if (tr->comm->rank > 0) {
        tr->quiet = 1;
        use_private_log(tr);
    } else if (check_writable(tr->cfg.out_path, "run log", "--out", err) < 0 ||
               check_writable(tr->cfg.checkpoint_path, "checkpoint", "--checkpoint", err) < 0)
        return -1;
    /* Before anything is read or truncated: a second run on the same files stops here. */
    if (!tr->private_log) {
        tr->lock_out = ns_lock_acquire(tr->cfg.out_path, "run log", "--out", err);
        if (tr->lock_out < 0)
            return -1;
        tr->lock_checkpoint =
            ns_lock_acquire(tr->cfg.checkpoint_path, "checkpoint", "--checkpoint", err);
        if (tr->lock_checkpoint < 0)
            return -1;
    }
    openblas_set_num_threads(tr->cfg.threads);
    if (ckpt) {
        if (resume_from_checkpoint(tr, ckpt, err) < 0)
            return -1;
    } else {
        NsDataSpec spec = ns_run_config_data_spec(&tr->cfg);
        if (ns_dataset_load(&tr->data, &spec, NULL, 0, err) < 0)
            return -1;
        /* --vocab-size is a cap; the model's V is the vocabulary actually built. */
        tr->cfg.model.vocab_size = tr->data.vocab.size;
        ns_model_init(&tr->model, &tr->cfg.model, tr->cfg.seed);
        ns_adamw_init(&tr->opt, &tr->cfg.optim, tr->model.layout.total);
        tr->params_init = ns_xmalloc(sizeof(float) * tr->model.layout.total);
        memcpy(tr->params_init, tr->model.params, sizeof(float) * tr->model.layout.total);
    }
    tr->tensor_sums = ns_xcalloc((size_t)tr->model.layout.n_tensors, sizeof(NsTensorSums));
    int B = tr->cfg.model.batch_size, T = tr->cfg.model.seq_len;
    tr->tokens = ns_xcalloc((size_t)B * (T + 1), sizeof(int32_t));
    tr->mask = ns_xcalloc((size_t)B * T, 1);
    tr->first_step = tr->step;
    tr->last_eval_loss = NAN;
    return 0;
}

void ns_trainer_free(NsTrainer *tr)
{
    free(tr->tokens);
    free(tr->mask);
    free(tr->params_init);
    free(tr->tensor_sums);
    tr->tensor_sums = NULL;
    if (tr->model.params) {
        ns_adamw_free(&tr->opt);
        ns_model_free(&tr->model);
    }
    ns_dataset_free(&tr->data);
    ns_lock_release(tr->lock_checkpoint, tr->cfg.checkpoint_path);
    ns_lock_release(tr->lock_out, tr->cfg.out_path);
    tr->lock_out = tr->lock_checkpoint = -1;
    if (tr->private_log)
        remove(tr->cfg.out_path);
    tr->private_log = 0;
}

/* ------------------------------------------------------------ one step */

int ns_trainer_step(NsTrainer *tr, NsStepInfo *info)
{
    NsModel *m = &tr->model;
    double t0 = ns_now_seconds();
    memset(info, 0, sizeof *info);
    int B, T; /* token-budget batches (--max-tokens) are smaller than B x T */
    info->n_real = ns_batcher_next_shaped(&tr->data.train_batches, tr->tokens, tr->mask, &B, &T);
    ns_model_set_batch_shape(m, B, T);
    info->n_positions = B * T;
    info->step = tr->step + 1;
    if (tr->observer.step_begin)
        tr->observer.step_begin(tr->observer.ctx, tr, info->step);
    info->loss = ns_model_forward(m, tr->tokens, tr->mask, 1);
    info->penalty = m->penalty;
    ns_model_zero_grad(m);
    ns_model_backward(m);
    info->lr = ns_lr_at(&tr->cfg.optim, info->step);
    /* one pass over the gradient gives the norm clipping uses and each tensor's share */
    info->grad_norm = ns_tensor_grad_norm(m->grads, &m->layout, tr->tensor_sums);
    if (tr->observer.after_backward)
        tr->observer.after_backward(tr->observer.ctx, tr, info);
    int diverged = !isfinite(info->loss) || !isfinite(info->grad_norm);
    if (!diverged) {
        ns_clip_grads(m->grads, m->layout.total, tr->cfg.optim.clip, info->grad_norm);
        if (tr->observer.want_tensor_sums)
            ns_adamw_step_observed(&tr->opt, m->params, m->grads, info->lr, &m->layout,
                                   tr->params_init, tr->tensor_sums);
        else
            ns_adamw_step(&tr->opt, m->params, m->grads, info->lr);
        tr->step++;
    }
    double dt = ns_now_seconds() - t0;
    info->step_seconds = dt;
    info->tokens_per_s = info->n_positions / dt;
    info->real_tokens_per_s = info->n_real / dt;
    info->wall_time = ns_now_seconds() - tr->start_time;
    /* A diverged step is recorded too (without an update), so the log shows where and how. */
    if (tr->observer.step_end)
        tr->observer.step_end(tr->observer.ctx, tr, info);
    return diverged;
}

/* ------------------------------------------------------------ evaluation */

static double inference_loss(void *model, const int32_t *tokens, const uint8_t *mask)
{
    return ns_model_forward(model, tokens, mask, 0);
}

double ns_evaluate_corpus(NsModel *m, const NsCorpus *corpus, NsBatching batching, int max_batches,
                          uint64_t seed, char *err)
{
    int B = m->cfg.batch_size, T = m->cfg.seq_len;
    ns_model_set_batch_shape(m, B, T); /* training may have left a smaller one */
    return ns_evaluate_batches(corpus, batching, B, T, max_batches, seed, inference_loss, m, err);
}

double ns_trainer_evaluate(NsTrainer *tr, char *err)
{
    return ns_evaluate_corpus(&tr->model, &tr->data.valid, tr->cfg.batching,
                              tr->cfg.eval_batches, tr->cfg.seed, err);
}

/* ------------------------------------------------------------ the loop */

static void format_duration(char *out, size_t n, double seconds)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(out, n, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else if (s >= 60)
        snprintf(out, n, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(out, n, "%lds", s);
}

/* tps: real (non-padding) tokens per second, the headline speed; step_s: mean step time. */
static void report_progress(NsTrainer *tr, const NsStepInfo *info, double mean_loss, double tps,
                            double step_s, int tty)
{
    if (tr->quiet)
        return;
    char eta[32];
    double remaining = (double)(tr->cfg.steps - info->step);
    format_duration(eta, sizeof eta, remaining * step_s);
    if (tty)
        fprintf(stderr, "\r\033[Kstep %lld/%ld | loss %.4f | lr %.2e | %.0f tok/s | ETA %s",
                (long long)info->step, tr->cfg.steps, mean_loss, (double)info->lr, tps, eta);
    else
        fprintf(stderr, "step %lld/%ld loss %.4f lr %.3e grad_norm %.3f tok/s %.0f eta %s\n",
                (long long)info->step, tr->cfg.steps, mean_loss, (double)info->lr,
                info->grad_norm, tps, eta);
}

/* Returns 0, -1 on error, 1 when the validation loss is not finite (divergence), or 2 when a
 * stop signal abandoned the pass (nothing recorded). */
static int run_eval(NsTrainer *tr, int tty, char *err)
{
    err[0] = '\0';
    double loss = ns_trainer_evaluate(tr, err);
    if (isnan(loss) && err[0])
        return strcmp(err, NS_EVAL_STOPPED) == 0 ? 2 : -1;
    tr->last_eval_loss = loss;
    if (!tr->quiet)
        fprintf(stderr, "%sstep %lld validation loss %.4f ppl %.2f\n", tty ? "\r\033[K" : "",
                (long long)tr->step, loss, exp(loss));
    if (tr->observer.eval_end)
        tr->observer.eval_end(tr->observer.ctx, tr, tr->step, loss, exp(loss));
    return isfinite(loss) ? 0 : 1;
}

static int flush_observer(NsTrainer *tr, char *err)
{
    return tr->observer.flush ? tr->observer.flush(tr->observer.ctx, err) : 0;
}

static int write_checkpoint(NsTrainer *tr, char *err)
{
    if (tr->comm->rank > 0) /* every rank holds the same model, optimizer and data position */
        return 0;
    return ns_checkpoint_save(tr->cfg.checkpoint_path, &tr->cfg, &tr->model, &tr->opt,
                              &tr->data.train_batches, &tr->data.vocab, tr->params_init, tr->step,
                              &tr->observer.checkpoint_extra, err);
}

/* The log is flushed before every checkpoint, so a checkpoint is never ahead of the log and a
 * resume from it loses no step. */
static int save_checkpoint(NsTrainer *tr, char *err)
{
    return flush_observer(tr, err) < 0 ? -1 : write_checkpoint(tr, err);
}

/* A write failed (err says which and why): the run stops with exit 1, but first keeps the
 * progress it can in a checkpoint (where the disk allows; else the previous one is intact). */
static int stop_on_write_failure(NsTrainer *tr, char *err)
{
    char inner[NS_ERRLEN] = "";
    size_t len = strlen(err);
    if (strstr(err, tr->cfg.checkpoint_path) == NULL && write_checkpoint(tr, inner) == 0)
        snprintf(err + len, NS_ERRLEN - len, "; checkpoint '%s' saved at step %lld",
                 tr->cfg.checkpoint_path, (long long)tr->step);
    else
        snprintf(err + len, NS_ERRLEN - len, "; the last good checkpoint '%s' is kept",
                 tr->cfg.checkpoint_path);
    return NS_EXIT_ERROR;
}

/* Finishes a run that stopped early: flush what was recorded, keep a checkpoint. */
static int finish_early(NsTrainer *tr, int code, char *err)
{
    char inner[NS_ERRLEN] = "";
    if (flush_observer(tr, inner) < 0) {
        snprintf(err, NS_ERRLEN, "%s", inner);
        return stop_on_write_failure(tr, err);
    }
    if (code == NS_EXIT_INTERRUPTED) {
        if (write_checkpoint(tr, inner) < 0) {
            snprintf(err, NS_ERRLEN, "%s", inner);
            return NS_EXIT_ERROR;
        }
        ns_fail(err, "stopped by signal after step %lld; log flushed to '%s', checkpoint '%s' "
                     "(continue with --resume %s)", (long long)tr->step, tr->cfg.out_path,
                tr->cfg.checkpoint_path, tr->cfg.checkpoint_path);
    }
    return code;
}

int ns_trainer_run(NsTrainer *tr, char *err)
{
    int tty = isatty(STDERR_FILENO);
    tr->start_time = ns_now_seconds();
    double loss_sum = 0.0, time_sum = 0.0, real_sum = 0.0;
    int window = 0;
    while (tr->step < tr->cfg.steps) {
        NsStepInfo info;
        if (ns_trainer_step(tr, &info) != 0) {
            if (tty && !tr->quiet)
                fputc('\n', stderr);
            ns_fail(err, "training diverged at step %lld: loss %g, gradient norm %g; lower --lr "
                         "or raise --warmup", (long long)info.step, info.loss, info.grad_norm);
            return finish_early(tr, NS_EXIT_DIVERGED, err);
        }
        loss_sum += info.loss;
        time_sum += info.step_seconds;
        real_sum += info.n_real;
        window++;
        int last = tr->step == tr->cfg.steps;
        if (tty || window >= tr->cfg.log_every || last) {
            report_progress(tr, &info, loss_sum / window, real_sum / time_sum,
                            time_sum / window, tty);
            if (!tty || window >= tr->cfg.log_every) {
                loss_sum = time_sum = real_sum = 0.0;
                window = 0;
            }
        }
        if ((tr->cfg.eval_every > 0 && tr->step % tr->cfg.eval_every == 0) || last) {
            int rc = run_eval(tr, tty, err);
            if (rc < 0)
                return NS_EXIT_ERROR;
            if (rc == 2)
                return finish_early(tr, NS_EXIT_INTERRUPTED, err);
            if (rc > 0) {
                ns_fail(err, "training diverged at step %lld: validation loss %g (training "
                             "loss %g); lower --lr or raise --warmup", (long long)tr->step,
                        tr->last_eval_loss, info.loss);
                return finish_early(tr, NS_EXIT_DIVERGED, err);
            }
        }
        if (tr->step % tr->cfg.flush_every == 0 && flush_observer(tr, err) < 0)
            return stop_on_write_failure(tr, err);
        if (tr->cfg.checkpoint_every > 0 && tr->step % tr->cfg.checkpoint_every == 0 &&
            save_checkpoint(tr, err) < 0)
            return stop_on_write_failure(tr, err);
        if (ns_stop_agreed(tr->comm) && !last)
            return finish_early(tr, NS_EXIT_INTERRUPTED, err);
    }
    if (save_checkpoint(tr, err) < 0)
        return stop_on_write_failure(tr, err);
    return NS_EXIT_OK;
}
