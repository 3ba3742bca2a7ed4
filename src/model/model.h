/* The loaded model: hyper-parameters and views of the mapped weights. */
#ifndef SD_MODEL_H
#define SD_MODEL_H

#include "showdown.h"
#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "tensor/weight.h"

typedef struct sd_moe sd_moe;   /* model/moe.h */
struct sd_qnext;                /* model/arch_qwen3next.h */
struct sd_qnext_layer;

typedef struct {
    float *attn_norm, *ffn_norm;          /* owned F32 copies of the small vectors */
    float *bq, *bk, *bv, *bo;             /* attention biases (qwen2: q/k/v; gpt-oss: all four), or NULL */
    float *q_norm, *k_norm;               /* qwen3, gemma3 per-head norms (head_dim), or NULL */
    float *post_attn_norm, *post_ffn_norm; /* gemma3: norms of the attention and FFN outputs
                                             before each residual add, or NULL */
    float *attn_sinks;                    /* per query head: one extra logit in the softmax
                                             denominator that carries no value (gpt-oss), or NULL */
    int swa;                              /* sliding window: a token sees itself and the swa - 1
                                             positions before it; 0 = the whole context */
    float rope_base;                      /* this layer's RoPE base (gemma3's local layers differ) */
    float rope_scale;                     /* and its linear position scale (1 = none) */
    sd_weight wq, wk, wv, wo, w_gate, w_up, w_down;   /* the FFN three stay empty in a MoE layer */
    sd_moe *moe;                          /* routed experts replacing the dense FFN, or NULL */
    struct sd_qnext_layer *qn;            /* qwen3next's own parts of the layer, or NULL */
} sd_layer;

/* A layer's matrices in forward order, for array initializers:
 *     const sd_weight *lw[] = {SD_LAYER_MATRICES(L)}; */
#define SD_LAYER_MATRICES(L) &(L)->wq, &(L)->wk, &(L)->wv, &(L)->wo, &(L)->w_gate, &(L)->w_up, &(L)->w_down
#define SD_LAYER_N_MATRICES 7
/* More layers than this is a broken or hostile header (the largest models
 * have a few hundred); the loader and the planner refuse it. */
#define SD_MAX_LAYERS 4096

struct sd_model {
    char path[256];
    gguf_file *gguf;
    sd_hparams hp;
    sd_weight tok_embd, output;           /* output aliases tok_embd when tied */
    float *output_norm;
    float *rope_freq_factors;             /* head_dim/2 divisors (llama 3), or NULL */
    sd_rope_yarn yarn;                    /* YaRN scaling (gpt-oss); freq_scale 0 = none */
    int swa_window;                       /* gpt-oss: attention.sliding_window of its even layers */
    float embd_scale;                     /* multiplies the embedding rows (gemma3: sqrt(n_embd)), else 1 */
    float q_scale;                        /* multiplies q on top of attention's 1/sqrt(head_dim), else 1 */
    float logit_softcap;                  /* > 0: logits = c * tanh(logits / c) (gemma), 0 = none */
    int ffn_gelu;                         /* 1: GELU(gate) * up (gemma3), 0: SiLU(gate) * up */
    sd_layer *layers;
    sd_tokenizer *tok;
    uint64_t n_params, weight_bytes;
    char type_name[48];
    struct sd_offload *gpu;               /* layers placed on a GPU (model/offload.c), or NULL */
    char *chat_template;                  /* tokenizer.chat_template (NUL-terminated copy), or NULL */
    struct sd_model_packer *packer;       /* the repacking still to do (model/model_pack.c) */
    struct sd_qnext *qnext;               /* qwen3next's hyper-parameters, or NULL */
};

/* At load: plans repacking the layers' and the output's matrices for this
 * CPU's kernels (kernels/pack.h) when the copies fit in half the available
 * memory; the copying waits for sd_model_prepare (model/model_pack.c).
 * Returns 0, or -1 when out of memory. */
int sd_model_pack(sd_model *m);
/* Before a forward pass: packs the planned matrices on up to n_threads
 * threads and drops the mapped originals' pages, once (thread-safe; a
 * no-op after the first call). Returns how many this call packed. */
int sd_model_prepare(const sd_model *m, int n_threads);
void sd_model_packer_free(sd_model *m);
/* sd_weights_pack's callback (ctx: the sd_model): drops the mapped pages of a
 * packed original; the file stays in the page cache. */
void sd_model_drop_mapped(const sd_weight *w, void *ctx);

/* The loader's checked views (load.c) for the architectures' own tensors:
 * a matrix of rows x cols (kept mapped), a vector of n values (an owned F32
 * copy). optional: absence is no error (the vector stays NULL). */
int sd_load_matrix(sd_model *m, const char *name, int64_t cols, int64_t rows, int optional, sd_weight *w, char *err);
int sd_load_vector(sd_model *m, const char *name, int64_t n, int optional, float **out, char *err);

#endif
