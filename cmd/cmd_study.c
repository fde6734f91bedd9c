/* normscope study: the paper's experiment in one command. It trains the same model on the same
 * corpus and seed with each scheme (layer, batch, power-v, power, power-official), each run a
 * child `normscope train` process writing runs/<scheme>.h5, then draws every figure, writes the
 * comparison table, a Markdown report stating what the measurements show, and a notebook.
 * With no flags it uses the embedded corpus and a model sized to finish in a few minutes on
 * two cores; any train flag given to study is passed on to every run. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "options.h"
#include "commands.h"
#include "compare.h"
#include "logread.h"
#include "notebook.h"
#include "plot.h"
#include "study_report.h"
#include "util.h"

#define MAX_SCHEMES 8
#define MAX_ARGS 256

/* The study's model and schedule unless the user overrides them: small enough for a few
 * minutes on 2 cores, sentence batches (padding present, as in the paper's NLP setting), pre
 * position where every scheme trains (see README "Choosing defaults"). */
static const char *const STUDY_DEFAULTS[] = {
    "--d-model", "64", "--heads", "4", "--d-ff", "256", "--layers", "4",
    "--seq-len", "32", "--batch-size", "32", "--vocab-size", "2000",
    "--steps", "800", "--lr", "1e-3", "--warmup", "100", "--dropout", "0.1",
    "--norm-position", "pre", "--pn-warmup", "100", "--batching", "stream",
    "--eval-every", "100", "--probe-vectors-every", "50", "--lipschitz-every", "100",
    "--hessian-iters", "8", "--log-every", "100",
};
#define N_DEFAULTS (int)(sizeof STUDY_DEFAULTS / sizeof STUDY_DEFAULTS[0])

static const char *const DEFAULT_SCHEMES = "layer,batch,power-v,power,power-official";

typedef struct {
    char out_dir[NS_PATH_LEN];
    char schemes[MAX_SCHEMES][32];
    int n_schemes;
    char *pass[MAX_ARGS]; /* flags passed on to every run */
    int n_pass;
} Study;

static int fail(const char *msg, int code)
{
    fprintf(stderr, "normscope: %s\n", msg);
    return code;
}

static int parse_schemes(Study *s, const char *list, char *err)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    s->n_schemes = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        NsNormKind kind;
        if (ns_norm_from_name(tok, &kind) < 0)
            return ns_fail(err, "--schemes: unknown scheme '%s' (choose from %s)", tok,
                           ns_norm_names_list());
        if (s->n_schemes == MAX_SCHEMES)
            return ns_fail(err, "--schemes: at most %d schemes", MAX_SCHEMES);
        snprintf(s->schemes[s->n_schemes++], sizeof s->schemes[0], "%s", tok);
    }
    return s->n_schemes ? 0 : ns_fail(err, "--schemes needs at least one scheme");
}

/* Splits argv into study flags (--out, --schemes) and flags for the runs, which are checked
 * here with train's parser so a typo fails before any training starts. */
static int parse_study_args(Study *s, int argc, char **argv, char *err)
{
    snprintf(s->out_dir, sizeof s->out_dir, "study");
    if (parse_schemes(s, DEFAULT_SCHEMES, err) < 0)
        return -1;
    for (int i = 0; i < N_DEFAULTS; i++)
        s->pass[s->n_pass++] = (char *)STUDY_DEFAULTS[i];
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int takes_value = i + 1 < argc && !strchr(a, '=');
        if (strcmp(a, "--out") == 0 || strcmp(a, "--schemes") == 0) {
            if (!takes_value)
                return ns_fail(err, "%s needs a value", a);
            if (a[2] == 'o')
                snprintf(s->out_dir, sizeof s->out_dir, "%s", argv[++i]);
            else if (parse_schemes(s, argv[++i], err) < 0)
                return -1;
            continue;
        }
        if (strcmp(a, "--norm") == 0 || strcmp(a, "--resume") == 0 ||
            strcmp(a, "--checkpoint") == 0)
            return ns_fail(err, "study sets %s itself for each run; use --schemes to choose "
                                "the schemes", a);
        if (s->n_pass + 1 >= MAX_ARGS)
            return ns_fail(err, "too many flags");
        s->pass[s->n_pass++] = argv[i];
    }
    NsRunConfig probe;
    ns_run_config_default(&probe);
    int rc = ns_cli_parse(s->n_pass, s->pass,
                          NS_FLAGS_MODEL | NS_FLAGS_OPTIM | NS_FLAGS_DATA | NS_FLAGS_SCHEDULE |
                              NS_FLAGS_PROBES | NS_FLAGS_OUTPUT, "study", &probe, err);
    if (rc < 0)
        return -1;
    if (ns_model_config_validate(&probe.model, err) < 0 ||
        ns_optim_config_validate(&probe.optim, err) < 0 || ns_run_config_validate(&probe, err) < 0)
        return -1;
    return 0;
}

static int make_dir(const char *path, char *err)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return ns_fail(err, "cannot create directory '%s': %s", path, strerror(errno));
    return 0;
}

/* Runs `normscope train` for one scheme; returns its exit code (or -1 if it could not run). */
static int run_scheme(const Study *s, const char *scheme, const char *log_path)
{
    char *args[MAX_ARGS + 8];
    int n = 0;
    args[n++] = "normscope";
    args[n++] = "train";
    for (int i = 0; i < s->n_pass; i++)
        args[n++] = s->pass[i];
    args[n++] = "--norm";
    args[n++] = (char *)scheme;
    args[n++] = "--out";
    args[n++] = (char *)log_path;
    args[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int train_all(const Study *s, char logs[][NS_PATH_LEN], int *ok, char *err)
{
    char runs_dir[NS_PATH_LEN + 8];
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", s->out_dir);
    if (make_dir(s->out_dir, err) < 0 || make_dir(runs_dir, err) < 0)
        return -1;
    /* Children handle SIGINT themselves (flush, checkpoint); the study waits, then stops. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    for (int i = 0; i < s->n_schemes; i++) {
        snprintf(logs[i], NS_PATH_LEN, "%.900s/%s.h5", runs_dir, s->schemes[i]);
        fprintf(stderr, "== study: training %s (%d/%d) -> %s\n", s->schemes[i], i + 1,
                s->n_schemes, logs[i]);
        int code = run_scheme(s, s->schemes[i], logs[i]);
        ok[i] = code == NS_EXIT_OK || code == NS_EXIT_DIVERGED;
        if (code == NS_EXIT_DIVERGED)
            fprintf(stderr, "== study: %s diverged; its log is kept and reported\n",
                    s->schemes[i]);
        else if (code == NS_EXIT_INTERRUPTED || code == 128 + SIGINT || code == 128 + SIGTERM)
            return ns_fail(err, "study interrupted while training %s; finished runs are in %s",
                           s->schemes[i], runs_dir);
        else if (code != NS_EXIT_OK)
            return ns_fail(err, "training %s failed (exit %d); see the message above",
                           s->schemes[i], code);
    }
    return 0;
}

/* Every figure over all runs, plus the paper's BN-vs-PN-V box plots for those two alone. */
static int draw_figures(const Study *s, NsLog *logs, int n, const char *fig_dir, char *err)
{
    int drawn = 0;
    for (int k = 0; NS_PLOT_KINDS[k]; k++) {
        NsPlotOptions opt = {.out_dir = fig_dir};
        char perr[NS_ERRLEN];
        if (ns_plot(NS_PLOT_KINDS[k], logs, n, &opt, perr) < 0)
            fprintf(stderr, "normscope: study: plot %s: %s\n", NS_PLOT_KINDS[k], perr);
        else
            drawn++;
    }
    NsLog pair[2];
    int m = 0;
    for (int i = 0; i < n && m < 2; i++)
        if (strcmp(logs[i].norm, "batch") == 0 || strcmp(logs[i].norm, "power-v") == 0)
            pair[m++] = logs[i];
    if (m == 2) {
        NsPlotOptions opt = {.out_dir = fig_dir, .prefix = "boxes-bn-vs-pnv"};
        char perr[NS_ERRLEN];
        if (ns_plot("boxes", pair, 2, &opt, perr) < 0)
            fprintf(stderr, "normscope: study: BN vs PN-V boxes: %s\n", perr);
    }
    (void)s;
    return drawn ? 0 : ns_fail(err, "no figure could be drawn (is gnuplot installed?)");
}

static int analyse(const Study *s, char paths[][NS_PATH_LEN], const int *ok, char *err)
{
    NsLog logs[MAX_SCHEMES];
    const char *names[MAX_SCHEMES];
    int n = 0;
    for (int i = 0; i < s->n_schemes; i++) {
        if (!ok[i])
            continue;
        if (ns_log_open(&logs[n], paths[i], err) < 0)
            return -1;
        names[n++] = paths[i];
    }
    char fig_dir[NS_PATH_LEN + 16], prefix[NS_PATH_LEN + 16], nb[NS_PATH_LEN + 16];
    snprintf(fig_dir, sizeof fig_dir, "%s/figures", s->out_dir);
    snprintf(prefix, sizeof prefix, "%s/compare", s->out_dir);
    snprintf(nb, sizeof nb, "%s/study.ipynb", s->out_dir);
    int rc = draw_figures(s, logs, n, fig_dir, err);
    if (rc == 0)
        rc = ns_compare(logs, n, prefix, 1, err);
    if (rc == 0)
        rc = ns_study_report(s->out_dir, logs, n, err);
    if (rc == 0)
        rc = ns_export_notebook(names, n, fig_dir, nb, err);
    for (int i = 0; i < n; i++)
        ns_log_close(&logs[i]);
    return rc;
}

static void print_help(void)
{
    printf("usage: normscope study [--out DIR] [--schemes LIST] [train flags]\n\n"
           "Trains one model per scheme (default %s) on the same corpus, seed and\n"
           "configuration, then writes DIR/runs/<scheme>.h5, DIR/figures/ (gnuplot PNG, SVG,\n"
           "data and scripts), DIR/compare.md and .csv, DIR/report.md and DIR/study.ipynb.\n\n"
           "  --out DIR         output directory [study]\n"
           "  --schemes LIST    comma-separated schemes [%s]\n\n"
           "Any flag of 'normscope train' is passed to every run (see normscope train --help);\n"
           "study's own defaults, which they override:\n ", DEFAULT_SCHEMES, DEFAULT_SCHEMES);
    for (int i = 0; i < N_DEFAULTS; i += 2)
        printf(" %s %s", STUDY_DEFAULTS[i], STUDY_DEFAULTS[i + 1]);
    printf("\nWith no --corpus the embedded synthetic corpus is used.\n");
}

int ns_cmd_study(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help();
            return NS_EXIT_OK;
        }
    char err[NS_ERRLEN] = "";
    Study s;
    memset(&s, 0, sizeof s);
    if (parse_study_args(&s, argc, argv, err) < 0)
        return fail(err, NS_EXIT_USAGE);
    char logs[MAX_SCHEMES][NS_PATH_LEN];
    int ok[MAX_SCHEMES] = {0};
    double t0 = ns_now_seconds();
    if (train_all(&s, logs, ok, err) < 0)
        return fail(err, NS_EXIT_ERROR);
    if (analyse(&s, logs, ok, err) < 0)
        return fail(err, NS_EXIT_ERROR);
    printf("study done in %.0f s: report %s/report.md, table %s/compare.md, figures "
           "%s/figures/, notebook %s/study.ipynb\n", ns_now_seconds() - t0, s.out_dir,
           s.out_dir, s.out_dir, s.out_dir);
    return NS_EXIT_OK;
}
