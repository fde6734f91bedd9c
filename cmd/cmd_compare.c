/* normscope compare RUN.h5...: parses the request and hands it to ns_compare_site (analysis/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "compare.h"
#include "util.h"

/* ------------------------------------------------------------------------------------------
 * Command line */

static void print_help(void)
{
    printf("usage: normscope compare RUN.h5... [--out PREFIX] [--site SITE]\n\n"
           "One row per run log: scheme, position, steps done, final and best validation\n"
           "perplexity, divergence step, and over the last 20 %% of training the median and\n"
           "95th percentile of dist_mean, dist_var, dist_psi2 at one norm site, the median\n"
           "grad_gain over all sites, beta-smoothness, Hessian top eigenvalue and tokens/s.\n"
           "Writes PREFIX.md and PREFIX.csv and prints the Markdown table.\n\n"
           "  --out PREFIX   output prefix [compare]\n"
           "  --site SITE    norm site of the distance columns, e.g. layers/0/norm1 or\n"
           "                 final_norm [the first site of the first run]\n");
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "normscope: compare: %s%s (see normscope compare --help)\n", msg, arg);
    return NS_EXIT_USAGE;
}

int ns_cmd_compare(int argc, char **argv)
{
    const char *out = "compare", *site = NULL;
    char **files = ns_xcalloc((size_t)argc + 1, sizeof(char *));
    int nf = 0, rc = NS_EXIT_OK;
    for (int i = 0; i < argc && rc == NS_EXIT_OK; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help();
            free(files);
            return NS_EXIT_OK;
        } else if ((strcmp(a, "--out") == 0 || strcmp(a, "--site") == 0) && i + 1 >= argc) {
            rc = usage_error("missing value after ", a);
        } else if (strcmp(a, "--out") == 0) {
            out = argv[++i];
        } else if (strcmp(a, "--site") == 0) {
            site = argv[++i];
        } else if (strncmp(a, "--out=", 6) == 0) {
            out = a + 6;
        } else if (strncmp(a, "--site=", 7) == 0) {
            site = a + 7;
        } else if (a[0] == '-' && a[1] == '-') {
            rc = usage_error("unknown flag ", a);
        } else {
            files[nf++] = argv[i];
        }
    }
    if (rc == NS_EXIT_OK && nf == 0)
        rc = usage_error("no run logs given", "");
    if (rc != NS_EXIT_OK) {
        free(files);
        return rc;
    }
    NsLog *logs = ns_xcalloc((size_t)nf, sizeof *logs);
    char err[NS_ERRLEN] = "";
    int opened = 0;
    while (opened < nf && ns_log_open(&logs[opened], files[opened], err) == 0)
        opened++;
    if (opened == nf && ns_compare_site(logs, nf, site, out, 1, err) == 0)
        rc = NS_EXIT_OK;
    else
        rc = NS_EXIT_ERROR;
    if (rc != NS_EXIT_OK)
        fprintf(stderr, "normscope: %s\n", err);
    for (int i = 0; i < opened; i++)
        ns_log_close(&logs[i]);
    free(logs);
    free(files);
    return rc;
}
