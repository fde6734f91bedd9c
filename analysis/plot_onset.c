/* The onset map of a sweep (sweep_summary.h): a grid of heat maps, one column per scheme (BN
 * first, PN-V beside it), one row per position and combination of the other varying keys, each
 * a map of the cells' growth over two grid keys. Every panel shares one logarithmic colour scale
 * centred on 1 (blue: the distance shrank, white: unchanged, red: grew), so BN's and PN-V's
 * colours compare directly; each cell is labelled with its growth (with "!" for an unstable
 * run, analysis/outcome.h: its growth is instability, not the paper's effect), or
 * "diverged@STEP". The .dat holds the numbers as the CSV prints them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "sweep_summary.h"
#include "util.h"

#define MAX_AXIS 64
#define MAX_PANELS 64

/* Column order: the paper's pair first, then the controls and the rest as they come. */
static const char *const SCHEME_ORDER[] = {"batch", "power-v", "batch-regularized",
                                           "batch-official", "power", "power-official",
                                           "layer", "rms", "none"};

typedef struct {
    const NsSweepTable *t;
    int kx, ky;                       /* key index of the axes, -1: none */
    char *xs[MAX_AXIS], *ys[MAX_AXIS]; /* their values, in grid order */
    int nx, ny;
    char *schemes[16];
    int n_schemes;
    char groups[MAX_PANELS][200];     /* row label: position and the other keys' values */
    int n_groups;
} Map;

static const char *value(const NsSweepTable *t, int cell, int key)
{
    return key < 0 ? "" : t->values[cell * t->n_keys + key];
}

static int find(char *const *list, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return i;
    return -1;
}

static int is_scheme_key(const char *key)
{
    return !strcmp(key, "norm") || !strcmp(key, "norm-position");
}

/* Distinct values of key k among the cells, in grid order. */
static int distinct(const NsSweepTable *t, int k, char **out)
{
    int n = 0;
    for (int c = 0; c < t->n_cells && k >= 0; c++)
        if (find(out, n, value(t, c, k)) < 0 && n < MAX_AXIS)
            out[n++] = (char *)value(t, c, k);
    return n;
}

static int choose_axes(Map *m, const char *map_x, const char *map_y, char *err)
{
    const NsSweepTable *t = m->t;
    m->kx = m->ky = -1;
    for (int k = 0; k < t->n_keys; k++) {
        if (map_x && !strcmp(t->keys[k], map_x))
            m->kx = k;
        if (map_y && !strcmp(t->keys[k], map_y))
            m->ky = k;
    }
    if ((map_x && m->kx < 0) || (map_y && m->ky < 0))
        return ns_fail(err, "--map-%s '%s' is not a grid key", map_x && m->kx < 0 ? "x" : "y",
                       map_x && m->kx < 0 ? map_x : map_y);
    char *tmp[MAX_AXIS];
    for (int k = 0; k < t->n_keys; k++) {
        if (is_scheme_key(t->keys[k]) || k == m->kx || k == m->ky || distinct(t, k, tmp) < 2)
            continue;
        if (!map_x && m->kx < 0)
            m->kx = k;
        else if (!map_y && m->ky < 0)
            m->ky = k;
    }
    m->nx = m->kx >= 0 ? distinct(t, m->kx, m->xs) : 1;
    m->ny = m->ky >= 0 ? distinct(t, m->ky, m->ys) : 1;
    return 0;
}

/* A cell's row label: its position and the values of the keys that are neither an axis nor the
 * scheme. */
static void group_of(const Map *m, int c, char *out, size_t n)
{
    const NsSweepTable *t = m->t;
    size_t len = (size_t)snprintf(out, n, "%s", t->rows[c].position);
    for (int k = 0; k < t->n_keys && len < n; k++)
        if (k != m->kx && k != m->ky && !is_scheme_key(t->keys[k]))
            len += (size_t)snprintf(out + len, n - len, ", %s=%s", t->keys[k], value(t, c, k));
}

static void collect_panels(Map *m)
{
    const NsSweepTable *t = m->t;
    for (size_t i = 0; i < sizeof SCHEME_ORDER / sizeof SCHEME_ORDER[0]; i++)
        for (int c = 0; c < t->n_cells; c++)
            if (t->ok[c] && !strcmp(t->rows[c].norm, SCHEME_ORDER[i])) {
                m->schemes[m->n_schemes++] = (char *)SCHEME_ORDER[i];
                break;
            }
    for (int c = 0; c < t->n_cells; c++) {
        if (!t->ok[c])
            continue;
        if (find(m->schemes, m->n_schemes, t->rows[c].norm) < 0 && m->n_schemes < 16)
            m->schemes[m->n_schemes++] = t->rows[c].norm;
        char g[200];
        group_of(m, c, g, sizeof g);
        int known = 0;
        for (int i = 0; i < m->n_groups; i++)
            known |= !strcmp(m->groups[i], g);
        if (!known && m->n_groups < MAX_PANELS)
            snprintf(m->groups[m->n_groups++], sizeof m->groups[0], "%s", g);
    }
}

/* The rows of one panel's data block; returns how many cells it has. */
static int write_block(NsFig *f, const Map *m, const char *scheme, const char *group)
{
    const NsSweepTable *t = m->t;
    int rows = 0;
    for (int c = 0; c < t->n_cells; c++) {
        char g[200];
        if (!t->ok[c] || strcmp(t->rows[c].norm, scheme))
            continue;
        group_of(m, c, g, sizeof g);
        if (strcmp(g, group))
            continue;
        if (rows++ == 0)
            fprintf(f->dat, "\n# index %d: %s (%s)\n# columns: x_index y_index growth "
                            "diverged_at label log\n", f->blocks, scheme,
                    ns_text_printable(g, sizeof g, group));
        const NsSweepRow *r = &t->rows[c];
        char gr[64], dv[64], label[80];
        ns_sweep_format(gr, sizeof gr, r->growth);
        ns_sweep_format(dv, sizeof dv, r->outcome.diverged_at);
        if (!isnan(r->outcome.diverged_at))
            snprintf(label, sizeof label, "diverged@%s", dv);
        else if (!isnan(r->growth))
            snprintf(label, sizeof label, "%.3gx%s", r->growth,
                     r->outcome.stab.unstable ? "!" : "");
        else
            snprintf(label, sizeof label, "n/a");
        int x = m->kx < 0 ? 0 : find(m->xs, m->nx, value(t, c, m->kx));
        int y = m->ky < 0 ? 0 : find(m->ys, m->ny, value(t, c, m->ky));
        char logpath[1024]; /* the last column: one line whatever the path holds */
        fprintf(f->dat, "%d %d %s %s %s %s\n", x, y, gr[0] ? gr : "NaN", dv[0] ? dv : "NaN",
                label, ns_text_printable(logpath, sizeof logpath, t->log_paths[c]));
    }
    if (rows)
        fprintf(f->dat, "\n\n");
    return rows ? f->blocks++ : -1;
}

static void write_tics(FILE *gp, const char *axis, char *const *values, int n)
{
    char q[256];
    fprintf(gp, "    set %stics (", axis);
    for (int i = 0; i < n; i++)
        fprintf(gp, "%s%s %d", i ? ", " : "", ns_gp_quote(q, sizeof q, values[i]), i);
    if (n == 0)
        fprintf(gp, "\"\" 0");
    fprintf(gp, ")\n");
}

/* The colour range, symmetric around 1 in log space: [1/M, M], M the largest factor seen. */
static double colour_span(const NsSweepTable *t)
{
    double span = 2.0;
    for (int c = 0; c < t->n_cells; c++) {
        double g = t->ok[c] ? t->rows[c].growth : NAN;
        if (g > 0 && isfinite(g))
            span = fmax(span, fmax(g, 1.0 / g));
    }
    return span * 1.05;
}

static void write_panel(NsFig *f, const Map *m, int block, const char *scheme, const char *group)
{
    char q[3][300], title[260];
    snprintf(title, sizeof title, "%s (%s)", scheme, group);
    if (block < 0) {
        ns_gp_empty_panel(f->gp, title, "no cell");
        return;
    }
    fprintf(f->gp, "    set title %s\n    set xlabel %s\n    set ylabel %s\n",
            ns_gp_quote(q[0], sizeof q[0], title),
            ns_gp_quote(q[1], sizeof q[1], m->kx >= 0 ? m->t->keys[m->kx] : ""),
            ns_gp_quote(q[2], sizeof q[2], m->ky >= 0 ? m->t->keys[m->ky] : ""));
    fprintf(f->gp, "    set xrange [-0.5:%g]\n    set yrange [-0.5:%g]\n", m->nx - 0.5,
            m->ny - 0.5);
    write_tics(f->gp, "x", m->xs, m->kx >= 0 ? m->nx : 0);
    write_tics(f->gp, "y", m->ys, m->ky >= 0 ? m->ny : 0);
    fprintf(f->gp,
            "    plot dat index %d using 1:2:(0.5):(0.5):(pos($3)) with boxxyerror fs solid 1.0 "
            "noborder lc palette notitle, \\\n"
            "         dat index %d using 1:2:5 with labels notitle\n", block, block);
}

static void fill_job(NsPlotJob *job, const char *dir, int cols, int rows)
{
    memset(job, 0, sizeof *job);
    job->opt.out_dir = dir;
    job->opt.prefix = "onset";
    job->kind = "onset";
    job->formats[0] = "png";
    job->formats[1] = "svg";
    job->n_formats = 2;
    job->width = 120 + 420 * cols;
    job->height = 80 + 330 * rows;
    snprintf(job->font, sizeof job->font, "Sans,10");
}

int ns_plot_onset(const char *dir, const NsSweepTable *t, const char *map_x, const char *map_y,
                  char *err)
{
    Map m = {.t = t};
    if (choose_axes(&m, map_x, map_y, err) < 0)
        return -1;
    collect_panels(&m);
    if (m.n_schemes == 0)
        return ns_fail(err, "no cell's log could be read; nothing to map");
    NsPlotJob job;
    fill_job(&job, dir, m.n_schemes, m.n_groups);
    NsFig f;
    if (ns_fig_open(&f, &job, NULL, "onset map: growth of the batch-vs-running distance at the "
                                    "site where it grows most, per cell", err) < 0)
        return -1;
    int blocks[MAX_PANELS][16];
    for (int g = 0; g < m.n_groups; g++)
        for (int s = 0; s < m.n_schemes; s++)
            blocks[g][s] = write_block(&f, &m, m.schemes[s], m.groups[g]);
    double span = colour_span(t);
    fprintf(f.gp, "    set multiplot layout %d,%d title \"growth = median distance (dist_var; "
                  "PN family: dist_psi2) in the last fifth / in the second fifth, at the site "
                  "where it grows most; !: unstable run (loss rose or gradient norm grew "
                  "100x)\"\n", m.n_groups, m.n_schemes);
    fprintf(f.gp, "    set logscale cb\n    set cbrange [%g:%g]\n    set cblabel \"growth\"\n"
                  "    set palette defined (0 \"#2166ac\", 0.5 \"#f7f7f7\", 1 \"#b2182b\")\n"
                  "    unset key\n    unset grid\n",
            1.0 / span, span);
    for (int g = 0; g < m.n_groups; g++)
        for (int s = 0; s < m.n_schemes; s++)
            write_panel(&f, &m, blocks[g][s], m.schemes[s], m.groups[g]);
    if (ns_fig_close(&f, err) < 0)
        return -1;
    if (job.no_gnuplot)
        return ns_fail(err, "gnuplot is not installed: wrote %s/onset.dat and .gp but no images; "
                            "install the Debian package gnuplot-nox", dir);
    return 0;
}
