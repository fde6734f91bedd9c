/* Command-line flags of the engine's subcommands, in the spirit of fairseq: one table of flags
 * that write into an NsRunConfig, parsing with one clear error line for anything wrong, and
 * generated --help text. */
#ifndef NS_CLI_H
#define NS_CLI_H

#include "run_config.h"

/* Which flags a subcommand accepts (bit mask). */
enum {
    NS_FLAGS_MODEL = 1 << 0,
    NS_FLAGS_OPTIM = 1 << 1,
    NS_FLAGS_DATA = 1 << 2,
    NS_FLAGS_SCHEDULE = 1 << 3,
    NS_FLAGS_OUTPUT = 1 << 4,
    NS_FLAGS_PROBES = 1 << 5,
    NS_FLAGS_EVAL = 1 << 6,
};

/* Parses argv[0..argc) (the words after the subcommand) into cfg. Returns 0, 1 when --help was
 * printed, or -1 with err set. `command` names the subcommand in messages. */
int ns_cli_parse(int argc, char **argv, unsigned groups, const char *command, NsRunConfig *cfg,
                 char *err);

/* Value of a flag if present in argv (used to find --resume before parsing the rest). */
const char *ns_cli_find(int argc, char **argv, const char *flag);

void ns_cli_print_help(const char *command, const char *summary, unsigned groups);

#endif
