#include "options.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef enum { OPT_INT, OPT_LONG, OPT_U64, OPT_FLOAT, OPT_PATH, OPT_STR, OPT_NORM, OPT_POSITION,
               OPT_TOKENIZER, OPT_BATCHING } OptKind;

typedef struct {
    const char *flag;
    OptKind kind;
    size_t offset;
    unsigned group;
    const char *help;
} Option;

#define F(field) offsetof(NsRunConfig, field)

static const Option OPTIONS[] = {
    {"--norm", OPT_NORM, F(model.norm), NS_FLAGS_MODEL,
     "layer | batch | power-v | power | power-official | rms | none"},
    {"--norm-position", OPT_POSITION, F(model.norm_position), NS_FLAGS_MODEL, "post | pre"},
    {"--layers", OPT_INT, F(model.n_layers), NS_FLAGS_MODEL, "number of Transformer layers L"},
    {"--d-model", OPT_INT, F(model.d_model), NS_FLAGS_MODEL, "model width d"},
    {"--heads", OPT_INT, F(model.n_heads), NS_FLAGS_MODEL, "attention heads H (divides d)"},
    {"--d-ff", OPT_INT, F(model.d_ff), NS_FLAGS_MODEL, "feed-forward width F"},
    {"--seq-len", OPT_INT, F(model.seq_len), NS_FLAGS_MODEL, "positions per row T"},
    {"--batch-size", OPT_INT, F(model.batch_size), NS_FLAGS_MODEL, "rows per batch B"},
    {"--vocab-size", OPT_INT, F(model.vocab_size), NS_FLAGS_MODEL,
     "vocabulary cap (rarer tokens become <unk>)"},
    {"--dropout", OPT_FLOAT, F(model.dropout), NS_FLAGS_MODEL, "dropout probability"},
    {"--pn-alpha", OPT_FLOAT, F(model.pn_alpha), NS_FLAGS_MODEL,
     "PN running-average factor alpha in (0,1)"},
    {"--pn-warmup", OPT_INT, F(model.pn_warmup), NS_FLAGS_MODEL,
     "PN warm-up iterations using batch statistics"},
    {"--pn-groups", OPT_INT, F(model.pn_groups), NS_FLAGS_MODEL,
     "PN group scaling groups (0 = off; divides d)"},
    {"--bn-momentum", OPT_FLOAT, F(model.bn_momentum), NS_FLAGS_MODEL,
     "batch norm running-statistics momentum"},
    {"--lr", OPT_FLOAT, F(optim.lr), NS_FLAGS_OPTIM, "peak learning rate"},
    {"--warmup", OPT_INT, F(optim.warmup), NS_FLAGS_OPTIM,
     "learning-rate warm-up steps (then inverse square root)"},
    {"--weight-decay", OPT_FLOAT, F(optim.weight_decay), NS_FLAGS_OPTIM,
     "decoupled AdamW weight decay"},
    {"--clip", OPT_FLOAT, F(optim.clip), NS_FLAGS_OPTIM, "global gradient-norm clip (0 = off)"},
    {"--corpus", OPT_PATH, F(corpus_path), NS_FLAGS_DATA | NS_FLAGS_EVAL,
     "training text, one sentence per line (default: embedded synthetic corpus)"},
    {"--valid", OPT_PATH, F(valid_path), NS_FLAGS_DATA,
     "validation text (default: last 5% of --corpus lines)"},
    {"--tokenizer", OPT_TOKENIZER, F(tokenizer), NS_FLAGS_DATA, "word | char"},
    {"--batching", OPT_BATCHING, F(batching), NS_FLAGS_DATA | NS_FLAGS_EVAL,
     "sentences (one padded line per row) | stream (contiguous chunks)"},
    {"--synth-bytes", OPT_LONG, F(synth_bytes), NS_FLAGS_DATA,
     "size of the embedded corpus in bytes"},
    {"--steps", OPT_LONG, F(steps), NS_FLAGS_SCHEDULE, "training steps"},
    {"--seed", OPT_U64, F(seed), NS_FLAGS_SCHEDULE, "seed for initialisation, data order, dropout"},
    {"--threads", OPT_INT, F(threads), NS_FLAGS_SCHEDULE | NS_FLAGS_EVAL,
     "BLAS threads (default: number of cores)"},
    {"--eval-every", OPT_INT, F(eval_every), NS_FLAGS_SCHEDULE,
     "steps between validation passes (0 = end only)"},
    {"--eval-batches", OPT_INT, F(eval_batches), NS_FLAGS_SCHEDULE | NS_FLAGS_EVAL,
     "cap on validation batches (0 = whole set)"},
    {"--log-every", OPT_INT, F(log_every), NS_FLAGS_SCHEDULE,
     "steps between log lines when not on a terminal"},
    {"--out", OPT_PATH, F(out_path), NS_FLAGS_OUTPUT, "output HDF5 file"},
    {"--checkpoint", OPT_PATH, F(checkpoint_path), NS_FLAGS_OUTPUT | NS_FLAGS_EVAL,
     "checkpoint file (train default: OUT with .ckpt.h5)"},
    {"--checkpoint-every", OPT_INT, F(checkpoint_every), NS_FLAGS_OUTPUT,
     "steps between checkpoints (0 = at the end and on SIGINT/SIGTERM)"},
    {"--resume", OPT_PATH, F(resume_path), NS_FLAGS_OUTPUT,
     "continue from this checkpoint, appending to --out"},
    {"--flush-every", OPT_INT, F(flush_every), NS_FLAGS_OUTPUT,
     "steps between flushes of the HDF5 log"},
    {"--probes", OPT_STR, F(probes), NS_FLAGS_PROBES,
     "comma list of probes, 'all' or 'none'"},
    {"--probe-vectors-every", OPT_INT, F(probe_vectors_every), NS_FLAGS_PROBES,
     "record full statistic vectors every N steps (0 = never)"},
    {"--lipschitz-every", OPT_INT, F(lipschitz_every), NS_FLAGS_PROBES,
     "loss-smoothness probes every N steps (0 = off)"},
    {"--hessian-iters", OPT_INT, F(hessian_iters), NS_FLAGS_PROBES,
     "power iterations for the Hessian's top eigenvalue"},
};

#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

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

static int parse_enum(const Option *o, const char *value, void *target)
{
    switch (o->kind) {
    case OPT_NORM: return ns_norm_from_name(value, (NsNormKind *)target);
    case OPT_POSITION: return ns_position_from_name(value, (NsNormPosition *)target);
    case OPT_TOKENIZER:
        if (strcmp(value, "word") && strcmp(value, "char"))
            return -1;
        *(NsTokenizer *)target = value[0] == 'c' ? NS_TOK_CHAR : NS_TOK_WORD;
        return 0;
    default: /* OPT_BATCHING */
        if (strcmp(value, "stream") && strcmp(value, "sentences"))
            return -1;
        *(NsBatching *)target = value[1] == 't' ? NS_BATCH_STREAM : NS_BATCH_SENTENCES;
        return 0;
    }
}

static int apply(const Option *o, const char *value, NsRunConfig *cfg, char *err)
{
    void *target = (char *)cfg + o->offset;
    long v;
    char *end;
    switch (o->kind) {
    case OPT_INT:
        if (parse_long(value, &v) < 0 || v < INT_MIN || v > INT_MAX)
            return ns_fail(err, "%s expects an integer, got '%s'", o->flag, value);
        *(int *)target = (int)v;
        return 0;
    case OPT_LONG:
        if (parse_long(value, &v) < 0)
            return ns_fail(err, "%s expects an integer, got '%s'", o->flag, value);
        *(long *)target = v;
        return 0;
    case OPT_U64:
        if (parse_long(value, &v) < 0 || v < 0)
            return ns_fail(err, "%s expects a non-negative integer, got '%s'", o->flag, value);
        *(uint64_t *)target = (uint64_t)v;
        return 0;
    case OPT_FLOAT: {
        errno = 0;
        double d = strtod(value, &end);
        if (errno || end == value || *end)
            return ns_fail(err, "%s expects a number, got '%s'", o->flag, value);
        *(float *)target = (float)d;
        return 0;
    }
    case OPT_PATH:
    case OPT_STR: {
        size_t cap = o->kind == OPT_PATH ? NS_PATH_LEN : sizeof cfg->probes;
        if (strlen(value) >= cap)
            return ns_fail(err, "%s value is too long (%zu characters max)", o->flag, cap - 1);
        snprintf((char *)target, cap, "%s", value);
        return 0;
    }
    default:
        if (parse_enum(o, value, target) < 0)
            return ns_fail(err, "%s: unknown value '%s' (choose %s)", o->flag, value, o->help);
        return 0;
    }
}

const char *ns_cli_find(int argc, char **argv, const char *flag)
{
    size_t n = strlen(flag);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], flag) == 0)
            return i + 1 < argc ? argv[i + 1] : NULL;
        if (strncmp(argv[i], flag, n) == 0 && argv[i][n] == '=')
            return argv[i] + n + 1;
    }
    return NULL;
}

int ns_cli_parse(int argc, char **argv, unsigned groups, const char *command, NsRunConfig *cfg,
                 char *err)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (strncmp(arg, "--", 2) != 0)
            return ns_fail(err, "unexpected argument '%s' for 'normscope %s'; flags start with "
                                "-- (see normscope %s --help)", arg, command, command);
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const Option *o = NULL;
        for (size_t k = 0; k < N_OPTIONS; k++)
            if ((OPTIONS[k].group & groups) && strlen(OPTIONS[k].flag) == name_len &&
                strncmp(OPTIONS[k].flag, arg, name_len) == 0)
                o = &OPTIONS[k];
        if (!o)
            return ns_fail(err, "unknown flag '%.*s' for 'normscope %s' (see normscope %s "
                                "--help)", (int)name_len, arg, command, command);
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value)
            return ns_fail(err, "%s needs a value", o->flag);
        if (apply(o, value, cfg, err) < 0)
            return -1;
    }
    return 0;
}

static void format_default(const Option *o, const NsRunConfig *cfg, char *out, size_t n)
{
    const void *v = (const char *)cfg + o->offset;
    switch (o->kind) {
    case OPT_INT: snprintf(out, n, "%d", *(const int *)v); break;
    case OPT_LONG: snprintf(out, n, "%ld", *(const long *)v); break;
    case OPT_U64: snprintf(out, n, "%llu", (unsigned long long)*(const uint64_t *)v); break;
    case OPT_FLOAT: snprintf(out, n, "%g", (double)*(const float *)v); break;
    case OPT_PATH:
    case OPT_STR: snprintf(out, n, "%s", *(const char *)v ? (const char *)v : "-"); break;
    case OPT_NORM: snprintf(out, n, "%s", ns_norm_name(*(const NsNormKind *)v)); break;
    case OPT_POSITION:
        snprintf(out, n, "%s", ns_position_name(*(const NsNormPosition *)v));
        break;
    case OPT_TOKENIZER: snprintf(out, n, "%s", ns_tokenizer_name(*(const NsTokenizer *)v)); break;
    case OPT_BATCHING: snprintf(out, n, "%s", ns_batching_name(*(const NsBatching *)v)); break;
    }
}

void ns_cli_print_help(const char *command, const char *summary, unsigned groups)
{
    printf("usage: normscope %s [flags]\n\n%s\n", command, summary);
    static const struct { unsigned group; const char *title; } sections[] = {
        {NS_FLAGS_MODEL, "model"}, {NS_FLAGS_OPTIM, "optimizer"}, {NS_FLAGS_DATA, "data"},
        {NS_FLAGS_SCHEDULE, "schedule"}, {NS_FLAGS_OUTPUT, "output"}, {NS_FLAGS_PROBES, "probes"},
        {NS_FLAGS_EVAL, "evaluation"},
    };
    NsRunConfig defaults;
    ns_run_config_default(&defaults);
    unsigned shown = 0;
    for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) {
        if (!(groups & sections[s].group))
            continue;
        int header = 0;
        for (size_t k = 0; k < N_OPTIONS; k++) {
            const Option *o = &OPTIONS[k];
            if (!(o->group & sections[s].group) || (o->group & shown))
                continue;
            if (!header++)
                printf("\n%s:\n", sections[s].title);
            char def[64];
            format_default(o, &defaults, def, sizeof def);
            printf("  %-24s %s [%s]\n", o->flag, o->help, def);
        }
        shown |= sections[s].group;
    }
    printf("\nFlags take their value as '--flag VALUE' or '--flag=VALUE'.\n");
}
