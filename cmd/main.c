/* normscope: the command-line front door. Each subcommand parses its flags, runs, and turns any
 * error into one line on stderr and a non-zero exit code (util.h lists the codes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "options.h"
#include "commands.h"
#include "h5util.h"
#include "train.h"
#include "util.h"

static int fail(const char *msg, int code)
{
    fprintf(stderr, "normscope: %s\n", msg);
    return code;
}

static void print_usage(FILE *out)
{
    fprintf(out, "normscope %s: look inside the normalization layers of a Transformer while it "
           "trains\n\n"
           "usage: normscope <command> [flags]   (normscope <command> --help for its flags)\n\n"
           "engine:\n"
           "  train            train a language model and record the probes into an HDF5 log\n"
           "  eval             loss and perplexity of a checkpoint on a corpus\n"
           "  debug-step       write a debug state (a few steps pinned down) for parity checks\n",
           NORMSCOPE_VERSION);
    ns_print_analysis_usage(out);
}

int main(int argc, char **argv)
{
    ns_h5_quiet();
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        /* Asked for: stdout, success. Not asked for (no command): stderr, usage error. */
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? NS_EXIT_USAGE : NS_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("normscope %s\n", NORMSCOPE_VERSION);
        return NS_EXIT_OK;
    }
    const NsCommand *cmd = ns_find_command(argv[1]);
    if (!cmd) {
        char msg[NS_ERRLEN];
        snprintf(msg, sizeof msg, "unknown command '%s' (see normscope --help)", argv[1]);
        return fail(msg, NS_EXIT_USAGE);
    }
    return cmd->run(argc - 2, argv + 2);
}
