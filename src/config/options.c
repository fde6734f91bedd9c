/* The machinery behind option tables (options.h): reading and writing a row's field, the
 * command-line parser and --help. Nothing here knows a particular flag; run_options.c holds the
 * run configuration's rows. */
#include "options.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_config.h"
#include "util.h"

/* ------------------------------------------------------------------ fields */

static void *field(const NsOption *o, void *base) { return (char *)base + o->offset; }

static const void *cfield(const NsOption *o, const void *base)
{
    return (const char *)base + o->offset;
}

/* Bytes of a row's field (0: the row has none). */
static size_t field_size(NsOptKind kind)
{
    switch (kind) {
    case NS_OPT_INT:
    case NS_OPT_SWITCH: return sizeof(int);
    case NS_OPT_LONG: return sizeof(long);
    case NS_OPT_U64: return sizeof(uint64_t);
    case NS_OPT_FLOAT: return sizeof(float);
    case NS_OPT_DOUBLE: return sizeof(double);
    case NS_OPT_PATH: return NS_PATH_LEN;
    case NS_OPT_STR: return NS_OPT_STR_LEN;
    case NS_OPT_TEXT: return sizeof(const char *);
    case NS_OPT_NORM: return sizeof(NsNormKind);
    case NS_OPT_POSITION: return sizeof(NsNormPosition);
    case NS_OPT_TOKENIZER: return sizeof(NsTokenizer);
    case NS_OPT_BATCHING: return sizeof(NsBatching);
    default: return 0;
    }
}

NsStoredType ns_option_stored_type(const NsOption *o)
{
    switch (o->kind) {
    case NS_OPT_INT:
    case NS_OPT_LONG:
    case NS_OPT_U64:
    case NS_OPT_SWITCH:
    case NS_OPT_CONST_INT: return NS_STORED_INT;
    case NS_OPT_FLOAT:
    case NS_OPT_DOUBLE: return NS_STORED_REAL;
    default: return NS_STORED_TEXT;
    }
}

int64_t ns_option_int(const NsOption *o, const void *base)
{
    const void *v = cfield(o, base);
    switch (o->kind) {
    case NS_OPT_LONG: return *(const long *)v;
    case NS_OPT_U64: return (int64_t) * (const uint64_t *)v;
    case NS_OPT_CONST_INT: return strtoll(o->stored, NULL, 10);
    default: return *(const int *)v;
    }
}

double ns_option_real(const NsOption *o, const void *base)
{
    const void *v = cfield(o, base);
    return o->kind == NS_OPT_FLOAT ? (double)*(const float *)v : *(const double *)v;
}

void ns_option_set_int(const NsOption *o, void *base, int64_t v)
{
    void *f = field(o, base);
    switch (o->kind) {
    case NS_OPT_LONG: *(long *)f = (long)v; break;
    case NS_OPT_U64: *(uint64_t *)f = (uint64_t)v; break;
    case NS_OPT_INT:
    case NS_OPT_SWITCH: *(int *)f = (int)v; break;
    default: break; /* constants have no field */
    }
}

void ns_option_set_real(const NsOption *o, void *base, double v)
{
    if (o->kind == NS_OPT_FLOAT)
        *(float *)field(o, base) = (float)v;
    else
        *(double *)field(o, base) = v;
}

/* The name of a named kind's value. */
static const char *value_name(const NsOption *o, const void *v)
{
    switch (o->kind) {
    case NS_OPT_NORM: return ns_norm_name(*(const NsNormKind *)v);
    case NS_OPT_POSITION: return ns_position_name(*(const NsNormPosition *)v);
    case NS_OPT_TOKENIZER: return ns_tokenizer_name(*(const NsTokenizer *)v);
    default: return ns_batching_name(*(const NsBatching *)v);
    }
}

void ns_option_text(const NsOption *o, const void *base, char *buf, size_t n)
{
    const char *s = NULL;
    switch (o->kind) {
    case NS_OPT_U64:
        snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)cfield(o, base));
        return;
    case NS_OPT_INT:
    case NS_OPT_LONG:
    case NS_OPT_SWITCH: snprintf(buf, n, "%lld", (long long)ns_option_int(o, base)); return;
    case NS_OPT_FLOAT:
    case NS_OPT_DOUBLE: snprintf(buf, n, "%g", ns_option_real(o, base)); return;
    case NS_OPT_CONST_INT:
    case NS_OPT_CONST_STR: s = o->stored; break;
    case NS_OPT_PATH:
    case NS_OPT_STR:
        s = cfield(o, base);
        if (!s[0] && o->stored)
            s = o->stored;
        break;
    case NS_OPT_TEXT: s = *(const char *const *)cfield(o, base); break;
    case NS_OPT_REFUSE: break;
    default: s = value_name(o, cfield(o, base)); break;
    }
    snprintf(buf, n, "%s", s ? s : "");
}

/* Sets a named kind's field from a name; -1 if the name is unknown. */
static int set_name(const NsOption *o, void *f, const char *name)
{
    switch (o->kind) {
    case NS_OPT_NORM: return ns_norm_from_name(name, (NsNormKind *)f);
    case NS_OPT_POSITION: return ns_position_from_name(name, (NsNormPosition *)f);
    case NS_OPT_TOKENIZER: return ns_tokenizer_from_name(name, (NsTokenizer *)f);
    default: return ns_batching_from_name(name, (NsBatching *)f);
    }
}

int ns_option_set_text(const NsOption *o, void *base, const char *text)
{
    void *f = field(o, base);
    switch (o->kind) {
    case NS_OPT_PATH:
    case NS_OPT_STR: {
        int empty = o->stored && strcmp(text, o->stored) == 0;
        snprintf(f, field_size(o->kind), "%s", empty ? "" : text); /* a longer text is cut */
        return 0;
    }
    case NS_OPT_NORM:
    case NS_OPT_POSITION:
    case NS_OPT_TOKENIZER:
    case NS_OPT_BATCHING: return set_name(o, f, text);
    default: return 0; /* constants: nothing to set */
    }
}

const NsOption *ns_options_first_difference(const NsOption *table, size_t n, unsigned traits,
                                            const void *a, const void *b)
{
    for (size_t i = 0; i < n; i++) {
        const NsOption *o = &table[i];
        if ((o->traits & traits) != traits || field_size(o->kind) == 0)
            continue;
        int differ;
        if (ns_option_stored_type(o) == NS_STORED_INT)
            differ = ns_option_int(o, a) != ns_option_int(o, b);
        else if (ns_option_stored_type(o) == NS_STORED_REAL)
            differ = ns_option_real(o, a) != ns_option_real(o, b);
        else if (o->kind == NS_OPT_PATH || o->kind == NS_OPT_STR)
            differ = strcmp(cfield(o, a), cfield(o, b)) != 0;
        else
            differ = memcmp(cfield(o, a), cfield(o, b), field_size(o->kind)) != 0;
        if (differ)
            return o;
    }
    return NULL;
}

/* ------------------------------------------------------------------ values from the command line */

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_number(const NsOption *o, void *f, const char *value, char *err)
{
    long v;
    switch (o->kind) {
    case NS_OPT_INT:
        if (parse_long(value, &v) < 0 || v < INT_MIN || v > INT_MAX)
            return ns_fail(err, "%s expects an integer, got '%s'", o->flag, value);
        *(int *)f = (int)v;
        return 0;
    case NS_OPT_LONG:
        if (parse_long(value, &v) < 0)
            return ns_fail(err, "%s expects an integer, got '%s'", o->flag, value);
        *(long *)f = v;
        return 0;
    case NS_OPT_U64:
        if (parse_long(value, &v) < 0 || v < 0)
            return ns_fail(err, "%s expects a non-negative integer, got '%s'", o->flag, value);
        *(uint64_t *)f = (uint64_t)v;
        return 0;
    default: { /* NS_OPT_FLOAT, NS_OPT_DOUBLE */
        char *end;
        errno = 0;
        double d = strtod(value, &end);
        if (errno || end == value || *end)
            return ns_fail(err, "%s expects a number, got '%s'", o->flag, value);
        /* no setting means anything at NaN or infinity (--lr inf trained to NaN silently) */
        if (!isfinite(d) || (o->kind == NS_OPT_FLOAT && !isfinite((float)d)))
            return ns_fail(err, "%s expects a finite number, got '%s'", o->flag, value);
        if (o->kind == NS_OPT_FLOAT)
            *(float *)f = (float)d;
        else
            *(double *)f = d;
        return 0;
    }
    }
}

/* A row's help text. --norm's is the list of schemes, which the schemes themselves supply
 * (norm_schemes.h), so a new scheme appears in --help and in messages without an edit here. */
static const char *row_help(const NsOption *o, char *buf, size_t n)
{
    if (o->help)
        return o->help;
    if (o->kind == NS_OPT_NORM)
        ns_norm_names_join(buf, n, " | ");
    else
        buf[0] = '\0';
    return buf;
}

/* Sets a row's field from a flag's value (a switch has none). */
static int set_from_flag(const NsOption *o, void *base, const char *value, char *err)
{
    void *f = field(o, base);
    switch (o->kind) {
    case NS_OPT_SWITCH: *(int *)f = 1; return 0;
    case NS_OPT_TEXT: *(const char **)f = value; return 0;
    case NS_OPT_PATH:
    case NS_OPT_STR: {
        size_t cap = field_size(o->kind);
        if (strlen(value) >= cap)
            return ns_fail(err, "%s value is too long (%zu characters max)", o->flag, cap - 1);
        snprintf(f, cap, "%s", value);
        return 0;
    }
    case NS_OPT_NORM:
    case NS_OPT_POSITION:
    case NS_OPT_TOKENIZER:
    case NS_OPT_BATCHING:
        if (set_name(o, f, value) < 0) {
            char names[256];
            return ns_fail(err, "%s: unknown value '%s' (choose %s)", o->flag, value,
                           row_help(o, names, sizeof names));
        }
        return 0;
    default: return parse_number(o, f, value, err);
    }
}

/* ------------------------------------------------------------------ the parser */

static int accepts(const NsOptSet *set, const NsOption *o)
{
    return o->flag && (set->commands == 0 || (o->commands & set->commands));
}

/* The row whose flag is arg[0..len), in the first set that accepts it. */
static const NsOption *find_flag(NsOptSet *sets, int n_sets, const char *arg, size_t len,
                                 NsOptSet **set)
{
    for (int s = 0; s < n_sets; s++)
        for (size_t k = 0; k < sets[s].n; k++) {
            const NsOption *o = &sets[s].table[k];
            if (accepts(&sets[s], o) && strlen(o->flag) == len && strncmp(o->flag, arg, len) == 0) {
                *set = &sets[s];
                return o;
            }
        }
    return NULL;
}

static void note_given(NsParse *p, const NsOption *o)
{
    for (int i = 0; i < p->n_given; i++)
        if (p->given[i] == o)
            return;
    if (p->n_given < NS_PARSE_MAX_GIVEN)
        p->given[p->n_given++] = o;
}

static int pass_on(NsParse *p, char **words, int n, char *err)
{
    if (!p->pass)
        return 0;
    if (p->n_pass + n > p->pass_cap)
        return ns_fail(err, "too many flags");
    for (int i = 0; i < n; i++)
        p->pass[p->n_pass++] = words[i];
    return 0;
}

static int positional(const NsCommandSpec *spec, const char *arg, int count, char *err)
{
    if (spec->max_positional < 0 || count < spec->max_positional)
        return 0;
    if (spec->max_positional == 0)
        return ns_fail(err, "unexpected argument '%s' for 'normscope %s'; flags start with -- "
                            "(see normscope %s --help)", arg, spec->name, spec->name);
    return ns_fail(err, "unexpected argument '%s' for 'normscope %s' (usage: normscope %s %s)",
                   arg, spec->name, spec->name, spec->usage);
}

/* One flag at argv[*i] (with its value, if any). */
static int parse_flag(const NsCommandSpec *spec, NsOptSet *sets, int n_sets, int argc, char **argv,
                      int *i, NsParse *p, char *err)
{
    const char *arg = argv[*i], *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    NsOptSet *set = NULL;
    const NsOption *o = find_flag(sets, n_sets, arg, len, &set);
    if (!o)
        return ns_fail(err, "unknown flag '%.*s' for 'normscope %s' (see normscope %s --help)",
                       (int)len, arg, spec->name, spec->name);
    if (o->kind == NS_OPT_REFUSE)
        return ns_fail(err, "%s", o->help);
    if (o->kind == NS_OPT_SWITCH && eq)
        return ns_fail(err, "%s takes no value (see normscope %s --help)", o->flag, spec->name);
    int words = o->kind == NS_OPT_SWITCH || eq ? 1 : 2;
    if (words == 2 && *i + 1 >= argc)
        return ns_fail(err, "%s needs a value (see normscope %s --help)", o->flag, spec->name);
    const char *value = eq ? eq + 1 : argv[*i + 1];
    if (set_from_flag(o, set->target, value, err) < 0)
        return -1;
    note_given(p, o);
    if ((set->flags & NS_SET_PASS_ON) && pass_on(p, argv + *i, words, err) < 0)
        return -1;
    *i += words - 1;
    return 0;
}

static int is_help(const char *arg) { return !strcmp(arg, "--help") || !strcmp(arg, "-h"); }

int ns_options_parse(const NsCommandSpec *spec, NsOptSet *sets, int n_sets, int argc, char **argv,
                     NsParse *p, char *err)
{
    p->n_positional = p->n_given = p->n_pass = 0;
    for (int i = 0; i < argc; i++)
        if (is_help(argv[i])) {
            ns_options_print_help(spec, sets, n_sets);
            return 1;
        }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        int rc;
        if (arg[0] == '-' && arg[1] != '\0') {
            rc = parse_flag(spec, sets, n_sets, argc, argv, &i, p, err);
        } else {
            rc = positional(spec, arg, p->n_positional, err);
            argv[p->n_positional++] = argv[i]; /* i >= n_positional: nothing unread is lost */
        }
        if (rc < 0)
            return -1;
    }
    if (p->n_positional < spec->min_positional)
        return ns_fail(err, "%s: %s (see normscope %s --help)", spec->name, spec->missing,
                       spec->name);
    return 0;
}

int ns_parse_given(const NsParse *p, const char *flag)
{
    for (int i = 0; i < p->n_given; i++)
        if (strcmp(p->given[i]->flag, flag) == 0)
            return 1;
    return 0;
}

void ns_parse_copy_given(const NsParse *p, const NsOption *table, size_t n, const void *from,
                         void *to)
{
    for (int i = 0; i < p->n_given; i++) {
        const NsOption *o = p->given[i];
        if (o >= table && o < table + n)
            memcpy(field(o, to), cfield(o, from), field_size(o->kind));
    }
}

/* ------------------------------------------------------------------ --help */

static const char *const SECTION_TITLES[] = {
    [NS_SEC_MODEL] = "model",       [NS_SEC_OPTIM] = "optimizer", [NS_SEC_DATA] = "data",
    [NS_SEC_SCHEDULE] = "schedule", [NS_SEC_OUTPUT] = "output",   [NS_SEC_PROBES] = "probes",
};

/* The default shown in brackets, or "" for none (switches, unset text). */
static void help_default(const NsOption *o, const void *target, char *buf, size_t n)
{
    buf[0] = '\0';
    if (o->shown)
        snprintf(buf, n, "%s", o->shown);
    else if (o->kind == NS_OPT_PATH || o->kind == NS_OPT_STR)
        snprintf(buf, n, "%s", *(const char *)cfield(o, target) ? (const char *)cfield(o, target)
                                                                  : "-");
    else if (o->kind != NS_OPT_SWITCH)
        ns_option_text(o, target, buf, n);
}

/* "  --flag METAVAR   help [default]", every '\n' in help or default continuing the line
 * under the help column. */
static void print_row(const NsOption *o, const void *target)
{
    char name[64], def[NS_PATH_LEN], help[256], line[NS_PATH_LEN + 512];
    snprintf(name, sizeof name, "%s%s%s", o->flag, o->metavar ? " " : "",
             o->metavar ? o->metavar : "");
    help_default(o, target, def, sizeof def);
    snprintf(line, sizeof line, def[0] ? "%s [%s]" : "%s", row_help(o, help, sizeof help), def);
    printf("  %-24s ", name);
    for (const char *c = line; *c; c++) {
        putchar(*c);
        if (*c == '\n')
            printf("%27s", "");
    }
    putchar('\n');
}

/* Rows of the visible sets in `section` (NS_SEC_NONE: all), under `title`. */
static void print_rows(const NsOptSet *sets, int n_sets, int section, const char *title)
{
    int header = 0;
    for (int s = 0; s < n_sets; s++) {
        if (sets[s].flags & NS_SET_HIDDEN)
            continue;
        for (size_t k = 0; k < sets[s].n; k++) {
            const NsOption *o = &sets[s].table[k];
            if (!accepts(&sets[s], o) || o->kind == NS_OPT_REFUSE ||
                (section != NS_SEC_NONE && (int)o->section != section))
                continue;
            if (!header++)
                printf("\n%s:\n", title);
            print_row(o, sets[s].target);
        }
    }
}

void ns_options_print_help(const NsCommandSpec *spec, const NsOptSet *sets, int n_sets)
{
    printf("usage: normscope %s %s\n\n%s\n", spec->name, spec->usage, spec->summary);
    if (spec->before_flags)
        spec->before_flags();
    if (spec->heading)
        print_rows(sets, n_sets, NS_SEC_NONE, spec->heading);
    else
        for (int sec = NS_SEC_MODEL; sec <= NS_SEC_PROBES; sec++)
            print_rows(sets, n_sets, sec, SECTION_TITLES[sec]);
    if (spec->after_flags)
        spec->after_flags();
    printf("\nFlags take their value as '--flag VALUE' or '--flag=VALUE'.\n");
}
