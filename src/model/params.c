#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void add_tensor(NsParamLayout *L, int cap, const char *name, int rows, int cols)
{
    if (L->n_tensors >= cap) {
        fprintf(stderr, "normscope: internal error: parameter table overflow\n");
        abort();
    }
    NsTensorInfo *t = &L->tensors[L->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = L->total;
    t->ndim = cols > 0 ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols > 0 ? cols : 1;
    t->size = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    L->total += t->size;
}

void ns_layout_build(NsParamLayout *L, const NsModelConfig *c)
{
    int d = c->d_model, F = c->d_ff;
    int affine = ns_norm_has_affine(c->norm);
    int cap = 1 + c->n_layers * 16 + 2;
    L->tensors = ns_xcalloc((size_t)cap, sizeof(NsTensorInfo));
    L->n_tensors = 0;
    L->total = 0;
    L->n_layers = c->n_layers;
    add_tensor(L, cap, "embed", c->vocab_size, d);
    char name[NS_NAME_LEN];
    for (int l = 0; l < c->n_layers; l++) {
        /* Order matters: wq,wk,wv then bq,bk,bv must be adjacent (fused QKV). */
        static const char *const attn_w[] = {"wq", "wk", "wv", "wo"};
        static const char *const attn_b[] = {"bq", "bk", "bv", "bo"};
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "layers/%d/attn/%s", l, attn_w[i]);
            add_tensor(L, cap, name, d, d);
        }
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "layers/%d/attn/%s", l, attn_b[i]);
            add_tensor(L, cap, name, d, 0);
        }
        snprintf(name, sizeof name, "layers/%d/ffn/w1", l);
        add_tensor(L, cap, name, F, d);
        snprintf(name, sizeof name, "layers/%d/ffn/b1", l);
        add_tensor(L, cap, name, F, 0);
        snprintf(name, sizeof name, "layers/%d/ffn/w2", l);
        add_tensor(L, cap, name, d, F);
        snprintf(name, sizeof name, "layers/%d/ffn/b2", l);
        add_tensor(L, cap, name, d, 0);
        if (affine) {
            static const char *const norm_p[] = {"norm1/weight", "norm1/bias", "norm2/weight",
                                                 "norm2/bias"};
            for (int i = 0; i < 4; i++) {
                snprintf(name, sizeof name, "layers/%d/%s", l, norm_p[i]);
                add_tensor(L, cap, name, d, 0);
            }
        }
    }
    if (affine && c->norm_position == NS_POS_PRE) {
        add_tensor(L, cap, "final_norm/weight", d, 0);
        add_tensor(L, cap, "final_norm/bias", d, 0);
    }
}

void ns_layout_free(NsParamLayout *L)
{
    free(L->tensors);
    memset(L, 0, sizeof *L);
}

int ns_layout_find(const NsParamLayout *L, const char *name)
{
    for (int i = 0; i < L->n_tensors; i++)
        if (strcmp(L->tensors[i].name, name) == 0)
            return i;
    return -1;
}

static float *lookup_name(const NsParamLayout *L, float *buffer, const char *name)
{
    int i = ns_layout_find(L, name);
    return i < 0 ? NULL : buffer + L->tensors[i].offset;
}

/* fmt names a tensor of layer l, e.g. "layers/%d/attn/wq". */
static float *lookup(const NsParamLayout *L, float *buffer, const char *fmt, int l)
{
    char name[NS_NAME_LEN];
    snprintf(name, sizeof name, fmt, l);
    return lookup_name(L, buffer, name);
}

void ns_view_bind(NsParamView *v, const NsParamLayout *L, const NsModelConfig *c, float *buffer)
{
    v->embed = lookup_name(L, buffer, "embed");
    v->layers = ns_xcalloc((size_t)c->n_layers, sizeof(NsLayerView));
    for (int l = 0; l < c->n_layers; l++) {
        NsLayerView *y = &v->layers[l];
        y->wq = lookup(L, buffer, "layers/%d/attn/wq", l);
        y->wk = lookup(L, buffer, "layers/%d/attn/wk", l);
        y->wv = lookup(L, buffer, "layers/%d/attn/wv", l);
        y->wo = lookup(L, buffer, "layers/%d/attn/wo", l);
        y->bq = lookup(L, buffer, "layers/%d/attn/bq", l);
        y->bk = lookup(L, buffer, "layers/%d/attn/bk", l);
        y->bv = lookup(L, buffer, "layers/%d/attn/bv", l);
        y->bo = lookup(L, buffer, "layers/%d/attn/bo", l);
        y->w1 = lookup(L, buffer, "layers/%d/ffn/w1", l);
        y->b1 = lookup(L, buffer, "layers/%d/ffn/b1", l);
        y->w2 = lookup(L, buffer, "layers/%d/ffn/w2", l);
        y->b2 = lookup(L, buffer, "layers/%d/ffn/b2", l);
        y->norm1_weight = lookup(L, buffer, "layers/%d/norm1/weight", l);
        y->norm1_bias = lookup(L, buffer, "layers/%d/norm1/bias", l);
        y->norm2_weight = lookup(L, buffer, "layers/%d/norm2/weight", l);
        y->norm2_bias = lookup(L, buffer, "layers/%d/norm2/bias", l);
    }
    v->final_weight = lookup_name(L, buffer, "final_norm/weight");
    v->final_bias = lookup_name(L, buffer, "final_norm/bias");
}

void ns_view_free(NsParamView *v)
{
    free(v->layers);
    v->layers = NULL;
}
