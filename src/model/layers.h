/* The model's building blocks other than attention and normalization, each a forward/backward
 * pair on plain row-major float arrays. Row r of an [N][*] array is position (b,t), r = b*T + t.
 * Backward functions ACCUMULATE into parameter gradients (so the caller zeroes them once per
 * step) and OVERWRITE the input gradient unless their name says otherwise. */
#ifndef NS_LAYERS_H
#define NS_LAYERS_H

#include <stdint.h>

#include "util.h"

/* x[r] = sqrt(d) * embed[tokens[b][t]] + PE[t]; tokens has row stride T+1 (a batch row). */
void ns_embed_forward(float *x, const int32_t *tokens, const float *embed, const float *pe, int B,
                      int T, int d);
void ns_embed_backward(float *dembed, const float *dx, const int32_t *tokens, int B, int T, int d);
void ns_positional_table(float *pe, int T, int d); /* interleaved sinusoid of model-spec.md */

/* y[N][out] = x[N][in] W^T + b  (W is [out][in], like nn.Linear; b may be NULL). */
void ns_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int in,
                       int out);
/* dx = dy W (if dx != NULL; accumulate when accumulate_dx), dW += dy^T x, db += sum_rows dy. */
void ns_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                        const float *W, int N, int in, int out, int accumulate_dx);

void ns_relu_forward(float *y, const float *x, size_t n);
/* dx = dy * (y > 0), in place allowed. */
void ns_relu_backward(float *dx, const float *dy, const float *y, size_t n);

/* Inverted dropout: keep with probability 1-p and scale by 1/(1-p). `keep` records the mask
 * (0 or 1/(1-p)) so backward is a multiply. p == 0 copies. */
void ns_dropout_forward(float *y, const float *x, float *keep, float p, size_t n, NsRng *rng);
void ns_dropout_backward(float *dx, const float *dy, const float *keep, float p, size_t n);

/* y = a + b elementwise. */
void ns_add(float *y, const float *a, const float *b, size_t n);
void ns_add_inplace(float *y, const float *a, size_t n);

/* Softmax cross-entropy over real positions. logits [N][V] are turned into probabilities in
 * place. Returns the mean loss over rows with mask != 0 (0 if none). */
double ns_xent_forward(float *probs_inout, const int32_t *tokens, const uint8_t *mask, int B,
                       int T, int V);
/* dlogits = (probs - onehot(target)) / n_real at real rows, 0 elsewhere (in place over probs). */
void ns_xent_backward(float *dlogits_inout, const int32_t *tokens, const uint8_t *mask, int B,
                      int T, int V);
/* Both at once (src/model/xent.c), as training needs them: logits become dlogits in place and
 * the mean loss is returned. Padded rows get 0 without computing their softmax. */
double ns_xent_forward_backward(float *logits_inout, const int32_t *tokens, const uint8_t *mask,
                                int B, int T, int V);

#endif
