/* normscope compare RUN.h5...: parses the request and hands it to ns_compare_opts (analysis/). */
#include <stddef.h>

#include "commands.h"
#include "compare.h"
#include "util.h"

typedef struct {
    const char *out, *site;
    int runs;
} CompareArgs;

static const NsOption OPTIONS[] = {
    {.flag = "--out", .kind = NS_OPT_TEXT, .offset = offsetof(CompareArgs, out),
     .metavar = "PREFIX", .help = "output prefix"},
    {.flag = "--site", .kind = NS_OPT_TEXT, .offset = offsetof(CompareArgs, site),
     .metavar = "SITE", .help = "norm site of the distance columns, e.g. layers/0/norm1 or\n"
                                "final_norm; 'all': also a long table of every site (PREFIX-sites.csv)",
     .shown = "the first site of the first run"},
    {.flag = "--runs", .kind = NS_OPT_SWITCH, .offset = offsetof(CompareArgs, runs),
     .help = "when runs differ only in seed: list them one by one too, not only their\n"
             "mean, standard deviation and n"},
};

static const NsCommandSpec SPEC = {
    .name = "compare",
    .options = OPTIONS,
    .n_options = sizeof OPTIONS / sizeof OPTIONS[0],
    .usage = "RUN.h5... [--out PREFIX] [--site SITE|all] [--runs]",
    .summary = "One row per run log: scheme, position, seed, steps done, final and best "
               "validation\nperplexity, divergence step, and over the last 20 % of training the "
               "median and\n95th percentile of dist_mean, dist_var, dist_psi2 at one norm site, "
               "the median\ngrad_gain over all sites, beta-smoothness, Hessian top eigenvalue, "
               "tokens/s, the\n<unk> rates, and the growth of the distance at that site and at "
               "the site where it\ngrows most. Runs that differ only in seed are summarised "
               "(mean, sd, n; PREFIX-seeds.csv).\nWrites PREFIX.md and PREFIX.csv and prints the "
               "Markdown.",
    .heading = "flags",
    .max_positional = -1,
    .min_positional = 1,
    .missing = "no run logs given",
};

int ns_cmd_compare(int argc, char **argv)
{
    CompareArgs a = {.out = "compare"};
    NsParse p = {0};
    int code;
    if (!ns_cmd_parse(&SPEC, &a, argc, argv, &p, &code))
        return code;
    char err[NS_ERRLEN] = "";
    NsLog *logs = ns_cmd_open_logs(argv, p.n_positional, err);
    NsCompareOptions o = {.site = a.site, .list_runs = a.runs};
    int rc = logs ? ns_compare_opts(logs, p.n_positional, &o, a.out, 1, err) : -1;
    if (logs)
        ns_cmd_close_logs(logs, p.n_positional);
    return rc < 0 ? ns_cmd_error(NS_EXIT_ERROR, "%s", err) : NS_EXIT_OK;
}
