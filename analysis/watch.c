/* normscope watch: a live view of a run log that `normscope train` is still writing. The log is
 * opened once in SWMR-read mode (ns_log_open) and every series is re-read at each refresh
 * (ns_log_read_series refreshes the dataset extent), so new rows appear without reopening.
 *
 * On a terminal each snapshot redraws the screen in place (ANSI clear + home); otherwise
 * (a pipe, a file, a CI log) snapshots are printed as successive blocks, one per new step.
 *
 * When it stops (documented in --help too):
 *   1. diverged: the last recorded training loss or gradient norm is not finite -> exit 3
 *   2. finished: the last /steps/step reached the root attribute `steps`      -> exit 0
 *   3. stalled: the file (size, mtime) and its step count have not changed for 3 intervals in
 *      a row AND for at least max(30 s, 3 x flush_every x the slowest step so far), counted
 *      from the file's modification time when watching starts. The writer flushes every
 *      flush_every steps, so a live run grows at least that often; the time floor keeps a
 *      slow run (long evaluations, Lipschitz probes) from being taken for a dead one. Such a
 *      run stopped without finishing (crashed, killed, interrupted)           -> exit 1
 *   --once prints one snapshot and exits 0 (its status applies rules 1-3, with the file's age
 *   since its last modification standing in for the intervals); Ctrl-C stops watching (the
 *   run goes on) -> exit 0.
 * Before the first snapshot it waits for a log that does not exist yet (up to 60 s) or that
 * the writer is still creating (modified in the last 5 s, up to 10 s). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "watch.h"
#include "logread.h"
#include "stats.h"
#include "util.h"
#include "sanitize.h"

#define LOSS_WINDOW 50
#define STALL_INTERVALS 3
#define STALL_FLOOR_S 30.0 /* above a long validation pass, which writes nothing */

typedef enum { RUNNING, FINISHED, DIVERGED, STALLED, STOPPED } WatchState;

static const char *const STATE_TEXT[] = {
    "running", "finished", "diverged (non-finite loss)", "stopped growing before the last step",
    "stopped watching (Ctrl-C); the run goes on",
};

/* What the end-of-run rules look at, taken from one snapshot. */
typedef struct {
    double step, total, loss, grad_norm, slowest_step_s;
    size_t rows;
    size_t secs_seen; /* rows of steps/step_seconds folded into slowest_step_s (kept across
                       * refreshes: each reads only the new rows) */
    char damage[400]; /* non-empty: the log holds values no run writes */
} Progress;

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ------------------------------------------------------------------------------------------
 * One snapshot */

/* The last k rows of a series (fewer if it is shorter), NULL if absent; *rows its length. Every
 * read of a refresh is such a tail, or the rows new since the last refresh: the cost of a
 * refresh does not grow with the run. */
static double *tail(const NsLog *log, const char *path, size_t k, size_t *n, size_t *rows)
{
    char err[NS_ERRLEN];
    *n = *rows = 0;
    if (!ns_log_has(log, path))
        return NULL;
    free(ns_log_read_rows(log, path, SIZE_MAX, n, rows, err)); /* its length only */
    return ns_log_read_rows(log, path, *rows > k ? *rows - k : 0, n, rows, err);
}

static double last_of(const NsLog *log, const char *path)
{
    size_t n = 0, rows = 0;
    double *v = tail(log, path, 1, &n, &rows);
    double r = n ? v[n - 1] : NAN;
    free(v);
    return r;
}

/* The slowest step so far, from the step times written since the last refresh. */
static void follow_step_seconds(const NsLog *log, Progress *p)
{
    char err[NS_ERRLEN];
    size_t n = 0, rows = 0;
    if (!ns_log_has(log, "steps/step_seconds"))
        return;
    double *secs = ns_log_read_rows(log, "steps/step_seconds", p->secs_seen, &n, &rows, err);
    double slow = ns_finite_max(secs, n);
    if (isfinite(slow) && !(slow <= p->slowest_step_s))
        p->slowest_step_s = slow;
    p->secs_seen += n;
    free(secs);
}

/* Steps no run writes (a damaged file) are an error, not a display of "step 4.6e18 / 60". */
static void check_steps(const NsLog *log, Progress *p)
{
    int bad_total = !(p->total >= 1 && p->total <= 1e12);
    int bad_step = p->rows > 0 && !(p->step >= 1 && p->step <= 1e12 &&
                                    (bad_total || p->step <= p->total));
    if (bad_step)
        snprintf(p->damage, sizeof p->damage, "run log '%.200s' is damaged: its last step is "
                 "%.6g of %.6g", log->path, p->step, p->total);
    else if (bad_total && p->rows > 0)
        snprintf(p->damage, sizeof p->damage, "run log '%.200s' is damaged: its attribute "
                 "'steps' is missing or %.6g", log->path, p->total);
}

static void num(char *buf, size_t len, double v, const char *fmt)
{
    if (isnan(v))
        snprintf(buf, len, "n/a");
    else
        snprintf(buf, len, fmt, v);
}

/* Header lines: scheme, progress, loss, lr, throughput, validation. Fills *p. */
static void render_steps(FILE *m, const NsLog *log, Progress *p)
{
    size_t n = 0, nl = 0, rows = 0, loss_rows = 0;
    double *step = tail(log, "steps/step", 1, &n, &rows);
    double *loss = tail(log, "steps/loss", LOSS_WINDOW, &nl, &loss_rows);
    long total = 0;
    p->total = ns_log_attr_long(log, "steps", &total) == 0 ? (double)total : NAN;
    p->rows = rows < loss_rows ? rows : loss_rows; /* a step row counts once its loss is in */
    p->step = n ? step[n - 1] : 0.0;
    p->loss = nl ? loss[nl - 1] : NAN;
    p->grad_norm = p->rows ? last_of(log, "steps/grad_norm") : NAN;
    follow_step_seconds(log, p);
    check_steps(log, p);
    char a[32], b[32], c[32], d[32], e[32];
    num(a, sizeof a, p->loss, "%.4f");
    num(b, sizeof b, nl ? ns_finite_mean(loss, nl) : NAN, "%.4f");
    num(c, sizeof c, last_of(log, "steps/lr"), "%.3e");
    num(d, sizeof d, last_of(log, "steps/tokens_per_s"), "%.0f");
    fprintf(m, "step %.0f / %.0f (%.0f %%)   loss %s (mean of last %zu: %s)   lr %s   "
               "tokens/s %s\n", p->step, p->total, p->total > 0 ? 100.0 * p->step / p->total : 0.0,
            a, nl, b, c, d);
    num(a, sizeof a, last_of(log, "eval/ppl"), "%.2f");
    num(e, sizeof e, last_of(log, "eval/step"), "%.0f");
    fprintf(m, "validation ppl %s (at step %s)\n", a, e);
    free(step);
    free(loss);
}

/* The latest row of each norm site: how far batch statistics stray, and the gradient gain. */
static void render_sites(FILE *m, const NsLog *log)
{
    static const char *const COLS[] = {"dist_mean", "dist_var", "dist_psi2", "grad_gain"};
    char **sites = NULL;
    int n = ns_log_sites(log, &sites);
    if (n == 0) {
        fputs("\nno norm probes in this log (trained with --probes none?)\n", m);
        ns_log_free_sites(sites, n);
        return;
    }
    fprintf(m, "\n%-18s %11s %11s %11s %11s   %s\n", "norm site", COLS[0], COLS[1], COLS[2],
            COLS[3], "at step");
    for (int s = 0; s < n; s++) {
        char path[256], cell[32];
        fprintf(m, "%-18s", sites[s]);
        for (int k = 0; k < 4; k++) {
            ns_runlog_site_path(path, sizeof path, sites[s], COLS[k]);
            num(cell, sizeof cell, last_of(log, path), "%.4g");
            fprintf(m, " %11s", cell);
        }
        ns_runlog_site_path(path, sizeof path, sites[s], NS_RUNLOG_STEP);
        num(cell, sizeof cell, last_of(log, path), "%.0f");
        fprintf(m, "   %s\n", cell);
    }
    ns_log_free_sites(sites, n);
}

/* The snapshot as text (malloc'd), without its status line, which depends on what the
 * end-of-run rules make of it; *p receives what they need. */
static char *render(const NsLog *log, Progress *p)
{
    char *text = NULL, clock[16];
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    time_t now = time(NULL);
    strftime(clock, sizeof clock, "%H:%M:%S", localtime(&now));
    char path[sizeof log->path], label[sizeof log->label]; /* no escape reaches the terminal */
    fprintf(m, "normscope watch  %s  %s  L=%ld d=%ld  [%s]\n",
            ns_text_printable(path, sizeof path, log->path),
            ns_text_printable(label, sizeof label, log->label), log->n_layers, log->d_model,
            clock);
    render_steps(m, log, p);
    render_sites(m, log);
    fclose(m);
    return text;
}

/* ------------------------------------------------------------------------------------------
 * The refresh loop */

/* Sleeps, waking early on Ctrl-C (SIGINT interrupts nanosleep: no SA_RESTART). */
static void pause_for(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - floor(seconds)) * 1e9)};
    if (!interrupted)
        nanosleep(&ts, NULL);
}

/* What "the file grew" compares: its size and modification time (ns). */
typedef struct {
    long long size, mtime_ns;
} FileSig;

static FileSig file_signature(const char *path)
{
    struct stat st;
    FileSig sig = {-1, -1};
    if (stat(path, &st) == 0) {
        sig.size = (long long)st.st_size;
        sig.mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    }
    return sig;
}

/* Opens the log, waiting for one that does not exist yet or is still being created. */
static int open_waiting(NsLog *log, const char *path, double interval, int once, char *err)
{
    double t0 = ns_now_seconds();
    int said = 0;
    for (;;) {
        if (ns_log_open(log, path, err) == 0)
            return 0;
        struct stat st;
        int missing = stat(path, &st) != 0;
        double waited = ns_now_seconds() - t0;
        int fresh = !missing && difftime(time(NULL), st.st_mtime) < 5.0;
        if (once || interrupted || !((missing && waited < 60.0) || (fresh && waited < 10.0)))
            return -1;
        char shown[4096];
        if (!said++)
            fprintf(stderr, "normscope: watch: waiting for '%s' to become a run log...\n",
                    ns_text_printable(shown, sizeof shown, path));
        pause_for(interval);
    }
}

typedef struct {
    double interval;
    int once;
} WatchOptions;

/* Decides whether the run has ended; tracks growth across refreshes. */
typedef struct {
    FileSig sig;
    double step, last_change;
    int unchanged;
    double flush_every;
} Growth;

/* How long a live run may go without growing: see rule 3 at the top. */
static double stall_limit(const Progress *p, const Growth *g, double interval)
{
    double slow = isfinite(p->slowest_step_s) ? p->slowest_step_s : 0.0;
    double limit = fmax(STALL_FLOOR_S, 3.0 * g->flush_every * slow);
    return fmax(limit, STALL_INTERVALS * interval);
}

static WatchState judge(const NsLog *log, const Progress *p, Growth *g, double interval)
{
    if (p->rows > 0 && (!isfinite(p->loss) || !isfinite(p->grad_norm)))
        return DIVERGED; /* even on the last step: the run did not end well */
    if (p->rows > 0 && p->step >= p->total)
        return FINISHED;
    FileSig sig = file_signature(log->path);
    double now = ns_now_seconds();
    int first = g->step < 0.0;
    if (sig.size != g->sig.size || sig.mtime_ns != g->sig.mtime_ns || p->step != g->step) {
        g->sig = sig;
        g->step = p->step;
        g->last_change = now;
        g->unchanged = 0;
        struct stat st; /* a log last written long ago has not grown for that long */
        if (first && stat(log->path, &st) == 0)
            g->last_change = now - fmax(0.0, difftime(time(NULL), st.st_mtime));
        return RUNNING;
    }
    g->unchanged++;
    return g->unchanged >= STALL_INTERVALS && now - g->last_change >= stall_limit(p, g, interval)
               ? STALLED
               : RUNNING;
}

/* With a single snapshot (--once) there is no history: the file's age stands in for it. */
static WatchState judge_once(const NsLog *log, const Progress *p, Growth *g, double interval)
{
    WatchState state = judge(log, p, g, interval);
    struct stat st;
    if (state == RUNNING && stat(log->path, &st) == 0 &&
        difftime(time(NULL), st.st_mtime) >= stall_limit(p, g, interval))
        state = STALLED;
    return state;
}

static void show(const char *text, WatchState state, int tty, int changed, int first)
{
    if (tty)
        printf("\033[H\033[2J"); /* redraw in place */
    else if (!changed && !first)
        return;
    else if (!first)
        putchar('\n');
    printf("%s\nstatus: %s\n", text, STATE_TEXT[state]);
    fflush(stdout);
}

static int watch_loop(NsLog *log, const WatchOptions *o)
{
    int tty = isatty(STDOUT_FILENO), first = 1;
    long flush_every = 10;
    ns_log_attr_long(log, "flush_every", &flush_every);
    Growth g = {.sig = {-1, -1}, .step = -1.0, .last_change = ns_now_seconds(),
                .flush_every = (double)(flush_every > 0 ? flush_every : 1)};
    double shown_step = -1.0;
    WatchState state = RUNNING;
    Progress p = {.slowest_step_s = NAN};
    for (;;) {
        char *text = render(log, &p);
        if (p.damage[0]) {
            char shown[sizeof p.damage];
            free(text);
            fprintf(stderr, "normscope: watch: %s\n",
                    ns_text_printable(shown, sizeof shown, p.damage));
            return NS_EXIT_ERROR;
        }
        if (interrupted)
            state = STOPPED;
        else
            state = o->once ? judge_once(log, &p, &g, o->interval)
                            : judge(log, &p, &g, o->interval);
        int ending = o->once || state != RUNNING;
        show(text, state, tty, p.step != shown_step || ending, first);
        free(text);
        first = 0;
        shown_step = p.step;
        if (ending)
            break;
        pause_for(o->interval);
    }
    char shown[sizeof log->path];
    if (state == STALLED && !o->once)
        fprintf(stderr, "normscope: watch: '%s' stopped growing at step %.0f of %.0f: the run "
                        "ended without finishing (crashed, killed or interrupted?)\n",
                ns_text_printable(shown, sizeof shown, log->path), p.step, p.total);
    if (o->once)
        return NS_EXIT_OK;
    return state == DIVERGED ? NS_EXIT_DIVERGED : state == STALLED ? NS_EXIT_ERROR : NS_EXIT_OK;
}

int ns_watch_run(const char *file, double interval, int once)
{
    WatchOptions o = {.interval = interval, .once = once};
    int rc;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    interrupted = 0;
    NsLog log;
    char err[NS_ERRLEN] = "";
    if (open_waiting(&log, file, o.interval, o.once, err) != 0) {
        sigaction(SIGINT, &old, NULL);
        if (interrupted)
            return NS_EXIT_OK;
        char shown[NS_ERRLEN];
        fprintf(stderr, "normscope: %s\n", ns_text_printable(shown, sizeof shown, err));
        return NS_EXIT_ERROR;
    }
    rc = watch_loop(&log, &o);
    ns_log_close(&log);
    sigaction(SIGINT, &old, NULL);
    return rc;
}
