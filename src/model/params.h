/* Parameter layout: every trainable tensor lives in one contiguous float buffer, described by a
 * table of named views (names are the paths of model-spec.md). The same layout is applied to the
 * gradients and to both AdamW moments, so "tensor i" means the same slice in all four buffers.
 *
 * Within a layer, wq|wk|wv are adjacent and so are bq|bk|bv: together they form the [3d][d]
 * matrix and [3d] bias of one fused QKV projection, which saves two matmul launches per layer. */
#ifndef NS_PARAMS_H
#define NS_PARAMS_H

#include <stddef.h>

#include "config.h"

#define NS_NAME_LEN 64

typedef struct {
    char name[NS_NAME_LEN]; /* e.g. "layers/0/attn/wq" */
    size_t offset;          /* in floats, from the start of the buffer */
    size_t size;
    int ndim;               /* 1 or 2 */
    int shape[2];
} NsTensorInfo;

typedef struct {
    float *wq, *wk, *wv, *wo; /* [d][d] each; wq..wv contiguous = W_qkv [3d][d] */
    float *bq, *bk, *bv, *bo; /* [d] each; bq..bv contiguous = b_qkv [3d] */
    float *w1, *b1;           /* [F][d], [F] */
    float *w2, *b2;           /* [d][F], [d] */
    float *norm1_weight, *norm1_bias, *norm2_weight, *norm2_bias; /* [d], NULL for none */
} NsLayerView;

typedef struct {
    float *embed; /* [V][d], tied with the output projection */
    NsLayerView *layers;
    float *final_weight, *final_bias; /* pre position only (NULL otherwise) */
} NsParamView;

typedef struct {
    NsTensorInfo *tensors;
    int n_tensors;
    size_t total; /* floats */
    int n_layers;
} NsParamLayout;

void ns_layout_build(NsParamLayout *layout, const NsModelConfig *cfg);
void ns_layout_free(NsParamLayout *layout);
int ns_layout_find(const NsParamLayout *layout, const char *name); /* index or -1 */

/* Points the named views of `view` into `buffer` laid out by `layout`. */
void ns_view_bind(NsParamView *view, const NsParamLayout *layout, const NsModelConfig *cfg,
                  float *buffer);
void ns_view_free(NsParamView *view);

#endif
