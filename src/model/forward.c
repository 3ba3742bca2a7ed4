/* The llama-family forward pass (llama, mistral, qwen2, qwen3) over a batch
 * of tokens: embedding, then per layer RMSNorm -> attention with a KV cache ->
 * residual -> RMSNorm -> SwiGLU FFN -> residual, then the output projection. */
#include <math.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "model/session.h"
#include "tensor/types.h"

typedef struct {
    sd_session *s;
    int layer, n_tok;
} attn_job;

/* One (token, KV head) pair per work item, spread over the threads. Scores
 * are the KV format's own dot product against each query head encoded once
 * in that format's activation type (F16 keys: q rounded to F16, as the
 * reference engines do); each cached V row is widened to F32 once and serves
 * all the query heads that share it (grouped-query attention). Widening K
 * too measured slower: the store-then-reload of the row stalls. */
static void attention(void *ctx, int ti, int nt)
{
    const attn_job *j = ctx;
    sd_session *s = j->s;
    const sd_hparams *hp = &s->m->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    uint32_t kt = (uint32_t)s->kv_type;
    const sd_type_traits *tr = sd_type_get(kt);
    sd_vec_dot_fn dot = sd_kernel_vec_dot(kt);
    sd_from_float_fn enc = sd_kernel_quantize_act((uint32_t)tr->vec_dot_type);
    sd_to_float_fn deq = sd_kernel_to_float(kt);
    size_t row = s->kv_row;
    const char *kc = (const char *)s->k_cache + (size_t)j->layer * s->n_ctx * row;
    const char *vc = (const char *)s->v_cache + (size_t)j->layer * s->n_ctx * row;
    float *att = s->att + (size_t)ti * group * s->n_ctx;
    float *vbuf = s->att_tmp + (size_t)ti * SD_ATT_TMP(hd, group), *qenc = vbuf + hd + 32;
    size_t qenc_stride = (size_t)hd + 32;   /* floats per encoded head (any format fits) */
    float scale = 1.0f / sqrtf((float)hd);
    int items = j->n_tok * hp->n_head_kv;
    for (int it = items * ti / nt; it < items * (ti + 1) / nt; it++) {
        int t = it / hp->n_head_kv, kvh = it % hp->n_head_kv;
        int len = s->pos + t + 1;   /* causal: this token sees itself and all before */
        const float *q = s->q + ((size_t)t * hp->n_head + (size_t)kvh * group) * hd;
        float *o = s->att_out + ((size_t)t * hp->n_head + (size_t)kvh * group) * hd;
        const char *kh = kc + (size_t)kvh * s->kv_head, *vh = vc + (size_t)kvh * s->kv_head;
        const void *qx[SD_MAX_GROUP];
        for (int g = 0; g < group; g++) {
            qx[g] = q + (size_t)g * hd;
            if (tr->vec_dot_type != SD_TYPE_F32) {
                enc(q + (size_t)g * hd, qenc + g * qenc_stride, hd);
                qx[g] = qenc + g * qenc_stride;
            }
        }
        for (int p = 0; p < len; p++) {
            const char *k = kh + (size_t)p * row;
            for (int g = 0; g < group; g++) att[(size_t)g * s->n_ctx + p] = dot(hd, k, qx[g]) * scale;
        }
        for (int g = 0; g < group; g++) sd_softmax(att + (size_t)g * s->n_ctx, len);
        memset(o, 0, (size_t)group * hd * sizeof(float));
        for (int p = 0; p < len; p++) {
            const float *v = (const float *)(vh + (size_t)p * row);
            if (kt != SD_TYPE_F32) { deq(vh + (size_t)p * row, vbuf, hd); v = vbuf; }
            for (int g = 0; g < group; g++) {
                float a = att[(size_t)g * s->n_ctx + p], *og = o + (size_t)g * hd;
                for (int i = 0; i < hd; i++) og[i] += a * v[i];
            }
        }
    }
}

static void add_bias(float *x, const float *b, int n_tok, int n)
{
    if (!b) return;
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < n; i++) x[(size_t)t * n + i] += b[i];
}

static void layer(sd_session *s, int il, int n)
{
    const sd_model *m = s->m;
    const sd_hparams *hp = &m->hp;
    const sd_layer *L = &m->layers[il];
    int e = hp->n_embd, hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd, ff = hp->n_ff;

    for (int t = 0; t < n; t++) sd_rmsnorm(s->xb + (size_t)t * e, s->x + (size_t)t * e, L->attn_norm, e, hp->norm_eps);
    const sd_weight *qkv[3] = {&L->wq, &L->wk, &L->wv};
    float *const qkv_out[3] = {s->q, s->k, s->v};
    sd_matmul_multi(s->pool, qkv, 3, s->xb, n, qkv_out, s->xq);
    add_bias(s->q, L->bq, n, qd);
    add_bias(s->k, L->bk, n, kvd);
    add_bias(s->v, L->bv, n, kvd);
    size_t row = s->kv_row;
    sd_from_float_fn kv_enc = sd_kernel_quantize_act((uint32_t)s->kv_type);
    for (int t = 0; t < n; t++) {
        float *q = s->q + (size_t)t * qd, *k = s->k + (size_t)t * kvd;
        if (L->q_norm) {
            for (int h = 0; h < hp->n_head; h++) sd_rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, hp->norm_eps);
            for (int h = 0; h < hp->n_head_kv; h++) sd_rmsnorm(k + h * hd, k + h * hd, L->k_norm, hd, hp->norm_eps);
        }
        int pos = s->pos + t;
        sd_rope(q, hp->n_head, hd, pos, hp->rope_base, hp->rope_scale, hp->rope_neox, m->rope_freq_factors);
        sd_rope(k, hp->n_head_kv, hd, pos, hp->rope_base, hp->rope_scale, hp->rope_neox, m->rope_freq_factors);
        size_t at = ((size_t)il * s->n_ctx + (size_t)pos) * row;
        kv_enc(k, (char *)s->k_cache + at, kvd);
        kv_enc(s->v + (size_t)t * kvd, (char *)s->v_cache + at, kvd);
    }
    attn_job aj = {s, il, n};
    sd_pool_run(s->pool, attention, &aj);
    sd_matmul(s->pool, &L->wo, s->att_out, n, s->xb, s->xq);
    for (size_t i = 0; i < (size_t)n * e; i++) s->x[i] += s->xb[i];

    for (int t = 0; t < n; t++) sd_rmsnorm(s->xb + (size_t)t * e, s->x + (size_t)t * e, L->ffn_norm, e, hp->norm_eps);
    const sd_weight *gu[2] = {&L->w_gate, &L->w_up};
    float *const gu_out[2] = {s->hb, s->hb2};
    sd_matmul_multi(s->pool, gu, 2, s->xb, n, gu_out, s->xq);
    for (size_t i = 0; i < (size_t)n * ff; i++) s->hb[i] = sd_silu(s->hb[i]) * s->hb2[i];
    sd_matmul(s->pool, &L->w_down, s->hb, n, s->xb, s->xq);
    for (size_t i = 0; i < (size_t)n * e; i++) s->x[i] += s->xb[i];
}

void sd_forward(sd_session *s, const int32_t *tokens, int n, float *logits_out)
{
    const sd_model *m = s->m;
    const sd_hparams *hp = &m->hp;
    int e = hp->n_embd;
    const sd_type_traits *et = sd_type_get(m->tok_embd.type);
    for (int t = 0; t < n; t++) {
        float *x = s->x + (size_t)t * e;
        et->to_float((const char *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes, x, e);
        for (int i = 0; i < e; i++) x[i] *= m->tok_embd.scale;
    }
    for (int il = 0; il < hp->n_layer; il++) layer(s, il, n);
    /* Only the rows asked for go through the (vocabulary-sized) output matrix. */
    int first = logits_out ? 0 : n - 1, rows = n - first;
    for (int t = first; t < n; t++)
        sd_rmsnorm(s->xb + (size_t)(t - first) * e, s->x + (size_t)t * e, m->output_norm, e, hp->norm_eps);
    sd_matmul(s->pool, &m->output, s->xb, rows, logits_out ? logits_out : s->logits, s->xq);
    s->pos += n;
}
