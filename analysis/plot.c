/* ns_plot(): the entry point of every figure (the plot and study commands use it): checks the
 * request, makes the output directory, and hands the runs to the plot of that kind. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gnuplot.h"
#include "plot.h"
#include "seeds.h"
#include "util.h"

typedef int (*PlotFn)(NsPlotJob *job, NsLog *logs, int n, char *err);

/* plot_hessian.c (its declaration belongs with the others in gnuplot.h) */
int ns_plot_hessian(NsPlotJob *job, NsLog *logs, int n, char *err);

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
    {"hessian", ns_plot_hessian,
     "Hessian eigenvalue density per run (stochastic Lanczos quadrature), top eigenvalue\n"
     "               and trace (Hutchinson) vs step"},
    {"training", ns_plot_training,
     "training loss (every step and a moving average) and validation perplexity vs step"},
    {"layers", ns_plot_layers,
     "heat map of a statistic (default dist_var) over norm site and step, a panel per run"},
    {"figure2", ns_plot_figure2,
     "two runs, a vision run then a Transformer: their first norm sites' distances of mean\n"
     "               and variance over the percent of training, absolute and relative (Fig. 2)"},
};
#define N_KINDS (sizeof KINDS / sizeof KINDS[0])

const char *const NS_PLOT_KINDS[] = {"fluctuation", "boxes",    "gradients", "lipschitz",
                                     "hessian",     "training", "layers",    "figure2",
                                     NULL};

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

/* The formats of a comma list into formats[] (each once, in the order given). */
static int parse_formats(const char *list, const char **formats, int *n, char *err)
{
    static const char *const KNOWN[NS_PLOT_MAX_FORMATS] = {"png", "svg", "pdf"};
    *n = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        int k = 0;
        while (k < NS_PLOT_MAX_FORMATS &&
               !(strlen(KNOWN[k]) == len && strncmp(KNOWN[k], p, len) == 0))
            k++;
        if (k == NS_PLOT_MAX_FORMATS)
            return ns_fail(err, "--format: unknown image format '%.*s' (use a comma list of "
                                "png, svg, pdf)", (int)len, p);
        int dup = 0;
        for (int j = 0; j < *n; j++)
            dup |= formats[j] == KNOWN[k];
        if (!dup)
            formats[(*n)++] = KNOWN[k];
        p += len + (p[len] == ',');
    }
    return *n ? 0 : ns_fail(err, "--format: no image format given (use png, svg, pdf)");
}

/* "WxH" in pixels. */
static int parse_size(const char *size, int *w, int *h, char *err)
{
    char x, rest;
    if (sscanf(size, "%d%c%d%c", w, &x, h, &rest) != 3 || (x != 'x' && x != 'X'))
        return ns_fail(err, "--size '%s': give width x height in pixels, e.g. 800x500", size);
    if (*w < 100 || *h < 100 || *w > 20000 || *h > 20000)
        return ns_fail(err, "--size '%s': width and height must be 100 to 20000 pixels", size);
    return 0;
}

/* The process-wide style of ns_plot_style_from_args (format, size, font; NULL = built-in). */
static NsPlotOptions default_style;

/* Reads the figure flags of args into *got; marks their words in `used` (may be NULL). */
static void style_words(char *const *args, int n, NsPlotOptions *got, char *used)
{
    static const char *const FLAGS[3] = {"--format", "--size", "--font"};
    const char **field[3] = {&got->format, &got->size, &got->font};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            size_t len = strlen(FLAGS[k]);
            if (strncmp(args[i], FLAGS[k], len) != 0)
                continue;
            if (args[i][len] == '=') {
                *field[k] = args[i] + len + 1;
                if (used)
                    used[i] = 1;
            } else if (args[i][len] == '\0' && i + 1 < n) {
                *field[k] = args[i + 1];
                if (used)
                    used[i] = used[i + 1] = 1;
                i++;
            }
        }
}

int ns_plot_style_from_args(char *const *args, int n, char *err)
{
    NsPlotOptions got = default_style;
    style_words(args, n, &got, NULL);
    if (ns_plot_style_check(&got, err) < 0)
        return -1;
    default_style = got;
    return 0;
}

int ns_plot_style_take(char **args, int *n, char *err)
{
    NsPlotOptions got = default_style;
    char *used = ns_xcalloc((size_t)(*n > 0 ? *n : 1), 1);
    style_words(args, *n, &got, used);
    int rc = ns_plot_style_check(&got, err);
    if (rc == 0) {
        default_style = got;
        int kept = 0;
        for (int i = 0; i < *n; i++)
            if (!used[i])
                args[kept++] = args[i];
        *n = kept;
    }
    free(used);
    return rc;
}

/* Resolves format, size and font (defaults: ns_plot_style_from_args's, else png,svg at
 * 1200x800 in Sans 10). */
static int resolve_style(NsPlotJob *job, char *err)
{
    NsPlotOptions *o = &job->opt;
    o->format = o->format ? o->format : default_style.format;
    o->size = o->size ? o->size : default_style.size;
    o->font = o->font ? o->font : default_style.font;
    if (parse_formats(o->format ? o->format : "png,svg", job->formats, &job->n_formats, err) < 0)
        return -1;
    job->width = 1200, job->height = 800;
    if (o->size && parse_size(o->size, &job->width, &job->height, err) < 0)
        return -1;
    const char *font = o->font ? o->font : "Sans,10";
    if (!font[0] || strlen(font) >= sizeof job->font || ns_text_has_control(font))
        return ns_fail(err, "--font '%s': give \"Name,points\", e.g. \"Helvetica,9\"", font);
    snprintf(job->font, sizeof job->font, "%s", font);
    return 0;
}

/* A file-name prefix: no folder, and a name one can type and list (no control character). */
static int check_prefix(const char *prefix, char *err)
{
    if (strchr(prefix, '/'))
        return ns_fail(err, "plot file prefix '%s' must not contain '/' (use the output "
                            "directory)", prefix);
    if (ns_text_has_control(prefix))
        return ns_fail(err, "plot file prefix '%s' holds a control character; give a plain "
                            "name", prefix);
    return 0;
}

int ns_plot_style_check(const NsPlotOptions *opt, char *err)
{
    NsPlotJob job;
    memset(&job, 0, sizeof job);
    job.opt = *opt;
    if (opt->prefix && check_prefix(opt->prefix, err) < 0)
        return -1;
    return resolve_style(&job, err);
}

/* Checks the options and fills in defaults. */
static int prepare_job(NsPlotJob *job, const char *kind, const NsPlotOptions *opt, char *err)
{
    memset(job, 0, sizeof *job);
    if (opt)
        job->opt = *opt;
    if (resolve_style(job, err) < 0)
        return -1;
    job->kind = kind;
    if (!job->opt.out_dir || !job->opt.out_dir[0])
        job->opt.out_dir = "figures";
    if (!job->opt.prefix || !job->opt.prefix[0])
        job->opt.prefix = kind;
    if (check_prefix(job->opt.prefix, err) < 0)
        return -1;
    if (job->opt.stat && strcmp(job->opt.stat, "var") != 0 && strcmp(job->opt.stat, "psi2") != 0)
        return ns_fail(err, "unknown statistic '%s' for --stat (use var or psi2)",
                       job->opt.stat);
    const char *ls = job->opt.layers_stat;
    if (ls && (!ls[0] || strspn(ls, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(ls)))
        return ns_fail(err, "'%s' is not a series name for --layers-stat (e.g. dist_var, "
                            "dist_psi2, grad_gain)", ls);
    return make_dirs(job->opt.out_dir, err);
}

static int label_clash(const NsLog *logs, int n, int i)
{
    for (int j = 0; j < n; j++)
        if (j != i && strcmp(logs[i].label, logs[j].label) == 0)
            return 1;
    return 0;
}

/* Legends name runs by NsLog.label; two runs with the same label get their seed appended
 * ("batch (post) seed 2"), and runs that still clash (same seed) their file names, so the key
 * tells every run apart. */
static NsLog *labelled_view(const NsLog *logs, int n)
{
    NsLog *view = ns_xmalloc(sizeof(NsLog) * (size_t)n);
    memcpy(view, logs, sizeof(NsLog) * (size_t)n); /* shares the open files; never closed */
    for (int i = 0; i < n; i++)
        ns_seed_label(logs, n, i, view[i].label, sizeof view[i].label);
    NsLog *named = ns_xmalloc(sizeof(NsLog) * (size_t)n);
    memcpy(named, view, sizeof(NsLog) * (size_t)n);
    for (int i = 0; i < n; i++) {
        if (!label_clash(view, n, i))
            continue;
        const char *slash = strrchr(logs[i].path, '/');
        snprintf(named[i].label, sizeof named[i].label, "%.40s [%.48s]", view[i].label,
                 slash ? slash + 1 : logs[i].path);
    }
    free(view);
    return named;
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
    job->logs = view;
    job->n_logs = n;
    int rc = KINDS[k].draw(job, view, n, err);
    job->logs = NULL;
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
