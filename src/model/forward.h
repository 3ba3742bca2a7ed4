/* The batched forward pass: tokens of several sequences in one pass through
 * the layers, each with its position and its sequence's blocks in the paged
 * KV cache. Matrix products run over all the batch's tokens at once;
 * attention runs per token over its own sequence's cached positions.
 *
 * Each token's result depends only on its own sequence (not on the batch it
 * shares, nor on the thread count) as far as attention goes: a token's
 * positions are cut into chunks of SD_ATT_CHUNK at fixed positions, each
 * chunk's partial softmax is computed alone and the chunks are folded in
 * order. (Matrix products: see docs/ARCHITECTURE.md, determinism.) */
#ifndef SD_FORWARD_H
#define SD_FORWARD_H

#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/pool.h"

#define SD_ATT_CHUNK 256   /* positions per attention work unit; a multiple of SD_KV_BLOCK */
/* Per-thread attention scratch (floats) for head_dim d and g query heads per
 * KV head: one widened V row and g encoded query heads. */
#define SD_ATT_TMP(d, g) (((size_t)(g) + 1) * ((size_t)(d) + 32))
#define SD_MAX_GROUP 64    /* query heads per KV head we accept */

typedef struct {
    int n;                 /* tokens */
    const int32_t *tok;
    const int *pos;        /* each token's position in its sequence */
    const int *seq;        /* each token's sequence in the KV cache */
    const int *out;        /* n_out tokens (ascending indices) whose logits are wanted */
    int n_out;
} sd_batch;

typedef struct {
    int t, kvh;            /* token, KV head */
    int p0, p1, lo;        /* positions [p0, p1) scored; those below lo masked (window) */
    int rec;               /* -1: the item's only chunk (written to att_out); else its record */
    int64_t start;         /* work before it in the run */
} sd_att_unit;

typedef struct {
    sd_model *m;
    sd_pool *pool;
    sd_kv_cache *kv;
    int max_tok;
    float *x, *xb, *q, *k, *v, *att_out, *hb, *hb2;
    float *att;            /* per thread: SD_ATT_CHUNK scores for each head of a KV group */
    float *att_tmp;        /* per thread: SD_ATT_TMP floats */
    void *xq;              /* activations converted for the weight format */
    sd_att_unit *units;
    int max_units, max_recs;
    float *recs;           /* partial softmax per record: max[g], sum[g], out[g * hd] */
    float *moe;            /* MoE FFN scratch (model/moe.h), or NULL for a dense model */
    float *qnext;          /* qwen3next's scratch (model/arch_qwen3next.h), or NULL */
    int32_t *moe_ids;      /* the last pass's chosen experts, moe_n tokens */
    int moe_n;
    struct sd_gpu_state *gpu;   /* KV cache and scratch of the GPU layers (model/offload.c), or NULL */
    int gpu_paged;         /* gpu is the serving engine's paged pool, mirroring kv's blocks (sd_offload_engine_new) */
    char *gpu_err;         /* set when a GPU step failed: that batch's results are void */
} sd_fwd;

/* Scratch for batches of up to max_tok tokens over the cache kv. */
int sd_fwd_init(sd_fwd *f, sd_model *m, sd_kv_cache *kv, int max_tok, int n_threads, char *err);
void sd_fwd_free(sd_fwd *f);
/* Runs b (b->n <= max_tok; every position's block allocated, sliding
 * layers' windows held: sd_kv_seq_window; positions before a token's own
 * are cached or earlier in b) and writes the logits of
 * b->out's tokens, n_vocab floats each, to logits. */
void sd_forward_batch(sd_fwd *f, const sd_batch *b, float *logits);
/* Attention of layer il for b's tokens: f->q against the keys and values
 * cached in the KV cache's layer kvl, into f->att_out (for architectures
 * with their own layer code and fewer attention layers than layers). */
void sd_fwd_attention(sd_fwd *f, const sd_batch *b, int il, int kvl);

#endif
