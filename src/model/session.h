/* An inference session: the KV cache, the activation scratch, the threads. */
#ifndef SD_SESSION_H
#define SD_SESSION_H

#include "model/model.h"
#include "runtime/pool.h"

#define SD_UBATCH 64   /* tokens per pass through the layers during prefill */
/* Per-thread attention scratch (floats) for head_dim d and g query heads per
 * KV head: one widened V row and g encoded query heads. */
#define SD_ATT_TMP(d, g) (((size_t)(g) + 1) * ((size_t)(d) + 32))
#define SD_MAX_GROUP 64   /* query heads per KV head we accept */

struct sd_session {
    sd_model *m;
    sd_pool *pool;
    int n_ctx, pos;
    sd_kv_type kv_type;        /* its value is the tensor type id (F32, F16, Q8_0) */
    size_t kv_row;             /* bytes of one cached position (all KV heads) */
    size_t kv_head;            /* bytes of one head's slice of it */
    void *k_cache, *v_cache;   /* [layer][KV head][n_ctx][head_dim], in kv_type */
    /* scratch, sized for SD_UBATCH tokens */
    float *x, *xb, *q, *k, *v, *att_out, *hb, *hb2;
    float *att;                /* per thread: n_ctx scores for each head of a KV group */
    float *att_tmp;            /* per thread: SD_ATT_TMP floats */
    void *xq;                  /* activations converted for the weight format */
    float *logits;             /* last row */
    float *moe;                /* MoE FFN scratch (model/moe.h), or NULL for a dense model */
    int32_t *moe_ids;          /* the last forward pass's chosen experts, moe_n tokens */
    int moe_n;
};

/* Runs n <= SD_UBATCH tokens at positions pos..pos+n-1 through the model.
 * logits_out: NULL (only the last row, into s->logits) or n rows. */
void sd_forward(sd_session *s, const int32_t *tokens, int n, float *logits_out);

#endif
