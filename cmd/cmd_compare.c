/* normscope compare RUN.h5...: parses the request and hands it to ns_compare_site (analysis/). */
#include <stddef.h>

#include "commands.h"
#include "compare.h"
#include "util.h"

typedef struct {
    const char *out, *site;
} CompareArgs;

static const NsOption OPTIONS[] = {
    {.flag = "--out", .kind = NS_OPT_TEXT, .offset = offsetof(CompareArgs, out),
     .metavar = "PREFIX", .help = "output prefix"},
    {.flag = "--site", .kind = NS_OPT_TEXT, .offset = offsetof(CompareArgs, site),
     .metavar = "SITE", .help = "norm site of the distance columns, e.g. layers/0/norm1 or\n"
                                "final_norm", .shown = "the first site of the first run"},
};

static const NsCommandSpec SPEC = {
    .name = "compare",
    .options = OPTIONS,
    .n_options = sizeof OPTIONS / sizeof OPTIONS[0],
    .usage = "RUN.h5... [--out PREFIX] [--site SITE]",
    .summary = "One row per run log: scheme, position, steps done, final and best validation\n"
               "perplexity, divergence step, and over the last 20 % of training the median and\n"
               "95th percentile of dist_mean, dist_var, dist_psi2 at one norm site, the median\n"
               "grad_gain over all sites, beta-smoothness, Hessian top eigenvalue and tokens/s.\n"
               "Writes PREFIX.md and PREFIX.csv and prints the Markdown table.",
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
    int rc = logs ? ns_compare_site(logs, p.n_positional, a.site, a.out, 1, err) : -1;
    if (logs)
        ns_cmd_close_logs(logs, p.n_positional);
    return rc < 0 ? ns_cmd_error(NS_EXIT_ERROR, "%s", err) : NS_EXIT_OK;
}
