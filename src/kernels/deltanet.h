/* The pieces of gated DeltaNet linear attention (qwen3next's recurrent
 * layers) on plain float arrays:
 *
 *   a causal depthwise convolution over the last d_conv inputs of each
 *   channel, with the d_conv - 1 before the current one kept as state;
 *
 *   the gated delta rule on one head's state matrix S (dv x dk):
 *     S <- decay * S + beta * (v - decay * S k) k^T,   out = S q
 *   with q and k L2-normalized (q also scaled by 1/sqrt(dk)) by the caller,
 *   one token at a time or a run of tokens in chunks (the WY form).
 *
 * As the reference engine computes them (ggml_ssm_conv, ggml_delta_net),
 * including its clamp of the state to +-1e6 after every token.
 *
 * S is stored transposed, as the reference does: column j (the weights of
 * key component j, dv values) at S + j * dv, so every product runs along
 * contiguous dv-long rows. */
#ifndef SD_KERNELS_DELTANET_H
#define SD_KERNELS_DELTANET_H

#include <stddef.h>

/* x[c] <- sum_j w[c * d_conv + j] * window_c[j] for channels [0, n), where
 * window_c is the channel's state (d_conv - 1 older inputs, oldest first)
 * followed by x[c]; the state then drops its oldest input for x[c]. */
void sd_conv_step(float *state, const float *w, float *x, int n, int d_conv);

/* x /= max(|x|, eps) (ggml_l2_norm). */
void sd_l2norm(float *x, int n, float eps);

/* One token of the gated delta rule on S (dk columns of dv); out: dv values. */
void sd_deltanet_step(float *S, const float *q, const float *k, const float *v, float decay, float beta, int dk,
                      int dv, float *out);

#define SD_DELTANET_CHUNK_MAX 64

/* Floats of work space sd_deltanet_run needs for these head sizes. */
size_t sd_deltanet_work_floats(int dk, int dv);

/* n tokens of one head: token t's q and k (dk values) at q + t * ld_qk and
 * k + t * ld_qk, v at v + t * ld_v, beta and decay at beta[t * ld_g] and
 * decay[t * ld_g], its output (dv values) to out + t * ld_o.
 *
 * chunk <= 1: sd_deltanet_step token by token. Otherwise in chunks of that
 * many tokens (at most SD_DELTANET_CHUNK_MAX): the products inside a chunk
 * as small matrix products, S updated once per chunk. This equals the step
 * by step result but for rounding as long as the clamp cannot act; a chunk
 * where it might (|S| + sum of beta |v| could reach 1e6, or a decay, beta
 * or |k| outside [0, 1]) runs token by token, so the clamp keeps its
 * per-token meaning. */
void sd_deltanet_run(float *S, const float *q, const float *k, size_t ld_qk, const float *v, size_t ld_v,
                     const float *beta, const float *decay, size_t ld_g, int n, int dk, int dv, float *out, size_t ld_o,
                     int chunk, float *work);

#endif
