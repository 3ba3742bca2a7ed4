/* Gemma 3 on the llama-family forward pass, as the reference engine builds it
 * (llm_build_gemma3_iswa and its hyper-parameters):
 *
 *   x = embedding row * sqrt(n_embd)
 *   per layer: h = RMSNorm(x) -> Q, K, V -> per-head RMSNorm of Q and K
 *              -> RoPE (NeoX halves) -> attention, scale 1/sqrt(key_length)
 *              (the 62-layer 27B: 1/sqrt(n_embd / n_head)) -> attn_output
 *              -> post_attention_norm;  x += that
 *              h = RMSNorm(x) -> GELU-tanh(gate) * up -> down -> post_ffw_norm;  x += that
 *   logits = tied embedding . RMSNorm(x), then c * tanh(logits / c) when the
 *            file has final_logit_softcapping c
 *
 * Norm weights are used as stored (the converter already added Gemma's +1).
 * Sliding window: gemma3.attention.sliding_window (when present and > 0) on
 * the layers with il % 6 < 5, five of every six; those use RoPE base 10000
 * without scaling, the global ones rope.freq_base and the file's scaling. */
#ifndef SD_MODEL_ARCH_GEMMA3_H
#define SD_MODEL_ARCH_GEMMA3_H

#include "model/model.h"

/* Model-wide settings after the common hyper-parameters are read. */
int sd_gemma3_hparams(sd_model *m, char *err);
/* Layer il's window and RoPE, once its tensors are loaded. */
int sd_gemma3_layer(sd_model *m, int il, char *err);

#define SD_GEMMA3_SWA_PERIOD 6   /* every 6th layer (il % 6 == 5) attends to the whole context */
#define SD_GEMMA3_SWA_ROPE_BASE 10000.0f

#endif
