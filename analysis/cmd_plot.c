/* `normscope plot KIND RUN.h5...` and ns_plot(), the entry point the study command shares: checks
 * the request, makes the output directory, and hands the runs to the plot of that kind. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "gnuplot.h"
#include "plot.h"
#include "util.h"

typedef int (*PlotFn)(NsPlotJob *job, NsLog *logs, int n, char *err);

static const struct {
    const char *kind;
    PlotFn draw;
    const char *shows;
} KINDS[] = {
    {"fluctuation", ns_plot_fluctuation,
     "distance of batch from running statistics (mean; var or psi2) at one norm site vs step,\n"
     "               log scale (paper Fig. 2)"},
    {"boxes", ns_plot_boxes,
     "box plots per 20% of training of that forward distance and of the backward\n"
     "               gradient through sigma2_B / psi2_B, runs side by side (paper Figs. 3-4)"},
    {"gradients", ns_plot_gradients,
     "per norm site: gradients through mu_B, sigma2_B and psi2_B, the layer's gradient gain\n"
     "               and max |dL/dx| (median over steps with quartile bars)"},
    {"lipschitz", ns_plot_lipschitz,
     "beta-smoothness, gradient predictiveness and top Hessian eigenvalue vs step"},
    {"training", ns_plot_training,
     "training loss (every step and a moving average) and validation perplexity vs step"},
    {"layers", ns_plot_layers,
     "heat map of a statistic (default dist_var) over norm site and step, a panel per run"},
};
#define N_KINDS (sizeof KINDS / sizeof KINDS[0])

const char *const NS_PLOT_KINDS[] = {"fluctuation", "boxes",    "gradients", "lipschitz",
                                     "training",    "layers",   NULL};

static void kinds_list(char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t k = 0; k < N_KINDS; k++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", k ? ", " : "", KINDS[k].kind);
}

/* mkdir -p */
static int make_dirs(const char *dir, char *err)
{
    char path[NS_PLOT_PATHLEN];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return ns_fail(err, "output directory path '%.80s...' is too long", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return ns_fail(err, "cannot create output directory '%s': %s", path,
                           strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ns_fail(err, "output path '%s' exists and is not a directory", dir);
    return 0;
}

/* Checks the options and fills in defaults. */
static int prepare_job(NsPlotJob *job, const char *kind, const NsPlotOptions *opt, char *err)
{
    memset(job, 0, sizeof *job);
    if (opt)
        job->opt = *opt;
    job->kind = kind;
    if (!job->opt.out_dir || !job->opt.out_dir[0])
        job->opt.out_dir = "figures";
    if (!job->opt.prefix || !job->opt.prefix[0])
        job->opt.prefix = kind;
    if (strchr(job->opt.prefix, '/'))
        return ns_fail(err, "plot file prefix '%s' must not contain '/' (use the output "
                            "directory)", job->opt.prefix);
    if (job->opt.stat && strcmp(job->opt.stat, "var") != 0 && strcmp(job->opt.stat, "psi2") != 0)
        return ns_fail(err, "unknown statistic '%s' for --stat (use var or psi2)",
                       job->opt.stat);
    const char *ls = job->opt.layers_stat;
    if (ls && (!ls[0] || strspn(ls, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(ls)))
        return ns_fail(err, "'%s' is not a series name for --layers-stat (e.g. dist_var, "
                            "dist_psi2, grad_gain)", ls);
    return make_dirs(job->opt.out_dir, err);
}

/* Legends name runs by NsLog.label; two runs with the same label (two batch runs with different
 * seeds, say) get their file names appended so the key tells them apart. */
static NsLog *labelled_view(const NsLog *logs, int n)
{
    NsLog *view = ns_xmalloc(sizeof(NsLog) * (size_t)n);
    memcpy(view, logs, sizeof(NsLog) * (size_t)n); /* shares the open files; never closed */
    for (int i = 0; i < n; i++) {
        int clash = 0;
        for (int j = 0; j < n; j++)
            clash |= j != i && strcmp(logs[i].label, logs[j].label) == 0;
        if (!clash)
            continue;
        const char *slash = strrchr(logs[i].path, '/');
        snprintf(view[i].label, sizeof view[i].label, "%.40s [%.48s]", logs[i].label,
                 slash ? slash + 1 : logs[i].path);
    }
    return view;
}

static int plot_job(NsPlotJob *job, const char *kind, NsLog *logs, int n,
                    const NsPlotOptions *opt, char *err)
{
    size_t k = 0;
    while (k < N_KINDS && (!kind || strcmp(KINDS[k].kind, kind) != 0))
        k++;
    if (k == N_KINDS) {
        char list[200];
        kinds_list(list, sizeof list);
        return ns_fail(err, "unknown plot kind '%s' (kinds: %s)", kind ? kind : "(none)", list);
    }
    if (n < 1 || !logs)
        return ns_fail(err, "plot %s: no run logs given", kind);
    if (prepare_job(job, KINDS[k].kind, opt, err) < 0)
        return -1;
    NsLog *view = labelled_view(logs, n);
    int rc = KINDS[k].draw(job, view, n, err);
    free(view);
    if (rc < 0)
        return -1;
    if (job->no_gnuplot)
        return ns_fail(err, "gnuplot is not installed: wrote the data and %d script(s) but no "
                            "images; install the Debian package gnuplot-nox (or gnuplot), then "
                            "run 'gnuplot %s'%s", job->scripts, job->first_script,
                       job->scripts > 1 ? " and the other .gp files" : "");
    if (job->figures == 0) /* every plot errors itself when no run has its data */
        return ns_fail(err, "plot %s: nothing was drawn", kind);
    return job->figures;
}

int ns_plot(const char *kind, NsLog *logs, int n_logs, const NsPlotOptions *opt, char *err)
{
    NsPlotJob job;
    return plot_job(&job, kind, logs, n_logs, opt, err);
}

/* ------------------------------------------------------------------------------ command */

static void print_usage(void)
{
    printf("usage: normscope plot KIND RUN.h5 [RUN.h5 ...] [flags]\n\n"
           "Draws a figure of the PowerNorm paper from run logs with gnuplot, all runs on shared\n"
           "axes. Per figure it writes DIR/KIND.dat (the data), DIR/KIND.gp (a script to edit\n"
           "and re-run with `gnuplot KIND.gp`), DIR/KIND.png and DIR/KIND.svg, and prints the\n"
           "image paths. Runs lacking the data are skipped with a warning.\n\nkinds:\n");
    for (size_t k = 0; k < N_KINDS; k++)
        printf("  %-12s %s\n", KINDS[k].kind, KINDS[k].shows);
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
    kinds_list(list, sizeof list);
    if (!a->kind)
        return ns_fail(err, "plot: missing KIND (kinds: %s; see normscope plot --help)", list);
    int known = 0;
    for (size_t k = 0; k < N_KINDS; k++)
        known |= strcmp(KINDS[k].kind, a->kind) == 0;
    if (!known)
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
        NsPlotJob job;
        rc = plot_job(&job, a->kind, logs, a->n_runs, &a->opt, err);
        for (int i = 0; rc > 0 && i < job.n_images; i++)
            printf("%s\n", job.images[i]);
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
