/* Run logs as the tests read and edit them (logs.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5_hl.h>

#include "h5util.h"
#include "harness.h"
#include "logs.h"
#include "util.h"

/* ------------------------------------------------------------------ plain HDF5 */

hid_t open_ro(const char *path) { return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
hid_t open_swmr(const char *path)
{
    return H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
}
int exists(hid_t f, const char *path) { return H5LTpath_valid(f, path, 1) > 0; }

long rd(hid_t f, const char *path, double **data, long *cols)
{
    if (data)
        *data = NULL;
    if (!exists(f, path))
        return -1;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT), s = (H5Drefresh(d), H5Dget_space(d));
    hsize_t dims[2] = {1, 1};
    int rank = H5Sget_simple_extent_dims(s, dims, NULL);
    long rows = rank == 0 ? 1 : (long)dims[0], c = rank == 2 ? (long)dims[1] : 1;
    if (data && (*data = calloc((size_t)(rows * c) + 1, sizeof(double))) && rows * c > 0)
        H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data);
    if (cols)
        *cols = c;
    H5Sclose(s), H5Dclose(d);
    return rows;
}

long upto(hid_t f, const char *path)
{
    double *s;
    long n = rd(f, path, &s, NULL);
    for (long i = 0; i < n; i++)
        n = s[i] == i + 1 ? n : -2;
    free(s);
    return n < 0 ? -2 : n;
}

static herr_t collect(hid_t o, const char *name, const H5O_info_t *info, void *data)
{
    PathList *l = data;
    (void)o;
    if (info->type == H5O_TYPE_DATASET) {
        if (l->n == l->cap)
            l->path = realloc(l->path, sizeof *l->path * (size_t)(l->cap = 2 * l->cap + 64));
        snprintf(l->path[l->n++], sizeof *l->path, "%s", name);
    }
    return 0;
}

PathList datasets(hid_t f)
{
    PathList l = {0};
    H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, collect, &l, H5O_INFO_BASIC);
    return l;
}

int check_alignment_ex(hid_t f, int data_may_lead)
{
    PathList l = datasets(f);
    int bad = 0;
    for (int i = 0; i < l.n; i++) {
        char g[192], *slash;
        long want = -1, n;
        double *v;
        snprintf(g, sizeof g, "%s", l.path[i]);
        while (want < 0 && (slash = strrchr(g, '/')))
            *slash = '\0', want = NROWS(f, fmt("%s/step", g));
        n = rd(f, l.path[i], &v, NULL);
        if (want >= 0 && (data_may_lead ? n < want : n != want) && bad++ < 8)
            print_message("%s has %ld rows but %s/step has %ld\n", l.path[i], n, g, want);
        for (long k = 1; want >= 0 && !strcmp(l.path[i] + strlen(g), "/step") && k < n; k++)
            if (!(v[k] > v[k - 1]) && bad++ < 8)
                print_message("%s does not ascend at row %ld\n", l.path[i], k);
        free(v);
    }
    free(l.path);
    return bad;
}

int check_alignment(hid_t f) { return check_alignment_ex(f, 0); }

/* ------------------------------------------------------------------ logread */

double *series(const NsLog *log, const char *path, size_t *n)
{
    char err[NS_ERRLEN];
    double *v = ns_log_has(log, path) ? ns_log_read_series(log, path, n, err) : NULL;
    if (!v)
        *n = 0;
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double window_median_of(const NsLog *log, const char *group, const char *name, double last,
                        double lo, double hi)
{
    size_t ns, nv, m = 0;
    double *st = series(log, fmt("%s/step", group), &ns);
    double *v = series(log, fmt("%s/%s", group, name), &nv);
    if (last <= 0)
        last = ns ? st[ns - 1] : 0;
    double *kept = malloc(sizeof(double) * (nv + 1));
    for (size_t i = 0; i < ns && i < nv; i++)
        if (st[i] / last > lo && st[i] / last <= hi && isfinite(v[i]))
            kept[m++] = v[i];
    qsort(kept, m, sizeof(double), cmp_double);
    double r = m == 0 ? NAN : m % 2 ? kept[m / 2] : 0.5 * (kept[m / 2 - 1] + kept[m / 2]);
    free(st), free(v), free(kept);
    return r;
}

void open_logs(NsLog *logs, const char *const *paths, int n)
{
    char err[NS_ERRLEN];
    for (int i = 0; i < n; i++)
        if (ns_log_open(&logs[i], paths[i], err) != 0)
            fail_msg("%s", err);
}

void close_logs(NsLog *logs, int n)
{
    for (int i = 0; i < n; i++)
        ns_log_close(&logs[i]);
}

double trained_attr(const char *flags, const char *name)
{
    static int k;
    const char *out = scratch(fmt("attr%d.h5", k++));
    assert_int_equal(run_io((Io){0}, TINY_TRAIN " --steps 2 --eval-every 0 --probes none %s "
                            "--out %s", flags, out), 0);
    NsLog log;
    char err[NS_ERRLEN];
    assert_int_equal(ns_log_open(&log, out, err), 0);
    double v = NAN;
    ns_log_attr_double(&log, name, &v);
    ns_log_close(&log);
    return v;
}

/* ------------------------------------------------------------------ edited copies */

void craft_nan_loss(const char *from, const char *to, long index)
{
    copy_file(from, to);
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "steps/loss", H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    hsize_t dims[1];
    H5Sget_simple_extent_dims(space, dims, NULL);
    hsize_t start[1] = {index < 0 ? dims[0] - 1 : (hsize_t)index}, count[1] = {1};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t mem = H5Screate_simple(1, count, NULL);
    double nan = NAN;
    assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, &nan) >= 0);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
}

/* The whole 1-D dataset as doubles (malloc'd), *n rows. */
static double *read_doubles(hid_t f, const char *path, size_t *n)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t space = H5Dget_space(d);
    hsize_t dims[1] = {0};
    H5Sget_simple_extent_dims(space, dims, NULL);
    double *v = malloc(sizeof(double) * (dims[0] + 1));
    assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(space);
    H5Dclose(d);
    *n = dims[0];
    return v;
}

void edit_series(const char *file, const char *path,
                 void (*edit)(double *v, const double *step, size_t n, void *ctx), void *ctx)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    char step_path[256];
    snprintf(step_path, sizeof step_path, "%.*s/step", (int)(strrchr(path, '/') - path), path);
    size_t n, ns = 0;
    double *v = read_doubles(f, path, &n);
    double *step = exists(f, step_path) ? read_doubles(f, step_path, &ns) : NULL;
    assert_true(!step || ns == n);
    edit(v, step, n, ctx);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    free(v);
    free(step);
}

void craft_unfinished(const char *from, const char *to, long planned)
{
    copy_file(from, to);
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(ns_h5_attr_write_i64(f, "steps", planned), 0);
    H5Fclose(f);
}

void craft_format(const char *from, const char *to, const char *format)
{
    copy_file(from, to);
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(ns_h5_attr_write_str(f, "format", format), 0);
    H5Fclose(f);
}

/* ------------------------------------------------------------------ the analysis tests' logs */

const char *g_batch, *g_pv, *g_ln, *g_none, *g_div;
const char *g_nan, *g_nanlast, *g_badver, *g_text;

int train_analysis_logs(unsigned which)
{
    static const char *const names[5] = {"batch.h5", "power-v.h5", "layer-pre.h5", "noprobes.h5",
                                         "diverged.h5"};
    static const char *const args[5] = {
        "--norm batch --lipschitz-every 10 --hessian-iters 3",
        "--norm power-v --lipschitz-every 10 --hessian-iters 3",
        "--norm layer --norm-position pre",
        "--norm batch --probes none",
        "--norm batch --lr 1e30 --clip 0 --warmup 1"};
    static const int codes[5] = {0, 0, 0, 0, NS_EXIT_DIVERGED};
    const char **path[5] = {&g_batch, &g_pv, &g_ln, &g_none, &g_div};
    const char *name_[5], *args_[5];
    int want[5], n = 0;
    ns_h5_quiet();
    if (harness_setup() != 0)
        return -1;
    g_nan = keep(strdup(scratch("nan-loss.h5")));
    g_nanlast = keep(strdup(scratch("nan-last.h5")));
    g_badver = keep(strdup(scratch("future.h5")));
    g_text = keep(strdup(scratch("notes.h5")));
    for (int i = 0; i < 5; i++) {
        *path[i] = keep(strdup(scratch(names[i])));
        if (which >> i & 1)
            name_[n] = names[i], args_[n] = args[i], want[n++] = codes[i];
    }
    return train_logs(n, TINY_LOGS " --steps 60", name_, args_, want, NULL);
}
