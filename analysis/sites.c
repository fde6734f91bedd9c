#include "sites.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "window.h"

static double last_of(const NsLog *log, const char *path)
{
    size_t n = 0;
    double *s = ns_window_series(log, path, &n), r = n > 0 ? s[n - 1] : 0.0;
    free(s);
    return r;
}

double ns_sites_last_step(const NsLog *log)
{
    char path[NS_RUNLOG_PATH_LEN];
    double last = last_of(log, ns_runlog_path(path, sizeof path, NS_RUNLOG_STEPS, NS_RUNLOG_STEP));
    if (last > 0)
        return last;
    char **sites;
    int n = ns_log_sites(log, &sites);
    if (n > 0)
        last = last_of(log, ns_runlog_site_path(path, sizeof path, sites[0], NS_RUNLOG_STEP));
    ns_log_free_sites(sites, n);
    return last;
}

/* late / early medians of norms/<site>/<stat> (see sites.h). */
static double growth_of(const NsLog *log, const char *site, const char *stat, double last,
                        double *early, double *late)
{
    *early = ns_window_site_median(log, site, stat, last, NS_SITES_EARLY_LO, NS_SITES_EARLY_HI);
    *late = ns_window_site_median(log, site, stat, last, NS_SITES_LATE_LO, 1.0);
    return isnan(*early) || isnan(*late) || !(*early > 0) ? NAN : *late / *early;
}

int ns_site_growths(const NsLog *log, NsSiteGrowth **out, char *err)
{
    *out = NULL;
    if (!log || log->file < 0)
        return ns_fail(err, "ns_site_growths: no open run log");
    const char *stat = strcmp(ns_log_scheme_stat(log), "psi2") == 0 ? "dist_psi2" : "dist_var";
    char **sites;
    int n_sites = ns_log_sites(log, &sites), n = 0;
    double last = ns_sites_last_step(log);
    NsSiteGrowth *g = ns_xcalloc((size_t)(n_sites > 0 ? n_sites : 1), sizeof *g);
    for (int s = 0; s < n_sites; s++) {
        char path[NS_RUNLOG_PATH_LEN];
        /* a site group without the distance is another probe's (gradients): not a site here */
        if (!ns_log_has(log, ns_runlog_site_path(path, sizeof path, sites[s], stat)))
            continue;
        NsSiteGrowth *e = &g[n++];
        snprintf(e->site, sizeof e->site, "%s", sites[s]);
        snprintf(e->stat, sizeof e->stat, "%s", stat);
        e->growth = growth_of(log, sites[s], stat, last, &e->early, &e->late);
        char rel[24];
        snprintf(rel, sizeof rel, "rel_%s", stat);
        e->rel_growth = growth_of(log, sites[s], rel, last, &e->rel_early, &e->rel_late);
    }
    ns_log_free_sites(sites, n_sites);
    if (n == 0) {
        free(g);
        g = NULL;
    }
    *out = g;
    return n;
}

int ns_site_growth_max(const NsSiteGrowth *g, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!isnan(g[i].growth) && (best < 0 || g[i].growth > g[best].growth))
            best = i;
    return best;
}
