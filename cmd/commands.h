/* The commands of the normscope program, one file each (cmd_<name>.c, like git's builtin/), and
 * what they share: the command table, the one error helper, and parsing a command line with the
 * option tables (options.h). A command is `int run(argc, argv)` and returns its exit code
 * (NS_EXIT_* of util.h). */
#ifndef NS_COMMANDS_H
#define NS_COMMANDS_H

#include <stdio.h>

#include "checkpoint.h"
#include "logread.h"
#include "options.h"
#include "run_config.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis; /* for normscope --help: "plot KIND RUN.h5..." */
    const char *summary;  /* one line ('\n' continues it) */
    int engine;           /* listed under "engine" (else under "analysis") */
} NsCommand;

const NsCommand *ns_find_command(const char *name);
/* The i-th command of the table, or NULL past its end (the manual page lists them all). */
const NsCommand *ns_command_at(size_t i);
/* The command list of normscope --help. */
void ns_print_commands(FILE *out);

int ns_cmd_train(int argc, char **argv);
int ns_cmd_eval(int argc, char **argv);
int ns_cmd_debug_step(int argc, char **argv);
int ns_cmd_plot(int argc, char **argv);
int ns_cmd_compare(int argc, char **argv);
int ns_cmd_study(int argc, char **argv);
int ns_cmd_sweep(int argc, char **argv);
/* sweep's command line and grid checked, and its cells made, without running them: the exit code
 * ns_cmd_sweep would have at that point (0 when the grid is good). For the flag parser's fuzz
 * target (tests/fuzz/fuzz_flags.c), which must not train. */
int ns_cmd_sweep_check(int argc, char **argv);
int ns_cmd_watch(int argc, char **argv);
int ns_cmd_export_notebook(int argc, char **argv);
int ns_cmd_check_log(int argc, char **argv);
int ns_cmd_report(int argc, char **argv);

/* What `report` writes, and `study` after training (cmd_report.c): DIR/figures/, DIR/compare.md
 * and .csv, DIR/report.md, DIR/study.ipynb and, with compare_release, DIR/release.md and .csv.
 * names[i] names run i in the release report and its legends. Returns 0, or -1 with one line in
 * err (a log that cannot be opened, an output that cannot be written, no figure drawn). */
typedef struct {
    const char *out_dir;
    char *const *paths;
    const char *const *names;
    int n;
    int compare_release;
} NsReportJob;
int ns_report_write(const NsReportJob *job, char *err);
/* normscope help [COMMAND | --man | --bash-completion] (cmd_help.c) */
int ns_cmd_help(int argc, char **argv);

/* Every error a command reports: one line "normscope: <message>" on stderr. Returns code, so a
 * command can `return ns_cmd_error(NS_EXIT_USAGE, ...)`. */
int ns_cmd_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a command line into the sets' targets (ns_options_parse). Returns 1 to go on, or 0
 * when the command is done: help printed (*code 0) or a usage error reported (*code
 * NS_EXIT_USAGE). */
int ns_cmd_parse_sets(const NsCommandSpec *spec, NsOptSet *sets, int n_sets, int argc,
                      char **argv, NsParse *p, int *code);
/* The same for a command whose flags are its own table (spec->options), aimed at target. */
int ns_cmd_parse(const NsCommandSpec *spec, void *target, int argc, char **argv, NsParse *p,
                 int *code);

/* The flags of a command that runs the engine (train, debug-step; `command` is its NS_CMD_*) into
 * cfg, which holds the command's defaults, then checks the result. With --resume CKPT the
 * checkpoint's header is read into *ckpt — once: the trainer takes it from there — and its
 * configuration is the base that the flags given override. Returns 1 to go on, or 0 with *code
 * set and the error reported. Free *ckpt with ns_checkpoint_header_free either way. */
int ns_cmd_parse_run(const NsCommandSpec *spec, unsigned command, int argc, char **argv,
                     NsRunConfig *cfg, NsCheckpointHeader *ckpt, int *code);

/* Opens the run logs paths[0..n): all of them, or none (NULL, with err). */
NsLog *ns_cmd_open_logs(char *const *paths, int n, char *err);
void ns_cmd_close_logs(NsLog *logs, int n);

#endif
