#include "window.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "util.h"

double *ns_window_series(const NsLog *log, const char *path, size_t *n)
{
    char err[NS_ERRLEN];
    *n = 0;
    if (!ns_log_has(log, path))
        return NULL;
    double *v = ns_log_read_series(log, path, n, err);
    if (!v)
        *n = 0;
    return v;
}

void ns_window_append(const NsLog *log, const char *group, const char *name, double max_step,
                      double lo, double hi, int all_if_empty, double **pool, size_t *count)
{
    char path[NS_RUNLOG_PATH_LEN];
    size_t ns = 0, nv = 0, b = 0, e = 0;
    double *steps = ns_window_series(log, ns_runlog_path(path, sizeof path, group,
                                                         NS_RUNLOG_STEP), &ns);
    double *v = steps ? ns_window_series(log, ns_runlog_path(path, sizeof path, group, name), &nv)
                      : NULL;
    size_t n = ns < nv ? ns : nv; /* a log still being written may be one row apart */
    if (v && n > 0 && max_step > 0) {
        ns_progress_range(steps, n, max_step, lo, hi, &b, &e);
        if (b == e && all_if_empty)
            b = 0, e = n;
        *pool = ns_xrealloc(*pool, sizeof(double) * (*count + (e - b) + 1));
        memcpy(*pool + *count, v + b, sizeof(double) * (e - b));
        *count += e - b;
    }
    free(steps);
    free(v);
}

double ns_window_quantile(const NsLog *log, const char *group, const char *name,
                          double max_step, double lo, double hi, int all_if_empty, double q)
{
    double *pool = NULL;
    size_t count = 0;
    ns_window_append(log, group, name, max_step, lo, hi, all_if_empty, &pool, &count);
    double r = ns_quantile(pool, count, q);
    free(pool);
    return r;
}

double ns_window_site_median(const NsLog *log, const char *site, const char *name,
                             double max_step, double lo, double hi)
{
    char group[NS_RUNLOG_PATH_LEN];
    ns_runlog_site_path(group, sizeof group, site, NULL);
    return ns_window_quantile(log, group, name, max_step, lo, hi, 0, 0.5);
}

double ns_window_sites_median(const NsLog *log, char *const *sites, int n_sites,
                              const char *name, double max_step, double lo, double hi)
{
    double *pool = NULL;
    size_t count = 0;
    for (int s = 0; s < n_sites; s++) {
        char group[NS_RUNLOG_PATH_LEN];
        ns_runlog_site_path(group, sizeof group, sites[s], NULL);
        ns_window_append(log, group, name, max_step, lo, hi, 0, &pool, &count);
    }
    double r = ns_median(pool, count);
    free(pool);
    return r;
}

const char *ns_window_num(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "n/a");
    else
        snprintf(buf, len, "%.4g", v);
    return buf;
}
