/* normscope help [COMMAND | --man | --bash-completion]: a command's --help, the manual page
 * normscope(1) in roff, or a bash completion script. The page and the script are generated from
 * what each command's --help prints, and --help is generated from the option tables
 * (options.c), so neither can drift from the flags the program accepts. meson builds both at
 * build time (custom targets) and installs them (man1/normscope.1,
 * bash-completion/completions/normscope). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "util.h"

#define HELP_COLUMN 27 /* where options.c's print_row starts a flag's help text */

/* What `normscope NAME --help` prints (malloc'd), or NULL. The help goes to stdout, which is
 * pointed at a temporary file for the call. */
static char *capture_help(const NsCommand *c)
{
    FILE *tmp = tmpfile();
    if (!tmp)
        return NULL;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    if (saved < 0 || dup2(fileno(tmp), STDOUT_FILENO) < 0) {
        if (saved >= 0)
            close(saved);
        fclose(tmp);
        return NULL;
    }
    char help[] = "--help", *argv[] = {help, NULL};
    c->run(1, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    long n = ftell(tmp);
    char *text = n >= 0 ? ns_xmalloc((size_t)n + 1) : NULL;
    rewind(tmp);
    if (text)
        text[fread(text, 1, (size_t)n, tmp)] = '\0';
    fclose(tmp);
    return text;
}

/* ------------------------------------------------------------------ roff */

/* Text for roff: backslashes and hyphens escaped (so flags stay copyable as ASCII), and a
 * leading '.' or '\'' kept from being read as a request. */
static void roff(const char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i]; i++) {
        if (i == 0 && (s[i] == '.' || s[i] == '\''))
            fputs("\\&", stdout);
        if (s[i] == '\\')
            fputs("\\e", stdout);
        else if (s[i] == '-')
            fputs("\\-", stdout);
        else
            putchar(s[i]);
    }
}

static void roff_line(const char *s, size_t n)
{
    roff(s, n);
    putchar('\n');
}

/* Whether a word is a flag's value name ("DIR", "RUN.h5"): no lower-case letter before a dot. */
static int is_metavar(const char *w, size_t n)
{
    for (size_t i = 0; i < n && w[i] != '.'; i++)
        if (w[i] >= 'a' && w[i] <= 'z')
            return 0;
    return n > 0;
}

/* "  --flag META   help [default]": the flag bold, its value italic, the help below. A name
 * shorter than the column is padded to it; a longer one is followed by one space. */
static void man_flag_row(const char *line, size_t len)
{
    const char *name = line + 2, *end = line + len;
    size_t flag_len = strcspn(name, " "), name_len = flag_len;
    if (name + flag_len < end) {
        const char *w = name + flag_len + 1;
        size_t wl = strcspn(w, " ");
        if (is_metavar(w, wl))
            name_len = flag_len + 1 + wl;
    }
    const char *text = name + name_len;
    while (text < end && *text == ' ')
        text++;
    fputs(".TP\n\\fB", stdout);
    roff(name, flag_len);
    fputs("\\fR", stdout);
    if (name_len > flag_len) {
        fputs(" \\fI", stdout);
        roff(name + flag_len + 1, name_len - flag_len - 1);
        fputs("\\fR", stdout);
    }
    putchar('\n');
    roff_line(text, (size_t)(end - text));
}

static int is_heading(const char *line, size_t len)
{
    return len > 1 && line[0] != ' ' && line[len - 1] == ':' && !memchr(line, ' ', len);
}

/* One command's --help as a subsection: usage, summary, flags by heading. */
static void man_command(const NsCommand *c)
{
    char *help = capture_help(c);
    printf(".SS %s\n", c->name);
    if (!help)
        return;
    int blank = 0;
    for (char *line = help; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len == 0) {
            blank = 1;
        } else if (strncmp(line, "Flags take their value", 22) == 0) {
            /* said once, in DESCRIPTION */
        } else {
            if (blank || strncmp(line, "usage: ", 7) == 0)
                puts(".PP");
            blank = 0;
            if (strncmp(line, "usage: ", 7) == 0) {
                fputs("\\fBusage:\\fR ", stdout);
                roff_line(line + 7, len - 7);
            } else if (strncmp(line, "  --", 4) == 0) {
                man_flag_row(line, len);
            } else if (is_heading(line, len)) {
                fputs("\\fI", stdout);
                roff(line, len);
                fputs("\\fR\n", stdout);
            } else {
                size_t skip = 0; /* a flag's continuation line joins its paragraph */
                while (skip < len && skip < HELP_COLUMN && line[skip] == ' ')
                    skip++;
                if (skip != HELP_COLUMN && skip > 0)
                    puts(".br");
                roff_line(line + (skip == HELP_COLUMN ? skip : 0),
                          len - (skip == HELP_COLUMN ? skip : 0));
            }
        }
        line += len + (end ? 1 : 0);
    }
    free(help);
}

static void print_man(void)
{
    printf(".TH NORMSCOPE 1 \"\" \"normscope %s\" \"User Commands\"\n", NORMSCOPE_VERSION);
    puts(".SH NAME\nnormscope \\- look inside the normalization layers of a Transformer while "
         "it trains");
    puts(".SH SYNOPSIS\n\\fBnormscope\\fR \\fIcommand\\fR [\\fIflags\\fR]\n.br\n"
         "\\fBnormscope\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR\n.br\n"
         "\\fBnormscope help\\fR [\\fIcommand\\fR | \\fB\\-\\-man\\fR | "
         "\\fB\\-\\-bash\\-completion\\fR]");
    puts(".SH DESCRIPTION\nnormscope trains a Transformer language model and records what "
         "happens inside its normalization layers while it trains (batch against running "
         "statistics, the gradients through them, the smoothness of the loss) into an HDF5 run "
         "log, and draws and tabulates the logs. It rebuilds the study of \\fIPowerNorm: "
         "Rethinking Batch Normalization in Transformers\\fR (Shen et al., ICML 2020) with "
         "LayerNorm, BatchNorm, Power Normalization, PN\\-V, RMSNorm and no normalization side "
         "by side.\n.PP\nFlags take their value as \\fB\\-\\-flag\\fR \\fIVALUE\\fR or "
         "\\fB\\-\\-flag=\\fR\\fIVALUE\\fR; brackets give a flag's default. This page is "
         "generated from the program's option tables: it lists exactly what each command's "
         "\\fB\\-\\-help\\fR prints.");
    puts(".SH COMMANDS");
    const NsCommand *c;
    for (size_t i = 0; (c = ns_command_at(i)); i++) {
        fputs(".TP\n\\fB", stdout);
        roff(c->synopsis, strlen(c->synopsis));
        fputs("\\fR\n", stdout);
        for (const char *s = c->summary; *s; s++)
            putchar(*s == '\n' ? ' ' : *s);
        putchar('\n');
    }
    puts(".SH FLAGS");
    for (size_t i = 0; (c = ns_command_at(i)); i++)
        man_command(c);
    puts(".SH EXIT STATUS\n.TP\n0\nsuccess\n.TP\n1\nbad input data or files, a write failure"
         "\n.TP\n2\na bad command line\n.TP\n3\ntraining diverged (a loss that is not finite)"
         "\n.TP\n130\nstopped by SIGINT or SIGTERM after saving a checkpoint (continue with "
         "\\fB\\-\\-resume\\fR)");
    puts(".SH SEE ALSO\nIn the source tree: \\fIREADME.md\\fR (guide and flag reference), "
         "\\fIdocs/model.md\\fR (the model and its normalization schemes), "
         "\\fIdocs/runlog.md\\fR (every path of a run log), \\fIdocs/debug\\-state.md\\fR (the "
         "debug\\-state format).");
}

/* ------------------------------------------------------------------ bash completion */

/* Whether the space-separated list holds the word w[0..len). */
static int listed(const char *list, const char *w, size_t len)
{
    for (const char *p = list; (p = strstr(p, w)); p += len)
        if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0') &&
            strncmp(p, w, len) == 0)
            return 1;
    return 0;
}

/* The flags of one command's --help, space-separated and each once, into buf. */
static void command_flags(const NsCommand *c, char *buf, size_t n)
{
    buf[0] = '\0';
    char *help = capture_help(c);
    if (!help)
        return;
    for (char *p = help; (p = strstr(p, "\n  --"));) {
        p += 3;
        size_t len = strcspn(p, " \n"), used = strlen(buf);
        char save = p[len];
        p[len] = '\0'; /* strstr in listed() sees the flag alone */
        if (!listed(buf, p, len))
            snprintf(buf + used, n - used, "%s%s", used ? " " : "", p);
        p[len] = save;
    }
    free(help);
}

/* Values of the run table's named flags: the names of its help ("post | pre"). */
static void named_values(const NsOption *o, char *buf, size_t n)
{
    if (o->kind == NS_OPT_NORM) {
        ns_norm_names_join(buf, n, " ");
        return;
    }
    buf[0] = '\0';
    for (const char *s = o->help; s && *s;) {
        s += strspn(s, " |");
        size_t len = strspn(s, "abcdefghijklmnopqrstuvwxyz-"), used = strlen(buf);
        if (len)
            snprintf(buf + used, n - used, "%s%.*s", used ? " " : "", (int)len, s);
        s = strchr(s, '|');
    }
}

static void print_bash_completion(void)
{
    char buf[4096];
    const NsCommand *c;
    puts("# bash completion for normscope, generated by `normscope help --bash-completion` from "
         "its option tables\n_normscope()\n{\n    local cur=${COMP_WORDS[COMP_CWORD]} "
         "prev=${COMP_WORDS[COMP_CWORD-1]} flags=\n    if [ \"$COMP_CWORD\" -eq 1 ]; then");
    fputs("        COMPREPLY=($(compgen -W \"", stdout);
    for (size_t i = 0; (c = ns_command_at(i)); i++)
        printf("%s ", c->name);
    puts("help --help --version\" -- \"$cur\"))\n        return\n    fi\n    case \"$prev\" in");
    for (size_t i = 0; i < NS_N_RUN_OPTIONS; i++) {
        const NsOption *o = &NS_RUN_OPTIONS[i];
        if (!o->flag || (o->kind != NS_OPT_NORM && o->kind != NS_OPT_POSITION &&
                         o->kind != NS_OPT_TOKENIZER && o->kind != NS_OPT_BATCHING))
            continue;
        named_values(o, buf, sizeof buf);
        printf("        %s) COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return ;;\n", o->flag,
               buf);
    }
    puts("    esac\n    case \"${COMP_WORDS[1]}\" in");
    for (size_t i = 0; (c = ns_command_at(i)); i++) {
        command_flags(c, buf, sizeof buf);
        printf("        %s) flags=\"%s\" ;;\n", c->name, buf);
    }
    fputs("        help) flags=\"--man --bash-completion", stdout);
    for (size_t i = 0; (c = ns_command_at(i)); i++)
        printf(" %s", c->name);
    puts("\" ;;\n    esac\n    if [[ \"$cur\" == -* || \"${COMP_WORDS[1]}\" == help ]]; then\n"
         "        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n    else\n"
         "        COMPREPLY=($(compgen -f -- \"$cur\"))\n    fi\n}\n"
         "complete -o filenames -F _normscope normscope");
}

/* ------------------------------------------------------------------ the command */

int ns_cmd_help(int argc, char **argv)
{
    if (argc != 1)
        return ns_cmd_error(NS_EXIT_USAGE, "help takes one argument: a command, --man or "
                                           "--bash-completion (see normscope --help)");
    if (strcmp(argv[0], "--man") == 0) {
        print_man();
        return NS_EXIT_OK;
    }
    if (strcmp(argv[0], "--bash-completion") == 0) {
        print_bash_completion();
        return NS_EXIT_OK;
    }
    const NsCommand *c = ns_find_command(argv[0]);
    if (!c)
        return ns_cmd_error(NS_EXIT_USAGE, "help: unknown command '%s' (see normscope --help)",
                            argv[0]);
    char help[] = "--help", *args[] = {help, NULL};
    return c->run(1, args);
}
