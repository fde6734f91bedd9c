/* Causal multi-head self-attention core, between the fused QKV projection and the output
 * projection. qkv is [N][3d] with q | k | v side by side in each row; head h owns channels
 * [h*dk, (h+1)*dk) of each. Every (batch row, head) pair is a few small sgemms read straight out
 * of qkv through its leading dimension, so no head is ever copied out. */
#ifndef NS_ATTENTION_H
#define NS_ATTENTION_H

/* ctx [N][d] = softmax(q k^T / sqrt(dk), causal) v per head; probs [B][H][T][T] is kept for
 * backward (entries above the diagonal are exactly 0). */
void ns_attention_forward(float *ctx, float *probs, const float *qkv, int B, int T, int d, int H);

/* dqkv [N][3d] (overwritten) from dctx [N][d]. scratch must hold T*T floats. */
void ns_attention_backward(float *dqkv, const float *dctx, const float *qkv, const float *probs,
                           float *scratch, int B, int T, int d, int H);

#endif
