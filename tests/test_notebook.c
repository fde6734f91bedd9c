/* Tests of `normscope export-notebook` with run logs trained by the program under test
 * (NS_BINARY) in a scratch directory: the notebook is valid JSON of nbformat 4 with the run
 * table, relative log paths and figures embedded only when they are PNGs; nbformat's own
 * validator accepts it and its code cells run against the logs (when Python has the
 * libraries); bad logs, paths and command lines give one-line errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "logs.h"
#include "notebook.h"
#include "util.h"

#define PY "/usr/bin/python3"

/* A 1x1 RGBA PNG (chunk CRCs checked) and its base64. */
static const unsigned char PNG_1X1[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
    0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00,
    0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78,
    0xda, 0x63, 0x64, 0x60, 0xf8, 0x5f, 0x0f, 0x00, 0x02, 0x87, 0x01, 0x80, 0xeb, 0x47,
    0xba, 0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
static const char PNG_1X1_B64[] =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5Er"
    "kJggg==";

/* ------------------------------------------------------------------------------------------
 * Fixture: the logs, made once for all tests */

static int setup_logs(void **state)
{
    (void)state;
    return train_analysis_logs(LOG_BATCH | LOG_PV | LOG_LN | LOG_NONE | LOG_DIV);
}

static int python_has(const char *modules)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, PY " -c 'import %s' >/dev/null 2>&1", modules);
    return access(PY, X_OK) == 0 && system(cmd) == 0;
}

/* ------------------------------------------------------------------------------------------
 * export-notebook */

static json_t *cell_by_id(json_t *cells, const char *id)
{
    size_t i;
    json_t *cell;
    json_array_foreach(cells, i, cell)
        if (strcmp(json_string_value(json_object_get(cell, "id")), id) == 0)
            return cell;
    fail_msg("no cell '%s'", id);
    return NULL;
}

static char *joined_source(json_t *cell)
{
    size_t i, len = 0;
    json_t *line;
    char *s = ns_xcalloc(1, 1);
    json_array_foreach(json_object_get(cell, "source"), i, line) {
        const char *l = json_string_value(line);
        s = ns_xrealloc(s, len + strlen(l) + 1);
        strcpy(s + len, l);
        len += strlen(l);
    }
    return s;
}

/* Figures dir: a hand-made PNG, a gnuplot one when gnuplot exists, and a fake "PNG". */
static int make_figures(const char *dir)
{
    char path[PATH_MAX + 64], cmd[3 * PATH_MAX];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/boxes-forward.png", dir);
    write_file(path, PNG_1X1, sizeof PNG_1X1);
    snprintf(path, sizeof path, "%s/training-notes.png", dir);
    write_file(path, "text", 4);
    snprintf(cmd, sizeof cmd, "gnuplot -e \"set terminal png size 160,100; set output "
                              "'%s/fluctuation.png'; plot x\" >/dev/null 2>&1", dir);
    return system("command -v gnuplot >/dev/null 2>&1") == 0 && system(cmd) == 0;
}

static void test_notebook_contents(void **state)
{
    (void)state;
    char figs[PATH_MAX + 32], nb[PATH_MAX + 32], err[NS_ERRLEN] = "";
    snprintf(figs, sizeof figs, "%s/figs", scratch_dir());
    snprintf(nb, sizeof nb, "%s/study.ipynb", scratch_dir());
    int with_gnuplot = make_figures(figs);
    const char *paths[] = {g_batch, g_pv, g_ln, g_none};
    assert_int_equal(ns_export_notebook(paths, 4, figs, nb, err), 0);
    json_error_t jerr;
    json_t *root = json_load_file(nb, 0, &jerr);
    if (!root)
        fail_msg("notebook is not valid JSON: %s (line %d)", jerr.text, jerr.line);
    assert_int_equal(json_integer_value(json_object_get(root, "nbformat")), 4);
    assert_true(json_integer_value(json_object_get(root, "nbformat_minor")) >= 5);
    json_t *meta = json_object_get(root, "metadata");
    assert_string_equal(json_string_value(json_object_get(json_object_get(meta, "kernelspec"),
                                                          "name")), "python3");
    assert_non_null(json_object_get(meta, "language_info"));
    json_t *cells = json_object_get(root, "cells"), *cell;
    size_t i, n_md = 0, n_code = 0;
    json_array_foreach(cells, i, cell) {
        const char *type = json_string_value(json_object_get(cell, "cell_type"));
        n_md += strcmp(type, "markdown") == 0;
        n_code += strcmp(type, "code") == 0;
        assert_non_null(json_string_value(json_object_get(cell, "id")));
    }
    assert_true(n_md >= 7 && n_code >= 7);
    char *title = joined_source(json_array_get(cells, 0));
    assert_non_null(strstr(title, "power-v (pre)"));
    assert_non_null(strstr(title, "| d_model |"));
    free(title);
    char *setup = joined_source(cell_by_id(cells, "setup"));
    assert_non_null(strstr(setup, "\"batch.h5\"")); /* relative: the log is beside it */
    assert_non_null(strstr(setup, "import h5py"));
    free(setup);
    json_t *outs = json_object_get(cell_by_id(cells, "boxes-code"), "outputs");
    assert_int_equal(json_array_size(outs), 1);
    json_t *data = json_object_get(json_array_get(outs, 0), "data");
    assert_string_equal(json_string_value(json_object_get(data, "image/png")), PNG_1X1_B64);
    outs = json_object_get(cell_by_id(cells, "fluctuation-code"), "outputs");
    assert_int_equal(json_array_size(outs), with_gnuplot ? 1 : 0);
    outs = json_object_get(cell_by_id(cells, "training-code"), "outputs");
    assert_int_equal(json_array_size(outs), 0); /* not a PNG: not embedded */
    assert_true(json_is_null(json_object_get(cell_by_id(cells, "lipschitz-code"),
                                             "execution_count")));
    json_decref(root);
}

/* nbformat's own validator, and the code cells run against the logs when Python has the
 * libraries (skipped otherwise). */
static void test_notebook_python(void **state)
{
    (void)state;
    if (!python_has("nbformat"))
        skip();
    char nb[PATH_MAX + 32], script[PATH_MAX + 32], cmd[4 * PATH_MAX + 256];
    char err[NS_ERRLEN] = "";
    snprintf(nb, sizeof nb, "%s/sub/py.ipynb", scratch_dir());
    snprintf(cmd, sizeof cmd, "%s/sub", scratch_dir());
    mkdir(cmd, 0755);
    const char *paths[] = {g_pv, g_none, g_div}; /* PN-V, no probes, a diverged run */
    assert_int_equal(ns_export_notebook(paths, 3, NULL, nb, err), 0);
    snprintf(script, sizeof script, "%s/check_nb.py", scratch_dir());
    const char *py =
        "import json, os, sys\n"
        "import nbformat\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "nbformat.validate(nb)\n"
        "if len(sys.argv) > 2:\n"
        "    import matplotlib\n"
        "    matplotlib.use('Agg')\n"
        "    import matplotlib.pyplot as plt\n"
        "    plt.show = lambda *a, **k: plt.close('all')\n"
        "    os.chdir(os.path.dirname(os.path.abspath(sys.argv[1])))\n"
        "    env = {}\n"
        "    for cell in nb.cells:\n"
        "        if cell.cell_type == 'code':\n"
        "            exec(compile(cell.source, cell.id, 'exec'), env)\n";
    write_file(script, py, strlen(py));
    int run = python_has("matplotlib, h5py, numpy");
    snprintf(cmd, sizeof cmd, PY " %s %s %s >%s/py.out 2>&1", script, nb, run ? "run" : "",
             scratch_dir());
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "%s/py.out", scratch_dir());
        char *out = keep(slurp(cmd, NULL));
        fail_msg("notebook check failed:\n%s", out);
    }
}

static void test_notebook_errors(void **state)
{
    (void)state;
    char nb[PATH_MAX + 32], errf[PATH_MAX + 64], err[NS_ERRLEN] = "";
    snprintf(nb, sizeof nb, "%s/e.ipynb", scratch_dir());
    snprintf(errf, sizeof errf, "%s/nb.stderr", scratch_dir());
    write_file(g_text, "not a run log\n", 14);
    craft_format(g_batch, g_badver, "normscope-runlog-99");
    struct {
        const char *file, *phrase;
    } cases[] = {{"/nonexistent/run.h5", "no such file"},
                 {g_text, "not an HDF5 file"},
                 {g_badver, "unknown format"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *paths[] = {g_batch, cases[i].file};
        assert_int_equal(ns_export_notebook(paths, 2, NULL, nb, err), -1);
        assert_non_null(strstr(err, cases[i].phrase));
        assert_null(strchr(err, '\n'));
    }
    const char *ok[] = {g_batch};
    assert_int_equal(ns_export_notebook(ok, 1, NULL, "/nonexistent-dir/x.ipynb", err), -1);
    assert_non_null(strstr(err, "cannot write notebook"));
    assert_int_equal(ns_export_notebook(ok, 1, "/nonexistent-figs", nb, err), -1);
    assert_non_null(strstr(err, "figures directory"));
    /* the command line */
    assert_int_equal(run_io((Io){.err = errf}, "export-notebook %s", g_batch), NS_EXIT_USAGE);
    assert_int_equal(run_io((Io){.err = errf}, "export-notebook %s --out %s", g_text, nb),
                     NS_EXIT_ERROR);
    char *msg = slurp(errf, NULL);
    assert_non_null(strstr(msg, "normscope: "));
    free(msg);
    assert_int_equal(run_io((Io){.err = errf}, "export-notebook %s --out %s", g_batch, nb), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notebook_contents),
        cmocka_unit_test(test_notebook_python),
        cmocka_unit_test(test_notebook_errors),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, setup_logs, group_teardown);
}
