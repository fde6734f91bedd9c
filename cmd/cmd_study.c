/* normscope study: the paper's experiment in one command. It trains the same model on the same
 * corpus and seed with each scheme (layer, batch, power-v, power, power-official), each run a
 * child `normscope train` process writing runs/<scheme>.h5, then draws every figure, writes the
 * comparison table, a Markdown report stating what the measurements show, and a notebook.
 * With no flags it uses the embedded corpus and a model sized to finish in a few minutes on
 * two cores; any train flag given to study is passed on to every run.
 * --compare-release trains instead the paper's schemes beside the authors' release and its
 * ablations (RELEASE_RUNS) and adds DIR/release.md (analysis/release_report.c). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commands.h"
#include "compare.h"
#include "logread.h"
#include "notebook.h"
#include "plot.h"
#include "release_report.h"
#include "study_report.h"
#include "util.h"

#define MAX_SCHEMES 8
#define MAX_ARGS 256
#define DEFAULT_SCHEMES "layer,batch,power-v,power,power-official"
#define MAX_RUN_ARGS 6

/* One training run of the study: its name (runs/<name>.h5) and the train flags that make it
 * what it is, given after every other flag so that they win. */
typedef struct {
    const char *name;
    const char *args[MAX_RUN_ARGS + 1]; /* NULL-terminated */
} StudyRun;

/* --compare-release: each paper scheme beside the release's, and the release with and without
 * its row scaling. The release runs take --release-defaults (PN: H groups, PN warm-up = lr
 * warm-up; BN: momentum 0.05, its scheme default anyway); the paper's runs take neither. */
static const StudyRun RELEASE_RUNS[] = {
    {"batch", {"--norm", "batch"}},
    {"batch-official", {"--norm", "batch-official", "--release-defaults"}},
    {"batch-official-no-layer-scaling",
     {"--norm", "batch-official", "--release-defaults", "--no-layer-scaling"}},
    {"power", {"--norm", "power"}},
    {"power-official", {"--norm", "power-official", "--release-defaults"}},
    {"power-official-no-groups",
     {"--norm", "power-official", "--release-defaults", "--pn-groups", "0"}},
};
#define N_RELEASE_RUNS (int)(sizeof RELEASE_RUNS / sizeof RELEASE_RUNS[0])

/* The study's model and schedule unless the user overrides them: small enough for a few
 * minutes on 2 cores, pre position where every scheme trains, stream batching (see README
 * "Choosing defaults"). They are train flags, checked and passed on like the user's. */
static const char *const STUDY_DEFAULTS[] = {
    "--d-model", "64", "--heads", "4", "--d-ff", "256", "--layers", "4",
    "--seq-len", "32", "--batch-size", "32", "--vocab-size", "2000",
    "--steps", "800", "--lr", "1e-3", "--warmup", "100", "--dropout", "0.1",
    "--norm-position", "pre", "--pn-warmup", "100", "--batching", "stream",
    "--eval-every", "100", "--probe-vectors-every", "50", "--lipschitz-every", "100",
    "--hessian-iters", "8", "--log-every", "100",
};
#define N_DEFAULTS (int)(sizeof STUDY_DEFAULTS / sizeof STUDY_DEFAULTS[0])

typedef struct {
    char out_dir[NS_PATH_LEN];
    const char *scheme_list; /* --schemes, as given */
    char schemes[MAX_SCHEMES][32];
    int n_schemes;
    StudyRun runs[MAX_SCHEMES]; /* what is trained: one per scheme, or RELEASE_RUNS */
    int n_runs;
    int compare_release;
    int reuse_runs;
    char *pass[MAX_ARGS]; /* flags passed on to every run: STUDY_DEFAULTS, then the user's */
    int n_pass;
} Study;

/* Study's own flags; every other flag is one of train's (NS_CMD_STUDY rows of NS_RUN_OPTIONS). */
#define REFUSE(name)                                                                             \
    {.flag = name, .kind = NS_OPT_REFUSE,                                                        \
     .help = "study sets " name " itself for each run; use --schemes to choose the schemes"}
static const NsOption OPTIONS[] = {
    {.flag = "--out", .kind = NS_OPT_PATH, .offset = offsetof(Study, out_dir), .metavar = "DIR",
     .help = "output directory"},
    {.flag = "--schemes", .kind = NS_OPT_TEXT, .offset = offsetof(Study, scheme_list),
     .metavar = "LIST", .help = "comma-separated schemes"},
    {.flag = "--compare-release", .kind = NS_OPT_SWITCH, .offset = offsetof(Study, compare_release),
     .help = "train batch, batch-official (with and without --no-layer-scaling), power,\n"
             "power-official (--release-defaults, with and without group scaling) and\n"
             "write DIR/release.md and .csv: what the release's choices change"},
    {.flag = "--reuse-runs", .kind = NS_OPT_SWITCH, .offset = offsetof(Study, reuse_runs),
     .help = "analyse the logs already in DIR/runs instead of training those runs again\n"
             "(delete a log to retrain it; the flags must be the ones that made them)"},
    REFUSE("--norm"),
    REFUSE("--resume"),
    REFUSE("--checkpoint"),
};

static void print_study_defaults(void)
{
    printf("\nAny flag of 'normscope train' is passed to every run (see normscope train --help);\n"
           "study's own defaults, which they override:\n ");
    for (int i = 0; i < N_DEFAULTS; i += 2)
        printf(" %s %s", STUDY_DEFAULTS[i], STUDY_DEFAULTS[i + 1]);
    printf("\nWith no --corpus the embedded synthetic corpus is used. With --release-defaults or\n"
           "--compare-release, study's --pn-warmup default is not passed on (the release sets\n"
           "--pn-warmup = --warmup; the paper's runs keep train's default).\n");
}

static const NsCommandSpec SPEC = {
    .name = "study",
    .options = OPTIONS,
    .n_options = sizeof OPTIONS / sizeof OPTIONS[0],
    .usage = "[--out DIR] [--schemes LIST] [train flags]",
    .summary = "Trains one model per scheme (default " DEFAULT_SCHEMES ") on the same corpus, "
               "seed and\nconfiguration, then writes DIR/runs/<scheme>.h5, DIR/figures/ (gnuplot "
               "PNG, SVG,\ndata and scripts), DIR/compare.md and .csv, DIR/report.md and "
               "DIR/study.ipynb.",
    .heading = "flags",
    .after_flags = print_study_defaults,
};

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
        snprintf(s->schemes[s->n_schemes], sizeof s->schemes[0], "%s", tok);
        s->runs[s->n_schemes] = (StudyRun){s->schemes[s->n_schemes], {"--norm",
                                           s->schemes[s->n_schemes]}};
        s->n_schemes++;
    }
    s->n_runs = s->n_schemes;
    return s->n_schemes ? 0 : ns_fail(err, "--schemes needs at least one scheme");
}

/* Removes a flag and its value from the passed-on study defaults (the first N_DEFAULTS words). */
static void drop_default(Study *s, const char *flag)
{
    for (int i = 0; i + 1 < N_DEFAULTS && i + 1 < s->n_pass; i += 2)
        if (strcmp(s->pass[i], flag) == 0) {
            memmove(&s->pass[i], &s->pass[i + 2], sizeof(char *) * (size_t)(s->n_pass - i - 2));
            s->n_pass -= 2;
            return;
        }
}

/* The runs, once the flags are known: --compare-release's fixed set (which --schemes and
 * --release-defaults would contradict), else one per scheme. */
static int choose_runs(Study *s, const NsParse *p, char *err)
{
    int release = s->compare_release || ns_parse_given(p, "--release-defaults");
    if (release)
        drop_default(s, "--pn-warmup");
    if (!s->compare_release)
        return parse_schemes(s, s->scheme_list, err);
    if (ns_parse_given(p, "--schemes"))
        return ns_fail(err, "--compare-release chooses its runs itself; drop --schemes");
    if (ns_parse_given(p, "--release-defaults"))
        return ns_fail(err, "--compare-release sets --release-defaults on the release's runs "
                            "only; drop --release-defaults");
    for (int i = 0; i < N_RELEASE_RUNS; i++)
        s->runs[i] = RELEASE_RUNS[i];
    s->n_runs = N_RELEASE_RUNS;
    return 0;
}

/* Study's flags into s, train's into s->pass after STUDY_DEFAULTS; train's are checked here
 * with train's rows, so that a typo fails before any training starts. Returns 1 to go on, or 0
 * with *code. */
static int parse_study_args(Study *s, int argc, char **argv, int *code)
{
    char err[NS_ERRLEN];
    NsRunConfig probe;
    ns_run_config_default(&probe);
    snprintf(s->out_dir, sizeof s->out_dir, "study");
    s->scheme_list = DEFAULT_SCHEMES;
    for (int i = 0; i < N_DEFAULTS; i++)
        s->pass[s->n_pass++] = (char *)STUDY_DEFAULTS[i];
    /* the defaults first (they are ours: they parse), then the user's flags over them */
    NsOptSet defaults = {NS_RUN_OPTIONS, NS_N_RUN_OPTIONS, &probe, NS_CMD_STUDY, 0};
    NsParse d = {0};
    if (ns_options_parse(&SPEC, &defaults, 1, s->n_pass, s->pass, &d, err) != 0) {
        *code = ns_cmd_error(NS_EXIT_ERROR, "study's defaults: %s", err);
        return 0;
    }
    NsOptSet sets[] = {
        {SPEC.options, SPEC.n_options, s, 0, 0},
        {NS_RUN_OPTIONS, NS_N_RUN_OPTIONS, &probe, NS_CMD_STUDY, NS_SET_HIDDEN | NS_SET_PASS_ON},
    };
    NsParse p = {.pass = s->pass + s->n_pass, .pass_cap = MAX_ARGS - s->n_pass};
    if (!ns_cmd_parse_sets(&SPEC, sets, 2, argc, argv, &p, code))
        return 0;
    s->n_pass += p.n_pass;
    if (choose_runs(s, &p, err) < 0 || ns_run_config_validate_all(&probe, err) < 0) {
        *code = ns_cmd_error(NS_EXIT_USAGE, "%s", err);
        return 0;
    }
    return 1;
}

static int make_dir(const char *path, char *err)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return ns_fail(err, "cannot create directory '%s': %s", path, strerror(errno));
    return 0;
}

/* Runs `normscope train` for one run; returns its exit code (or -1 if it could not run). */
static int run_scheme(const Study *s, const StudyRun *run, const char *log_path)
{
    char *args[MAX_ARGS + MAX_RUN_ARGS + 8];
    int n = 0;
    args[n++] = "normscope";
    args[n++] = "train";
    for (int i = 0; i < s->n_pass; i++)
        args[n++] = s->pass[i];
    for (int i = 0; run->args[i]; i++)
        args[n++] = (char *)run->args[i];
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
    for (int i = 0; i < s->n_runs; i++) {
        const char *name = s->runs[i].name;
        snprintf(logs[i], NS_PATH_LEN, "%.900s/%s.h5", runs_dir, name);
        if (s->reuse_runs && access(logs[i], F_OK) == 0) {
            fprintf(stderr, "== study: reusing %s\n", logs[i]);
            ok[i] = 1;
            continue;
        }
        fprintf(stderr, "== study: training %s (%d/%d) -> %s\n", name, i + 1, s->n_runs,
                logs[i]);
        int code = run_scheme(s, &s->runs[i], logs[i]);
        ok[i] = code == NS_EXIT_OK || code == NS_EXIT_DIVERGED;
        if (code == NS_EXIT_DIVERGED)
            fprintf(stderr, "== study: %s diverged; its log is kept and reported\n", name);
        else if (code == NS_EXIT_INTERRUPTED || code == 128 + SIGINT || code == 128 + SIGTERM)
            return ns_fail(err, "study interrupted while training %s; finished runs are in %s",
                           name, runs_dir);
        else if (code != NS_EXIT_OK)
            return ns_fail(err, "training %s failed (exit %d); see the message above", name,
                           code);
    }
    return 0;
}

/* The figures of the forward distances once more with the scale-free rel_dist_* series. */
static void draw_relative(NsLog *logs, int n, const char *fig_dir)
{
    static const char *const KINDS[] = {"fluctuation", "boxes", "layers"};
    for (int k = 0; k < 3; k++) {
        char prefix[64], perr[NS_ERRLEN];
        snprintf(prefix, sizeof prefix, "%s-relative", KINDS[k]);
        NsPlotOptions opt = {.out_dir = fig_dir, .relative = 1, .prefix = prefix};
        if (ns_plot(KINDS[k], logs, n, &opt, perr) < 0)
            fprintf(stderr, "normscope: study: plot %s --relative: %s\n", KINDS[k], perr);
    }
}

/* Every figure over all runs (the forward distances also relative), plus the paper's
 * BN-vs-PN-V box plots for those two alone. */
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
    if (drawn)
        draw_relative(logs, n, fig_dir);
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
    const char *names[MAX_SCHEMES], *run_names[MAX_SCHEMES];
    int n = 0;
    for (int i = 0; i < s->n_runs; i++) {
        if (!ok[i])
            continue;
        if (ns_log_open(&logs[n], paths[i], err) < 0)
            return -1;
        /* the release's runs share schemes: the legends name the runs */
        if (s->compare_release)
            snprintf(logs[n].label, sizeof logs[n].label, "%s", s->runs[i].name);
        run_names[n] = s->runs[i].name;
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
    if (rc == 0 && s->compare_release)
        rc = ns_release_report(s->out_dir, logs, run_names, n, err);
    if (rc == 0)
        rc = ns_export_notebook(names, n, fig_dir, nb, err);
    for (int i = 0; i < n; i++)
        ns_log_close(&logs[i]);
    return rc;
}

int ns_cmd_study(int argc, char **argv)
{
    char err[NS_ERRLEN] = "";
    Study s;
    int code;
    memset(&s, 0, sizeof s);
    if (!parse_study_args(&s, argc, argv, &code))
        return code;
    char logs[MAX_SCHEMES][NS_PATH_LEN];
    int ok[MAX_SCHEMES] = {0};
    double t0 = ns_now_seconds();
    if (train_all(&s, logs, ok, err) < 0 || analyse(&s, logs, ok, err) < 0)
        return ns_cmd_error(NS_EXIT_ERROR, "%s", err);
    printf("study done in %.0f s: report %s/report.md%s%s%s, table %s/compare.md, figures "
           "%s/figures/, notebook %s/study.ipynb\n", ns_now_seconds() - t0, s.out_dir,
           s.compare_release ? " and " : "", s.compare_release ? s.out_dir : "",
           s.compare_release ? "/release.md" : "", s.out_dir, s.out_dir, s.out_dir);
    return NS_EXIT_OK;
}
