/* normscope plot KIND RUN.h5...: parses the request and hands it to ns_plot (analysis/). The
 * figure flags (--format, --size, --font) are rows of the run-option table (NS_CMD_PLOT), shared
 * with study. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "plot.h"
#include "run_config.h"
#include "util.h"

static const NsOption OPTIONS[] = {
    {.flag = "--out", .kind = NS_OPT_TEXT, .offset = offsetof(NsPlotOptions, out_dir),
     .metavar = "DIR", .help = "output directory, created if missing", .shown = "figures"},
    {.flag = "--site", .kind = NS_OPT_TEXT, .offset = offsetof(NsPlotOptions, site),
     .metavar = "SITE", .help = "norm site of fluctuation and boxes, e.g. layers/0/norm1,\n"
                                "final_norm", .shown = "first site of the first run"},
    {.flag = "--stat", .kind = NS_OPT_TEXT, .offset = offsetof(NsPlotOptions, stat),
     .metavar = "var|psi2", .help = "forward distance of fluctuation and boxes",
     .shown = "var for batch,\nlayer, rms, none; psi2 for power schemes; per run"},
    {.flag = "--layers-stat", .kind = NS_OPT_TEXT, .offset = offsetof(NsPlotOptions, layers_stat),
     .metavar = "NAME", .help = "series of the layers heat map", .shown = "dist_var"},
    {.flag = "--relative", .kind = NS_OPT_SWITCH, .offset = offsetof(NsPlotOptions, relative),
     .help = "fluctuation, boxes, layers: the scale-free ||stat_B - running|| / ||running||\n"
             "(series rel_dist_*) instead of the paper's (1/d)||stat_B - running||"},
    {.flag = "--tid", .kind = NS_OPT_SWITCH, .offset = offsetof(NsPlotOptions, tid),
     .help = "fluctuation: the training-inference discrepancy (series tid_mean,\ntid_var or "
             "tid_psi2) with its sampling floor dashed, instead of the distances"},
    {.flag = "--prefix", .kind = NS_OPT_TEXT, .offset = offsetof(NsPlotOptions, prefix),
     .metavar = "NAME", .help = "file-name prefix", .shown = "KIND"},
};

static void print_kinds(void)
{
    printf("\nkinds:\n");
    for (int k = 0; NS_PLOT_KINDS[k]; k++)
        printf("  %-12s %s\n", NS_PLOT_KINDS[k], ns_plot_kind_description(NS_PLOT_KINDS[k]));
}

static const NsCommandSpec SPEC = {
    .name = "plot",
    .options = OPTIONS,
    .n_options = sizeof OPTIONS / sizeof OPTIONS[0],
    .usage = "KIND RUN.h5 [RUN.h5 ...] [flags]",
    .summary = "Draws a figure of the PowerNorm paper from run logs with gnuplot, all runs on "
               "shared\naxes. Per figure it writes DIR/KIND.dat (the data), DIR/KIND.gp (a "
               "script to edit\nand re-run with `gnuplot KIND.gp`), DIR/KIND.png and "
               "DIR/KIND.svg (--format: also\n.pdf), and prints the image paths. Runs lacking the data are skipped "
               "with a warning.",
    .before_flags = print_kinds,
    .heading = "flags",
    .max_positional = -1,
};

/* Checks what can be checked before opening any file: the kind, then the runs. */
static int check_args(const char *kind, int n_runs, const NsPlotOptions *opt)
{
    char list[200];
    ns_plot_kinds_list(list, sizeof list);
    if (!kind)
        return ns_cmd_error(NS_EXIT_USAGE, "plot: missing KIND (kinds: %s; see normscope plot "
                                           "--help)", list);
    if (!ns_plot_kind_description(kind))
        return ns_cmd_error(NS_EXIT_USAGE, "plot: unknown kind '%s' (kinds: %s)", kind, list);
    if (n_runs == 0)
        return ns_cmd_error(NS_EXIT_USAGE, "plot %s: no run logs given (usage: normscope plot %s "
                                           "RUN.h5 ...)", kind, kind);
    if (opt->stat && strcmp(opt->stat, "var") != 0 && strcmp(opt->stat, "psi2") != 0)
        return ns_cmd_error(NS_EXIT_USAGE, "plot: --stat must be var or psi2, not '%s'",
                            opt->stat);
    if (opt->tid && opt->relative)
        return ns_cmd_error(NS_EXIT_USAGE, "plot: --tid and --relative draw different series; "
                                           "give one of them");
    char err[NS_ERRLEN];
    if (ns_plot_style_check(opt, err) < 0)
        return ns_cmd_error(NS_EXIT_USAGE, "plot: %s", err);
    return NS_EXIT_OK;
}

static void warn_unused_flags(const char *kind, const NsPlotOptions *opt)
{
    int site_kind = strcmp(kind, "fluctuation") == 0 || strcmp(kind, "boxes") == 0;
    if (opt->site && !site_kind)
        fprintf(stderr, "normscope: warning: --site is used by fluctuation and boxes; plot %s "
                        "draws every site\n", kind);
    if (opt->stat && !site_kind)
        fprintf(stderr, "normscope: warning: --stat is used by fluctuation and boxes only\n");
    if (opt->relative && !site_kind && strcmp(kind, "layers") != 0)
        fprintf(stderr, "normscope: warning: --relative is used by fluctuation, boxes and "
                        "layers only\n");
    if (opt->tid && strcmp(kind, "fluctuation") != 0)
        fprintf(stderr, "normscope: warning: --tid is used by plot fluctuation only\n");
    if (opt->layers_stat && strcmp(kind, "layers") != 0)
        fprintf(stderr, "normscope: warning: --layers-stat is used by plot layers only\n");
}

int ns_cmd_plot(int argc, char **argv)
{
    NsPlotOptions opt = {0};
    NsRunConfig figure = {0}; /* only its figure fields are set (NS_CMD_PLOT rows) */
    NsOptSet sets[] = {{SPEC.options, SPEC.n_options, &opt, 0, 0},
                       {NS_RUN_OPTIONS, NS_N_RUN_OPTIONS, &figure, NS_CMD_PLOT, 0}};
    NsParse p = {0};
    int code;
    if (!ns_cmd_parse_sets(&SPEC, sets, 2, argc, argv, &p, &code))
        return code;
    opt.format = figure.fig_format;
    opt.size = figure.fig_size;
    opt.font = figure.fig_font;
    const char *kind = p.n_positional > 0 ? argv[0] : NULL;
    char **runs = argv + 1;
    int n_runs = p.n_positional > 0 ? p.n_positional - 1 : 0;
    if ((code = check_args(kind, n_runs, &opt)) != NS_EXIT_OK)
        return code;
    warn_unused_flags(kind, &opt);
    char err[NS_ERRLEN] = "";
    NsLog *logs = ns_cmd_open_logs(runs, n_runs, err);
    int rc = logs ? ns_plot_print(kind, logs, n_runs, &opt, err) : -1;
    if (logs)
        ns_cmd_close_logs(logs, n_runs);
    return rc < 0 ? ns_cmd_error(NS_EXIT_ERROR, "%s", err) : NS_EXIT_OK;
}
