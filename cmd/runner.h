/* The run executor of `study` and `sweep`: runs a list of cells, each a child `normscope train`
 * process, J at once with the cores split between them, optionally under a launcher
 * (`mpirun -np 2`), skipping finished cells and resuming interrupted ones.
 *
 * What is on disk decides a cell's plan (ns_runner_plan), from the run log and the checkpoint
 * only:
 *   finished  the log's last step reaches the cell's --steps, or the log records a divergence
 *             (ns_run_outcome): kept, not run again
 *   resume    otherwise, with the cell's checkpoint present: `train --resume CKPT` appends to
 *             the log (train checkpoints on SIGINT/SIGTERM and at --checkpoint-every)
 *   replace   a log or checkpoint without a resumable state: trained again with --overwrite
 *   new       nothing on disk
 * Without `reuse` every existing cell is replaced. Each child's stdout and stderr are appended
 * to <log without .h5>.out beside its log; a failing cell's last line is surfaced. SIGINT and
 * SIGTERM are forwarded to the children (which flush and checkpoint); the runner waits for
 * them and stops, and a second run resumes. */
#ifndef NS_RUNNER_H
#define NS_RUNNER_H

#include "run_config.h"

typedef enum { NS_CELL_NEW, NS_CELL_REPLACE, NS_CELL_RESUME, NS_CELL_FINISHED } NsCellPlan;

typedef struct {
    char name[128];                 /* for messages: "d-model=64,lr=3e-3" or "batch" */
    char log_path[NS_PATH_LEN];     /* the cell's --out */
    char ckpt_path[NS_PATH_LEN];    /* train's default checkpoint for that --out */
    char output_path[NS_PATH_LEN];  /* the child's stdout and stderr */
    char **args;                    /* the cell's train flags (borrowed), without --out, */
    int n_args;                     /* --resume, --overwrite */
    long steps;                     /* planned steps (ns_runner_check_cell) */
    int threads;                    /* the cell's own --threads; 0: the runner's share */
    int one_thread;                 /* a model small enough that 1 thread beats more */
    NsCellPlan plan;
    int code;       /* exit code once run; -1 not run */
    double seconds; /* wall time of this session's child */
} NsCell;

typedef struct {
    const char *who;      /* "sweep" / "study": the prefix of its lines */
    int jobs;             /* cells at once (>= 1) */
    const char *launcher; /* "mpirun -np 2" or NULL: words put in front of the child's argv */
    int reuse;            /* skip finished cells and resume interrupted ones; else replace */
} NsRunner;

/* Parses the cell's flags as `train` would (option table, scheme defaults, validation) into
 * *cfg; sets cell->steps and the log, checkpoint and output paths from log_path. Returns 0, or
 * -1 with train's one line in err. Nothing is run. */
int ns_runner_check_cell(NsCell *cell, const char *log_path, NsRunConfig *cfg, char *err);

/* Threads per cell unless its flags give --threads: cores (sysconf) / (jobs x the launcher's
 * -np/-n), at least 1. */
int ns_runner_threads(int jobs, const char *launcher);

/* Splits a launcher at blanks into words (at most cap; buf holds them). Returns the count, or
 * -1 with one line in err (too many words, an empty launcher). */
int ns_runner_split(const char *launcher, char *buf, size_t buf_len, char **words, int cap,
                    char *err);

/* Decides every cell's plan from the disk and prints one line per cell that is kept, resumed or
 * replaced, then a count. cfgs[i] is cell i's configuration (ns_runner_check_cell). With
 * reuse, a log made with other settings (other than --steps, threads and the logging schedule)
 * is neither reused nor replaced: -1 with one line in err naming it and the first setting that
 * differs, before anything runs. */
int ns_runner_plan(const NsRunner *r, NsCell *cells, const NsRunConfig *cfgs, int n, char *err);

/* Runs every cell whose plan is not finished. Returns 0 when each ran to its end (exit 0 or
 * diverged); NS_RUNNER_INTERRUPTED with one line in err when a signal stopped it (the children
 * were told and waited for); -1 with one line in err when a cell failed (its last line; no new
 * cell is started after a failure, running ones are waited for) or could not be started. */
#define NS_RUNNER_INTERRUPTED (-2)
int ns_runner_run(const NsRunner *r, NsCell *cells, int n, char *err);

#endif
