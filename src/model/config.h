/* Configuration of a model and of a training run, with the defaults a user gets and the checks
 * that turn a bad combination into one clear error line. Names follow ../docs/model-spec.md and
 * the root attributes of a debug state. */
#ifndef NS_CONFIG_H
#define NS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "norm_schemes.h"

/* One value per line of the scheme registry (norm_schemes.h), in its order. */
#define NS_NORM_KIND_ENTRY(kind, scheme) kind,
typedef enum { NS_NORM_SCHEMES(NS_NORM_KIND_ENTRY) NS_NORM_COUNT } NsNormKind;
#undef NS_NORM_KIND_ENTRY

typedef enum { NS_POS_POST = 0, NS_POS_PRE = 1 } NsNormPosition;

#define NS_BATCH_STATS_LEN 256 /* the size of a text option's field (NS_OPT_STR_LEN) */

/* Everything that fixes the shape and arithmetic of the model: two runs with equal ModelConfig
 * have interchangeable checkpoints. */
typedef struct {
    int vocab_size; /* V */
    int d_model;    /* d */
    int n_heads;    /* H */
    int d_ff;       /* F */
    int n_layers;   /* L */
    int seq_len;    /* T */
    int batch_size; /* B */
    NsNormKind norm;
    NsNormPosition norm_position;
    float eps;         /* 1e-5 everywhere */
    float bn_momentum; /* 0.1 */
    float pn_alpha;    /* 0.9 */
    int pn_warmup;     /* W, PN schemes only */
    int pn_groups;     /* G, PN schemes only; 0 = no group scaling */
    int no_layer_scaling; /* batch-official only: 1 drops its layer scaling (an ablation) */
    float rbn_penalty_mean, rbn_penalty_var; /* batch-regularized's penalty weights (0 else) */
    float dropout;
    /* With several ranks (docs/distributed.md): "global" = batch statistics over the rows of all
     * ranks (SyncBN), "local" = over each rank's own rows (DDP's BatchNorm). */
    char batch_stats[NS_BATCH_STATS_LEN];
} NsModelConfig;

typedef struct {
    float lr, weight_decay, adam_beta1, adam_beta2, adam_eps;
    int warmup;     /* learning-rate warm-up steps */
    float clip;     /* global gradient-norm clip, 0 = off */
} NsOptimConfig;

/* Scheme names come from the scheme descriptors (norm.h). */
const char *ns_norm_name(NsNormKind kind);                /* "?" for a value out of range */
int ns_norm_from_name(const char *name, NsNormKind *kind); /* 0 ok, -1 unknown */
const char *ns_norm_names_list(void);                     /* "layer, batch, ..." for messages */
/* Every name joined by sep ("layer | batch | ..." for help text), truncated to fit out. */
void ns_norm_names_join(char *out, size_t len, const char *sep);
const char *ns_position_name(NsNormPosition pos);
int ns_position_from_name(const char *name, NsNormPosition *pos);

void ns_model_config_default(NsModelConfig *c);
void ns_optim_config_default(NsOptimConfig *c);

/* Checks sizes and combinations; on failure writes one line naming the offending flag. */
/* Bytes of memory the training engine needs for this configuration (an upper bound). */
double ns_model_config_memory(const NsModelConfig *c);
/* Parameters of the model (an upper bound: the vocabulary is at most its cap). */
double ns_model_param_count(const NsModelConfig *c);
/* Checks sizes and settings, and that the memory the configuration needs (computed before
 * anything is allocated) fits in this machine's; errors name the flags. */
int ns_model_config_validate(const NsModelConfig *c, char *err);
int ns_optim_config_validate(const NsOptimConfig *c, char *err);

/* Whether the scheme takes statistics over the batch (and so keeps running statistics), and
 * whether it has an affine map; both answered by its descriptor. */
int ns_norm_is_batch_type(NsNormKind kind);
int ns_norm_has_affine(NsNormKind kind);

#endif
