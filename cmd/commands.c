#include "commands.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sanitize.h"
#include "util.h"

static const NsCommand COMMANDS[] = {
    {"train", ns_cmd_train, "train", "train a language model and record the probes into an "
     "HDF5 log", 1},
    {"eval", ns_cmd_eval, "eval", "loss and perplexity of a checkpoint on a corpus", 1},
    {"debug-step", ns_cmd_debug_step, "debug-step", "write a debug state (a few steps pinned "
     "down) for parity checks", 1},
    {"plot", ns_cmd_plot, "plot KIND RUN.h5...", "draw a figure with gnuplot: fluctuation, "
     "boxes, gradients,\nlipschitz, hessian, training, layers", 0},
    {"compare", ns_cmd_compare, "compare RUN.h5...", "side-by-side table (Markdown and CSV)", 0},
    {"study", ns_cmd_study, "study", "train layer, batch, power-v, power, power-official on "
     "one\ncorpus, then every plot, the table and a report", 0},
    {"report", ns_cmd_report, "report RUN.h5... --out DIR", "the study's figures, table, report "
     "and notebook from\nexisting run logs", 0},
    {"sweep", ns_cmd_sweep, "sweep --grid KEY=V1,V2,...", "train every cell of a grid of "
     "train flags (resumable,\nparallel), then a table and the onset map", 0},
    {"watch", ns_cmd_watch, "watch RUN.h5", "live view of a run being written", 0},
    {"check-log", ns_cmd_check_log, "check-log RUN.h5...", "validate run logs from any writer "
     "against the run-log schema", 0},
    {"export-notebook", ns_cmd_export_notebook, "export-notebook RUN.h5... --out FILE.ipynb",
     "Jupyter notebook of the figures", 0},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

const NsCommand *ns_command_at(size_t i) { return i < N_COMMANDS ? &COMMANDS[i] : NULL; }

const NsCommand *ns_find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            return &COMMANDS[i];
    return NULL;
}

/* The commands of one group, the summaries in a column `width` wide past the synopses. */
static void print_group(FILE *out, int engine, int width)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (COMMANDS[i].engine != engine)
            continue;
        const char *syn = COMMANDS[i].synopsis;
        int wide = (int)strlen(syn) > width; /* then three spaces, and the summary after it */
        fprintf(out, "  %-*s%s", width, syn, wide ? "   " : " ");
        for (const char *c = COMMANDS[i].summary; *c; c++) {
            fputc(*c, out);
            if (*c == '\n')
                fprintf(out, "%*s", width + 3, "");
        }
        fputc('\n', out);
    }
}

void ns_print_commands(FILE *out)
{
    fprintf(out, "engine:\n");
    print_group(out, 1, 16);
    fprintf(out, "\nanalysis (reads run logs):\n");
    print_group(out, 0, 20);
}

/* ------------------------------------------------------------------ shared by the commands */

int ns_cmd_error(int code, const char *fmt, ...)
{
    /* an error may quote a run log's strings or a path: one line, no control character */
    char line[4 * NS_ERRLEN], clean[4 * NS_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "normscope: %s\n", ns_text_printable(clean, sizeof clean, line));
    return code;
}

int ns_cmd_parse_sets(const NsCommandSpec *spec, NsOptSet *sets, int n_sets, int argc,
                      char **argv, NsParse *p, int *code)
{
    char err[NS_ERRLEN];
    int rc = ns_options_parse(spec, sets, n_sets, argc, argv, p, err);
    if (rc == 0)
        return 1;
    *code = rc > 0 ? NS_EXIT_OK : ns_cmd_error(NS_EXIT_USAGE, "%s", err);
    return 0;
}

int ns_cmd_parse(const NsCommandSpec *spec, void *target, int argc, char **argv, NsParse *p,
                 int *code)
{
    NsOptSet set = {spec->options, spec->n_options, target, 0, 0};
    return ns_cmd_parse_sets(spec, &set, 1, argc, argv, p, code);
}

int ns_cmd_parse_run(const NsCommandSpec *spec, unsigned command, int argc, char **argv,
                     NsRunConfig *cfg, NsCheckpointHeader *ckpt, int *code)
{
    char err[NS_ERRLEN];
    NsRunConfig flags = *cfg;
    NsOptSet set = {NS_RUN_OPTIONS, NS_N_RUN_OPTIONS, &flags, command, 0};
    NsParse p = {0};
    ckpt->vocab = NULL;
    ckpt->vocab_n = 0;
    if (!ns_cmd_parse_sets(spec, &set, 1, argc, argv, &p, code))
        return 0;
    if (!flags.resume_path[0]) {
        *cfg = flags;
        if (ns_run_config_resolve(cfg, &p, err) < 0) {
            *code = ns_cmd_error(NS_EXIT_USAGE, "%s", err);
            return 0;
        }
    } else {
        ckpt->cfg = *cfg; /* the defaults: the base for what the file does not store (--out) */
        if (ns_checkpoint_read_header(flags.resume_path, ckpt, err) < 0) {
            *code = ns_cmd_error(NS_EXIT_ERROR, "%s", err);
            return 0;
        }
        *cfg = ckpt->cfg;
        ns_parse_copy_given(&p, NS_RUN_OPTIONS, NS_N_RUN_OPTIONS, &flags, cfg);
        ns_run_config_resolve_threads(cfg); /* --threads 0 given with --resume */
    }
    if (ns_run_config_validate_all(cfg, err) < 0) {
        *code = ns_cmd_error(NS_EXIT_USAGE, "%s", err);
        return 0;
    }
    return 1;
}

NsLog *ns_cmd_open_logs(char *const *paths, int n, char *err)
{
    NsLog *logs = ns_xcalloc((size_t)(n > 0 ? n : 1), sizeof *logs);
    for (int i = 0; i < n; i++)
        if (ns_log_open(&logs[i], paths[i], err) < 0) {
            ns_cmd_close_logs(logs, i);
            return NULL;
        }
    return logs;
}

void ns_cmd_close_logs(NsLog *logs, int n)
{
    for (int i = 0; i < n; i++)
        ns_log_close(&logs[i]);
    free(logs);
}
