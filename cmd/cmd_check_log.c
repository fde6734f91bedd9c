/* normscope check-log RUN.h5...: validates run logs from any writer against the run-log schema
 * (src/io/runlog.schema.json, docs/runlog.md) with ns_log_check (src/io/logcheck.c). */
#include <stddef.h>
#include <stdio.h>

#include "commands.h"
#include "logcheck.h"
#include "util.h"

typedef struct {
    int max_problems;
} CheckArgs;

static const NsOption OPTIONS[] = {
    {.flag = "--max-problems", .kind = NS_OPT_INT, .offset = offsetof(CheckArgs, max_problems),
     .metavar = "N", .help = "problem lines shown per log (the rest are counted)"},
};

static void print_checks(void)
{
    printf("\nChecks: the format version; root attributes declared, required ones present,\n"
           "dtypes; every dataset declared by the schema with its dtype, rank, vector width\n"
           "and units; the groups the 'probes' attribute and the configuration require; equal\n"
           "row counts of a group's series and its step series; step values increasing\n"
           "strictly within the run's steps. Exit 0: every log meets the schema; 1: a problem\n"
           "(one line each, naming the file and the object).\n");
}

static const NsCommandSpec SPEC = {
    .name = "check-log",
    .options = OPTIONS,
    .n_options = sizeof OPTIONS / sizeof OPTIONS[0],
    .usage = "RUN.h5 [RUN.h5 ...] [--max-problems N]",
    .summary = "Validates run logs, whoever wrote them, against the run-log schema\n"
               "(docs/runlog.md): one line per problem, exit 0 when every log is clean.",
    .heading = "flags",
    .after_flags = print_checks,
    .max_positional = -1,
    .min_positional = 1,
    .missing = "no run log given",
};

int ns_cmd_check_log(int argc, char **argv)
{
    CheckArgs a = {.max_problems = 50};
    NsParse p = {0};
    int code;
    if (!ns_cmd_parse(&SPEC, &a, argc, argv, &p, &code))
        return code;
    if (a.max_problems < 1 || a.max_problems > 1000000)
        return ns_cmd_error(NS_EXIT_USAGE, "check-log: --max-problems needs 1 to 1000000, got %d",
                            a.max_problems);
    int bad = 0;
    for (int i = 0; i < p.n_positional; i++) {
        int problems = ns_log_check(argv[i], stdout, a.max_problems);
        if (problems == 0)
            printf("%s: ok\n", argv[i]);
        bad |= problems != 0;
    }
    return bad ? NS_EXIT_ERROR : NS_EXIT_OK;
}
