/* ns_plot(): the entry point of every figure (the plot and study commands use it): checks the
 * request, makes the output directory, and hands the runs to the plot of that kind. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

void ns_plot_kinds_list(char *buf, size_t len)
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
        ns_plot_kinds_list(list, sizeof list);
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


const char *ns_plot_kind_description(const char *kind)
{
    for (size_t k = 0; k < N_KINDS; k++)
        if (strcmp(KINDS[k].kind, kind) == 0)
            return KINDS[k].shows;
    return NULL;
}

int ns_plot_print(const char *kind, NsLog *logs, int n_logs, const NsPlotOptions *opt, char *err)
{
    NsPlotJob job;
    int rc = plot_job(&job, kind, logs, n_logs, opt, err);
    for (int i = 0; rc > 0 && i < job.n_images; i++)
        printf("%s\n", job.images[i]);
    return rc;
}
