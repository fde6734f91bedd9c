#include "commands.h"

#include <stdio.h>
#include <string.h>

static const NsCommand COMMANDS[] = {
    {"train", ns_cmd_train},
    {"eval", ns_cmd_eval},
    {"debug-step", ns_cmd_debug_step},
};

const NsCommand *ns_find_command(const char *name)
{
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            return &COMMANDS[i];
    return NULL;
}

void ns_print_analysis_usage(void) {}
