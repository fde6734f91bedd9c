/* normscope: the command-line front door. It finds the command (commands.c) and returns what the
 * command returns; each command parses its flags, runs, and turns any error into one line on
 * stderr and a non-zero exit code (util.h lists the codes). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* The last resort for "a damaged file gets one line, never a signal". libhdf5 1.10 itself
 * crashes on some damaged files (tests/fuzz/known-issues: a division by zero inside H5Dopen2 on
 * a chunk dimension of 0; the corruption test once saw a SIGSEGV under `plot boxes` that 900
 * more flips did not reproduce), before any of our checks can see the bytes. Such a signal ends
 * the program with one line and exit 1 instead. It says plainly that it was a crash, so a bug of
 * ours is not mistaken for a bad file; sanitizer builds leave the signals to the sanitizer, so
 * the test suite's ASan run still reports any crash of ours with its stack. */
static void fatal_signal(int sig)
{
    static const char msg[] = "normscope: crashed (fatal signal) while running; a damaged HDF5 "
                              "file can make the HDF5 library crash: check the input files, and "
                              "if they are intact, please report this as a bug\n";
    (void)sig;
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    _exit(NS_EXIT_ERROR);
}

static void catch_fatal_signals(void)
{
#ifndef __SANITIZE_ADDRESS__
    static const int sigs[] = {SIGSEGV, SIGFPE, SIGBUS, SIGILL};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fatal_signal;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
#endif
}

int main(int argc, char **argv)
{
    catch_fatal_signals();
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
