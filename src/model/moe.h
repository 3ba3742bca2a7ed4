/* Mixture-of-experts FFN: a router picks k of n experts per token, each a
 * gated FFN of its own, and their outputs are summed with the router's
 * weights. Expert e's matrices are views into the file's 3-D tensors (or
 * its older per-expert 2-D tensors), so each is an ordinary sd_weight that
 * the dense kernels multiply and kernels/pack.h repacks. */
#ifndef SD_MOE_H
#define SD_MOE_H

#include <pthread.h>
#include <stdatomic.h>

#include "model/model.h"
#include "model/forward.h"

#define SD_MOE_MAX_USED 64   /* experts per token we accept (real models use up to 10) */

typedef enum {
    SD_MOE_SOFTMAX_TOPK = 0,   /* qwen3moe, mixtral: softmax over all, top k, weights renormalized */
    SD_MOE_TOPK_SOFTMAX = 1,   /* gpt-oss: top k of the (biased) logits, softmax over those k */
} sd_moe_gating;

typedef enum {
    SD_MOE_SILU = 0,           /* silu(gate) * up */
    SD_MOE_SWIGLU_OAI = 1,     /* x = min(gate, 7), y = clamp(up, -7, 7), x * sigmoid(1.702 x) * (y + 1) */
} sd_moe_act;

struct sd_moe {
    int n_expert, n_used, n_ff;
    sd_moe_gating gating;
    sd_moe_act act;
    sd_weight router;                  /* n_expert rows of n_embd */
    float *router_b;                   /* n_expert, or NULL */
    sd_weight *gate, *up, *down;       /* n_expert each; gate/up: n_ff x n_embd, down: n_embd x n_ff */
    float *b_gate, *b_up, *b_down;     /* [expert][n_ff] (down: [expert][n_embd]), or NULL */
    int lazy_pack;                     /* experts are repacked at first use (moe_pack.c) */
    _Atomic unsigned char *ready;      /* per expert: its matrices are final (packed or left as they are) */
    pthread_mutex_t mu;                /* serializes packing */
};

/* Loads layer il's experts into m->layers[il].moe (hp->n_expert etc. already
 * checked). Returns 0, or -1 with one line naming the file and the tensor. */
int sd_moe_load_layer(sd_model *m, int il, char *err);
void sd_moe_free(sd_moe *moe);

/* Before experts are used: packs those of the list not yet packed, on up
 * to n_threads threads (moe_pack.c). A no-op once they all are. */
void sd_moe_prepare(const sd_model *m, sd_moe *moe, const int32_t *experts, int n, int n_threads);
/* Bytes of all expert matrices; switches lazy packing on or off for every layer. */
uint64_t sd_moe_expert_bytes(const sd_model *m);
void sd_moe_set_lazy_pack(sd_model *m, int on);

/* Floats of forward-pass scratch the MoE FFN needs for batches of max_tok
 * tokens (0 for a dense model), and the largest activation scratch of its
 * products. */
size_t sd_moe_scratch_floats(const sd_model *m, int max_tok);
size_t sd_moe_xq_bytes(const sd_model *m, int max_tok);

/* f->x[t] += MoE(f->xb[t]) for the n tokens of layer il (xb: the FFN-normed
 * input). Records the chosen experts in f->moe_ids. */
void sd_moe_ffn(sd_fwd *f, int il, int n);

/* The experts chosen for the tokens of the last forward pass (*n_tok of
 * them, at most max_tok): ids[(t * n_layer + layer) * k + j], highest
 * routing weight first, k = hp->n_expert_used. NULL for a dense model. */
const int32_t *sd_moe_ids(const sd_fwd *f, int *n_tok);

#endif
