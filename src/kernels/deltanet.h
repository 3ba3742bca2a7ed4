/* The pieces of gated DeltaNet linear attention (qwen3next's recurrent
 * layers), one token at a time, on plain float arrays:
 *
 *   a causal depthwise convolution over the last d_conv inputs of each
 *   channel, with the d_conv - 1 before the current one kept as state;
 *
 *   the gated delta rule on one head's state matrix S (dv rows of dk):
 *     S <- decay * S + beta * (v - decay * S k) k^T,   out = S q
 *   with q and k L2-normalized (q also scaled by 1/sqrt(dk)) by the caller.
 *
 * As the reference engine computes them (ggml_ssm_conv, ggml_delta_net),
 * including its clamp of the state to +-1e6. */
#ifndef SD_KERNELS_DELTANET_H
#define SD_KERNELS_DELTANET_H

/* x[c] <- sum_j w[c * d_conv + j] * window_c[j] for channels [0, n), where
 * window_c is the channel's state (d_conv - 1 older inputs, oldest first)
 * followed by x[c]; the state then drops its oldest input for x[c]. */
void sd_conv_step(float *state, const float *w, float *x, int n, int d_conv);

/* x /= max(|x|, eps) (ggml_l2_norm). */
void sd_l2norm(float *x, int n, float eps);

/* One token of the gated delta rule on S (row i: dk values, the weights
 * that map keys to value component i); out: dv values. */
void sd_deltanet_step(float *S, const float *q, const float *k, const float *v, float decay, float beta, int dk,
                      int dv, float *out);

#endif
