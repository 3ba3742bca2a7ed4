/* Qwen3-Next (qwen3next) as the reference fork builds it (ik_llama.cpp's
 * build_qwen3next and delta_net):
 *
 *   layers with (il + 1) % full_attention_interval == 0: gated attention
 *     h = RMSNorm(x); attn_q gives per head [query | gate] (twice as wide);
 *     per-head RMSNorm of q and k, RoPE (NeoX) on the first
 *     rope.dimension_count values of each head, attention, then the output
 *     times sigmoid(gate) -> attn_output;  x += that
 *   the others: gated DeltaNet linear attention (kernels/deltanet.h)
 *     h = RMSNorm(x); attn_qkv(h) = [q (key_dim) | k (key_dim) | v (value_dim)]
 *     -> causal conv1d (ssm_conv1d, ssm.conv_kernel taps) -> SiLU; z = attn_gate(h);
 *     ssm_ba(h) per key head g: [beta (r) | alpha (r)] of its r = value/key heads;
 *     beta = sigmoid, decay = exp(softplus(alpha + ssm_dt.bias) * ssm_a);
 *     q, k L2-normalized per head (value head h uses key head h / r), q / sqrt(dk);
 *     delta rule per value head; out = RMSNorm(o) * ssm_norm * SiLU(z) -> ssm_out;
 *     x += that
 *   then h = RMSNorm(x) with post_attention_norm; routed experts (softmax,
 *   top k, renormalized) plus the shared expert *_shexp scaled by
 *   sigmoid(ffn_gate_inp_shexp . h);  x += that.
 *
 * Keys: ssm.conv_kernel, ssm.state_size (key head size), ssm.group_count
 * (key heads), ssm.time_step_rank (value heads), ssm.inner_size (value
 * heads x value head size), full_attention_interval (default 4),
 * expert_shared_feed_forward_length. The fork's delta kernel needs value
 * heads as large as key heads; files where they differ are refused. The
 * first converters' fused ssm_in (per key head: q, k, v, z) loads too.
 *
 * A recurrent layer keeps, per sequence, its convolution's last inputs and
 * each value head's state matrix: the KV cache's per-sequence state slot
 * (model/kv_cache.h), zeroed when the sequence is released or when a token
 * at position 0 arrives; a sequence's run of positions in a batch goes
 * through the delta rule in chunks (sd_deltanet_run), and its state is also
 * copied to an armed snapshot as the run passes its position (the prefix
 * cache's, model/kv_cache.h). Its matrices sit in the layer's ordinary slots:
 * wq = attn_qkv, wk = attn_gate (or wq = the fused ssm_in, wk empty),
 * wv = ssm_ba, wo = ssm_out; in MoE layers
 * w_gate/w_up/w_down hold the shared expert. */
#ifndef SD_MODEL_ARCH_QWEN3NEXT_H
#define SD_MODEL_ARCH_QWEN3NEXT_H

#include <stddef.h>

#include "model/forward.h"
#include "model/model.h"

struct sd_qnext {
    int d_conv, head_k, n_k_heads, n_v_heads, head_v, interval, n_rot, n_ff_shexp;
    int key_dim, value_dim, conv_dim;
    int n_recurrent;
    int *rec_index;               /* per layer: its index among the recurrent layers, or -1 */
    int *kv_index;                /* per layer: its index among the attention layers (KV cache planes), or -1 */
    size_t layer_state;           /* floats of state per recurrent layer and sequence */
    int chunk;                    /* tokens per chunk of the delta rule's prefill (sd_deltanet_run; <= 1: token
                                     by token), SHOWDOWN_DELTANET_CHUNK overrides the default */
};

struct sd_qnext_layer {
    float *conv;                  /* conv_dim x d_conv taps */
    float *dt_bias, *a;           /* per value head */
    float *ssm_norm;              /* head_v */
    float *shexp_gate;            /* n_embd, or NULL */
    int fused;                    /* wq is the fused ssm_in (q, k, v, z per key head), wk empty */
};

/* Reads the qwen3next keys after the common ones; refuses inconsistent ones
 * naming the file and the key. */
int sd_qnext_hparams(sd_model *m, char *err);
/* Layer il's attention or recurrent part and its shared expert (norms and
 * routed experts are the common loader's). */
int sd_qnext_layer(sd_model *m, int il, char *err);
void sd_qnext_free(sd_model *m);

/* Bytes of recurrent state per sequence (0 for other models). */
size_t sd_qnext_state_bytes(const sd_model *m);
/* Floats of forward-pass scratch for batches of max_tok tokens on n_threads (0 for other models). */
size_t sd_qnext_scratch_floats(const sd_model *m, int max_tok, int n_threads);
/* Layer il over batch b (in place of the llama-family layer). */
void sd_qnext_forward_layer(sd_fwd *f, const sd_batch *b, int il);

#endif
