/* normscope: the command-line front door. It finds the command (commands.c) and returns what the
 * command returns; each command parses its flags, runs, and turns any error into one line on
 * stderr and a non-zero exit code (util.h lists the codes). */
#include <stdio.h>
#include <string.h>

#include "comm.h"
#include "commands.h"
#include "h5util.h"
#include "util.h"

static void print_usage(FILE *out)
{
    fprintf(out, "normscope %s: look inside the normalization layers of a Transformer while it "
                 "trains\n\n"
                 "usage: normscope <command> [flags]   (normscope <command> --help for its "
                 "flags;\n       normscope help --man for the manual page, normscope help "
                 "--bash-completion for\n       a completion script)\n\n", NORMSCOPE_VERSION);
    ns_print_commands(out);
}

int main(int argc, char **argv)
{
    ns_h5_quiet();
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        (strcmp(argv[1], "help") == 0 && argc == 2)) {
        /* Asked for: stdout, success. Not asked for (no command): stderr, usage error. */
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? NS_EXIT_USAGE : NS_EXIT_OK;
    }
    if (strcmp(argv[1], "help") == 0)
        return ns_cmd_help(argc - 2, argv + 2);
    if (strcmp(argv[1], "--version") == 0) {
        printf("normscope %s\n", NORMSCOPE_VERSION);
        return NS_EXIT_OK;
    }
    /* Under mpirun/srun: one rank of a data-parallel run (docs/distributed.md). */
    if (ns_comm_launch(&argc, &argv) < 0)
        return NS_EXIT_USAGE;
    const NsCommand *cmd = ns_find_command(argv[1]);
    int code = cmd ? cmd->run(argc - 2, argv + 2)
                   : ns_cmd_error(NS_EXIT_USAGE, "unknown command '%s' (see normscope --help)",
                                  argv[1]);
    return ns_comm_finish(code);
}
