/* normscope export-notebook RUN.h5... --out FILE.ipynb: parses the request and hands it to
 * ns_export_notebook (notebooks-export/). */
#include <stddef.h>
#include <stdio.h>

#include "commands.h"
#include "notebook.h"
#include "util.h"

typedef struct {
    const char *out, *figures;
} ExportArgs;

static const NsOption OPTIONS[] = {
    {.flag = "--out", .kind = NS_OPT_TEXT, .offset = offsetof(ExportArgs, out),
     .metavar = "FILE", .help = "the notebook to write (required)"},
    {.flag = "--figures", .kind = NS_OPT_TEXT, .offset = offsetof(ExportArgs, figures),
     .metavar = "DIR", .help = "embed the PNGs of 'normscope plot' found in DIR (<kind>*.png)\n"
                               "as outputs, so the notebook reads well before it is run"},
};

static const NsCommandSpec SPEC = {
    .name = "export-notebook",
    .options = OPTIONS,
    .n_options = sizeof OPTIONS / sizeof OPTIONS[0],
    .usage = "RUN.h5... --out FILE.ipynb [--figures DIR]",
    .summary = "Writes a Jupyter notebook (nbformat 4.5) that explains each figure of the study\n"
               "(training curves, fluctuation of batch statistics, box plots per fifth of\n"
               "training, gradients by depth, loss smoothness, statistics by depth) and redraws\n"
               "it from the run logs with h5py and matplotlib.",
    .heading = "flags",
    .max_positional = -1,
    .min_positional = 1,
    .missing = "no run logs given",
};

int ns_cmd_export_notebook(int argc, char **argv)
{
    ExportArgs a = {0};
    NsParse p = {0};
    int code;
    if (!ns_cmd_parse(&SPEC, &a, argc, argv, &p, &code))
        return code;
    if (!a.out)
        return ns_cmd_error(NS_EXIT_USAGE, "export-notebook: --out FILE.ipynb is required (see "
                                           "normscope export-notebook --help)");
    char err[NS_ERRLEN] = "";
    int n = p.n_positional;
    if (ns_export_notebook((const char *const *)argv, n, a.figures, a.out, err) != 0)
        return ns_cmd_error(NS_EXIT_ERROR, "%s", err);
    printf("wrote %s (%d run%s)\n", a.out, n, n == 1 ? "" : "s");
    return NS_EXIT_OK;
}
