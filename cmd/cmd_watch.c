/* normscope watch RUN.h5: parses the request and hands it to ns_watch_run (analysis/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "util.h"
#include "watch.h"

typedef struct {
    double interval;
    int once;
} WatchArgs;

/* ------------------------------------------------------------------------------------------
 * Command line */

static void print_help(void)
{
    printf("usage: normscope watch RUN.h5 [--interval SECONDS] [--once]\n\n"
           "Live view of a run log while 'normscope train' writes it: scheme, step, loss (and\n"
           "its mean over the last 50 steps), learning rate, tokens/s, last validation\n"
           "perplexity, and per norm site the latest dist_mean, dist_var, dist_psi2 and\n"
           "grad_gain. Redraws in place on a terminal, prints successive blocks otherwise.\n\n"
           "  --interval S   seconds between refreshes [2]\n"
           "  --once         print one snapshot and exit\n\n"
           "Stops when the run has finished (exit 0), its loss is not finite (exit 3), or the\n"
           "file has not grown for 3 intervals and for at least max(30 s, 3 x flush_every x\n"
           "the slowest step) (exit 1); Ctrl-C stops watching (exit 0).\n");
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "normscope: watch: %s%s (see normscope watch --help)\n", msg, arg);
    return NS_EXIT_USAGE;
}

static int parse_args(int argc, char **argv, WatchArgs *o, const char **file)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--once") == 0) {
            o->once = 1;
        } else if (strcmp(a, "--interval") == 0 || strncmp(a, "--interval=", 11) == 0) {
            if (!a[10] && i + 1 >= argc)
                return usage_error("missing value after ", a);
            const char *v = a[10] ? a + 11 : argv[++i];
            char *end = NULL;
            o->interval = strtod(v, &end);
            if (end == v || *end || !(o->interval > 0.0) || o->interval > 3600.0)
                return usage_error("--interval needs seconds in (0, 3600], got ", v);
        } else if (a[0] == '-' && a[1] == '-') {
            return usage_error("unknown flag ", a);
        } else if (*file) {
            return usage_error("watch takes one run log; extra argument ", a);
        } else {
            *file = a;
        }
    }
    return *file ? 0 : usage_error("no run log given", "");
}

int ns_cmd_watch(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help();
            return NS_EXIT_OK;
        }
    WatchArgs o = {.interval = 2.0, .once = 0};
    const char *file = NULL;
    int rc = parse_args(argc, argv, &o, &file);
    if (rc != 0)
        return rc;
    return ns_watch_run(file, o.interval, o.once);
}
