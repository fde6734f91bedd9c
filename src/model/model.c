#include "model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "layers.h"

/* ------------------------------------------------------------------ set-up */

static float *buf(size_t n) { return ns_xcalloc(n, sizeof(float)); }

static void init_uniform(float *w, size_t n, float bound, NsRng *rng)
{
    for (size_t i = 0; i < n; i++)
        w[i] = (float)((2.0 * ns_rng_uniform(rng) - 1.0) * bound);
}

/* Xavier-uniform for every 2-D weight, N(0, 1/d) for the embedding (its rows are scaled by
 * sqrt(d) on input, so inputs start at unit scale), 0 for biases and 1 for norm weights. */
static void init_params(NsModel *m, uint64_t seed)
{
    NsRng rng;
    ns_rng_seed(&rng, seed);
    const NsParamLayout *L = &m->layout;
    float std = 1.0f / sqrtf((float)m->cfg.d_model);
    for (int i = 0; i < L->n_tensors; i++) {
        const NsTensorInfo *t = &L->tensors[i];
        float *w = m->params + t->offset;
        const char *leaf = strrchr(t->name, '/');
        leaf = leaf ? leaf + 1 : t->name;
        if (strcmp(t->name, "embed") == 0) {
            for (size_t k = 0; k < t->size; k++)
                w[k] = (float)(std * ns_rng_normal(&rng));
        } else if (t->ndim == 2) {
            init_uniform(w, t->size, sqrtf(6.0f / (float)(t->shape[0] + t->shape[1])), &rng);
        } else if (strcmp(leaf, "weight") == 0) {
            for (size_t k = 0; k < t->size; k++)
                w[k] = 1.0f;
        } /* biases stay 0 from calloc */
    }
}

static void init_sites(NsModel *m)
{
    const NsModelConfig *c = &m->cfg;
    int N = m->max_rows * c->seq_len;
    m->n_sites = 2 * c->n_layers + (c->norm_position == NS_POS_PRE ? 1 : 0);
    m->sites = ns_xcalloc((size_t)m->n_sites, sizeof(NsNormSite));
    char path[32];
    for (int l = 0; l < c->n_layers; l++) {
        NsLayerView *p = &m->p.layers[l], *g = &m->g.layers[l];
        snprintf(path, sizeof path, "layers/%d/norm1", l);
        ns_norm_site_init(&m->sites[2 * l], path, c, N);
        ns_norm_site_bind(&m->sites[2 * l], p->norm1_weight, p->norm1_bias, g->norm1_weight,
                          g->norm1_bias);
        snprintf(path, sizeof path, "layers/%d/norm2", l);
        ns_norm_site_init(&m->sites[2 * l + 1], path, c, N);
        ns_norm_site_bind(&m->sites[2 * l + 1], p->norm2_weight, p->norm2_bias, g->norm2_weight,
                          g->norm2_bias);
    }
    if (c->norm_position == NS_POS_PRE) {
        NsNormSite *s = &m->sites[2 * c->n_layers];
        ns_norm_site_init(s, "final_norm", c, N);
        ns_norm_site_bind(s, m->p.final_weight, m->p.final_bias, m->g.final_weight,
                          m->g.final_bias);
    }
    for (int i = 0; i < m->n_sites; i++)
        m->sites[i].comm = m->comm->size > 1 && !m->local_stats ? m->comm : NULL;
}

static void init_layer_acts(NsLayerActs *a, const NsModelConfig *c, int rows, float *x_in)
{
    size_t N = (size_t)rows * c->seq_len, d = (size_t)c->d_model;
    int pre = c->norm_position == NS_POS_PRE;
    a->x_in = x_in;
    a->n1_in = pre ? x_in : buf(N * d);
    a->n1_out = buf(N * d);
    a->n2_in = buf(N * d);
    a->n2_out = buf(N * d);
    a->qkv = buf(N * 3 * d);
    a->att = buf((size_t)rows * c->n_heads * c->seq_len * c->seq_len);
    a->ctx = buf(N * d);
    a->attn_out = buf(N * d);
    a->attn_keep = buf(N * d);
    a->ffh = buf(N * (size_t)c->d_ff);
    a->ffn_out = buf(N * d);
    a->ffn_keep = buf(N * d);
    a->res_out = pre ? buf(N * d) : NULL;
    a->a_in = pre ? a->n1_out : x_in;
    a->f_in = pre ? a->n2_out : a->n1_out;
    a->x_out = pre ? a->res_out : a->n2_out;
}

static void init_acts(NsModel *m)
{
    const NsModelConfig *c = &m->cfg;
    size_t N = (size_t)m->max_rows * c->seq_len, d = (size_t)c->d_model;
    m->pe = buf((size_t)c->seq_len * d);
    ns_positional_table(m->pe, c->seq_len, c->d_model);
    m->x0 = buf(N * d);
    m->x0_keep = buf(N * d);
    m->acts = ns_xcalloc((size_t)c->n_layers, sizeof(NsLayerActs));
    float *x = m->x0;
    for (int l = 0; l < c->n_layers; l++) {
        init_layer_acts(&m->acts[l], c, m->max_rows, x);
        x = m->acts[l].x_out;
    }
    m->final_out = c->norm_position == NS_POS_PRE ? buf(N * d) : NULL;
    m->logits = buf(N * (size_t)c->vocab_size);
    m->d_res = buf(N * d);
    m->d_a = buf(N * d);
    m->d_b = buf(N * d);
    m->d_ctx = buf(N * d);
    m->d_norm = buf(N * d);
    m->d_qkv = buf(N * 3 * d);
    m->d_ffh = buf(N * (size_t)c->d_ff);
    m->d_att = buf((size_t)c->seq_len * c->seq_len);
}

void ns_model_init(NsModel *m, const NsModelConfig *cfg, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    ns_layout_build(&m->layout, cfg);
    m->params = buf(m->layout.total);
    m->grads = buf(m->layout.total);
    ns_view_bind(&m->p, &m->layout, cfg, m->params);
    ns_view_bind(&m->g, &m->layout, cfg, m->grads);
    init_params(m, seed);
    m->comm = ns_comm_world();
    m->local_stats = strcmp(cfg->batch_stats, "local") == 0;
    m->max_rows = (cfg->batch_size + m->comm->size - 1) / m->comm->size;
    init_sites(m);
    init_acts(m);
    ns_model_set_batch_shape(m, cfg->batch_size, cfg->seq_len);
    /* Dropout draws from its own stream so changing dropout never changes initialisation. */
    ns_rng_seed(&m->dropout_rng, seed ^ 0x5eedd50ULL);
}

void ns_model_free(NsModel *m)
{
    int pre = m->cfg.norm_position == NS_POS_PRE;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        NsLayerActs *a = &m->acts[l];
        if (!pre)
            free(a->n1_in);
        float *owned[] = {a->n1_out, a->n2_in, a->n2_out, a->qkv, a->att, a->ctx, a->attn_out,
                          a->attn_keep, a->ffh, a->ffn_out, a->ffn_keep, a->res_out};
        for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
            free(owned[i]);
    }
    for (int i = 0; i < m->n_sites; i++)
        ns_norm_site_free(&m->sites[i]);
    float *owned[] = {m->params, m->grads, m->pe, m->x0, m->x0_keep, m->final_out, m->logits,
                      m->d_res, m->d_a, m->d_b, m->d_ctx, m->d_norm, m->d_qkv, m->d_ffh, m->d_att};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        free(owned[i]);
    free(m->acts);
    free(m->sites);
    ns_view_free(&m->p);
    ns_view_free(&m->g);
    ns_layout_free(&m->layout);
    memset(m, 0, sizeof *m);
}

int ns_model_find_site(const NsModel *m, const char *path)
{
    for (int i = 0; i < m->n_sites; i++)
        if (strcmp(m->sites[i].path, path) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------------ forward */

static void norm_forward(NsModel *m, int site, const float *x, float *y, int N, int training)
{
    NsNormSite *s = &m->sites[site];
    if (m->hooks.norm_forward_begin)
        m->hooks.norm_forward_begin(m->hooks.ctx, s, site, x, m->mask, N, training);
    ns_norm_forward(s, x, y, m->mask, N, training);
}

void ns_model_set_batch_shape(NsModel *m, int B, int T)
{
    if (B < 1 || B > m->cfg.batch_size || T < 1 || T > m->cfg.seq_len) {
        /* a caller's bug (the buffers would overflow), not a user error */
        fprintf(stderr, "normscope: model: batch shape %dx%d exceeds the configured %dx%d\n", B,
                T, m->cfg.batch_size, m->cfg.seq_len);
        abort();
    }
    /* Contiguous shares; a token-budget batch of fewer rows than ranks leaves some ranks none
     * (they still take part in every sum over ranks). */
    int ranks = m->comm->size, r = m->comm->rank, each = B / ranks, extra = B % ranks;
    m->B_global = B;
    m->row0 = r * each + (r < extra ? r : extra);
    m->B = each + (r < extra);
    m->T = T;
}

static float dropout_p(const NsModel *m, int training) { return training ? m->cfg.dropout : 0.0f; }

/* Dropout over this rank's rows of an [B_global][T][width] tensor, with the masks dropout over
 * the whole tensor would draw for them (ns_dropout_forward_part). */
static void dropout_rows(NsModel *m, float *x, float *keep, int width, int training)
{
    size_t row = (size_t)m->T * width, before = (size_t)m->row0 * row;
    size_t after = (size_t)(m->B_global - m->row0 - m->B) * row;
    ns_dropout_forward_part(x, x, keep, dropout_p(m, training), (size_t)m->B * row, before,
                            after, &m->dropout_rng);
}

/* out = dropout(attention(a_in) projected by Wo) */
static void attention_block(NsModel *m, int l, int training)
{
    const NsModelConfig *c = &m->cfg;
    NsLayerActs *a = &m->acts[l];
    NsLayerView *p = &m->p.layers[l];
    int N = m->B * m->T, d = c->d_model;
    ns_linear_forward(a->qkv, a->a_in, p->wq, p->bq, N, d, 3 * d);
    ns_attention_forward(a->ctx, a->att, a->qkv, m->B, m->T, d, c->n_heads);
    ns_linear_forward(a->attn_out, a->ctx, p->wo, p->bo, N, d, d);
    dropout_rows(m, a->attn_out, a->attn_keep, d, training);
}

/* out = dropout(relu(f_in W1^T + b1) W2^T + b2) */
static void ffn_block(NsModel *m, int l, int training)
{
    const NsModelConfig *c = &m->cfg;
    NsLayerActs *a = &m->acts[l];
    NsLayerView *p = &m->p.layers[l];
    int N = m->B * m->T, d = c->d_model, F = c->d_ff;
    ns_linear_forward(a->ffh, a->f_in, p->w1, p->b1, N, d, F);
    ns_relu_forward(a->ffh, a->ffh, (size_t)N * F);
    ns_linear_forward(a->ffn_out, a->ffh, p->w2, p->b2, N, F, d);
    dropout_rows(m, a->ffn_out, a->ffn_keep, d, training);
}

static void layer_forward(NsModel *m, int l, int training)
{
    NsLayerActs *a = &m->acts[l];
    int N = m->B * m->T;
    size_t n = (size_t)N * m->cfg.d_model;
    if (m->cfg.norm_position == NS_POS_POST) {
        attention_block(m, l, training);
        ns_add(a->n1_in, a->x_in, a->attn_out, n);
        norm_forward(m, 2 * l, a->n1_in, a->n1_out, N, training);
        ffn_block(m, l, training);
        ns_add(a->n2_in, a->n1_out, a->ffn_out, n);
        norm_forward(m, 2 * l + 1, a->n2_in, a->n2_out, N, training);
    } else {
        norm_forward(m, 2 * l, a->n1_in, a->n1_out, N, training);
        attention_block(m, l, training);
        ns_add(a->n2_in, a->x_in, a->attn_out, n);
        norm_forward(m, 2 * l + 1, a->n2_in, a->n2_out, N, training);
        ffn_block(m, l, training);
        ns_add(a->x_out, a->n2_in, a->ffn_out, n);
    }
}

static const float *model_output(const NsModel *m)
{
    return m->final_out ? m->final_out : m->acts[m->cfg.n_layers - 1].x_out;
}

/* --batch-stats local: every rank's norm state becomes rank 0's. */
static void share_norm_state(NsModel *m)
{
    for (int i = 0; i < m->n_sites; i++) {
        const char *names[4];
        float *ptrs[4];
        int n = ns_norm_state_tensors(&m->sites[i], names, ptrs);
        for (int k = 0; k < n; k++)
            m->comm->bcast(m->comm, ptrs[k], sizeof(float) * (size_t)m->sites[i].d, 0);
    }
}

/* The sites' penalties. With global statistics every rank computed the same ones (counted
 * once); with local statistics each rank's are its own, and the objective has them all. */
static void sum_penalties(NsModel *m)
{
    m->penalty = 0.0;
    for (int i = 0; i < m->n_sites; i++)
        m->penalty += m->sites[i].penalty;
    if (m->comm->size > 1 && m->local_stats && ns_norm_scheme_for(m->cfg.norm)->has_penalty)
        m->comm->sum_f64(m->comm, &m->penalty, 1);
}

double ns_model_forward(NsModel *m, const int32_t *tokens, const uint8_t *mask, int training)
{
    const NsModelConfig *c = &m->cfg;
    int B = m->B, T = m->T, d = c->d_model, N = B * T;
    /* The loss divides by the real positions of the whole batch, which every rank has. */
    m->n_real_global = ns_count_real(mask, (size_t)m->B_global * T);
    tokens += (size_t)m->row0 * (T + 1);
    mask += (size_t)m->row0 * T;
    m->tokens = tokens;
    m->mask = mask;
    m->last_training = training;
    if (m->local_stats && m->comm->size > 1)
        share_norm_state(m);
    for (int i = 0; i < m->n_sites; i++)
        m->sites[i].objective_rows = m->n_real_global;
    ns_embed_forward(m->x0, tokens, m->p.embed, m->pe, B, T, d);
    dropout_rows(m, m->x0, m->x0_keep, d, training);
    for (int l = 0; l < c->n_layers; l++)
        layer_forward(m, l, training);
    if (m->final_out)
        norm_forward(m, 2 * c->n_layers, m->acts[c->n_layers - 1].x_out, m->final_out, N,
                     training);
    /* Tied output projection: logits = x embed^T. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, c->vocab_size, d, 1.0f,
                model_output(m), d, m->p.embed, d, 0.0f, m->logits, c->vocab_size);
    /* Training turns the logits straight into their gradient (one pass over N x V fewer);
     * ns_model_backward knows from last_training that it is already there. */
    double loss = training ? ns_xent_forward_backward_n(m->logits, tokens, mask, B, T,
                                                        c->vocab_size, m->n_real_global)
                           : ns_xent_forward_n(m->logits, tokens, mask, B, T, c->vocab_size,
                                               m->n_real_global);
    if (m->comm->size > 1)
        m->comm->sum_f64(m->comm, &loss, 1); /* the shares' parts of the batch's mean */
    sum_penalties(m);
    return loss;
}

/* ------------------------------------------------------------------ backward */

void ns_model_zero_grad(NsModel *m) { memset(m->grads, 0, sizeof(float) * m->layout.total); }

/* dx_target += dL/d(norm input), given dL/d(norm output) dy. The site's own dL/dx goes through a
 * scratch buffer so hooks see it before it is mixed with the residual gradient. */
static void norm_backward_add(NsModel *m, int site, const float *dy, float *dx_target, int N,
                              int accumulate)
{
    NsNormSite *s = &m->sites[site];
    float *dx = accumulate ? m->d_norm : dx_target;
    ns_norm_backward(s, dy, dx, m->mask, N);
    if (m->hooks.norm_backward_end)
        m->hooks.norm_backward_end(m->hooks.ctx, s, site, dy, dx, m->mask, N);
    if (accumulate)
        ns_add_inplace(dx_target, dx, (size_t)N * m->cfg.d_model);
}

/* d_in += dL/d(a_in), given dL/d(attention block output) in d_out (clobbered). */
static void attention_block_backward(NsModel *m, int l, float *d_out, float *d_in)
{
    const NsModelConfig *c = &m->cfg;
    NsLayerActs *a = &m->acts[l];
    NsLayerView *p = &m->p.layers[l], *g = &m->g.layers[l];
    int N = m->B * m->T, d = c->d_model;
    ns_dropout_backward(d_out, d_out, a->attn_keep, dropout_p(m, m->last_training),
                        (size_t)N * d);
    float *d_ctx = m->d_ctx;
    ns_linear_backward(d_ctx, g->wo, g->bo, d_out, a->ctx, p->wo, N, d, d, 0);
    ns_attention_backward(m->d_qkv, d_ctx, a->qkv, a->att, m->d_att, m->B, m->T, d,
                          c->n_heads);
    ns_linear_backward(d_in, g->wq, g->bq, m->d_qkv, a->a_in, p->wq, N, d, 3 * d, 1);
}

/* d_in += dL/d(f_in), given dL/d(ffn block output) in d_out (clobbered). */
static void ffn_block_backward(NsModel *m, int l, float *d_out, float *d_in)
{
    const NsModelConfig *c = &m->cfg;
    NsLayerActs *a = &m->acts[l];
    NsLayerView *p = &m->p.layers[l], *g = &m->g.layers[l];
    int N = m->B * m->T, d = c->d_model, F = c->d_ff;
    ns_dropout_backward(d_out, d_out, a->ffn_keep, dropout_p(m, m->last_training), (size_t)N * d);
    ns_linear_backward(m->d_ffh, g->w2, g->b2, d_out, a->ffh, p->w2, N, F, d, 0);
    ns_relu_backward(m->d_ffh, m->d_ffh, a->ffh, (size_t)N * F);
    ns_linear_backward(d_in, g->w1, g->b1, m->d_ffh, a->f_in, p->w1, N, d, F, 1);
}

/* On entry d_res = dL/d(x_out of layer l); on exit d_res = dL/d(x_in of layer l). */
static void layer_backward(NsModel *m, int l)
{
    int N = m->B * m->T;
    size_t bytes = sizeof(float) * (size_t)N * m->cfg.d_model;
    float *d_res = m->d_res, *d_a = m->d_a, *d_b = m->d_b;
    if (m->cfg.norm_position == NS_POS_POST) {
        norm_backward_add(m, 2 * l + 1, d_res, d_a, N, 0); /* d_a = dL/dn2_in */
        memcpy(d_res, d_a, bytes);                         /* residual into n1_out */
        ffn_block_backward(m, l, d_a, d_res);              /* d_res = dL/dn1_out */
        norm_backward_add(m, 2 * l, d_res, d_a, N, 0);     /* d_a = dL/dn1_in */
        memcpy(d_res, d_a, bytes);                         /* residual into x_in */
        attention_block_backward(m, l, d_a, d_res);        /* d_res = dL/dx_in */
    } else {
        memcpy(d_a, d_res, bytes); /* dL/d(ffn output) = dL/dx_out */
        memset(d_b, 0, bytes);
        ffn_block_backward(m, l, d_a, d_b);                /* d_b = dL/dn2_out */
        norm_backward_add(m, 2 * l + 1, d_b, d_res, N, 1); /* d_res = dL/dn2_in */
        memcpy(d_a, d_res, bytes); /* dL/d(attention output) = dL/dn2_in */
        memset(d_b, 0, bytes);
        attention_block_backward(m, l, d_a, d_b);          /* d_b = dL/dn1_out */
        norm_backward_add(m, 2 * l, d_b, d_res, N, 1);     /* d_res = dL/dx_in */
    }
}

void ns_model_backward(NsModel *m)
{
    const NsModelConfig *c = &m->cfg;
    int B = m->B, T = m->T, d = c->d_model, N = B * T, V = c->vocab_size;
    if (!m->last_training) /* a training forward left dlogits already */
        ns_xent_backward_n(m->logits, m->tokens, m->mask, B, T, V, m->n_real_global);
    /* logits = X embed^T:  dX = dlogits embed,  dembed += dlogits^T X */
    float *d_out = m->final_out ? m->d_a : m->d_res;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, d, V, 1.0f, m->logits, V,
                m->p.embed, d, 0.0f, d_out, d);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, d, N, 1.0f, m->logits, V,
                model_output(m), d, 1.0f, m->g.embed, d);
    if (m->final_out)
        norm_backward_add(m, 2 * c->n_layers, m->d_a, m->d_res, N, 0);
    for (int l = c->n_layers - 1; l >= 0; l--)
        layer_backward(m, l);
    ns_dropout_backward(m->d_res, m->d_res, m->x0_keep, dropout_p(m, m->last_training),
                        (size_t)N * d);
    ns_embed_backward(m->g.embed, m->d_res, m->tokens, B, T, d);
    /* Each rank's gradient is its share of the batch's (the loss divides by the batch's real
     * positions): their sum is the batch's gradient. One allreduce over the contiguous buffer;
     * docs/distributed.md has the measurements behind not splitting it into buckets. */
    if (m->comm->size > 1) {
        double t0 = ns_now_seconds();
        m->comm->sum_f32(m->comm, m->grads, m->layout.total);
        m->grad_sum_seconds += ns_now_seconds() - t0;
    }
}

/* ------------------------------------------------------------------ snapshots */

static size_t state_floats(const NsModel *m)
{
    size_t n = 0;
    for (int i = 0; i < m->n_sites; i++) {
        const char *names[4];
        float *ptrs[4];
        n += (size_t)ns_norm_state_tensors(&m->sites[i], names, ptrs) * m->sites[i].d;
    }
    return n;
}

/* copy_out: model -> snapshot, else snapshot -> model */
static void transfer_state(NsModel *m, NsModelSnapshot *snap, int copy_out)
{
    size_t off = 0;
    for (int i = 0; i < m->n_sites; i++) {
        NsNormSite *s = &m->sites[i];
        const char *names[4];
        float *ptrs[4];
        int n = ns_norm_state_tensors(s, names, ptrs);
        size_t bytes = sizeof(float) * (size_t)s->d;
        for (int k = 0; k < n; k++, off += (size_t)s->d) {
            if (copy_out)
                memcpy(snap->values + off, ptrs[k], bytes);
            else
                memcpy(ptrs[k], snap->values + off, bytes);
        }
        if (copy_out)
            snap->steps[i] = s->step;
        else
            s->step = snap->steps[i];
    }
}

void ns_model_snapshot(const NsModel *m, NsModelSnapshot *snap)
{
    if (!snap->values) {
        snap->n_values = state_floats(m);
        snap->values = ns_xcalloc(snap->n_values ? snap->n_values : 1, sizeof(float));
        snap->steps = ns_xcalloc((size_t)m->n_sites, sizeof(int64_t));
    }
    transfer_state((NsModel *)m, snap, 1);
    snap->dropout_rng = m->dropout_rng;
}

void ns_model_restore(NsModel *m, const NsModelSnapshot *snap)
{
    transfer_state(m, (NsModelSnapshot *)snap, 0);
    m->dropout_rng = snap->dropout_rng;
}

void ns_model_snapshot_free(NsModelSnapshot *snap)
{
    free(snap->values);
    free(snap->steps);
    memset(snap, 0, sizeof *snap);
}

/* ------------------------------------------------------------------ side-effect-free passes */

void ns_model_scratch_init(NsModelScratch *scratch, const NsModel *m)
{
    memset(scratch, 0, sizeof *scratch);
    NsModelConfig cfg = m->cfg;
    cfg.dropout = 0.0f;
    /* The seed only fills parameters that every pass overwrites. */
    ns_model_init(&scratch->work, &cfg, 0);
}

void ns_model_scratch_free(NsModelScratch *scratch)
{
    if (scratch->work.params)
        ns_model_free(&scratch->work);
    ns_model_snapshot_free(&scratch->state);
}

double ns_model_loss_grad_at(const NsModel *m, const NsModelSnapshot *state, const float *params,
                             const int32_t *tokens, const uint8_t *mask, float *grad,
                             NsModelScratch *scratch)
{
    NsModel *w = &scratch->work;
    size_t bytes = sizeof(float) * m->layout.total;
    if (!state) {
        ns_model_snapshot(m, &scratch->state);
        state = &scratch->state;
    }
    memcpy(w->params, params, bytes);
    ns_model_restore(w, state);
    ns_model_set_batch_shape(w, m->B_global, m->T);
    double loss = ns_model_forward(w, tokens, mask, 1);
    ns_model_zero_grad(w);
    ns_model_backward(w);
    memcpy(grad, w->grads, bytes);
    return loss + w->penalty; /* the objective the gradient is of */
}
