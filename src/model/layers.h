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
/* The same for elements [skip, skip + n) of a tensor of skip + n + rest elements, whose masks are
 * drawn from rng in order: the rng ends where dropout over the whole tensor leaves it, so the
 * mask of an element does not depend on how the tensor is split over ranks. */
void ns_dropout_forward_part(float *y, const float *x, float *keep, float p, size_t n,
                             size_t skip, size_t rest, NsRng *rng);
void ns_dropout_backward(float *dx, const float *dy, const float *keep, float p, size_t n);

/* y = a + b elementwise. */
void ns_add(float *y, const float *a, const float *b, size_t n);
void ns_add_inplace(float *y, const float *a, size_t n);

/* Softmax cross-entropy over real positions. logits [N][V] are turned into probabilities in
 * place. Returns the mean loss over rows with mask != 0 (0 if none). */
double ns_xent_forward(float *probs_inout, const int32_t *tokens, const uint8_t *mask, int B,
                       int T, int V);
/* The three functions, with the loss and gradient divided by n_norm instead of this batch's
 * real positions: a rank's share of a batch divides by the real positions of the whole batch,
 * so the shares' losses and gradients add up to the batch's. */
double ns_xent_forward_n(float *probs_inout, const int32_t *tokens, const uint8_t *mask, int B,
                         int T, int V, int n_norm);
void ns_xent_backward_n(float *dlogits_inout, const int32_t *tokens, const uint8_t *mask, int B,
                        int T, int V, int n_norm);
double ns_xent_forward_backward_n(float *logits_inout, const int32_t *tokens,
                                  const uint8_t *mask, int B, int T, int V, int n_norm);
/* Real positions of a mask of n entries. */
int ns_count_real(const uint8_t *mask, size_t n);
/* dlogits = (probs - onehot(target)) / n_real at real rows, 0 elsewhere (in place over probs). */
void ns_xent_backward(float *dlogits_inout, const int32_t *tokens, const uint8_t *mask, int B,
                      int T, int V);
/* Both at once (src/model/xent.c), as training needs them: logits become dlogits in place and
 * the mean loss is returned. Padded rows get 0 without computing their softmax. */
double ns_xent_forward_backward(float *logits_inout, const int32_t *tokens, const uint8_t *mask,
                                int B, int T, int V);

#endif
