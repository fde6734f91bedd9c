/* normscope export-notebook: a Jupyter notebook (nbformat 4.5) that explains and redraws the
 * study's figures from the run logs. The notebook is built as a JSON tree with jansson and
 * written with json_dump_file, so escaping and structure are jansson's job, not ours.
 *
 * Layout: a title cell (runs, schemes, configuration from the logs' root attributes), a setup
 * code cell (imports, the run paths, helpers to read series), then per figure a Markdown cell
 * saying what it shows and how to read it and a code cell that redraws it. The gnuplot PNGs of
 * `normscope plot` found in --figures are embedded as that cell's outputs, so the notebook
 * reads well before anyone runs it. The cell texts live in notebook_cells.h. */
#include "notebook.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "logread.h"
#include "notebook_cells.h"
#include "run_config.h"
#include "util.h"
#include "sanitize.h"

typedef struct {
    const char *kind; /* PNG file prefix and cell id */
    const char *markdown, *code;
} Figure;

static const Figure FIGURES[] = {
    {"training", TRAINING_MD, CODE_TRAINING},
    {"fluctuation", FLUCTUATION_MD, CODE_FLUCTUATION},
    {"boxes", BOXES_MD, CODE_BOXES},
    {"gradients", GRADIENTS_MD, CODE_GRADIENTS},
    {"lipschitz", LIPSCHITZ_MD, CODE_LIPSCHITZ},
    {"layers", LAYERS_MD, CODE_LAYERS},
};
#define N_FIGURES (int)(sizeof FIGURES / sizeof FIGURES[0])

/* ------------------------------------------------------------------------------------------
 * JSON pieces */

/* json_string rejects invalid UTF-8 (possible in file names); fall back to '?' for such bytes
 * rather than failing the export. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = ns_xstrdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* nbformat stores cell sources as a list of lines, each keeping its '\n'. */
static json_t *source_lines(const char *text)
{
    json_t *lines = json_array();
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) + 1 : strlen(text);
        char *line = ns_xmalloc(len + 1);
        memcpy(line, text, len);
        line[len] = '\0';
        json_array_append_new(lines, jstr(line));
        free(line);
        text += len;
    }
    return lines;
}

static json_t *markdown_cell(const char *id, const char *text)
{
    json_t *cell = json_object();
    json_object_set_new(cell, "cell_type", json_string("markdown"));
    json_object_set_new(cell, "id", json_string(id));
    json_object_set_new(cell, "metadata", json_object());
    json_object_set_new(cell, "source", source_lines(text));
    return cell;
}

/* An unexecuted code cell (execution_count null); outputs may hold embedded figures. */
static json_t *code_cell(const char *id, const char *text, json_t *outputs)
{
    json_t *cell = json_object();
    json_object_set_new(cell, "cell_type", json_string("code"));
    json_object_set_new(cell, "id", json_string(id));
    json_object_set_new(cell, "execution_count", json_null());
    json_object_set_new(cell, "metadata", json_object());
    json_object_set_new(cell, "outputs", outputs ? outputs : json_array());
    json_object_set_new(cell, "source", source_lines(text));
    return cell;
}

static json_t *notebook_metadata(void)
{
    json_t *kernel = json_pack("{s:s, s:s, s:s}", "display_name", "Python 3", "language",
                               "python", "name", "python3");
    json_t *lang = json_pack("{s:{s:s, s:i}, s:s, s:s, s:s, s:s, s:s, s:s}", "codemirror_mode",
                             "name", "ipython", "version", 3, "file_extension", ".py",
                             "mimetype", "text/x-python", "name", "python",
                             "nbconvert_exporter", "python", "pygments_lexer", "ipython3",
                             "version", "3");
    return json_pack("{s:o, s:o, s:{s:s}}", "kernelspec", kernel, "language_info", lang,
                     "normscope", "version", NORMSCOPE_VERSION);
}

/* ------------------------------------------------------------------------------------------
 * Embedded PNGs */

static char *base64(const unsigned char *data, size_t n)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = ns_xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)data[i] << 16;
        if (i + 1 < n)
            v |= (unsigned long)data[i + 1] << 8;
        if (i + 2 < n)
            v |= data[i + 2];
        *o++ = A[(v >> 18) & 63];
        *o++ = A[(v >> 12) & 63];
        *o++ = i + 1 < n ? A[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? A[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* The whole file if it is a PNG (checked by its signature), else NULL. */
static unsigned char *read_png(const char *path, size_t *n)
{
    static const unsigned char SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 8) {
        if (f)
            fclose(f);
        return NULL;
    }
    unsigned char *data = ns_xmalloc((size_t)st.st_size);
    *n = fread(data, 1, (size_t)st.st_size, f);
    fclose(f);
    if (*n != (size_t)st.st_size || memcmp(data, SIG, 8) != 0) {
        free(data);
        return NULL;
    }
    return data;
}

static json_t *display_png(const char *name, const unsigned char *png, size_t n)
{
    char *b64 = base64(png, n);
    char alt[320];
    snprintf(alt, sizeof alt, "<gnuplot figure %s>", name);
    json_t *out = json_pack("{s:s, s:{s:s, s:[o]}, s:{}}", "output_type", "display_data",
                            "data", "image/png", b64, "text/plain", jstr(alt), "metadata");
    free(b64);
    return out;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* display_data outputs for every <kind>*.png in dir, in name order. */
static json_t *png_outputs(const char *dir, const char *kind)
{
    json_t *outputs = json_array();
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d)
        return outputs;
    char **names = NULL;
    size_t count = 0, klen = strlen(kind);
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, kind, klen) == 0 && len > 4 &&
            strcmp(e->d_name + len - 4, ".png") == 0) {
            names = ns_xrealloc(names, sizeof(char *) * (count + 1));
            names[count++] = ns_xstrdup(e->d_name);
        }
    }
    closedir(d);
    if (count) /* qsort wants a non-null array even for zero elements */
        qsort(names, count, sizeof(char *), by_name);
    for (size_t i = 0; i < count; i++) {
        char path[PATH_MAX + 256];
        size_t n = 0;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unsigned char *png = read_png(path, &n);
        if (png)
            json_array_append_new(outputs, display_png(names[i], png, n));
        else
            fprintf(stderr, "normscope: warning: '%s' is not a PNG image; not embedded\n", path);
        free(png);
        free(names[i]);
    }
    free(names);
    return outputs;
}

/* ------------------------------------------------------------------------------------------
 * Generated text: title and setup */

/* A log's path for the code cells: relative to the notebook's folder when the log lies under
 * it (the study directory can then be moved as a whole), absolute otherwise. */
static void run_path(const char *log_path, const char *out_path, char *buf, size_t len)
{
    char abs_log[PATH_MAX], abs_dir[PATH_MAX];
    char *out_copy = ns_xstrdup(out_path);
    if (!realpath(log_path, abs_log))
        snprintf(abs_log, sizeof abs_log, "%s", log_path);
    size_t dl = realpath(dirname(out_copy), abs_dir) ? strlen(abs_dir) : 0;
    free(out_copy);
    if (dl > 0 && strncmp(abs_log, abs_dir, dl) == 0 && abs_log[dl] == '/')
        snprintf(buf, len, "%s", abs_log + dl + 1);
    else
        snprintf(buf, len, "%s", abs_log);
}

/* A path in a code cell is a Python string literal (ns_py_literal), never code. */
static void python_str(FILE *m, const char *s)
{
    char literal[4 * PATH_MAX + 3];
    fputs(ns_py_literal(literal, sizeof literal, s), m);
}

static char *setup_code(const char *const *paths, int n, const char *out_path)
{
    char *text = NULL, rel[PATH_MAX];
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    fputs(CODE_SETUP_HEAD, m);
    fputs("RUNS = [\n", m);
    for (int i = 0; i < n; i++) {
        run_path(paths[i], out_path, rel, sizeof rel);
        fputs("    ", m);
        python_str(m, rel);
        fputs(",\n", m);
    }
    fputs("]\n", m);
    fputs(CODE_SETUP_BODY, m);
    fclose(m);
    return text;
}

/* A root attribute as text: strings as they are, numbers with %.6g, "–" when absent. */
static void attr_text(const NsLog *log, const char *name, char *buf, size_t len)
{
    double v;
    char raw[1024];
    if (ns_log_attr_str(log, name, raw, sizeof raw) == 0) {
        ns_md_text(buf, len, raw); /* text in a Markdown table: no column, no markup */
        return;
    }
    if (ns_log_attr_double(log, name, &v) == 0)
        snprintf(buf, len, "%.6g", v);
    else
        snprintf(buf, len, "–");
}

static void runs_table(FILE *m, const NsLog *logs, int n, const char *const *paths)
{
    fputs("| # | run log | scheme | position | steps done / planned |\n"
          "|---:|---|---|---|---:|\n", m);
    for (int i = 0; i < n; i++) {
        char err[NS_ERRLEN], planned[64];
        size_t rows = 0;
        double *step = ns_log_read_series(&logs[i], "steps/step", &rows, err);
        attr_text(&logs[i], "steps", planned, sizeof planned);
        char md[3][PATH_MAX];
        fprintf(m, "| %d | %s | %s | %s | %.0f / %s |\n", i + 1,
                ns_md_text(md[0], sizeof md[0], paths[i]),
                ns_md_text(md[1], sizeof md[1], logs[i].norm),
                ns_md_text(md[2], sizeof md[2], logs[i].position), rows ? step[rows - 1] : 0.0,
                planned);
        free(step);
    }
}

/* One attribute's row: its value in each run, in bold when they differ. */
static void config_row(FILE *m, const NsLog *logs, int n, const char *attr)
{
    char first[256], value[256];
    int differ = 0;
    attr_text(&logs[0], attr, first, sizeof first);
    for (int i = 1; i < n; i++) {
        attr_text(&logs[i], attr, value, sizeof value);
        differ |= strcmp(first, value) != 0;
    }
    fprintf(m, differ ? "| **%s** |" : "| %s |", attr);
    for (int i = 0; i < n; i++) {
        attr_text(&logs[i], attr, value, sizeof value);
        fprintf(m, " %s |", value);
    }
    fputc('\n', m);
}

/* One row per root attribute of the run configuration (the rows of its option table that name
 * one, in the table's order), one column per run. */
static void config_table(FILE *m, const NsLog *logs, int n)
{
    fputs("\n### Configuration (root attributes of the logs)\n\nAttributes in **bold** differ "
          "between runs.\n\n| attribute |", m);
    for (int i = 0; i < n; i++)
        fprintf(m, " %d |", i + 1);
    fputs("\n|---|", m);
    for (int i = 0; i < n; i++)
        fputs("---|", m);
    fputc('\n', m);
    for (size_t k = 0; k < NS_N_RUN_OPTIONS; k++)
        if (NS_RUN_OPTIONS[k].attr)
            config_row(m, logs, n, NS_RUN_OPTIONS[k].attr);
}

static char *title_markdown(const NsLog *logs, int n, const char *const *paths)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    fprintf(m, "# normscope: %d run%s of the PowerNorm study\n\nSchemes (position): ", n,
            n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        char label[sizeof logs[i].label * 6];
        fprintf(m, "%s%s", i ? ", " : "", ns_md_text(label, sizeof label, logs[i].label));
    }
    fprintf(m, ".\n\n%s\n", INTRO_MD);
    runs_table(m, logs, n, paths);
    config_table(m, logs, n);
    fclose(m);
    return text;
}

/* ------------------------------------------------------------------------------------------
 * Assembly */

static json_t *build_notebook(const NsLog *logs, int n, const char *const *paths,
                              const char *figures_dir, const char *out_path)
{
    json_t *cells = json_array();
    char *title = title_markdown(logs, n, paths);
    char *setup = setup_code(paths, n, out_path);
    json_array_append_new(cells, markdown_cell("title", title));
    json_array_append_new(cells, code_cell("setup", setup, NULL));
    free(title);
    free(setup);
    for (int f = 0; f < N_FIGURES; f++) {
        char id[64];
        snprintf(id, sizeof id, "%s-text", FIGURES[f].kind);
        json_array_append_new(cells, markdown_cell(id, FIGURES[f].markdown));
        snprintf(id, sizeof id, "%s-code", FIGURES[f].kind);
        json_array_append_new(cells, code_cell(id, FIGURES[f].code,
                                               png_outputs(figures_dir, FIGURES[f].kind)));
    }
    return json_pack("{s:o, s:o, s:i, s:i}", "cells", cells, "metadata", notebook_metadata(),
                     "nbformat", 4, "nbformat_minor", 5);
}

int ns_export_notebook(const char *const *log_paths, int n, const char *figures_dir,
                       const char *out_path, char *err)
{
    if (n < 1)
        return ns_fail(err, "export-notebook needs at least one run log");
    if (figures_dir) {
        DIR *d = opendir(figures_dir);
        if (!d)
            return ns_fail(err, "cannot read figures directory '%s': %s", figures_dir,
                           strerror(errno));
        closedir(d);
    }
    NsLog *logs = ns_xcalloc((size_t)n, sizeof *logs);
    int opened = 0, rc = 0;
    while (opened < n && (rc = ns_log_open(&logs[opened], log_paths[opened], err)) == 0)
        opened++;
    if (rc == 0) {
        json_t *nb = build_notebook(logs, n, log_paths, figures_dir, out_path);
        errno = 0;
        if (json_dump_file(nb, out_path, JSON_INDENT(1) | JSON_SORT_KEYS) != 0)
            rc = ns_fail(err, "cannot write notebook '%s': %s", out_path,
                         errno ? strerror(errno) : "write failed");
        json_decref(nb);
    }
    for (int i = 0; i < opened; i++)
        ns_log_close(&logs[i]);
    free(logs);
    return rc;
}
