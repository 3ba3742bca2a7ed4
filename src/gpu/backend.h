/* The GPU backend boundary. A backend (Vulkan today; CUDA can sit beside it)
 * lists its devices, holds a model's layers on one device, and runs a range
 * of consecutive layers (and the output head) on activations handed over
 * from the host. It sees weights as sd_weight views and F32 vectors only:
 * no model types, so model/offload.c is the one place that knows both. */
#ifndef SD_GPU_BACKEND_H
#define SD_GPU_BACKEND_H

#include <stdint.h>

#include "tensor/weight.h"

typedef struct {
    char name[256];          /* "llvmpipe (LLVM 15.0.6, 256 bits)" */
    char driver[256];        /* "llvmpipe: Mesa 22.3.6 (LLVM 15.0.6)" */
    char api[32];            /* "Vulkan 1.3.230" */
    uint64_t mem_total;      /* bytes of the largest device-local heap */
    uint64_t mem_free;       /* free bytes as the driver reports them (the heap size when it cannot) */
    int software;            /* a CPU implementation (lavapipe, SwiftShader) */
} sd_gpu_device_info;

/* The hyper-parameters the layer kernels need. */
typedef struct {
    int n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab;
    float norm_eps;
    int rope_neox;                    /* 1: rotate halves; 0: adjacent pairs */
    const float *rope_freq_factors;   /* head_dim/2 divisors, or NULL */
    float q_scale;                    /* multiplies attention's 1/sqrt(head_dim) (gemma3 27B), else 1 */
    float logit_softcap;              /* > 0: logits = c tanh(logits / c) (gemma3), 0: none */
    int ffn_gelu;                     /* 1: GELU(gate) * up (gemma3, tanh form), 0: SiLU */
    /* YaRN (gpt-oss): yarn_freq_scale > 0 replaces the layers' linear scale
     * (kernels/ops.h sd_rope_yarn: freq_scale, corr_lo, corr_hi, mscale) */
    float yarn_freq_scale, yarn_corr_lo, yarn_corr_hi, yarn_mscale;
} sd_gpu_shape;

/* A layer's routed experts (qwen3moe, mixtral, gpt-oss), routed as
 * model/moe.h describes; every expert's matrices share one shape and format. */
typedef struct {
    int n_expert, n_used, n_ff;
    int topk_softmax;                    /* 0: softmax, top k, renormalized; 1: top k, softmax over k (gpt-oss) */
    int oai_swiglu;                      /* gpt-oss's clamped SwiGLU (else SiLU(gate) * up) */
    const sd_weight *router;             /* n_expert rows of n_embd */
    const float *router_b;               /* n_expert, or NULL */
    const sd_weight *gate, *up, *down;   /* n_expert views each (gate/up: n_ff x n_embd, down: n_embd x n_ff) */
    const float *b_gate, *b_up, *b_down; /* [expert][n_ff] ([expert][n_embd] for down), or NULL */
} sd_gpu_moe;

/* One transformer layer (llama/qwen2/qwen3/gemma3/qwen3moe/gpt-oss):
 * pre-norm attention with optional q/k/v/o biases, per-head q/k norms,
 * a sliding window and sinks, then a gated FFN or routed experts, each
 * sublayer's output optionally normed before its residual add. */
typedef struct {
    const float *attn_norm, *ffn_norm;   /* n_embd */
    const float *bq, *bk, *bv;           /* or NULL */
    const float *q_norm, *k_norm;        /* head_dim, or NULL */
    float rope_base, rope_scale;         /* this layer's RoPE base and linear position scale */
    const sd_weight *w[7];               /* q, k, v, o, gate, up, down (the FFN three unused with moe) */
    const float *post_attn_norm, *post_ffn_norm;   /* gemma3: norms of each sublayer's output, or NULL */
    int swa;                             /* sliding window (a token sees itself and swa - 1 before); 0: none */
    const float *bo;                     /* output projection's bias (gpt-oss), or NULL */
    const float *attn_sinks;             /* per query head: an extra softmax logit with no value, or NULL */
    const sd_gpu_moe *moe;               /* routed experts instead of the dense FFN, or NULL */
} sd_gpu_layer;

/* One forward step's work on a device: layers [layer_begin, layer_end) on
 * n_tok rows of x (n_tok x n_embd, updated in place), then, when output is
 * set, the final norm and output head on rows [first_row, n_tok) into
 * logits ((n_tok - first_row) x n_vocab; x is then left as it was). */
typedef struct {
    float *x;
    int n_tok, pos;
    int layer_begin, layer_end;
    int output, first_row;
    float *logits;
    int32_t *moe_ids;   /* or NULL: where the chosen experts of the step's layers go, as model/moe.h's
                           sd_moe_ids lays them out ([(t * n_layer + layer) * k + j], k of the model) */
    /* A paged step (a state from batch_new; NULL pos_of otherwise): token t
     * is at position pos_of[t] of sequence seq[t], whose position p lives
     * in row tables[seq[t]][p / block] * block + p % block of the device
     * cache; pos and first_row are unused, and the output head runs on rows
     * out[0..n_out) (ascending) into logits (n_out x n_vocab). */
    const int *pos_of, *seq;
    const int *const *tables;
    int n_seqs, block;
    const int *out;
    int n_out;
} sd_gpu_step;

typedef struct sd_gpu_model sd_gpu_model;   /* weights on one device */
typedef struct sd_gpu_state sd_gpu_state;   /* one session's KV cache and scratch there */

typedef struct {
    const char *name;   /* "vulkan" */
    /* Devices of this backend; 0 with a one-line reason in err when there is
     * no loader, no driver or no device (not an error: the CPU runs). */
    int (*list)(sd_gpu_device_info *out, int max, char *err);
    /* Whether the backend has a matrix kernel for weight format `type`. */
    int (*supports_type)(uint32_t type);
    int (*model_new)(int device, const sd_gpu_shape *shape, int n_layer, sd_gpu_model **out, char *err);
    /* Copies a layer's weights to the device (once, at load). */
    int (*upload_layer)(sd_gpu_model *g, int il, const sd_gpu_layer *L, char *err);
    int (*upload_output)(sd_gpu_model *g, const float *norm, const sd_weight *w, char *err);
    void (*model_free)(sd_gpu_model *g);
    /* KV cache (F16, or F32 when kv_f32) for the uploaded layers of an
     * n_ctx context and scratch for n_ubatch tokens per step. */
    int (*state_new)(sd_gpu_model *g, int n_ctx, int n_ubatch, int kv_f32, sd_gpu_state **out, char *err);
    void (*state_free)(sd_gpu_state *st);
    /* One command buffer for the whole step; -1 on device loss or a failed
     * allocation (the step's results are then not to be used). */
    int (*run)(sd_gpu_state *st, const sd_gpu_step *step, char *err);
    /* A line about how the device runs the model, for its placement line
     * (which prefill kernel, a path a self-check turned off), or NULL. */
    const char *(*notice)(const sd_gpu_model *g);
    /* The serving engine's state: a paged KV pool of n_pos positions (whole
     * blocks) for the uploaded layers, shared by n_seqs sequences through
     * their block tables, scratch for n_batch tokens a step and logits for
     * n_out of them. Freed with state_free; run takes paged steps on it. */
    int (*batch_new)(sd_gpu_model *g, int n_pos, int block, int n_seqs, int n_batch, int n_out, int kv_f32,
                     sd_gpu_state **out, char *err);
} sd_gpu_backend;

/* The backends compiled in, NULL-terminated (the Vulkan one first). */
extern const sd_gpu_backend *const sd_gpu_backends[];
extern const sd_gpu_backend sd_gpu_vulkan;

#endif
