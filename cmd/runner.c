/* The run executor of study and sweep (runner.h): plans cells from the disk, then keeps up to J
 * child `normscope train` processes running, each in its own process group so that a terminal's
 * Ctrl-C reaches the runner alone and is forwarded to each child once (a launcher such as mpirun
 * treats a second SIGINT as "abort now"). */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "logread.h"
#include "model_io.h"
#include "sweep_summary.h"
#include "util.h"

#define MAX_LAUNCHER_WORDS 32
#define MAX_CHILD_ARGS 512

static const NsCommandSpec TRAIN_SPEC = {.name = "train", .usage = "[flags]"};

int ns_runner_check_cell(NsCell *cell, const char *log_path, NsRunConfig *cfg, char *err)
{
    static const char *const RUNNER_SETS[] = {"--out", "--checkpoint", "--resume", "--overwrite"};
    ns_run_config_default(cfg);
    NsOptSet set = {NS_RUN_OPTIONS, NS_N_RUN_OPTIONS, cfg, NS_CMD_TRAIN, 0};
    NsParse p = {0};
    char **argv = ns_xcalloc((size_t)cell->n_args + 1, sizeof *argv);
    memcpy(argv, cell->args, sizeof *argv * (size_t)cell->n_args); /* the parser reorders */
    int rc = ns_options_parse(&TRAIN_SPEC, &set, 1, cell->n_args, argv, &p, err);
    free(argv);
    if (rc > 0)
        return ns_fail(err, "--help is not a flag of a run");
    if (rc < 0 || ns_run_config_resolve(cfg, &p, err) < 0 ||
        ns_run_config_validate_all(cfg, err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof RUNNER_SETS / sizeof RUNNER_SETS[0]; i++)
        if (ns_parse_given(&p, RUNNER_SETS[i]))
            return ns_fail(err, "%s is set for each run by the runner; drop it", RUNNER_SETS[i]);
    snprintf(cfg->out_path, sizeof cfg->out_path, "%s", log_path);
    cfg->checkpoint_path[0] = 0;
    ns_run_config_finish(cfg);
    snprintf(cell->log_path, sizeof cell->log_path, "%s", cfg->out_path);
    snprintf(cell->ckpt_path, sizeof cell->ckpt_path, "%s", cfg->checkpoint_path);
    size_t len = strlen(log_path);
    int h5 = len > 3 && strcmp(log_path + len - 3, ".h5") == 0;
    snprintf(cell->output_path, sizeof cell->output_path, "%.*s.out",
             (int)(h5 ? len - 3 : len), log_path);
    cell->steps = cfg->steps;
    cell->threads = ns_parse_given(&p, "--threads") ? cfg->threads : 0;
    cell->one_thread = ns_threads_for_model(&cfg->model, 2) == 1;
    cell->code = -1;
    return 0;
}

int ns_runner_split(const char *launcher, char *buf, size_t buf_len, char **words, int cap,
                    char *err)
{
    snprintf(buf, buf_len, "%s", launcher ? launcher : "");
    int n = 0;
    for (char *w = strtok(buf, " \t"); w; w = strtok(NULL, " \t")) {
        if (n == cap)
            return ns_fail(err, "--launcher: more than %d words", cap);
        words[n++] = w;
    }
    return n > 0 ? n : ns_fail(err, "--launcher is empty; give a command such as 'mpirun -np 2'");
}

/* The processes a launcher starts per cell: the value of -np/-n/--np, else 1. */
static long launcher_ranks(const char *launcher)
{
    char buf[512], *words[MAX_LAUNCHER_WORDS], err[NS_ERRLEN];
    int n = launcher ? ns_runner_split(launcher, buf, sizeof buf, words, MAX_LAUNCHER_WORDS, err)
                     : 0;
    for (int i = 0; i + 1 < n; i++)
        if (!strcmp(words[i], "-np") || !strcmp(words[i], "-n") || !strcmp(words[i], "--np")) {
            long r = strtol(words[i + 1], NULL, 10);
            return r > 0 ? r : 1;
        }
    return 1;
}

int ns_runner_threads(int jobs, const char *launcher)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long t = (cores > 0 ? cores : 1) / ((long)(jobs > 0 ? jobs : 1) * launcher_ranks(launcher));
    return t < 1 ? 1 : (int)t;
}

/* ------------------------------------------------------------------ the plan */

/* The first setting that makes a run what it is (model, optimizer, data, seed) and differs
 * between the log's configuration and the cell's, or NULL. The schedule, output and probe rows
 * may change between sessions (--steps extends a run) or are resolved by train itself. */
static const NsOption *log_differs(const NsLog *log, const NsRunConfig *want, char *err)
{
    NsRunConfig got = *want;
    if (ns_read_run_attrs(log->file, &got, err) < 0)
        return NULL;
    /* vocab_size is the vocabulary the data built (at most the cap); the cell asks for a cap,
     * which the log keeps as vocab_cap (logs written before it existed: the built size). */
    long cap;
    if (ns_log_attr_long(log, "vocab_cap", &cap) == 0)
        got.model.vocab_size = (int)cap;
    for (size_t i = 0; i < NS_N_RUN_OPTIONS; i++) {
        const NsOption *o = &NS_RUN_OPTIONS[i];
        int defines = o->section == NS_SEC_MODEL || o->section == NS_SEC_OPTIM ||
                      o->section == NS_SEC_DATA || (o->attr && !strcmp(o->attr, "seed"));
        if (defines && ns_options_first_difference(o, 1, 0, &got, want))
            return o;
    }
    return NULL;
}

/* The plan of one cell with reuse; -1 with err for a log of another configuration. */
static int reuse_plan(NsCell *c, const NsRunConfig *cfg, char *why, size_t wn, char *err)
{
    int has_ckpt = access(c->ckpt_path, F_OK) == 0;
    NsLog log;
    char lerr[NS_ERRLEN];
    if (access(c->log_path, F_OK) != 0) {
        /* a checkpoint without its log resumes nothing (train refuses it): train again */
        snprintf(why, wn, "no log");
        return NS_CELL_REPLACE;
    } else if (ns_log_open(&log, c->log_path, lerr) < 0) {
        snprintf(why, wn, "%s", lerr);
    } else {
        NsRunOutcome o;
        ns_run_outcome(&log, &o);
        const NsOption *d = log_differs(&log, cfg, lerr);
        ns_log_close(&log);
        if (d)
            return ns_fail(err, "%s was made with other settings (%s differs); remove it or "
                                "choose another output directory", c->log_path,
                           d->flag ? d->flag : d->attr);
        if (!isnan(o.diverged_at) || (c->steps > 0 && o.steps_done >= (double)c->steps)) {
            snprintf(why, wn, isnan(o.diverged_at) ? "finished, %.0f steps"
                                                   : "diverged at step %.0f",
                     isnan(o.diverged_at) ? o.steps_done : o.diverged_at);
            return NS_CELL_FINISHED;
        }
        snprintf(why, wn, "stopped at step %.0f of %ld", o.steps_done, c->steps);
    }
    return has_ckpt ? NS_CELL_RESUME : NS_CELL_REPLACE;
}

int ns_runner_plan(const NsRunner *r, NsCell *cells, const NsRunConfig *cfgs, int n, char *err)
{
    static const char *const VERB[] = {"new", "replacing", "resuming", "keeping"};
    int count[4] = {0};
    for (int i = 0; i < n; i++) {
        NsCell *c = &cells[i];
        char why[NS_ERRLEN] = "";
        int exists = access(c->log_path, F_OK) == 0 || access(c->ckpt_path, F_OK) == 0;
        int plan = !exists ? NS_CELL_NEW
                   : r->reuse ? reuse_plan(c, &cfgs[i], why, sizeof why, err)
                              : NS_CELL_REPLACE;
        if (plan < 0)
            return -1;
        c->plan = (NsCellPlan)plan;
        count[plan]++;
        if (plan == NS_CELL_REPLACE && !why[0])
            snprintf(why, sizeof why, "exists");
        if (plan != NS_CELL_NEW)
            fprintf(stderr, "== %s: %s %s (%s)\n", r->who, VERB[plan], c->log_path, why);
    }
    fprintf(stderr, "== %s: %d runs: %d to keep, %d to resume, %d to replace, %d new\n", r->who,
            n, count[NS_CELL_FINISHED], count[NS_CELL_RESUME], count[NS_CELL_REPLACE],
            count[NS_CELL_NEW]);
    return 0;
}

/* ------------------------------------------------------------------ running */

static volatile sig_atomic_t g_signal = 0;
static void on_signal(int sig) { g_signal = sig; }

typedef struct {
    pid_t pid;
    int cell;
    double t0;
} Slot;

typedef struct {
    const NsRunner *r;
    char exe[NS_PATH_LEN];
    char launch_buf[512];
    char *launch[MAX_LAUNCHER_WORDS];
    int n_launch, threads;
    Slot *slots;
    int running, done, left, failed;
    double seconds_sum; /* of the cells run to their end in this session */
    int timed;
} Pool;

static int child_argv(const Pool *p, const NsCell *c, char **argv, char *threads)
{
    int n = 0;
    for (int i = 0; i < p->n_launch; i++)
        argv[n++] = p->launch[i];
    argv[n++] = (char *)p->exe;
    argv[n++] = "train";
    for (int i = 0; i < c->n_args && n < MAX_CHILD_ARGS - 8; i++)
        argv[n++] = c->args[i];
    argv[n++] = "--out";
    argv[n++] = (char *)c->log_path;
    if (c->threads == 0) { /* else the cell's own --threads stands */
        argv[n++] = "--threads";
        argv[n++] = threads;
    }
    if (c->plan == NS_CELL_RESUME) {
        argv[n++] = "--resume";
        argv[n++] = (char *)c->ckpt_path;
    } else if (c->plan == NS_CELL_REPLACE) {
        argv[n++] = "--overwrite";
    }
    argv[n] = NULL;
    return n;
}

static int start_cell(Pool *p, NsCell *c, int index, char *err)
{
    char threads[16], *argv[MAX_CHILD_ARGS];
    snprintf(threads, sizeof threads, "%d", c->one_thread ? 1 : p->threads);
    int argc = child_argv(p, c, argv, threads);
    int fd = open(c->output_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0)
        return ns_fail(err, "cannot write '%s': %s", c->output_path, strerror(errno));
    dprintf(fd, "== %s:", p->r->who);
    for (int i = 0; i < argc; i++)
        dprintf(fd, " %s", argv[i]);
    dprintf(fd, "\n");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execvp(argv[0], argv);
        dprintf(STDERR_FILENO, "cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    if (pid < 0)
        return ns_fail(err, "cannot start a process for %s: %s", c->name, strerror(errno));
    for (int s = 0; s < p->r->jobs; s++)
        if (p->slots[s].pid == 0) {
            p->slots[s] = (Slot){pid, index, ns_now_seconds()};
            break;
        }
    p->running++;
    p->left--;
    fprintf(stderr, "== %s: %s %s -> %s\n", p->r->who,
            c->plan == NS_CELL_RESUME ? "resuming" : "training", c->name, c->log_path);
    return 0;
}

/* The last non-empty line of a cell's output, for the message of a failed cell. */
static void last_line(const char *path, char *out, size_t n)
{
    snprintf(out, n, "(no output)");
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *start = strrchr(line, '\r') ? strrchr(line, '\r') + 1 : line;
        if (start[0])
            snprintf(out, n, "%.500s", start);
    }
    fclose(f);
}

static void progress(const Pool *p)
{
    char eta[48] = "ETA ?";
    if (p->timed > 0) {
        double per_cell = p->seconds_sum / p->timed;
        double rest = per_cell * (p->left + 0.5 * p->running) / p->r->jobs;
        snprintf(eta, sizeof eta, "ETA %.0f min", ceil(rest / 60.0));
    }
    fprintf(stderr, "== %s: %d done, %d running, %d left, %s\n", p->r->who, p->done, p->running,
            p->left, p->left + p->running > 0 ? eta : "all done");
}

/* Records a child's end; returns its cell, and marks a failure. */
static void finish_child(Pool *p, NsCell *cells, pid_t pid, int status, char *err)
{
    for (int s = 0; s < p->r->jobs; s++) {
        Slot *sl = &p->slots[s];
        if (sl->pid != pid)
            continue;
        NsCell *c = &cells[sl->cell];
        c->code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        c->seconds = ns_now_seconds() - sl->t0;
        sl->pid = 0;
        p->running--;
        p->done++;
        if (c->code == NS_EXIT_OK || c->code == NS_EXIT_DIVERGED) {
            p->seconds_sum += c->seconds;
            p->timed++;
            fprintf(stderr, "== %s: %s %s in %.0f s\n", p->r->who, c->name,
                    c->code ? "diverged (its log is kept)" : "finished", c->seconds);
        } else if (!g_signal && !p->failed) {
            char line[600];
            last_line(c->output_path, line, sizeof line);
            ns_fail(err, "%s failed (exit %d): %s [all output: %s]", c->name, c->code, line,
                    c->output_path);
            p->failed = 1;
        }
        return;
    }
}

static void forward_signal(const Pool *p, int sig)
{
    for (int s = 0; s < p->r->jobs; s++)
        if (p->slots[s].pid > 0)
            kill(p->slots[s].pid, sig);
}

static int pool_init(Pool *p, const NsRunner *r, NsCell *cells, int n, char *err)
{
    memset(p, 0, sizeof *p);
    p->r = r;
    ssize_t len = readlink("/proc/self/exe", p->exe, sizeof p->exe - 1);
    if (len <= 0)
        return ns_fail(err, "cannot find the normscope program (/proc/self/exe)");
    p->exe[len] = 0;
    if (r->launcher && (p->n_launch = ns_runner_split(r->launcher, p->launch_buf,
                                                      sizeof p->launch_buf, p->launch,
                                                      MAX_LAUNCHER_WORDS, err)) < 0)
        return -1;
    p->threads = ns_runner_threads(r->jobs, r->launcher);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && r->jobs * launcher_ranks(r->launcher) > cores)
        fprintf(stderr, "normscope: warning: %d runs x %ld processes each exceed the %ld cores: "
                        "they will compete for them (lower --jobs)\n",
                r->jobs, launcher_ranks(r->launcher), cores);
    p->slots = ns_xcalloc((size_t)r->jobs, sizeof *p->slots);
    for (int i = 0; i < n; i++)
        p->left += cells[i].plan != NS_CELL_FINISHED;
    return 0;
}

int ns_runner_run(const NsRunner *r, NsCell *cells, int n, char *err)
{
    Pool p;
    if (pool_init(&p, r, cells, n, err) < 0)
        return -1;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    g_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int next = 0, forwarded = 0, rc = 0;
    while (1) {
        while (!g_signal && !p.failed && p.running < r->jobs && next < n) {
            int start = cells[next].plan != NS_CELL_FINISHED;
            if (start && start_cell(&p, &cells[next], next, err) < 0) {
                p.failed = 1;
                rc = -1;
            }
            next++;
            if (start && !p.failed)
                progress(&p);
        }
        if (p.running == 0)
            break;
        if (g_signal && !forwarded) {
            fprintf(stderr, "== %s: signal received; stopping the %d running runs (they save a "
                            "checkpoint)\n", r->who, p.running);
            forward_signal(&p, g_signal);
            forwarded = 1;
        }
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            finish_child(&p, cells, pid, status, err);
            progress(&p);
        } else if (pid == 0 || errno == EINTR) {
            nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
        } else {
            break; /* no children left that are ours: nothing to wait for */
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(p.slots);
    if (g_signal) {
        ns_fail(err, "%s interrupted: %d runs still to do; run the same command again to resume "
                     "them", r->who, p.left + (p.done - p.timed));
        return NS_RUNNER_INTERRUPTED;
    }
    return p.failed ? -1 : rc;
}
