/* Fuzz target: the run-log reader and what analysis does with a log (issue 22: a run log from a
 * stranger is safe to plot). The input is an HDF5 file. It is opened the way every analysis
 * command opens a log (ns_log_open), then read the way they read it: root attributes (every
 * stored option of the run-option table), the norm sites, every dataset of the file as a series,
 * as rows and as a matrix, the per-site growths, the comparison table with every site, every
 * plot kind (data and gnuplot scripts; gnuplot itself is kept off PATH, so no image is drawn)
 * and the notebook export. Reading may fail with an error; it must never crash, leak or hang. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "fuzz_common.h"
#include "logread.h"
#include "notebook.h"
#include "plot.h"
#include "run_config.h"
#include "sites.h"
#include "util.h"

#define MAX_DATASETS 64 /* a hostile file may hold many; the first ones are enough */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet_hdf5();
    /* Plots write their .dat and .gp, then find no gnuplot: the data path without the images. */
    setenv("PATH", "/nonexistent", 1);
    return 0;
}

static void read_attributes(const NsLog *log)
{
    char buf[NS_OPT_STR_LEN];
    long l;
    double d;
    for (size_t i = 0; i < NS_N_RUN_OPTIONS; i++) {
        const char *attr = NS_RUN_OPTIONS[i].attr;
        if (!attr)
            continue;
        ns_log_attr_str(log, attr, buf, sizeof buf);
        ns_log_attr_long(log, attr, &l);
        ns_log_attr_double(log, attr, &d);
    }
    ns_log_attr_double(log, "unk_rate_train", &d);
    ns_log_scheme_stat(log);
}

typedef struct {
    char *paths[MAX_DATASETS];
    int n;
} Datasets;

static herr_t collect_dataset(hid_t obj, const char *name, const H5O_info_t *info, void *data)
{
    (void)obj;
    Datasets *d = data;
    if (info->type == H5O_TYPE_DATASET && d->n < MAX_DATASETS)
        d->paths[d->n++] = ns_xstrdup(name);
    return d->n < MAX_DATASETS ? 0 : 1;
}

/* Every dataset through each read function of logread.h (most are the wrong shape or type for
 * some of them, which must be an error). */
static void read_datasets(const NsLog *log)
{
    Datasets d = {.n = 0};
    H5Ovisit(log->file, H5_INDEX_NAME, H5_ITER_NATIVE, collect_dataset, &d);
    char err[NS_ERRLEN];
    for (int i = 0; i < d.n; i++) {
        size_t n, rows, cols;
        free(ns_log_read_series(log, d.paths[i], &n, err));
        free(ns_log_read_rows(log, d.paths[i], 1, &n, &rows, err));
        free(ns_log_read_matrix(log, d.paths[i], &rows, &cols, err));
        ns_log_has(log, d.paths[i]);
        free(d.paths[i]);
    }
}

static void analyse(NsLog *log, const char *path)
{
    char err[NS_ERRLEN], out[1024];
    const char *dir = fuzz_scratch();
    char **sites = NULL;
    int n_sites = ns_log_sites(log, &sites);
    ns_log_free_sites(sites, n_sites);
    NsSiteGrowth *g = NULL;
    int n_growth = ns_site_growths(log, &g, err);
    if (n_growth > 0)
        ns_site_growth_max(g, n_growth);
    free(g);
    ns_sites_last_step(log);

    snprintf(out, sizeof out, "%s/compare", dir);
    NsCompareOptions co = {.site = "all", .all_sites = 1, .list_runs = 1};
    ns_compare_opts(log, 1, &co, out, 0, err);
    for (int k = 0; NS_PLOT_KINDS[k]; k++) {
        NsPlotOptions po = {.out_dir = dir};
        ns_plot(NS_PLOT_KINDS[k], log, 1, &po, err);
    }
    snprintf(out, sizeof out, "%s/notebook.ipynb", dir);
    const char *paths[1] = {path};
    ns_export_notebook(paths, 1, NULL, out, err);
    fuzz_scratch_clean();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(0, data, size);
    NsLog log;
    char err[NS_ERRLEN];
    if (ns_log_open(&log, path, err) != 0)
        return 0;
    read_attributes(&log);
    read_datasets(&log);
    analyse(&log, path);
    ns_log_close(&log);
    return 0;
}
