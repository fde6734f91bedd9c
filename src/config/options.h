/* Option tables: one row per flag (or per stored setting) says everything normscope knows about
 * it — its spelling on the command line, its attribute name in run logs and checkpoints, its
 * kind, where its value lives, its help line, which commands accept it and whether it fixes the
 * model's shape. The parser, --help, the HDF5 attributes (src/io/model_io.c), the checkpoint
 * compatibility check and the notebook's configuration cell all read the same rows, so a flag
 * added to a table is parsed, documented, stored and shown without further code.
 *
 * The run configuration's table is NS_RUN_OPTIONS (run_config.h). Commands with flags of their
 * own (plot, compare, watch, export-notebook, study) keep small tables of the same type, aimed
 * at a struct of their own, and are parsed by the same parser. */
#ifndef NS_OPTIONS_H
#define NS_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define NS_OPT_STR_LEN 256 /* size of an NS_OPT_STR field */

typedef enum {
    NS_OPT_INT,       /* int */
    NS_OPT_LONG,      /* long */
    NS_OPT_U64,       /* uint64_t, non-negative on the command line */
    NS_OPT_FLOAT,     /* float */
    NS_OPT_DOUBLE,    /* double */
    NS_OPT_PATH,      /* char[NS_PATH_LEN] */
    NS_OPT_STR,       /* char[NS_OPT_STR_LEN] */
    NS_OPT_TEXT,      /* const char *, pointing into argv */
    NS_OPT_SWITCH,    /* int set to 1; the flag takes no value */
    NS_OPT_NORM,      /* NsNormKind, by name */
    NS_OPT_POSITION,  /* NsNormPosition, by name */
    NS_OPT_TOKENIZER, /* NsTokenizer, by name */
    NS_OPT_BATCHING,  /* NsBatching, by name */
    NS_OPT_CONST_INT, /* no field: an attribute with the fixed value `stored` (an integer) */
    NS_OPT_CONST_STR, /* no field: an attribute with the fixed value `stored` (a string) */
    NS_OPT_REFUSE,    /* a flag the command refuses; `help` is the message */
} NsOptKind;

/* Headings of --help. Model and optimizer rows are also the debug-state attributes
 * (ns_write_config_attrs); the others belong to the run configuration only. */
typedef enum {
    NS_SEC_NONE = 0,
    NS_SEC_MODEL,
    NS_SEC_OPTIM,
    NS_SEC_DATA,
    NS_SEC_SCHEDULE,
    NS_SEC_OUTPUT,
    NS_SEC_PROBES,
} NsOptSection;

/* Traits of a row. */
enum {
    NS_OPT_SHAPE = 1 << 0,    /* fixes the model: a checkpoint must match it to be loaded */
    NS_OPT_REQUIRED = 1 << 1, /* a file without this attribute is not a valid run description */
};

typedef struct {
    const char *flag;     /* "--d-model"; NULL: stored in files, not set on the command line */
    const char *attr;     /* "d_model": root attribute in run logs, checkpoints, debug states;
                             NULL: not stored */
    NsOptKind kind;
    size_t offset;        /* of the field in the table's target struct */
    NsOptSection section;
    unsigned commands;    /* which commands accept the flag (NS_CMD_* of run_config.h); 0 in
                             command-private tables */
    unsigned traits;      /* NS_OPT_SHAPE | NS_OPT_REQUIRED */
    const char *help;     /* one line ('\n' continues it); for named kinds the names */
    const char *metavar;  /* "DIR" of "--out DIR" in --help; NULL: the flag alone */
    const char *stored;   /* NS_OPT_PATH: the attribute text of an empty path; NS_OPT_CONST_*:
                             the value */
    const char *shown;    /* --help's default when the value itself says little ("first site") */
} NsOption;

/* Value of a row's field as stored in files: integers as int64, reals as double, the rest as
 * text. */
typedef enum { NS_STORED_INT, NS_STORED_REAL, NS_STORED_TEXT } NsStoredType;

NsStoredType ns_option_stored_type(const NsOption *o);
int64_t ns_option_int(const NsOption *o, const void *base);
double ns_option_real(const NsOption *o, const void *base);
/* The value as text: names for named kinds, `stored` for an empty path or a constant, %g for
 * reals. */
void ns_option_text(const NsOption *o, const void *base, char *buf, size_t n);
void ns_option_set_int(const NsOption *o, void *base, int64_t v);
void ns_option_set_real(const NsOption *o, void *base, double v);
/* Sets the field from its stored text (ns_option_text's inverse). Returns -1 when the text
 * names nothing the kind knows (the field is then unchanged). */
int ns_option_set_text(const NsOption *o, void *base, const char *text);

/* The first row with all of `traits` whose values differ between a and b (same target type),
 * or NULL. */
const NsOption *ns_options_first_difference(const NsOption *table, size_t n, unsigned traits,
                                            const void *a, const void *b);

/* ------------------------------------------------------------------ command lines */

/* One table aimed at one target. `commands` selects the rows of a shared table that the command
 * accepts (0: every row). */
typedef struct {
    const NsOption *table;
    size_t n;
    void *target;
    unsigned commands;
    unsigned flags; /* NS_SET_* */
} NsOptSet;

enum {
    NS_SET_HIDDEN = 1 << 0,  /* not listed by --help (study's train flags) */
    NS_SET_PASS_ON = 1 << 1, /* the words of these flags are collected in NsParse.pass */
};

/* A command's command line: what --help and the parser's messages say about it, and its own
 * flags, if it has a table of them. */
typedef struct {
    const char *name;        /* "plot" */
    const NsOption *options; /* the command's own rows (plot, compare, ...), or NULL */
    size_t n_options;
    const char *usage;       /* after "usage: normscope plot ": "KIND RUN.h5 [RUN.h5 ...] [flags]" */
    const char *summary;     /* the paragraph below the usage line */
    void (*before_flags)(void); /* more text before the flags (plot's kinds), or NULL */
    const char *heading;     /* one heading for every flag ("flags"), or NULL: by section */
    void (*after_flags)(void);  /* more text after the flags (study's defaults), or NULL */
    int max_positional;      /* arguments that are not flags: -1 any number */
    int min_positional;
    const char *missing;     /* the error when fewer are given: "no run logs given" */
} NsCommandSpec;

#define NS_PARSE_MAX_GIVEN 128

typedef struct {
    int n_positional; /* the arguments that are not flags, moved to argv[0..n_positional) */
    const NsOption *given[NS_PARSE_MAX_GIVEN]; /* rows set on the command line */
    int n_given;
    char **pass;      /* caller's array: words of NS_SET_PASS_ON flags, in order */
    int n_pass, pass_cap;
} NsParse;

/* Parses argv[0..argc) (the words after the command) into the sets' targets, which hold the
 * command's defaults. `--flag VALUE` and `--flag=VALUE`; -h or --help anywhere prints the help
 * (defaults from the targets as they are before parsing) and returns 1. Returns 0, 1, or -1
 * with one line in err. */
int ns_options_parse(const NsCommandSpec *spec, NsOptSet *sets, int n_sets, int argc, char **argv,
                     NsParse *p, char *err);

/* Whether a flag was given on the command line that p parsed. */
int ns_parse_given(const NsParse *p, const char *flag);
/* Copies the fields of the given rows of `table` from `from` into `to` (flags given over a base
 * read from a file). */
void ns_parse_copy_given(const NsParse *p, const NsOption *table, size_t n, const void *from,
                         void *to);

void ns_options_print_help(const NsCommandSpec *spec, const NsOptSet *sets, int n_sets);

#endif
