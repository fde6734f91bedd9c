/* normscope sweep: every cell of a grid of train flags, each a normal run with its log and
 * checkpoint under DIR/runs/, run by the runner (runner.h: J at once, resumable, launcher), then
 * the summary DIR/sweep.csv and .md and the onset map DIR/onset.* (analysis/sweep_summary.h).
 * Every cell's full flag set is parsed as train would parse it before anything runs, so a bad
 * grid is refused with one line. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "explanations.h"
#include "runner.h"
#include "sweep_summary.h"
#include "util.h"

#define MAX_KEYS 8
#define MAX_VALUES 32
#define MAX_CELLS 1024
#define MAX_PASS 256

typedef struct {
    char key[48];                 /* "d-model" */
    char *values[MAX_VALUES];
    int n_values;
    char buf[1024];
} Grid;

typedef struct {
    char out_dir[NS_PATH_LEN];
    int jobs;
    const char *launcher, *map_x, *map_y, *grid_unused;
    Grid grids[MAX_KEYS];
    int n_grids;
    char *pass[MAX_PASS]; /* the train flags of every cell */
    int n_pass;
} Sweep;

#define REFUSE(name, why) {.flag = name, .kind = NS_OPT_REFUSE, .help = why}
static const NsOption OPTIONS[] = {
    {.flag = "--grid", .kind = NS_OPT_TEXT, .offset = offsetof(Sweep, grid_unused),
     .metavar = "KEY=V1,V2,...",
     .help = "a train flag without its dashes and its values (repeatable; the cells\n"
             "are every combination), e.g. layers=2,4,6 lr=1e-3,3e-3 norm=batch,power-v"},
    {.flag = "--out", .kind = NS_OPT_PATH, .offset = offsetof(Sweep, out_dir), .metavar = "DIR",
     .help = "output directory: DIR/runs/<cell>.h5 (+ .ckpt.h5, .out), DIR/sweep.csv\n"
             "and .md, DIR/onset.png, .svg, .dat, .gp"},
    {.flag = "--jobs", .kind = NS_OPT_INT, .offset = offsetof(Sweep, jobs), .metavar = "J",
     .help = "cells at once; each gets max(1, cores / (J x launcher ranks)) threads\n"
             "unless --threads is given"},
    {.flag = "--launcher", .kind = NS_OPT_TEXT, .offset = offsetof(Sweep, launcher),
     .metavar = "CMD", .help = "run each cell under CMD, e.g. \"mpirun -np 2\""},
    {.flag = "--map-x", .kind = NS_OPT_TEXT, .offset = offsetof(Sweep, map_x), .metavar = "KEY",
     .help = "onset map's x axis (default: the first varying key other than norm and\n"
             "norm-position)"},
    {.flag = "--map-y", .kind = NS_OPT_TEXT, .offset = offsetof(Sweep, map_y), .metavar = "KEY",
     .help = "onset map's y axis (default: the second such key)"},
    REFUSE("--resume", "sweep resumes interrupted cells itself; run the same sweep again"),
    REFUSE("--checkpoint", "sweep names each cell's checkpoint itself (DIR/runs/<cell>.ckpt.h5)"),
    REFUSE("--overwrite", "sweep never replaces a finished cell; delete DIR/runs/<cell>.h5 to "
                          "retrain it"),
};

static void print_after(void)
{
    printf("\nAny other flag of 'normscope train' is given to every cell (see normscope train "
           "--help).\nA finished cell (its log reaches --steps, or diverged) is kept, an "
           "interrupted one\nresumed from its checkpoint: run the same command again after a "
           "stop. Columns of\nsweep.csv: the grid keys, final_ppl, diverged_at, growth (median "
           "batch-vs-running\ndistance, dist_var or dist_psi2 for the PN family, over the last "
           "fifth / over the\nsecond fifth, at growth_site, the site where it is largest), "
           "growth_site, last_dist\n(its last-fifth median), minutes (training wall time).\n");
}

static const NsCommandSpec SPEC = {
    .name = "sweep",
    .options = OPTIONS,
    .n_options = sizeof OPTIONS / sizeof OPTIONS[0],
    .usage = "--grid KEY=V1,V2,... [--grid ...] [train flags] [--out DIR] [--jobs J]",
    .summary = "Trains every cell of the product of the grids, then writes DIR/sweep.csv and "
               ".md (one row\nper cell) and the onset map DIR/onset.png and .svg: where BN's "
               "batch statistics start\nto run away from their running values.",
    .heading = "flags",
    .after_flags = print_after,
};

/* ------------------------------------------------------------------ the grid */

static int is_grid_word(const char *a) { return !strcmp(a, "--grid") || !strncmp(a, "--grid=", 7); }

/* The train flag a key names, if train accepts it with a value. */
static const NsOption *train_row(const char *key)
{
    char flag[64];
    snprintf(flag, sizeof flag, "--%s", key);
    for (size_t i = 0; i < NS_N_RUN_OPTIONS; i++) {
        const NsOption *o = &NS_RUN_OPTIONS[i];
        if (o->flag && (o->commands & NS_CMD_TRAIN) && strcmp(o->flag, flag) == 0)
            return o;
    }
    return NULL;
}

static int parse_grid(Sweep *s, const char *spec, char *err)
{
    const char *eq = strchr(spec, '=');
    if (s->n_grids == MAX_KEYS)
        return ns_fail(err, "--grid: at most %d keys", MAX_KEYS);
    if (!eq || eq == spec)
        return ns_fail(err, "--grid '%s': give KEY=V1,V2,... (KEY a train flag without dashes)",
                       spec);
    Grid *g = &s->grids[s->n_grids];
    snprintf(g->key, sizeof g->key, "%.*s", (int)(eq - spec), spec);
    const NsOption *o = train_row(g->key);
    if (!o || !strcmp(g->key, "out"))
        return ns_fail(err, "--grid: '%s' is not a flag of normscope train (see normscope train "
                            "--help)", g->key);
    if (o->kind == NS_OPT_SWITCH)
        return ns_fail(err, "--grid: --%s is a switch; give it as a flag of every cell instead",
                       g->key);
    for (int k = 0; k < s->n_grids; k++)
        if (!strcmp(s->grids[k].key, g->key))
            return ns_fail(err, "--grid: key '%s' given twice", g->key);
    if (!eq[1])
        return ns_fail(err, "--grid %s=: empty list of values; give %s=V1,V2,...", g->key, g->key);
    snprintf(g->buf, sizeof g->buf, "%s", eq + 1);
    for (char *v = g->buf, *next; v; v = next) {
        next = strchr(v, ',');
        if (next)
            *next++ = 0;
        if (!v[0])
            return ns_fail(err, "--grid %s: empty value in '%s'", g->key, eq + 1);
        for (int k = 0; k < g->n_values; k++)
            if (!strcmp(g->values[k], v))
                return ns_fail(err, "--grid %s: value '%s' given twice", g->key, v);
        if (g->n_values == MAX_VALUES)
            return ns_fail(err, "--grid %s: at most %d values", g->key, MAX_VALUES);
        g->values[g->n_values++] = v;
    }
    s->n_grids++;
    return 0;
}

/* Takes the --grid words out of argv (the option parser keeps one value per flag). */
static int take_grids(Sweep *s, int *argc, char **argv, char *err)
{
    int kept = 0;
    for (int i = 0; i < *argc; i++) {
        if (!is_grid_word(argv[i])) {
            argv[kept++] = argv[i];
            continue;
        }
        const char *spec = argv[i][6] == '=' ? argv[i] + 7 : (i + 1 < *argc ? argv[++i] : NULL);
        if (!spec)
            return ns_fail(err, "--grid needs KEY=V1,V2,...");
        if (parse_grid(s, spec, err) < 0)
            return -1;
    }
    *argc = kept;
    return s->n_grids ? 0 : ns_fail(err, "give at least one --grid KEY=V1,V2,... (see normscope "
                                         "sweep --help)");
}

/* ------------------------------------------------------------------ cells */

typedef struct {
    NsCell *cells;
    NsRunConfig *cfgs;
    char **values; /* [n][n_grids] */
    char **words;  /* each cell's args */
    char **paths;
    int n;
} Cells;

/* A file-name-safe piece of a value: "3e-3", "0.1", "batch"; others become '-'. */
static void name_piece(char *out, size_t n, const char *key, const char *value)
{
    size_t k = (size_t)snprintf(out, n, "%s-", key);
    for (const char *c = value; *c && k + 1 < n; c++)
        out[k++] = (strchr("+-.", *c) || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                    (*c >= 'A' && *c <= 'Z')) ? *c : '-';
    out[k < n ? k : n - 1] = 0;
}

static int make_cell(const Sweep *s, Cells *c, int index, const int *pick, char *err)
{
    NsCell *cell = &c->cells[index];
    char **args = ns_xcalloc((size_t)(s->n_pass + 2 * s->n_grids + 1), sizeof *args);
    memcpy(args, s->pass, sizeof *args * (size_t)s->n_pass);
    int n = s->n_pass;
    cell->name[0] = 0;
    for (int k = 0; k < s->n_grids; k++) {
        const Grid *g = &s->grids[k];
        char flag[64], piece[128];
        snprintf(flag, sizeof flag, "--%s", g->key);
        args[n++] = ns_xstrdup(flag);
        args[n++] = g->values[pick[k]];
        c->values[index * s->n_grids + k] = g->values[pick[k]];
        name_piece(piece, sizeof piece, g->key, g->values[pick[k]]);
        size_t len = strlen(cell->name);
        snprintf(cell->name + len, sizeof cell->name - len, "%s%s", k ? "_" : "", piece);
    }
    cell->args = args;
    cell->n_args = n;
    c->words[index] = (char *)args;
    char path[NS_PATH_LEN];
    if (snprintf(path, sizeof path, "%s/runs/%s.h5", s->out_dir, cell->name) >= (int)sizeof path)
        return ns_fail(err, "--out '%s': path too long", s->out_dir);
    for (int j = 0; j < index; j++)
        if (!strcmp(c->cells[j].name, cell->name))
            return ns_fail(err, "--grid: cells '%s' would share one file; use values that differ "
                                "in letters or digits", cell->name);
    if (ns_runner_check_cell(cell, path, &c->cfgs[index], err) < 0)
        return ns_fail_context(err, "--grid: cell %s", cell->name);
    c->paths[index] = cell->log_path;
    return 0;
}

/* Every cell of the product, first key slowest; each parsed and checked. */
static int make_cells(const Sweep *s, Cells *c, char *err)
{
    long n = 1;
    for (int k = 0; k < s->n_grids; k++)
        n *= s->grids[k].n_values;
    if (n > MAX_CELLS)
        return ns_fail(err, "--grid: %ld cells; at most %d", n, MAX_CELLS);
    c->n = (int)n;
    c->cells = ns_xcalloc((size_t)n, sizeof *c->cells);
    c->cfgs = ns_xcalloc((size_t)n, sizeof *c->cfgs);
    c->values = ns_xcalloc((size_t)n * (size_t)s->n_grids, sizeof *c->values);
    c->words = ns_xcalloc((size_t)n, sizeof *c->words);
    c->paths = ns_xcalloc((size_t)n, sizeof *c->paths);
    int pick[MAX_KEYS] = {0};
    for (int i = 0; i < c->n; i++) {
        if (make_cell(s, c, i, pick, err) < 0)
            return -1;
        for (int k = s->n_grids - 1; k >= 0 && ++pick[k] == s->grids[k].n_values; k--)
            pick[k] = 0;
    }
    return 0;
}

static void free_cells(const Sweep *s, Cells *c)
{
    for (int i = 0; i < c->n; i++) {
        char **args = (char **)c->words[i];
        for (int k = 0; args && k < s->n_grids; k++)
            free(args[s->n_pass + 2 * k]);
        free(args);
    }
    free(c->cells);
    free(c->cfgs);
    free(c->values);
    free(c->words);
    free(c->paths);
}

/* ------------------------------------------------------------------ the command */

static int parse_sweep_args(Sweep *s, int argc, char **argv, int *code)
{
    char err[NS_ERRLEN];
    NsRunConfig probe;
    ns_run_config_default(&probe);
    snprintf(s->out_dir, sizeof s->out_dir, "sweep");
    s->jobs = 1;
    NsOptSet sets[] = {
        {SPEC.options, SPEC.n_options, s, 0, 0},
        {NS_RUN_OPTIONS, NS_N_RUN_OPTIONS, &probe, NS_CMD_TRAIN, NS_SET_HIDDEN | NS_SET_PASS_ON},
    };
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            ns_options_print_help(&SPEC, sets, 2);
            *code = NS_EXIT_OK;
            return 0;
        }
    if (take_grids(s, &argc, argv, err) < 0) {
        *code = ns_cmd_error(NS_EXIT_USAGE, "%s", err);
        return 0;
    }
    NsParse p = {.pass = s->pass, .pass_cap = MAX_PASS};
    if (!ns_cmd_parse_sets(&SPEC, sets, 2, argc, argv, &p, code))
        return 0;
    s->n_pass = p.n_pass;
    if (s->jobs < 1) {
        *code = ns_cmd_error(NS_EXIT_USAGE, "--jobs must be at least 1 (got %d)", s->jobs);
        return 0;
    }
    if (s->launcher) {
        char buf[512], *words[32];
        if (ns_runner_split(s->launcher, buf, sizeof buf, words, 32, err) < 0) {
            *code = ns_cmd_error(NS_EXIT_USAGE, "%s", err);
            return 0;
        }
    }
    return 1;
}

static int check_map_key(const Sweep *s, const char *flag, const char *key, char *err)
{
    for (int k = 0; key && k < s->n_grids; k++)
        if (!strcmp(s->grids[k].key, key))
            return 0;
    return key ? ns_fail(err, "%s '%s' is not a --grid key", flag, key) : 0;
}

static int make_dirs(const char *out_dir, char *err)
{
    char runs[NS_PATH_LEN + 8];
    snprintf(runs, sizeof runs, "%s/runs", out_dir);
    if ((mkdir(out_dir, 0777) != 0 && errno != EEXIST) || (mkdir(runs, 0777) != 0 && errno != EEXIST))
        return ns_fail(err, "cannot create '%s': %s", runs, strerror(errno));
    return 0;
}

/* The two explanations (analysis/explanations.h) over the cells whose logs could be read:
 * DIR/explanations.md. */
static void write_explanations(const char *out_dir, const NsSweepTable *t)
{
    NsLog *logs = ns_xcalloc((size_t)t->n_cells, sizeof *logs);
    char err[NS_ERRLEN], path[NS_PATH_LEN + 32];
    int n = 0;
    for (int i = 0; i < t->n_cells; i++)
        if (t->ok[i] && ns_log_open(&logs[n], t->log_paths[i], err) == 0)
            n++;
    snprintf(path, sizeof path, "%s/explanations.md", out_dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "# The sweep's runs: two explanations\n\n");
        ns_report_explanations(f, logs, n);
    }
    if (!f || fclose(f) != 0)
        fprintf(stderr, "normscope: warning: sweep: cannot write '%s'\n", path);
    else
        printf("explanations: %s\n", path);
    ns_cmd_close_logs(logs, n);
}

static int summarise(const Sweep *s, Cells *c, char *err)
{
    char *keys[MAX_KEYS];
    for (int k = 0; k < s->n_grids; k++)
        keys[k] = (char *)s->grids[k].key;
    NsSweepTable t = {keys, s->n_grids, c->n, c->values, c->paths,
                      ns_xcalloc((size_t)c->n, sizeof(NsSweepRow)),
                      ns_xcalloc((size_t)c->n, sizeof(int))};
    int rc = ns_sweep_summary(s->out_dir, &t, err);
    if (rc == 0) {
        char perr[NS_ERRLEN];
        if (ns_plot_onset(s->out_dir, &t, s->map_x, s->map_y, perr) < 0)
            fprintf(stderr, "normscope: warning: sweep: onset map: %s\n", perr);
        else
            printf("onset map: %s/onset.png, .svg (data onset.dat, script onset.gp)\n",
                   s->out_dir);
        write_explanations(s->out_dir, &t);
    }
    free(t.rows);
    free(t.ok);
    return rc;
}

/* The command line and the grid's cells, before anything runs. Returns 1 to go on, or 0 with
 * *code set (help printed, or a usage error reported). */
static int prepare(Sweep *s, Cells *c, int argc, char **argv, int *code)
{
    char err[NS_ERRLEN] = "";
    memset(s, 0, sizeof *s);
    memset(c, 0, sizeof *c);
    if (!parse_sweep_args(s, argc, argv, code))
        return 0;
    if (check_map_key(s, "--map-x", s->map_x, err) < 0 ||
        check_map_key(s, "--map-y", s->map_y, err) < 0 || make_cells(s, c, err) < 0) {
        free_cells(s, c);
        *code = ns_cmd_error(NS_EXIT_USAGE, "%s", err);
        return 0;
    }
    return 1;
}

int ns_cmd_sweep_check(int argc, char **argv)
{
    Sweep s;
    Cells c;
    int code;
    if (!prepare(&s, &c, argc, argv, &code))
        return code;
    free_cells(&s, &c);
    return NS_EXIT_OK;
}

int ns_cmd_sweep(int argc, char **argv)
{
    char err[NS_ERRLEN] = "";
    Sweep s;
    Cells c;
    int code;
    if (!prepare(&s, &c, argc, argv, &code))
        return code;
    NsRunner r = {.who = "sweep", .jobs = s.jobs, .launcher = s.launcher, .reuse = 1};
    int rc = -1;
    if (ns_runner_plan(&r, c.cells, c.cfgs, c.n, err) == 0 && make_dirs(s.out_dir, err) == 0) {
        fprintf(stderr, "== sweep: %d cells, %d at once, %d threads each\n", c.n, s.jobs,
                c.cells[0].threads ? c.cells[0].threads : ns_runner_threads(s.jobs, s.launcher));
        rc = ns_runner_run(&r, c.cells, c.n, err);
    }
    if (rc == 0)
        rc = summarise(&s, &c, err);
    free_cells(&s, &c);
    if (rc == NS_RUNNER_INTERRUPTED)
        return ns_cmd_error(NS_EXIT_INTERRUPTED, "%s", err);
    if (rc < 0)
        return ns_cmd_error(NS_EXIT_ERROR, "%s", err);
    printf("sweep done: %s/sweep.csv, %s/sweep.md\n", s.out_dir, s.out_dir);
    return NS_EXIT_OK;
}
