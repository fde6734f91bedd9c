/* normscope plot KIND RUN.h5...: parses the request and hands it to ns_plot (analysis/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "plot.h"
#include "util.h"

/* ------------------------------------------------------------------------------ command */

static void print_usage(void)
{
    printf("usage: normscope plot KIND RUN.h5 [RUN.h5 ...] [flags]\n\n"
           "Draws a figure of the PowerNorm paper from run logs with gnuplot, all runs on shared\n"
           "axes. Per figure it writes DIR/KIND.dat (the data), DIR/KIND.gp (a script to edit\n"
           "and re-run with `gnuplot KIND.gp`), DIR/KIND.png and DIR/KIND.svg, and prints the\n"
           "image paths. Runs lacking the data are skipped with a warning.\n\nkinds:\n");
    for (int k = 0; NS_PLOT_KINDS[k]; k++)
        printf("  %-12s %s\n", NS_PLOT_KINDS[k], ns_plot_kind_description(NS_PLOT_KINDS[k]));
    printf("\nflags:\n"
           "  --out DIR            output directory, created if missing [figures]\n"
           "  --site SITE          norm site of fluctuation and boxes, e.g. layers/0/norm1,\n"
           "                       final_norm [first site of the first run]\n"
           "  --stat var|psi2      forward distance of fluctuation and boxes [var for batch,\n"
           "                       layer, rms, none; psi2 for power schemes; per run]\n"
           "  --layers-stat NAME   series of the layers heat map [dist_var]\n"
           "  --prefix NAME        file-name prefix [KIND]\n"
           "  --help               this text\n");
}

typedef struct {
    NsPlotOptions opt;
    const char *kind;
    char **runs;
    int n_runs;
} PlotArgs;

/* The value of `--name VALUE` or `--name=VALUE`; NULL + err when it is missing. */
static const char *flag_value(int argc, char **argv, int *i, const char *eq, char *err)
{
    if (eq)
        return eq + 1;
    if (*i + 1 >= argc) {
        ns_fail(err, "plot: %s needs a value (see normscope plot --help)", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* Returns 0, 1 for --help, or -1 with err. */
static int parse_args(int argc, char **argv, PlotArgs *a, char *err)
{
    static const char *const names[] = {"--out", "--site", "--stat", "--layers-stat", "--prefix"};
    memset(a, 0, sizeof *a);
    a->runs = ns_xcalloc((size_t)(argc > 0 ? argc : 1), sizeof(char *));
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (arg[0] != '-' || arg[1] == '\0') { /* the kind, then the runs */
            if (!a->kind)
                a->kind = arg;
            else
                a->runs[a->n_runs++] = argv[i];
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg), k = 0;
        while (k < 5 && (strlen(names[k]) != len || strncmp(arg, names[k], len) != 0))
            k++;
        if (k == 5)
            return ns_fail(err, "plot: unknown flag '%.*s' (see normscope plot --help)",
                           (int)len, arg);
        const char *v = flag_value(argc, argv, &i, eq, err);
        if (!v)
            return -1;
        const char **slot[] = {&a->opt.out_dir, &a->opt.site, &a->opt.stat,
                               &a->opt.layers_stat, &a->opt.prefix};
        *slot[k] = v;
    }
    return 0;
}

/* Checks what can be checked before opening any file. */
static int check_args(const PlotArgs *a, char *err)
{
    char list[200];
    ns_plot_kinds_list(list, sizeof list);
    if (!a->kind)
        return ns_fail(err, "plot: missing KIND (kinds: %s; see normscope plot --help)", list);
    if (!ns_plot_kind_description(a->kind))
        return ns_fail(err, "plot: unknown kind '%s' (kinds: %s)", a->kind, list);
    if (a->n_runs == 0)
        return ns_fail(err, "plot %s: no run logs given (usage: normscope plot %s RUN.h5 ...)",
                       a->kind, a->kind);
    if (a->opt.stat && strcmp(a->opt.stat, "var") != 0 && strcmp(a->opt.stat, "psi2") != 0)
        return ns_fail(err, "plot: --stat must be var or psi2, not '%s'", a->opt.stat);
    return 0;
}

static void warn_unused_flags(const PlotArgs *a)
{
    int site_kind = strcmp(a->kind, "fluctuation") == 0 || strcmp(a->kind, "boxes") == 0;
    if (a->opt.site && !site_kind)
        fprintf(stderr, "normscope: warning: --site is used by fluctuation and boxes; plot %s "
                        "draws every site\n", a->kind);
    if (a->opt.stat && !site_kind)
        fprintf(stderr, "normscope: warning: --stat is used by fluctuation and boxes only\n");
    if (a->opt.layers_stat && strcmp(a->kind, "layers") != 0)
        fprintf(stderr, "normscope: warning: --layers-stat is used by plot layers only\n");
}

static int run_plot(const PlotArgs *a, char *err)
{
    NsLog *logs = ns_xcalloc((size_t)a->n_runs, sizeof(NsLog));
    int opened = 0, rc = -1;
    while (opened < a->n_runs && ns_log_open(&logs[opened], a->runs[opened], err) == 0)
        opened++;
    if (opened == a->n_runs) {
        rc = ns_plot_print(a->kind, logs, a->n_runs, &a->opt, err);
    }
    for (int i = 0; i < opened; i++)
        ns_log_close(&logs[i]);
    free(logs);
    return rc < 0 ? -1 : 0;
}

int ns_cmd_plot(int argc, char **argv)
{
    char err[NS_ERRLEN];
    PlotArgs a;
    int rc = parse_args(argc, argv, &a, err);
    if (rc == 1) {
        print_usage();
        free(a.runs);
        return NS_EXIT_OK;
    }
    if (rc == 0)
        rc = check_args(&a, err);
    if (rc < 0) {
        fprintf(stderr, "normscope: %s\n", err);
        free(a.runs);
        return NS_EXIT_USAGE;
    }
    warn_unused_flags(&a);
    rc = run_plot(&a, err);
    free(a.runs);
    if (rc < 0) {
        fprintf(stderr, "normscope: %s\n", err);
        return NS_EXIT_ERROR;
    }
    return NS_EXIT_OK;
}
