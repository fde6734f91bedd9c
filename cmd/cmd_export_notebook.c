/* normscope export-notebook RUN.h5... --out FILE.ipynb: parses the request and hands it to
 * ns_export_notebook (notebooks-export/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "notebook.h"
#include "util.h"

/* ------------------------------------------------------------------------------------------
 * Command line */

static void print_help(void)
{
    printf("usage: normscope export-notebook RUN.h5... --out FILE.ipynb [--figures DIR]\n\n"
           "Writes a Jupyter notebook (nbformat 4.5) that explains each figure of the study\n"
           "(training curves, fluctuation of batch statistics, box plots per fifth of\n"
           "training, gradients by depth, loss smoothness, statistics by depth) and redraws\n"
           "it from the run logs with h5py and matplotlib.\n\n"
           "  --out FILE      the notebook to write (required)\n"
           "  --figures DIR   embed the PNGs of 'normscope plot' found in DIR (<kind>*.png)\n"
           "                  as outputs, so the notebook reads well before it is run\n");
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "normscope: export-notebook: %s%s (see normscope export-notebook --help)\n",
            msg, arg);
    return NS_EXIT_USAGE;
}

int ns_cmd_export_notebook(int argc, char **argv)
{
    const char *out = NULL, *figures = NULL;
    const char **files = ns_xcalloc((size_t)argc + 1, sizeof(char *));
    int nf = 0, rc = NS_EXIT_OK;
    for (int i = 0; i < argc && rc == NS_EXIT_OK; i++) {
        const char *a = argv[i];
        int takes_value = strcmp(a, "--out") == 0 || strcmp(a, "--figures") == 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help();
            free(files);
            return NS_EXIT_OK;
        } else if (takes_value && i + 1 >= argc) {
            rc = usage_error("missing value after ", a);
        } else if (strcmp(a, "--out") == 0 || strncmp(a, "--out=", 6) == 0) {
            out = a[5] ? a + 6 : argv[++i];
        } else if (strcmp(a, "--figures") == 0 || strncmp(a, "--figures=", 10) == 0) {
            figures = a[9] ? a + 10 : argv[++i];
        } else if (a[0] == '-' && a[1] == '-') {
            rc = usage_error("unknown flag ", a);
        } else {
            files[nf++] = a;
        }
    }
    if (rc == NS_EXIT_OK && nf == 0)
        rc = usage_error("no run logs given", "");
    else if (rc == NS_EXIT_OK && !out)
        rc = usage_error("--out FILE.ipynb is required", "");
    char err[NS_ERRLEN] = "";
    if (rc == NS_EXIT_OK && ns_export_notebook(files, nf, figures, out, err) != 0) {
        fprintf(stderr, "normscope: %s\n", err);
        rc = NS_EXIT_ERROR;
    }
    if (rc == NS_EXIT_OK)
        printf("wrote %s (%d run%s)\n", out, nf, nf == 1 ? "" : "s");
    free(files);
    return rc;
}
