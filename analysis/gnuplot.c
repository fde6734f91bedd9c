/* The gnuplot driver of the plot family and the helpers every plot shares.
 *
 * A figure is three things a user can keep: the data (.dat, one block per run, comments naming
 * runs and columns), a self-contained script (.gp) that draws it, and the images the script
 * makes (.png, .svg, .pdf: --format). The script changes to its own directory first, so
 * `gnuplot X.gp` works from anywhere, and draws the same body once per terminal, so editing one
 * place changes every image. gnuplot is started with posix_spawnp (no shell, so any path is safe) and its
 * stderr is captured to turn a failure into one error line. */
#include "gnuplot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "palette.h"
#include "stats.h"
#include "util.h"

extern char **environ;

const char NS_HINT_BATCH_STATS[] =
    "recorded by normscope train --probes all or --probes batch-stats";
const char NS_HINT_GRADIENTS[] = "recorded by normscope train --probes all or --probes gradients";
const char NS_HINT_LIPSCHITZ[] =
    "recorded by normscope train --lipschitz-every N with --probes all or --probes lipschitz";

/* ------------------------------------------------------------------------------ script text */

void ns_gp_axes(FILE *gp, const char *title, const char *xlabel, const char *ylabel, int logy)
{
    char q[3][512];
    fprintf(gp, "    set title %s\n    set xlabel %s\n    set ylabel %s\n",
            ns_gp_quote(q[0], sizeof q[0], title), ns_gp_quote(q[1], sizeof q[1], xlabel),
            ns_gp_quote(q[2], sizeof q[2], ylabel));
    if (logy)
        fprintf(gp, "    set logscale y\n    set format y \"%%g\"\n");
    else
        fprintf(gp, "    unset logscale y\n    set format y \"%%g\"\n");
    /* a panel's range and tics are its own, not the previous panel's (ns_gp_yrange sets them) */
    fprintf(gp, "    set autoscale y\n    set ytics autofreq\n");
}

void ns_gp_empty_panel(FILE *gp, const char *title, const char *why)
{
    char q[2][512];
    fprintf(gp,
            "    # nothing to draw in this panel: say why instead of showing empty axes\n"
            "    set title %s\n    unset logscale y\n    set xrange [0:1]\n    set yrange [0:1]\n"
            "    unset xtics\n    unset ytics\n    unset xlabel\n    unset ylabel\n"
            "    set label 99 %s at graph 0.5, graph 0.5 center\n    plot NaN notitle\n"
            "    unset label 99\n    set autoscale\n    set xtics\n    set ytics\n",
            ns_gp_quote(q[0], sizeof q[0], title), ns_gp_quote(q[1], sizeof q[1], why));
}

/* The style of each run: its scheme's colour, dash type and marker (palette.h), a further run
 * of the same scheme (another seed or position) getting another dash and marker. Without runs
 * (a figure not drawn by ns_plot), colours follow the run index. */
static void write_run_styles(FILE *gp, const NsPlotJob *job)
{
    if (!job->logs || job->n_logs < 1) {
        static const char *const RGB[8] = {"0072B2", "D55E00", "009E73", "CC79A7",
                                           "E69F00", "000000", "56B4E9", "999999"};
        fprintf(gp, "palette_rgb = \"0072B2 D55E00 009E73 CC79A7 E69F00 000000 56B4E9 999999\"\n"
                    "run_color(i) = \"#\" . word(palette_rgb, i %% 8 + 1)\n"
                    "run_dt(i) = 1\nrun_pt(i) = 7\n");
        for (int i = 0; i < 32; i++) /* colours by run index */
            fprintf(gp, "set linetype %d lc rgb \"#%s\" dt 1 pt 7\n", NS_GP_RUN_LT + i,
                    RGB[i % 8]);
    } else {
        fprintf(gp, "# One colour per scheme, the same in every normscope figure; a further run of a "
                    "scheme\n# (seed, position) has another dash type and marker. Run i:");
        char label[sizeof job->logs[0].label];
        for (int i = 0; i < job->n_logs; i++) /* a newline would end the comment */
            fprintf(gp, "%s %d=%s", i ? "," : "", i,
                    ns_text_printable(label, sizeof label, job->logs[i].label));
        NsSchemeStyle st[64];
        int m = job->n_logs < 64 ? job->n_logs : 64;
        for (int i = 0; i < m; i++) {
            int variant = 0;
            for (int j = 0; j < i; j++)
                variant += strcmp(job->logs[j].norm, job->logs[i].norm) == 0;
            ns_scheme_style(job->logs[i].norm, variant, &st[i]);
        }
        const char *names[3] = {"run_rgb", "run_dts", "run_pts"};
        for (int k = 0; k < 3; k++) {
            fprintf(gp, "\n%s = \"", names[k]);
            for (int i = 0; i < m; i++) {
                if (k == 0)
                    fprintf(gp, "%s%s", i ? " " : "", st[i].rgb);
                else
                    fprintf(gp, "%s%d", i ? " " : "", k == 1 ? st[i].dash : st[i].point);
            }
            fprintf(gp, "\"");
        }
        fprintf(gp, "\nrun_color(i) = word(run_rgb, i %% %d + 1)\n"
                    "run_dt(i) = int(word(run_dts, i %% %d + 1))\n"
                    "run_pt(i) = int(word(run_pts, i %% %d + 1))\n"
                    "# linetype %d + i: run i's colour, dash and marker (kept by `reset`)\n",
                m, m, m, NS_GP_RUN_LT);
        for (int i = 0; i < m; i++)
            fprintf(gp, "set linetype %d lc rgb \"%s\" dt %d pt %d\n", NS_GP_RUN_LT + i,
                    st[i].rgb, st[i].dash, st[i].point);
    }
    fprintf(gp, "# faint = raw data: the run's colour, mostly transparent\n"
                "run_faint(i) = \"#B0\" . run_color(i)[2:]\n");
}

/* The terminal and output of one format, inside the script's loop over formats. */
static void write_terminal(FILE *gp, const NsPlotJob *job, const char *fmt, const char *name)
{
    char q[2][NS_PLOT_PATHLEN], file[NS_PLOT_PATHLEN];
    snprintf(file, sizeof file, "%s.%s", name, fmt);
    ns_gp_quote(q[0], sizeof q[0], job->font);
    /* one `if` per format: gnuplot 5.4 has no `else if` chains */
    fprintf(gp, "    if (fmt eq \"%s\") {\n", fmt);
    if (strcmp(fmt, "png") == 0)
        fprintf(gp, "        set terminal pngcairo size %d,%d noenhanced font %s\n", job->width,
                job->height, q[0]);
    else if (strcmp(fmt, "svg") == 0)
        fprintf(gp, "        set terminal svg size %d,%d dynamic noenhanced font %s "
                    "background \"white\"\n", job->width, job->height, q[0]);
    else /* pdfcairo takes inches: 72 pixels per inch, so text keeps its size against the plot */
        fprintf(gp, "        set terminal pdfcairo size %.3fin,%.3fin noenhanced font %s\n",
                job->width / 72.0, job->height / 72.0, q[0]);
    fprintf(gp, "        set output %s\n    }\n", ns_gp_quote(q[1], sizeof q[1], file));
}

/* The script up to the body the plot writes: its own directory, the shared helpers, and the
 * loop that draws the body once per output format (ns_fig_close ends it). */
static void write_script_head(NsFig *f, const char *what)
{
    char q[NS_PLOT_PATHLEN], dat[NS_PLOT_PATHLEN], list[64] = "", files[400] = "";
    const NsPlotJob *job = f->job;
    snprintf(dat, sizeof dat, "%s.dat", f->name);
    for (int k = 0; k < job->n_formats; k++) {
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? " " : "",
                 job->formats[k]);
        snprintf(files + strlen(files), sizeof files - strlen(files), "%s%.200s.%s",
                 k ? (k + 1 == job->n_formats ? " and " : ", ") : "", f->name, job->formats[k]);
    }
    /* comments are one line each: a newline in them would start a command */
    char c[4][NS_PLOT_PATHLEN];
    fprintf(f->gp,
            "# normscope plot %s: %s\n"
            "# Data: %s (one block per run, see its comments). Edit this file and re-run it\n"
            "# with `gnuplot %s.gp`: it makes %s next to itself.\n\n",
            job->kind, ns_text_printable(c[0], sizeof c[0], what),
            ns_text_printable(c[1], sizeof c[1], dat),
            ns_text_printable(c[2], sizeof c[2], f->name),
            ns_text_printable(c[3], sizeof c[3], files));
    fprintf(f->gp,
            "# Work in this script's directory, wherever gnuplot was started.\n"
            "lastslash(s, i) = i < 1 ? 0 : (s[i:i] eq \"/\" ? i : lastslash(s, i - 1))\n"
            "if (exists(\"ARG0\") && lastslash(ARG0, strlen(ARG0)) > 1) {\n"
            "    cd ARG0[1:lastslash(ARG0, strlen(ARG0)) - 1]\n}\n"
            "dat = %s\n", ns_gp_quote(q, sizeof q, dat));
    write_run_styles(f->gp, job);
    fprintf(f->gp,
            "# Log axes must not receive 0 or negative values: they become undefined points.\n"
            "pos(y) = y > 0 ? y : NaN\n"
            "set encoding utf8\n\n"
            "do for [fmt in \"%s\"] {\n", list);
    for (int k = 0; k < job->n_formats; k++)
        write_terminal(f->gp, job, job->formats[k], f->name);
    fprintf(f->gp,
            "    reset\n"
            "    set grid lc rgb \"#dddddd\"\n"
            "    set key top right opaque box lc rgb \"#cccccc\"\n"
            "    set style fill solid 0.35 border\n\n");
}

/* ------------------------------------------------------------------------------ data files */

int ns_fig_open(NsFig *f, NsPlotJob *job, const char *part, const char *what, char *err)
{
    memset(f, 0, sizeof *f);
    f->job = job;
    if (part)
        snprintf(f->name, sizeof f->name, "%s-%s", job->opt.prefix, part);
    else
        snprintf(f->name, sizeof f->name, "%s", job->opt.prefix);
    if (snprintf(f->base, sizeof f->base, "%s/%s", job->opt.out_dir, f->name) >=
        (int)sizeof f->base)
        return ns_fail(err, "output directory path '%s' is too long", job->opt.out_dir);
    char path[NS_PLOT_FILELEN];
    snprintf(path, sizeof path, "%s.dat", f->base);
    f->dat = fopen(path, "w");
    snprintf(path, sizeof path, "%s.gp", f->base);
    f->gp = fopen(path, "w");
    if (!f->dat || !f->gp) {
        int e = errno;
        ns_fig_discard(f);
        return ns_fail(err, "cannot write '%s.dat' / '.gp': %s", f->base, strerror(e));
    }
    fprintf(f->dat,
            "# normscope plot %s: %s\n"
            "# One block per run (gnuplot `index` 0, 1, ...), blocks separated by two blank "
            "lines.\n# NaN = not recorded (gnuplot skips it).\n",
            job->kind, ns_text_printable(path, sizeof path, what));
    write_script_head(f, what);
    return 0;
}

int ns_fig_block(NsFig *f, int run, const NsLog *log, const char *note, const char *columns)
{
    /* one comment line: a newline in a path would make a data row of the rest */
    char c[3][NS_PLOT_PATHLEN];
    fprintf(f->dat, "\n# index %d: run %d: %s, file %s%s%s\n# columns: %s\n", f->blocks, run,
            ns_text_printable(c[0], sizeof c[0], log->label),
            ns_text_printable(c[1], sizeof c[1], log->path), note ? ", " : "",
            ns_text_printable(c[2], sizeof c[2], note ? note : ""), columns);
    return f->blocks++;
}

void ns_fig_row(NsFig *f, const double *v, int n)
{
    for (int i = 0; i < n; i++) {
        const char *sep = i ? " " : "";
        if (isnan(v[i]))
            fprintf(f->dat, "%sNaN", sep);
        else if (isinf(v[i]))
            fprintf(f->dat, "%s%sInf", sep, v[i] < 0 ? "-" : "");
        else
            fprintf(f->dat, "%s%.12g", sep, v[i]);
    }
    fputc('\n', f->dat);
}

void ns_fig_end_block(NsFig *f) { fputs("\n\n", f->dat); }

void ns_fig_discard(NsFig *f)
{
    if (f->dat)
        fclose(f->dat);
    if (f->gp)
        fclose(f->gp);
    f->dat = f->gp = NULL;
}

/* ------------------------------------------------------------------------------ running gnuplot */

/* The line of gnuplot's stderr that says what went wrong ("X.gp" line N: ...), else its last. */
static void gnuplot_error_line(const char *out, char *line, size_t len)
{
    const char *s = strstr(out, "\" line ");
    if (s) {
        while (s > out && s[-1] != '\n')
            s--;
    } else { /* the last non-empty line */
        size_t n = strlen(out);
        while (n > 0 && out[n - 1] == '\n')
            n--;
        s = out + n;
        while (s > out && s[-1] != '\n')
            s--;
    }
    size_t n = strcspn(s, "\n");
    if (n == 0)
        snprintf(line, len, "(no message)");
    else
        snprintf(line, len, "%.*s", (int)(n < len ? n : len - 1), s);
}

/* Runs `gnuplot script`. Returns 0, 1 when gnuplot is not installed, or -1 with err. */
static int run_gnuplot(const char *script, char *err)
{
    int fds[2];
    if (pipe(fds) != 0)
        return ns_fail(err, "cannot run gnuplot: pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv[] = {"gnuplot", (char *)script, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        if (rc == ENOENT)
            return 1;
        return ns_fail(err, "cannot run gnuplot: %s", strerror(rc));
    }
    char out[8192];
    size_t used = 0;
    for (;;) { /* drain the pipe (keeping what fits) so gnuplot never blocks on it */
        char chunk[1024];
        ssize_t got = read(fds[0], chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t keep = (size_t)got < sizeof out - 1 - used ? (size_t)got : sizeof out - 1 - used;
        memcpy(out + used, chunk, keep);
        used += keep;
    }
    out[used] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return 1; /* a shell-less spawn that could not exec gnuplot */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char line[400];
        gnuplot_error_line(out, line, sizeof line);
        return ns_fail(err, "gnuplot failed on '%s': %s", script, line);
    }
    if (used > 0) /* warnings of a successful run are still worth seeing */
        fprintf(stderr, "normscope: gnuplot (%s): %s%s", script, out,
                out[used - 1] == '\n' ? "" : "\n");
    return 0;
}

static int nonempty_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* Records one made image (the list is what `normscope plot` prints). */
static void add_image(NsPlotJob *job, const char *base, const char *ext)
{
    if (job->n_images < NS_PLOT_MAX_IMAGES)
        snprintf(job->images[job->n_images++], NS_PLOT_FILELEN, "%s.%s", base, ext);
}

int ns_fig_close(NsFig *f, char *err)
{
    fprintf(f->gp, "    unset multiplot\n    set output\n}\n");
    int bad = ferror(f->dat) || ferror(f->gp);
    bad |= fclose(f->dat) != 0;
    bad |= fclose(f->gp) != 0;
    f->dat = f->gp = NULL;
    if (bad)
        return ns_fail(err, "cannot write '%s.dat' / '.gp' (disk full?)", f->base);
    NsPlotJob *job = f->job;
    char script[NS_PLOT_FILELEN];
    snprintf(script, sizeof script, "%s.gp", f->base);
    if (job->scripts++ == 0)
        snprintf(job->first_script, sizeof job->first_script, "%s", script);
    if (job->no_gnuplot)
        return 0;
    int rc = run_gnuplot(script, err);
    if (rc == 1) { /* not installed: keep writing the other figures' data and scripts */
        job->no_gnuplot = 1;
        return 0;
    }
    if (rc < 0)
        return -1;
    for (int k = 0; k < job->n_formats; k++) {
        char image[NS_PLOT_FILELEN];
        snprintf(image, sizeof image, "%s.%s", f->base, job->formats[k]);
        if (!nonempty_file(image))
            return ns_fail(err, "gnuplot ran '%s' but did not write '%s'", script, image);
    }
    for (int k = 0; k < job->n_formats; k++)
        add_image(job, f->base, job->formats[k]);
    job->figures++;
    return 0;
}

/* ------------------------------------------------------------------------------ value ranges */

void ns_range_init(NsRange *r)
{
    r->lo = r->min = INFINITY;
    r->hi = r->max = -INFINITY;
    r->nonpos = 0;
    r->count = 0;
}

void ns_range_add(NsRange *r, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            continue;
        r->count++;
        r->min = v[i] < r->min ? v[i] : r->min;
        r->max = v[i] > r->max ? v[i] : r->max;
        if (v[i] <= 0) {
            r->nonpos = 1;
            continue;
        }
        r->lo = v[i] < r->lo ? v[i] : r->lo;
        r->hi = v[i] > r->hi ? v[i] : r->hi;
    }
}

int ns_range_log(const NsRange *r)
{
    return r->count > 0 && !r->nonpos && r->hi >= 10.0 * r->lo;
}

void ns_gp_yrange(FILE *gp, const NsRange *r, int logy)
{
    if (r->count == 0 || (logy && !(r->hi >= r->lo && r->lo > 0 && isfinite(r->hi))))
        return;
    double lo, hi;
    if (logy) {
        double m = pow(r->hi / r->lo, 0.05);
        lo = r->lo / m, hi = r->hi * m;
    } else {
        double span = r->max - r->min;
        span = span > 0 ? span : (fabs(r->max) > 0 ? fabs(r->max) : 1.0);
        lo = r->min - 0.05 * span, hi = r->max + 0.05 * span;
    }
    fprintf(gp, "    set yrange [%.10g:%.10g]  # the data's range and a margin\n", lo, hi);
    if (logy && hi / lo < 1000) { /* under three decades: tics at 1, 2 and 5 of each */
        static const double MULT[3] = {1, 2, 5};
        int count = 0;
        for (double p = pow(10, floor(log10(lo))); p <= hi; p *= 10)
            for (int k = 0; k < 3; k++)
                if (p * MULT[k] >= lo && p * MULT[k] <= hi)
                    fprintf(gp, "%s%.3g", count++ ? ", " : "    set ytics (", p * MULT[k]);
        if (count)
            fprintf(gp, ")\n");
    }
}

const char *ns_gp_run_style(char *buf, size_t len, int run, size_t every)
{
    (void)every;
    snprintf(buf, len, "lt %d", NS_GP_RUN_LT + run);
    return buf;
}

const char *ns_gp_run_points(char *buf, size_t len, int run, size_t every)
{
    snprintf(buf, len, "lt %d pi %zu", NS_GP_RUN_LT + run, every < 1 ? 1 : every);
    return buf;
}

/* ------------------------------------------------------------------------------ series */

void ns_plot_warn_skip(const NsLog *log, const char *figure, const char *what)
{
    char line[3 * NS_PLOT_PATHLEN], shown[3 * NS_PLOT_PATHLEN]; /* one line, no escapes */
    snprintf(line, sizeof line, "%s: skipping run '%s' (%s): %s", figure, log->path, log->label,
             what);
    fprintf(stderr, "normscope: warning: %s\n", ns_text_printable(shown, sizeof shown, line));
}

int ns_series_load(NsSeries *s, const NsLog *log, const char *xpath, const char *ypath,
                   const char *figure, const char *hint)
{
    char err[NS_ERRLEN], what[NS_ERRLEN + 64];
    size_t nx = 0, ny = 0;
    memset(s, 0, sizeof *s);
    if (!ns_log_has(log, ypath) || !ns_log_has(log, xpath)) {
        snprintf(what, sizeof what, "no /%s in the log (%s)",
                 ns_log_has(log, ypath) ? xpath : ypath, hint);
        ns_plot_warn_skip(log, figure, what);
        return 0;
    }
    s->x = ns_log_read_series(log, xpath, &nx, err);
    s->y = s->x ? ns_log_read_series(log, ypath, &ny, err) : NULL;
    if (!s->x || !s->y) {
        ns_series_free(s);
        ns_plot_warn_skip(log, figure, err);
        return 0;
    }
    s->n = nx < ny ? nx : ny; /* a log still being written may be one row apart */
    if (ns_count_finite(s->y, s->n) == 0) {
        /* Every value NaN (never measured) or infinite (a diverged run): nothing to draw. */
        snprintf(what, sizeof what, "/%s has no finite value (all NaN or +-Inf: %s)", ypath,
                 hint);
        ns_series_free(s);
        ns_plot_warn_skip(log, figure, what);
        return 0;
    }
    return 1;
}

void ns_series_free(NsSeries *s)
{
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------------------ options */

int ns_plot_resolve_site(NsLog *logs, int n, const NsPlotOptions *opt, char *site, size_t len,
                         char *err)
{
    char path[600];
    char **sites = NULL;
    int first = -1, n_sites = 0;
    for (int i = 0; i < n && first < 0; i++) {
        n_sites = ns_log_sites(&logs[i], &sites);
        if (n_sites > 0)
            first = i;
        else
            ns_log_free_sites(sites, n_sites);
    }
    if (first < 0)
        return ns_fail(err, "no run has norm-site probes (/norms): %s", NS_HINT_BATCH_STATS);
    const char *want = opt->site ? opt->site : sites[0];
    ns_runlog_site_path(path, sizeof path, want, NS_RUNLOG_STEP);
    for (int i = 0; i < n; i++) {
        if (ns_log_has(&logs[i], path)) {
            snprintf(site, len, "%s", want);
            ns_log_free_sites(sites, n_sites);
            return 0;
        }
    }
    char list[300] = "";
    for (int k = 0; k < n_sites; k++) /* the sites there are, to say what to ask for */
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "",
                 sites[k]);
    ns_fail(err, "no run has norm site '%s' (sites of '%s': %s)", want, logs[first].path, list);
    ns_log_free_sites(sites, n_sites);
    return -1;
}

int ns_plot_site_check(const NsLog *log, const char *site, const char *figure)
{
    char path[600], what[700], list[300] = "";
    ns_runlog_site_path(path, sizeof path, site, NS_RUNLOG_STEP);
    if (ns_log_has(log, path))
        return 1;
    char **sites = NULL;
    int n_sites = ns_log_sites(log, &sites);
    for (int k = 0; k < n_sites; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "",
                 sites[k]);
    ns_log_free_sites(sites, n_sites);
    if (n_sites == 0)
        snprintf(what, sizeof what, "no norm-site probes (/norms; %s)", NS_HINT_BATCH_STATS);
    else
        snprintf(what, sizeof what, "no norm site '%s' (it has %s)", site, list);
    ns_plot_warn_skip(log, figure, what);
    return 0;
}

void ns_plot_site_label(const char *site, char *buf, size_t len)
{
    long layer;
    int k;
    if (sscanf(site, "layers/%ld/norm%d", &layer, &k) == 2)
        snprintf(buf, len, "L%ld norm%d", layer, k);
    else if (strcmp(site, "final_norm") == 0)
        snprintf(buf, len, "final");
    else
        snprintf(buf, len, "%s", site);
}

const char *ns_plot_stat(const NsLog *log, const NsPlotOptions *opt)
{
    return opt->stat ? opt->stat : ns_log_scheme_stat(log);
}
