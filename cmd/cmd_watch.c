/* normscope watch RUN.h5: parses the request and hands it to ns_watch_run (analysis/). */
#include <stddef.h>
#include <stdio.h>

#include "commands.h"
#include "util.h"
#include "watch.h"

typedef struct {
    double interval;
    int once;
} WatchArgs;

static const NsOption OPTIONS[] = {
    {.flag = "--interval", .kind = NS_OPT_DOUBLE, .offset = offsetof(WatchArgs, interval),
     .metavar = "S", .help = "seconds between refreshes"},
    {.flag = "--once", .kind = NS_OPT_SWITCH, .offset = offsetof(WatchArgs, once),
     .help = "print one snapshot and exit"},
};

static void print_stops(void)
{
    printf("\nStops when the run has finished (exit 0), its loss is not finite (exit 3), or the\n"
           "file has not grown for 3 intervals and for at least max(30 s, 3 x flush_every x\n"
           "the slowest step) (exit 1); Ctrl-C stops watching (exit 0).\n");
}

static const NsCommandSpec SPEC = {
    .name = "watch",
    .options = OPTIONS,
    .n_options = sizeof OPTIONS / sizeof OPTIONS[0],
    .usage = "RUN.h5 [--interval SECONDS] [--once]",
    .summary = "Live view of a run log while 'normscope train' writes it: scheme, step, loss (and\n"
               "its mean over the last 50 steps), learning rate, tokens/s, last validation\n"
               "perplexity, and per norm site the latest dist_mean, dist_var, dist_psi2 and\n"
               "grad_gain. Redraws in place on a terminal, prints successive blocks otherwise.",
    .heading = "flags",
    .after_flags = print_stops,
    .max_positional = 1,
    .min_positional = 1,
    .missing = "no run log given",
};

int ns_cmd_watch(int argc, char **argv)
{
    WatchArgs a = {.interval = 2.0, .once = 0};
    NsParse p = {0};
    int code;
    if (!ns_cmd_parse(&SPEC, &a, argc, argv, &p, &code))
        return code;
    if (!(a.interval > 0.0) || a.interval > 3600.0)
        return ns_cmd_error(NS_EXIT_USAGE, "watch: --interval needs seconds in (0, 3600], got %g "
                                           "(see normscope watch --help)", a.interval);
    return ns_watch_run(argv[0], a.interval, a.once);
}
