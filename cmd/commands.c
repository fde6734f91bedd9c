#include "commands.h"

#include <stdio.h>
#include <string.h>

static const NsCommand COMMANDS[] = {
    {"train", ns_cmd_train},
    {"eval", ns_cmd_eval},
    {"debug-step", ns_cmd_debug_step},
    {"plot", ns_cmd_plot},
    {"compare", ns_cmd_compare},
    {"study", ns_cmd_study},
    {"watch", ns_cmd_watch},
    {"export-notebook", ns_cmd_export_notebook},
};

const NsCommand *ns_find_command(const char *name)
{
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            return &COMMANDS[i];
    return NULL;
}

void ns_print_analysis_usage(FILE *out)
{
    fprintf(out, "\nanalysis (reads run logs):\n"
           "  plot KIND RUN.h5...  draw a figure with gnuplot: fluctuation, boxes, gradients,\n"
           "                       lipschitz, training, layers\n"
           "  compare RUN.h5...    side-by-side table (Markdown and CSV)\n"
           "  study                train layer, batch, power-v, power, power-official on one\n"
           "                       corpus, then every plot, the table and a report\n"
           "  watch RUN.h5         live view of a run being written\n"
           "  export-notebook RUN.h5... --out FILE.ipynb   Jupyter notebook of the figures\n");
}
