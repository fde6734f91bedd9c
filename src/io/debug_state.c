#include "debug_state.h"

#include <stdio.h>
#include <string.h>

#include "h5util.h"
#include "model_io.h"
#include "util.h"

hid_t ns_debug_state_create(const char *path, const NsModelConfig *mc, const NsOptimConfig *oc,
                            char *err)
{
    hid_t f = ns_h5_create(path, err);
    if (f < 0)
        return f;
    NsOptimConfig plain = *oc;
    plain.clip = 0.0f;
    if (ns_write_config_attrs(f, mc, &plain) < 0) {
        H5Fclose(f);
        ns_fail(err, "cannot write attributes to '%s'", path);
        return H5I_INVALID_HID;
    }
    return f;
}

static int write_batch(hid_t f, const char *g, const NsModelConfig *c, const int32_t *tokens,
                       const uint8_t *mask, char *err)
{
    char path[64];
    hsize_t tdims[2] = {(hsize_t)c->batch_size, (hsize_t)c->seq_len + 1};
    hsize_t mdims[2] = {(hsize_t)c->batch_size, (hsize_t)c->seq_len};
    snprintf(path, sizeof path, "%s/tokens", g);
    if (ns_h5_write(f, path, H5T_NATIVE_INT32, tokens, 2, tdims, err) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/mask", g);
    return ns_h5_write(f, path, H5T_NATIVE_UINT8, mask, 2, mdims, err);
}

int ns_debug_state_record_step(hid_t f, int k, NsModel *m, NsAdamW *opt, const int32_t *tokens,
                               const uint8_t *mask, double *loss_out, NsDebugMeasure measure,
                               void *ctx, char *err)
{
    char g[32], path[64];
    snprintf(g, sizeof g, "step_%d", k);
    if (write_batch(f, g, &m->cfg, tokens, mask, err) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/params", g);
    if (ns_write_tensors(f, path, &m->layout, m->params, err) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/state_before", g);
    if (ns_write_norm_state(f, path, m, err) < 0)
        return -1;

    NsModelSnapshot before = {0};
    if (measure)
        ns_model_snapshot(m, &before);
    double loss = ns_model_forward(m, tokens, mask, 1);
    ns_model_zero_grad(m);
    ns_model_backward(m);
    *loss_out = loss;

    snprintf(path, sizeof path, "%s/loss", g);
    if (ns_h5_write_scalar_f32(f, path, (float)loss, err) < 0)
        return -1;
    if (ns_norm_scheme_for(m->cfg.norm)->has_penalty) {
        snprintf(path, sizeof path, "%s/penalty", g);
        if (ns_h5_write_scalar_f32(f, path, (float)m->penalty, err) < 0)
            return -1;
    }
    snprintf(path, sizeof path, "%s/grads", g);
    if (ns_write_tensors(f, path, &m->layout, m->grads, err) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/state_after", g);
    if (ns_write_norm_state(f, path, m, err) < 0)
        return -1;
    float lr = ns_lr_at(&opt->cfg, opt->t + 1);
    snprintf(path, sizeof path, "%s/lr", g);
    if (ns_h5_write_scalar_f32(f, path, lr, err) < 0)
        return -1;
    int rc = measure ? measure(ctx, f, k, m, &before, tokens, mask, err) : 0;
    ns_model_snapshot_free(&before);
    if (rc == 0)
        ns_adamw_step(opt, m->params, m->grads, lr);
    return rc;
}

static int write_f64(hid_t f, const char *group, const char *name, const double *v, int n,
                     char *err)
{
    char path[96];
    snprintf(path, sizeof path, "%s/%s", group, name);
    hsize_t dims[1] = {(hsize_t)n};
    return ns_h5_write(f, path, H5T_NATIVE_DOUBLE, v, n < 0 ? 0 : 1, dims, err);
}

/* A scalar string dataset (fixed length, ASCII). */
static int write_string(hid_t f, const char *path, const char *text, char *err)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(text));
    int rc = ns_h5_write(f, path, type, text, 0, NULL, err);
    H5Tclose(type);
    return rc;
}

int ns_debug_state_write_lipschitz(hid_t f, int k, const NsParamLayout *layout,
                                   const NsDebugLipschitz *lip, char *err)
{
    char g[48], path[96];
    snprintf(g, sizeof g, "step_%d/lipschitz", k);
    if (write_f64(f, g, "r", lip->r, lip->n_grid, err) < 0 ||
        write_f64(f, g, "grid_loss", lip->grid_loss, lip->n_grid + 1, err) < 0 ||
        write_f64(f, g, "grad_diff_norm", lip->grad_diff_norm, lip->n_grid, err) < 0 ||
        write_f64(f, g, "beta_smoothness", &lip->beta_smoothness, -1, err) < 0 ||
        write_f64(f, g, "hessian_top_eig", &lip->top_eig, -1, err) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/hessian_solver", g);
    if (write_string(f, path, lip->solver, err) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/hessian_iters", g);
    if (ns_h5_write_scalar_i64(f, path, lip->iters, err) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/start", g);
    if (ns_write_tensors(f, path, layout, lip->start, err) < 0)
        return -1;
    if (lip->samples <= 0)
        return 0;
    if (write_f64(f, g, "hessian_trace", &lip->trace, -1, err) < 0)
        return -1;
    for (int s = 0; s < lip->samples; s++) {
        snprintf(path, sizeof path, "%s/hutchinson/%d", g, s);
        if (ns_write_tensors(f, path, layout, lip->probes + (size_t)s * layout->total, err) < 0)
            return -1;
    }
    return 0;
}
