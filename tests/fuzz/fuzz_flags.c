/* Fuzz target: the command-line parser (options.c with the option tables) as the commands use
 * it. The first byte picks a command; the other bytes, split at NUL bytes, are its words. train
 * and debug-step are parsed with NS_RUN_OPTIONS and checked (ns_cmd_parse_run) but not run;
 * eval, plot and compare run for real, in an empty directory, where they stop at the first file
 * they cannot open; sweep parses its grids and makes its cells (ns_cmd_sweep_check) without
 * training them. A command line may be refused with one line; it must never crash, leak or
 * hang. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "fuzz_common.h"
#include "run_config.h"

#define MAX_WORDS 48

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet_hdf5();
    /* Relative paths a command line names resolve in an empty directory. */
    if (chdir(fuzz_scratch()) != 0)
        abort();
    setenv("PATH", "/nonexistent", 1); /* no gnuplot, no child process of any kind */
    return 0;
}

/* The engine commands' parse step, with a spec of our own: the rows are NS_RUN_OPTIONS either
 * way, and the spec only words --help and the messages. */
static int parse_engine(const char *name, unsigned command, int argc, char **argv)
{
    const NsCommandSpec spec = {.name = name, .usage = "[flags]", .summary = "fuzzing"};
    NsRunConfig cfg;
    NsCheckpointHeader ckpt;
    int code = 0;
    ns_run_config_default(&cfg);
    if (ns_cmd_parse_run(&spec, command, argc, argv, &cfg, &ckpt, &code)) {
        ns_run_config_finish(&cfg);
        ns_run_config_data_spec(&cfg);
    }
    ns_checkpoint_header_free(&ckpt);
    return code;
}

static int run_command(unsigned which, int argc, char **argv)
{
    switch (which % 6) {
    case 0: return parse_engine("train", NS_CMD_TRAIN, argc, argv);
    case 1: return parse_engine("debug-step", NS_CMD_DEBUG_STEP, argc, argv);
    case 2: return ns_cmd_eval(argc, argv);
    case 3: return ns_cmd_plot(argc, argv);
    case 4: return ns_cmd_compare(argc, argv);
    default: return ns_cmd_sweep_check(argc, argv);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned which = data[0];
    /* The words, each NUL-terminated in a copy of their own: the parser reorders argv. */
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *argv[MAX_WORDS + 1];
    int argc = 0;
    for (char *w = text; argc < MAX_WORDS && w < text + size - 1; w += strlen(w) + 1)
        argv[argc++] = w;
    argv[argc] = NULL;
    run_command(which, argc, argv);
    free(text);
    fflush(stdout);
    return 0;
}
