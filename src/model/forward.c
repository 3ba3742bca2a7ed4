/* The llama-family forward pass (llama, mistral, qwen2, qwen3) over a batch
 * of tokens: embedding, then per layer RMSNorm -> attention with a KV cache ->
 * residual -> RMSNorm -> SwiGLU FFN -> residual, then the output projection. */
#include <math.h>
#include <string.h>

#include "kernels/ops.h"
#include "model/session.h"
#include "tensor/types.h"

/* Cache rows are stored in the session's KV format and read back as F32. */
static void kv_store(const sd_session *s, void *dst, const float *src, int n)
{
    if (s->kv_type == SD_KV_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else {
        uint16_t *d = dst;
        for (int i = 0; i < n; i++) d[i] = sd_f32_to_f16(src[i]);
    }
}

static float kv_dot(const sd_session *s, const void *row, const float *q, int n)
{
    float sum = 0;
    if (s->kv_type == SD_KV_F32) {
        const float *r = row;
        for (int i = 0; i < n; i++) sum += r[i] * q[i];
    } else {
        const uint16_t *r = row;
        for (int i = 0; i < n; i++) sum += sd_f16_to_f32(r[i]) * q[i];
    }
    return sum;
}

static void kv_axpy(const sd_session *s, float *out, float a, const void *row, int n)
{
    if (s->kv_type == SD_KV_F32) {
        const float *r = row;
        for (int i = 0; i < n; i++) out[i] += a * r[i];
    } else {
        const uint16_t *r = row;
        for (int i = 0; i < n; i++) out[i] += a * sd_f16_to_f32(r[i]);
    }
}

typedef struct {
    sd_session *s;
    int layer, n_tok;
} attn_job;

/* One (token, head) pair per work item, spread over the threads. */
static void attention(void *ctx, int ti, int nt)
{
    const attn_job *j = ctx;
    sd_session *s = j->s;
    const sd_hparams *hp = &s->m->hp;
    int hd = hp->head_dim, kv_dim = hp->n_head_kv * hd, group = hp->n_head / hp->n_head_kv;
    size_t row = (size_t)kv_dim * s->kv_elem;
    const char *kc = (const char *)s->k_cache + (size_t)j->layer * s->n_ctx * row;
    const char *vc = (const char *)s->v_cache + (size_t)j->layer * s->n_ctx * row;
    float *att = s->att + (size_t)ti * s->n_ctx;
    float scale = 1.0f / sqrtf((float)hd);
    int items = j->n_tok * hp->n_head;
    for (int it = items * ti / nt; it < items * (ti + 1) / nt; it++) {
        int t = it / hp->n_head, h = it % hp->n_head, kvh = h / group;
        int len = s->pos + t + 1;   /* causal: this token sees itself and all before */
        const float *q = s->q + (size_t)t * hp->n_head * hd + (size_t)h * hd;
        for (int p = 0; p < len; p++)
            att[p] = kv_dot(s, kc + (size_t)p * row + (size_t)kvh * hd * s->kv_elem, q, hd) * scale;
        sd_softmax(att, len);
        float *o = s->att_out + (size_t)t * hp->n_head * hd + (size_t)h * hd;
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int p = 0; p < len; p++) kv_axpy(s, o, att[p], vc + (size_t)p * row + (size_t)kvh * hd * s->kv_elem, hd);
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
    size_t row = (size_t)kvd * s->kv_elem;
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
        kv_store(s, (char *)s->k_cache + at, k, kvd);
        kv_store(s, (char *)s->v_cache + at, s->v + (size_t)t * kvd, kvd);
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
