/* Finite-difference checks of backward passes against their forward passes (test_gradients.c,
 * test_model_gradients.c).
 *
 * Each check uses a scalar objective L = sum(w .* out) with fixed random weights w (so dL/dout = w
 * is what the backward receives; the whole-model checks use the loss itself), perturbs one input
 * or parameter coordinate at a time (float32 values, objective summed in double), estimates the
 * derivative with a central stencil and requires |a - n| <= 1e-2 * max(|n|, scale), scale = the
 * RMS of the analytic gradient over the tensor. Coordinates are drawn with a seeded RNG, so a
 * failure is reproducible. In the whole model ReLU kinks make some difference quotients
 * meaningless; the objective reports when a ReLU changed side, and fd_estimate avoids that side. */
#ifndef NS_TEST_FDCHECK_H
#define NS_TEST_FDCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define TOL 1e-2

float *falloc(size_t n); /* zeroed */
void fill_normal(float *x, size_t n, double mean, double std, NsRng *rng);
void fill_uniform(float *x, size_t n, double lo, double hi, NsRng *rng);
double wsum(const float *w, const float *y, size_t n);
double rms(const float *g, size_t n);

/* mask[b][t] = t < len[b]: padding at the tail of each sequence, as the batcher makes it. */
void make_mask(uint8_t *mask, const int *len, int B, int T);

typedef double (*ObjFn)(void *ctx);

/* Set by an objective whose evaluation put some ReLU input on the other side of 0 than at the
 * unperturbed point: the objective is not smooth between the two points, so that side's
 * difference quotient says nothing about the gradient. */
extern int fd_crossed;

/* Compares grad[i] with a finite-difference estimate for `samples` coordinates drawn without
 * replacement (all if samples >= n); scale <= 0 means the RMS of grad. A coordinate with kinks
 * on both sides is retried with h/4; noisier estimates (one-sided, or h/4) are allowed 2 TOL,
 * i.e. their errors count half; at most half of the coordinates may remain unchecked. Returns
 * the worst relative error |a - n| / max(|n|, scale) and fails the test if it exceeds TOL. */
double fd_check(const char *what, ObjFn f, void *ctx, float *x, size_t n, const float *grad,
                size_t samples, float h, double scale, NsRng *rng);

#endif
