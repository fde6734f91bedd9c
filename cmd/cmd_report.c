/* normscope report RUN.h5... --out DIR: the study's whole analysis from run logs that already
 * exist, whoever wrote them: every figure (DIR/figures/), the comparison table (DIR/compare.md,
 * .csv), the report (DIR/report.md: every-site claims, seeds grouped, stability, smoothness) and
 * the notebook (DIR/study.ipynb). `study` trains, then calls ns_report_write on its logs: one
 * path, so `report` on a finished study's logs writes the report the study wrote. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "compare.h"
#include "notebook.h"
#include "plot.h"
#include "release_report.h"
#include "run_config.h"
#include "study_report.h"
#include "util.h"

typedef struct {
    const char *out;
    int compare_release;
} ReportArgs;

static const NsOption OPTIONS[] = {
    {.flag = "--out", .kind = NS_OPT_TEXT, .offset = offsetof(ReportArgs, out),
     .metavar = "DIR", .help = "output directory, created if missing", .shown = "report"},
    {.flag = "--compare-release", .kind = NS_OPT_SWITCH,
     .offset = offsetof(ReportArgs, compare_release),
     .help = "also write DIR/release.md and .csv (the release's choices, as study\n"
             "--compare-release), naming each run by its file name without .h5"},
};

static const NsCommandSpec SPEC = {
    .name = "report",
    .options = OPTIONS,
    .n_options = sizeof OPTIONS / sizeof OPTIONS[0],
    .usage = "RUN.h5... [--out DIR] [--compare-release] [--format F] [--size WxH] [--font F]",
    .summary = "The analysis of a study from run logs that already exist, whoever wrote them:\n"
               "DIR/figures/ (gnuplot PNG, SVG, data and scripts), DIR/compare.md and .csv,\n"
               "DIR/report.md and DIR/study.ipynb. Logs of different models may be mixed: the\n"
               "sections that compare runs site by site say which runs they compared.",
    .heading = "flags",
    .max_positional = -1,
    .min_positional = 1,
    .missing = "no run logs given",
};

/* The figures of the forward distances once more with the scale-free rel_dist_* series. */
static void draw_relative(NsLog *logs, int n, const char *fig_dir)
{
    static const char *const KINDS[] = {"fluctuation", "boxes", "layers"};
    for (int k = 0; k < 3; k++) {
        char prefix[64], perr[NS_ERRLEN];
        snprintf(prefix, sizeof prefix, "%s-relative", KINDS[k]);
        NsPlotOptions opt = {.out_dir = fig_dir, .relative = 1, .prefix = prefix};
        if (ns_plot(KINDS[k], logs, n, &opt, perr) < 0)
            fprintf(stderr, "normscope: report: plot %s --relative: %s\n", KINDS[k], perr);
    }
}

/* The logs of BN and PN-V runs (pair), for the paper's BN-vs-PN-V box plots; 0 unless both
 * schemes are there and other schemes too (else the figure would equal `boxes`). */
static int bn_pnv_logs(const NsLog *logs, int n, NsLog *pair)
{
    int m = 0, bn = 0, pnv = 0;
    for (int i = 0; i < n; i++) {
        int is_bn = strcmp(logs[i].norm, "batch") == 0;
        int is_pnv = strcmp(logs[i].norm, "power-v") == 0;
        bn |= is_bn, pnv |= is_pnv;
        if (is_bn || is_pnv)
            pair[m++] = logs[i];
    }
    return bn && pnv && m < n ? m : 0;
}

/* Every figure over all runs (the forward distances also relative), plus the paper's
 * BN-vs-PN-V box plots for those two alone. */
static int draw_figures(NsLog *logs, int n, const char *fig_dir, char *err)
{
    int drawn = 0;
    for (int k = 0; NS_PLOT_KINDS[k]; k++) {
        NsPlotOptions opt = {.out_dir = fig_dir};
        char perr[NS_ERRLEN];
        if (ns_plot(NS_PLOT_KINDS[k], logs, n, &opt, perr) < 0)
            fprintf(stderr, "normscope: report: plot %s: %s\n", NS_PLOT_KINDS[k], perr);
        else
            drawn++;
    }
    if (drawn)
        draw_relative(logs, n, fig_dir);
    NsLog *pair = ns_xcalloc((size_t)n, sizeof *pair);
    int m = bn_pnv_logs(logs, n, pair);
    if (m > 0) {
        NsPlotOptions opt = {.out_dir = fig_dir, .prefix = "boxes-bn-vs-pnv"};
        char perr[NS_ERRLEN];
        if (ns_plot("boxes", pair, m, &opt, perr) < 0)
            fprintf(stderr, "normscope: report: BN vs PN-V boxes: %s\n", perr);
    }
    free(pair);
    return drawn ? 0 : ns_fail(err, "no figure could be drawn (is gnuplot installed?)");
}

/* The tables, the report and the notebook over the opened logs. */
static int write_all(const NsReportJob *job, NsLog *logs, char *err)
{
    char fig_dir[NS_PATH_LEN + 16], prefix[NS_PATH_LEN + 16], nb[NS_PATH_LEN + 16];
    snprintf(fig_dir, sizeof fig_dir, "%s/figures", job->out_dir);
    snprintf(prefix, sizeof prefix, "%s/compare", job->out_dir);
    snprintf(nb, sizeof nb, "%s/study.ipynb", job->out_dir);
    int rc = draw_figures(logs, job->n, fig_dir, err);
    if (rc == 0)
        rc = ns_compare(logs, job->n, prefix, 1, err);
    if (rc == 0)
        rc = ns_study_report(job->out_dir, logs, job->n, err);
    if (rc == 0 && job->compare_release)
        rc = ns_release_report(job->out_dir, logs, job->names, job->n, err);
    if (rc == 0)
        rc = ns_export_notebook((const char *const *)job->paths, job->n, fig_dir, nb, err);
    return rc;
}

int ns_report_write(const NsReportJob *job, char *err)
{
    if (mkdir(job->out_dir, 0777) != 0 && errno != EEXIST)
        return ns_fail(err, "cannot create directory '%s': %s", job->out_dir, strerror(errno));
    NsLog *logs = ns_cmd_open_logs(job->paths, job->n, err);
    if (!logs)
        return -1;
    /* the release's runs share schemes: the legends name the runs */
    for (int i = 0; job->compare_release && i < job->n; i++)
        snprintf(logs[i].label, sizeof logs[i].label, "%s", job->names[i]);
    int rc = write_all(job, logs, err);
    ns_cmd_close_logs(logs, job->n);
    return rc;
}

/* A run's name for the release report: its file name without the directory and .h5. */
static char *run_name(const char *path)
{
    const char *base = strrchr(path, '/');
    char *name = ns_xstrdup(base ? base + 1 : path);
    size_t len = strlen(name);
    if (len > 3 && strcmp(name + len - 3, ".h5") == 0)
        name[len - 3] = '\0';
    return name;
}

int ns_cmd_report(int argc, char **argv)
{
    ReportArgs a = {.out = "report"};
    NsRunConfig figure = {0}; /* only its figure fields are set (NS_CMD_PLOT rows) */
    NsOptSet sets[] = {{SPEC.options, SPEC.n_options, &a, 0, 0},
                       {NS_RUN_OPTIONS, NS_N_RUN_OPTIONS, &figure, NS_CMD_PLOT, 0}};
    NsParse p = {0};
    int code;
    if (!ns_cmd_parse_sets(&SPEC, sets, 2, argc, argv, &p, &code))
        return code;
    char err[NS_ERRLEN] = "";
    NsPlotOptions style = {.format = figure.fig_format, .size = figure.fig_size,
                           .font = figure.fig_font};
    if (ns_plot_style_check(&style, err) < 0 || ns_plot_style_from_args(argv, argc, err) < 0)
        return ns_cmd_error(NS_EXIT_USAGE, "%s", err);
    int n = p.n_positional;
    char **names = ns_xcalloc((size_t)n, sizeof *names);
    for (int i = 0; i < n; i++)
        names[i] = run_name(argv[i]);
    NsReportJob job = {.out_dir = a.out, .paths = argv, .names = (const char *const *)names,
                       .n = n, .compare_release = a.compare_release};
    int rc = ns_report_write(&job, err);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc < 0)
        return ns_cmd_error(NS_EXIT_ERROR, "%s", err);
    printf("report %s/report.md, table %s/compare.md, figures %s/figures/, notebook "
           "%s/study.ipynb\n", a.out, a.out, a.out, a.out);
    return NS_EXIT_OK;
}
