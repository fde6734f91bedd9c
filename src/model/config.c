#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "comm.h"
#include "norm.h"
#include "util.h"

/* ------------------------------------------------------------ scheme names */

const char *ns_norm_name(NsNormKind kind)
{
    return (kind >= 0 && kind < NS_NORM_COUNT) ? ns_norm_scheme_for(kind)->name : "?";
}

int ns_norm_from_name(const char *name, NsNormKind *kind)
{
    for (int k = 0; k < NS_NORM_COUNT; k++) {
        if (strcmp(name, ns_norm_scheme_for((NsNormKind)k)->name) == 0) {
            *kind = (NsNormKind)k;
            return 0;
        }
    }
    return -1;
}

void ns_norm_names_join(char *out, size_t len, const char *sep)
{
    size_t used = 0;
    if (len > 0)
        out[0] = '\0';
    for (int k = 0; k < NS_NORM_COUNT && used < len; k++) {
        int n = snprintf(out + used, len - used, "%s%s", k ? sep : "",
                         ns_norm_scheme_for((NsNormKind)k)->name);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* Built once from the descriptors; a static buffer keeps the old const char * signature. */
const char *ns_norm_names_list(void)
{
    static char list[256];
    if (!list[0])
        ns_norm_names_join(list, sizeof list, ", ");
    return list;
}

const char *ns_position_name(NsNormPosition pos) { return pos == NS_POS_PRE ? "pre" : "post"; }

int ns_position_from_name(const char *name, NsNormPosition *pos)
{
    if (strcmp(name, "post") == 0)
        *pos = NS_POS_POST;
    else if (strcmp(name, "pre") == 0)
        *pos = NS_POS_PRE;
    else
        return -1;
    return 0;
}

/* Defaults: the `small` configuration of the benchmark, pre-norm. The spec's default position is
 * post, but at this learning rate post-norm LN and PN can collapse while every scheme trains in
 * pre position (see README, "Choosing defaults"), and a tool whose default run diverges for some
 * schemes compares nothing. */
void ns_model_config_default(NsModelConfig *c)
{
    *c = (NsModelConfig){
        .vocab_size = 10000,
        .d_model = 256,
        .n_heads = 4,
        .d_ff = 1024,
        .n_layers = 4,
        .seq_len = 64,
        .batch_size = 32,
        .norm = NS_NORM_LAYER,
        .norm_position = NS_POS_PRE,
        .eps = 1e-5f,
        .bn_momentum = 0.1f,
        .pn_alpha = 0.9f,
        .pn_warmup = 100,
        .pn_groups = 0,
        .dropout = 0.1f,
        .batch_stats = "global",
    };
}

void ns_optim_config_default(NsOptimConfig *c)
{
    *c = (NsOptimConfig){
        .lr = 1e-3f,
        .weight_decay = 0.0f,
        .adam_beta1 = 0.9f,
        .adam_beta2 = 0.98f,
        .adam_eps = 1e-8f,
        .warmup = 200,
        .clip = 1.0f,
    };
}

int ns_norm_is_batch_type(NsNormKind kind) { return ns_norm_scheme_for(kind)->batch_stats != 0; }

int ns_norm_has_affine(NsNormKind kind) { return ns_norm_scheme_for(kind)->affine; }

/* What a configuration needs in memory, by its largest part, computed in double precision from
 * the sizes alone (before anything is allocated, so an impossible size is a message, not an
 * abort). Upper bounds of the training engine's buffers: parameters, gradients, both AdamW
 * moments and the initial copy (5 float copies); per layer the saved activations (about 16
 * d-wide and 2 F-wide rows per position) and the attention matrices; the logits. */
typedef struct {
    const char *what;
    double bytes;
    char flags[160];
} MemoryPart;

static void memory_parts(const NsModelConfig *c, MemoryPart part[4])
{
    double V = c->vocab_size, d = c->d_model, F = c->d_ff, L = c->n_layers, T = c->seq_len,
           B = c->batch_size, H = c->n_heads;
    double layer_params = L * (4 * d * d + 2 * d * F + 8 * d + F), embed = V * d;
    part[0] = (MemoryPart){"parameters and optimizer state", 20 * (layer_params + embed), ""};
    if (layer_params >= embed)
        snprintf(part[0].flags, sizeof part[0].flags, "--layers %d --d-model %d --d-ff %d",
                 c->n_layers, c->d_model, c->d_ff);
    else
        snprintf(part[0].flags, sizeof part[0].flags, "--vocab-size %d --d-model %d",
                 c->vocab_size, c->d_model);
    part[1] = (MemoryPart){"activations", 4 * L * B * T * (16 * d + 2 * F), ""};
    snprintf(part[1].flags, sizeof part[1].flags, "--layers %d --batch-size %d --seq-len %d "
             "--d-model %d --d-ff %d", c->n_layers, c->batch_size, c->seq_len, c->d_model, c->d_ff);
    part[2] = (MemoryPart){"attention", 8 * L * B * H * T * T, ""};
    snprintf(part[2].flags, sizeof part[2].flags, "--layers %d --batch-size %d --seq-len %d "
             "--heads %d", c->n_layers, c->batch_size, c->seq_len, c->n_heads);
    part[3] = (MemoryPart){"logits", 8 * B * T * V, ""};
    snprintf(part[3].flags, sizeof part[3].flags, "--batch-size %d --seq-len %d --vocab-size %d",
             c->batch_size, c->seq_len, c->vocab_size);
}

double ns_model_param_count(const NsModelConfig *c)
{
    double d = c->d_model, F = c->d_ff;
    return c->n_layers * (4 * d * d + 2 * d * F + 8 * d + F) + (double)c->vocab_size * d;
}

double ns_model_config_memory(const NsModelConfig *c)
{
    MemoryPart part[4];
    memory_parts(c, part);
    return part[0].bytes + part[1].bytes + part[2].bytes + part[3].bytes;
}

/* More memory than the machine has is refused naming the flags of the largest part; so is a
 * tensor of more than 2^31 floats, which the engine's int sizes cannot index. */
static int check_memory(const NsModelConfig *c, char *err)
{
    MemoryPart part[4];
    memory_parts(c, part);
    int big = 0;
    for (int i = 1; i < 4; i++)
        if (part[i].bytes > part[big].bytes)
            big = i;
    /* the largest tensors: embedding [V][d], feed-forward [d][F], all layers' norm state */
    double embed = (double)c->vocab_size * c->d_model, ff = (double)c->d_model * c->d_ff;
    double layers = (double)c->n_layers * c->d_model * 8, largest = fmax(embed, fmax(ff, layers));
    char flags[96];
    snprintf(flags, sizeof flags, largest == embed ? "--vocab-size %d --d-model %d" :
             largest == ff ? "--d-model %d --d-ff %d" : "--layers %d --d-model %d",
             largest == embed ? c->vocab_size : largest == ff ? c->d_model : c->n_layers,
             largest == ff ? c->d_ff : c->d_model);
    if (largest >= 2147483648.0)
        return ns_fail(err, "%s: a tensor of %.3g elements is more than normscope can index; "
                            "choose smaller values of these flags", flags, largest);
    double total = part[0].bytes + part[1].bytes + part[2].bytes + part[3].bytes;
    char need[32], avail[32];
    if (!ns_exceeds_memory(total, need, avail, sizeof need))
        return 0;
    return ns_fail(err, "%s: the model needs about %s of memory (mostly %s), more than this "
                        "machine's %s; choose smaller values of these flags", part[big].flags,
                   need, part[big].what, avail);
}

/* batch-regularized's weights: finite and >= 0; any other scheme has none (a weight given with
 * --resume of another scheme's checkpoint would otherwise be recorded and do nothing). */
static int check_penalty(const NsModelConfig *c, char *err)
{
    static const char *const flags[2] = {"--rbn-penalty-mean", "--rbn-penalty-var"};
    const float weights[2] = {c->rbn_penalty_mean, c->rbn_penalty_var};
    int has = ns_norm_scheme_for(c->norm)->has_penalty;
    for (int k = 0; k < 2; k++) {
        if (!(weights[k] >= 0.0f) || !isfinite(weights[k]))
            return ns_fail(err, "%s must be a finite number >= 0 (got %g)", flags[k],
                           (double)weights[k]);
        if (!has && weights[k] != 0.0f)
            return ns_fail(err, "%s applies to --norm batch-regularized only (got --norm %s); "
                                "drop the flag", flags[k], ns_norm_name(c->norm));
    }
    return 0;
}

int ns_model_config_validate(const NsModelConfig *c, char *err)
{
    struct { const char *flag; int value; } sizes[] = {
        {"--vocab-size", c->vocab_size}, {"--d-model", c->d_model}, {"--heads", c->n_heads},
        {"--d-ff", c->d_ff}, {"--layers", c->n_layers}, {"--seq-len", c->seq_len},
        {"--batch-size", c->batch_size},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].value <= 0)
            return ns_fail(err, "%s must be a positive integer (got %d)", sizes[i].flag,
                           sizes[i].value);
    if (c->vocab_size < 4)
        return ns_fail(err, "--vocab-size must be at least 4 (3 ids are reserved), got %d",
                       c->vocab_size);
    if (c->d_model % c->n_heads != 0)
        return ns_fail(err, "--d-model %d is not a multiple of --heads %d; choose sizes with "
                            "d-model = heads * head-width", c->d_model, c->n_heads);
    if (c->d_model % 2 != 0)
        return ns_fail(err, "--d-model must be even for the sinusoidal positions (got %d)",
                       c->d_model);
    if (!(c->pn_alpha > 0.0f && c->pn_alpha < 1.0f))
        return ns_fail(err, "--pn-alpha must be in (0, 1) (got %g)", (double)c->pn_alpha);
    if (c->pn_warmup < 0)
        return ns_fail(err, "--pn-warmup must be >= 0 (got %d)", c->pn_warmup);
    if (c->pn_groups < 0 || (c->pn_groups > 0 && c->d_model % c->pn_groups != 0))
        return ns_fail(err, "--pn-groups %d must be 0 or divide --d-model %d", c->pn_groups,
                       c->d_model);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return ns_fail(err, "--dropout must be in [0, 1) (got %g)", (double)c->dropout);
    if (!(c->eps > 0.0f && isfinite(c->eps)))
        return ns_fail(err, "eps must be a positive finite number (got %g)", (double)c->eps);
    if (!(c->bn_momentum >= 0.0f && c->bn_momentum <= 1.0f))
        return ns_fail(err, "--bn-momentum must be in [0, 1] (got %g)", (double)c->bn_momentum);
    if (strcmp(c->batch_stats, "global") != 0 && strcmp(c->batch_stats, "local") != 0)
        return ns_fail(err, "--batch-stats must be global or local (got '%s')", c->batch_stats);
    if (check_penalty(c, err) < 0)
        return -1;
    int ranks = ns_comm_world()->size;
    if (c->batch_size % ranks != 0)
        return ns_fail(err, "--batch-size %d is not a multiple of the %d ranks of this run: each "
                            "rank takes an equal share of every batch; give a multiple of %d",
                       c->batch_size, ranks, ranks);
    return check_memory(c, err);
}

int ns_optim_config_validate(const NsOptimConfig *c, char *err)
{
    if (!(c->lr > 0.0f && isfinite(c->lr)))
        return ns_fail(err, "--lr must be a positive finite number (got %g)", (double)c->lr);
    if (c->warmup < 0)
        return ns_fail(err, "--warmup must be >= 0 (got %d)", c->warmup);
    if (!(c->weight_decay >= 0.0f && isfinite(c->weight_decay)))
        return ns_fail(err, "--weight-decay must be a finite number >= 0 (got %g)",
                       (double)c->weight_decay);
    if (!(c->clip >= 0.0f && isfinite(c->clip)))
        return ns_fail(err, "--clip must be a finite number >= 0 (0 = off), got %g",
                       (double)c->clip);
    return 0;
}
