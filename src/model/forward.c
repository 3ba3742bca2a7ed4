/* The llama-family forward pass (llama, mistral, qwen2, qwen3) over a batch
 * of tokens: embedding, then per layer RMSNorm -> attention with a KV cache ->
 * residual -> RMSNorm -> SwiGLU FFN -> residual, then the output projection. */
#include <math.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "model/moe.h"
#include "model/session.h"
#include "tensor/types.h"

/* Attention work is the sum over (token, KV head) items of the positions
 * each one sees; the threads take equal slices of it, cutting an item where a
 * slice ends. A cut item leaves a partial result per piece (max score, sum of
 * exponentials, unnormalized output, per query head) that the caller merges
 * after the run, so one KV head or one decoded token still keeps every
 * thread busy, and a causal prefill does not give the last thread the
 * longest rows. */
typedef struct {
    sd_session *s;
    int layer, n_tok;
    int64_t total;          /* positions summed over all items */
    float *part;            /* 2 records per thread; NULL: cut only between items */
    size_t part_floats;     /* floats per record */
} attn_job;

/* Record: [item, first position, pieces' max[group], sum[group], out[group * hd]]. */
#define PART_HDR 2

static int64_t item_start(const sd_session *s, int it)
{
    int nkv = s->m->hp.n_head_kv, t = it / nkv, h = it % nkv;
    return (int64_t)nkv * ((int64_t)t * (s->pos + 1) + (int64_t)t * (t - 1) / 2) + (int64_t)h * (s->pos + t + 1);
}

/* The item holding work offset w (w < total). */
static int item_of(const sd_session *s, int items, int64_t w)
{
    int lo = 0, hi = items - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (item_start(s, mid) <= w) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* Where slice ti of nt begins; on an item boundary when pieces cannot be kept. */
static int64_t slice_start(const attn_job *j, int ti, int nt)
{
    int64_t w = j->total * ti / nt;
    if (j->part || ti == 0 || w >= j->total) return w;
    int items = j->n_tok * j->s->m->hp.n_head_kv, it = item_of(j->s, items, w);
    int64_t a = item_start(j->s, it), b = it + 1 < items ? item_start(j->s, it + 1) : j->total;
    return w - a <= b - w ? a : b;
}

/* The cache is laid out [layer][KV head][position][head_dim] (in kv_type):
 * one head's positions are adjacent, so attention streams them in order. */
static size_t kv_offset(const sd_session *s, int layer, int kvh, int pos)
{
    return (((size_t)layer * s->m->hp.n_head_kv + (size_t)kvh) * s->n_ctx + (size_t)pos) * s->kv_head;
}

/* Positions [p0, p1) of token t's query heads against KV head kvh: scores,
 * exponentials, and the weighted sum of V rows into o (group x hd, zeroed
 * here). Returns the max score and the sum of exponentials per head. */
static void attend_piece(const attn_job *j, int ti, int t, int kvh, int p0, int p1, float *o, float *mx, float *sum)
{
    sd_session *s = j->s;
    const sd_hparams *hp = &s->m->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, n = p1 - p0;
    uint32_t kt = (uint32_t)s->kv_type;
    const sd_type_traits *tr = sd_type_get(kt);
    size_t row = s->kv_head, at = kv_offset(s, j->layer, kvh, p0);
    const char *kh = (const char *)s->k_cache + at, *vh = (const char *)s->v_cache + at;
    float *att = s->att + (size_t)ti * group * s->n_ctx;
    float *vbuf = s->att_tmp + (size_t)ti * SD_ATT_TMP(hd, group), *qenc = vbuf + hd + 32;
    size_t qenc_stride = (size_t)hd + 32;   /* floats per encoded head (any format fits) */
    float scale = 1.0f / sqrtf((float)hd);
    const float *q = s->q + ((size_t)t * hp->n_head + (size_t)kvh * group) * hd;
    sd_attn_score_fn score = hd % 8 ? NULL : sd_kernel_attn_score(kt);
    sd_attn_accum_fn accum = hd % 8 ? NULL : sd_kernel_attn_accum(kt);

    if (score) {
        /* q rounded to the cache's precision (F16 keys: as the reference
         * engines score them), held as F32 for the block kernel. */
        const float *qf = q;
        if (tr->vec_dot_type != SD_TYPE_F32) {
            sd_from_float_fn enc = sd_kernel_quantize_act((uint32_t)tr->vec_dot_type);
            sd_to_float_fn deq = sd_kernel_to_float((uint32_t)tr->vec_dot_type);
            for (int g = 0; g < group; g++) {
                enc(q + (size_t)g * hd, vbuf, hd);
                deq(vbuf, qenc + (size_t)g * hd, hd);
            }
            qf = qenc;
        }
        score(hd, kh, row, n, qf, group, scale, att, (size_t)s->n_ctx);
    } else {
        /* Each key in the format's own dot product against q encoded once. */
        sd_vec_dot_fn dot = sd_kernel_vec_dot(kt);
        sd_from_float_fn enc = sd_kernel_quantize_act((uint32_t)tr->vec_dot_type);
        const void *qx[SD_MAX_GROUP];
        for (int g = 0; g < group; g++) {
            qx[g] = q + (size_t)g * hd;
            if (tr->vec_dot_type != SD_TYPE_F32) {
                enc(q + (size_t)g * hd, qenc + g * qenc_stride, hd);
                qx[g] = qenc + g * qenc_stride;
            }
        }
        for (int p = 0; p < n; p++)
            for (int g = 0; g < group; g++) att[(size_t)g * s->n_ctx + p] = dot(hd, kh + (size_t)p * row, qx[g]) * scale;
    }
    sd_exp_sum_fn exp_sum = sd_kernel_exp_sum();
    for (int g = 0; g < group; g++) sum[g] = exp_sum(att + (size_t)g * s->n_ctx, n, &mx[g]);
    memset(o, 0, (size_t)group * hd * sizeof(float));
    if (accum) {
        accum(hd, vh, row, n, att, (size_t)s->n_ctx, group, o);
        return;
    }
    /* Each V row widened once, shared by the group's query heads. */
    sd_to_float_fn deq = sd_kernel_to_float(kt);
    for (int p = 0; p < n; p++) {
        const float *v = (const float *)(vh + (size_t)p * row);
        if (kt != SD_TYPE_F32) { deq(vh + (size_t)p * row, vbuf, hd); v = vbuf; }
        for (int g = 0; g < group; g++) {
            float a = att[(size_t)g * s->n_ctx + p], *og = o + (size_t)g * hd;
            for (int i = 0; i < hd; i++) og[i] += a * v[i];
        }
    }
}

/* A head's attention sink (gpt-oss): one more term of the softmax
 * denominator, exp(sink - max), that carries no value. */
static float sink_term(const attn_job *j, int head, float mx)
{
    const float *sinks = j->s->m->layers[j->layer].attn_sinks;
    return sinks ? expf(sinks[head] - mx) : 0.0f;
}

static void attention(void *ctx, int ti, int nt)
{
    const attn_job *j = ctx;
    sd_session *s = j->s;
    const sd_hparams *hp = &s->m->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, nkv = hp->n_head_kv, items = j->n_tok * nkv;
    int64_t w = slice_start(j, ti, nt), w1 = slice_start(j, ti + 1, nt);
    float mx[SD_MAX_GROUP], sum[SD_MAX_GROUP];
    if (j->part)
        for (int k = 0; k < 2; k++) {
            int none = -1;
            memcpy(j->part + (size_t)(2 * ti + k) * j->part_floats, &none, sizeof none);
        }
    while (w < w1) {
        int it = item_of(s, items, w), t = it / nkv, kvh = it % nkv, len = s->pos + t + 1;
        int64_t a = item_start(s, it);
        int p0 = (int)(w - a), p1 = w1 - a < len ? (int)(w1 - a) : len;
        if (p0 == 0 && p1 == len) {
            float *o = s->att_out + ((size_t)t * hp->n_head + (size_t)kvh * group) * hd;
            attend_piece(j, ti, t, kvh, p0, p1, o, mx, sum);
            for (int g = 0; g < group; g++) {
                float inv = 1.0f / (sum[g] + sink_term(j, kvh * group + g, mx[g])), *og = o + (size_t)g * hd;
                for (int i = 0; i < hd; i++) og[i] *= inv;
            }
        } else {
            /* A piece: the first of this slice (p0 > 0) or its last. */
            float *r = j->part + (size_t)(2 * ti + (p0 > 0 ? 0 : 1)) * j->part_floats;
            memcpy(r, &it, sizeof it);
            memcpy(r + 1, &p0, sizeof p0);
            attend_piece(j, ti, t, kvh, p0, p1, r + PART_HDR + 2 * group, r + PART_HDR, r + PART_HDR + group);
        }
        w = a + p1;
    }
}

/* Joins the pieces of the items the slices cut (records in position order). */
static void merge_pieces(const attn_job *j, int nt)
{
    const sd_hparams *hp = &j->s->m->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, nkv = hp->n_head_kv;
    float *acc = NULL;
    int cur = -1;
    for (int k = 0; k <= 2 * nt; k++) {
        float *r = k < 2 * nt ? j->part + (size_t)k * j->part_floats : NULL;
        int it = -1;
        if (r) memcpy(&it, r, sizeof it);
        if (r && it < 0) continue;
        if (acc && (!r || it != cur)) {
            int t = cur / nkv, kvh = cur % nkv;
            float *o = j->s->att_out + ((size_t)t * hp->n_head + (size_t)kvh * group) * hd;
            for (int g = 0; g < group; g++) {
                float inv = 1.0f / (acc[PART_HDR + group + g] + sink_term(j, kvh * group + g, acc[PART_HDR + g]));
                for (int i = 0; i < hd; i++) o[(size_t)g * hd + i] = acc[PART_HDR + 2 * group + (size_t)g * hd + i] * inv;
            }
            acc = NULL;
        }
        if (!r) break;
        if (!acc) { acc = r; cur = it; continue; }
        for (int g = 0; g < group; g++) {   /* fold r into acc, rescaled to the larger max */
            float ma = acc[PART_HDR + g], mr = r[PART_HDR + g], m = ma > mr ? ma : mr;
            float ca = expf(ma - m), cr = expf(mr - m);
            acc[PART_HDR + g] = m;
            acc[PART_HDR + group + g] = acc[PART_HDR + group + g] * ca + r[PART_HDR + group + g] * cr;
            float *oa = acc + PART_HDR + 2 * group + (size_t)g * hd, *orr = r + PART_HDR + 2 * group + (size_t)g * hd;
            for (int i = 0; i < hd; i++) oa[i] = oa[i] * ca + orr[i] * cr;
        }
    }
}

#define SMALL_ATTENTION 256

static void run_attention(sd_session *s, int il, int n)
{
    const sd_hparams *hp = &s->m->hp;
    int nt = sd_pool_size(s->pool), group = hp->n_head / hp->n_head_kv;
    attn_job j = {s, il, n, 0, NULL, 0};
    for (int t = 0; t < n; t++) j.total += (int64_t)hp->n_head_kv * (s->pos + t + 1);
    /* The pieces' records borrow the FFN scratch, idle during attention. */
    j.part_floats = PART_HDR + (size_t)group * (2 + (size_t)hp->head_dim);
    if (nt > 1 && (size_t)2 * nt * j.part_floats <= (size_t)SD_UBATCH * hp->n_ff) j.part = s->hb;
    /* A few hundred (position, KV head) pairs take less time than waking the
     * pool: the first tokens of a decode, tiny models. */
    if (j.total <= SMALL_ATTENTION) {
        j.part = NULL;
        attention(&j, 0, 1);
        return;
    }
    sd_pool_run(s->pool, attention, &j);
    if (j.part) merge_pieces(&j, nt);
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
    /* Each product names the one after it, for the threads to prefetch. */
    const sd_weight *qkv[3] = {&L->wq, &L->wk, &L->wv}, *wo = &L->wo, *gu[2] = {&L->w_gate, &L->w_up};
    const sd_weight *down = &L->w_down, *next_qkv[3] = {&m->output}, *const *after = next_qkv;
    int n_after = 1;
    if (il + 1 < hp->n_layer) {
        const sd_layer *N = &m->layers[il + 1];
        next_qkv[0] = &N->wq; next_qkv[1] = &N->wk; next_qkv[2] = &N->wv;
        n_after = 3;
    }
    float *const qkv_out[3] = {s->q, s->k, s->v};
    sd_matmul_multi(s->pool, qkv, 3, s->xb, n, qkv_out, s->xq, &wo, 1);
    const sd_rope_yarn *yarn = m->yarn.freq_scale > 0 ? &m->yarn : NULL;
    add_bias(s->q, L->bq, n, qd);
    add_bias(s->k, L->bk, n, kvd);
    add_bias(s->v, L->bv, n, kvd);
    sd_from_float_fn kv_enc = sd_kernel_quantize_act((uint32_t)s->kv_type);
    for (int t = 0; t < n; t++) {
        float *q = s->q + (size_t)t * qd, *k = s->k + (size_t)t * kvd;
        if (L->q_norm) {
            for (int h = 0; h < hp->n_head; h++) sd_rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, hp->norm_eps);
            for (int h = 0; h < hp->n_head_kv; h++) sd_rmsnorm(k + h * hd, k + h * hd, L->k_norm, hd, hp->norm_eps);
        }
        int pos = s->pos + t;
        sd_rope_ext(q, hp->n_head, k, hp->n_head_kv, hd, pos, L->rope_base, hp->rope_scale, hp->rope_neox,
                    m->rope_freq_factors, yarn);
        for (int h = 0; h < hp->n_head_kv; h++) {
            size_t at = kv_offset(s, il, h, pos);
            kv_enc(k + (size_t)h * hd, (char *)s->k_cache + at, hd);
            kv_enc(s->v + (size_t)t * kvd + (size_t)h * hd, (char *)s->v_cache + at, hd);
        }
    }
    run_attention(s, il, n);
    sd_matmul_multi(s->pool, &wo, 1, s->att_out, n, &s->xb, s->xq, L->moe ? NULL : gu, L->moe ? 0 : 2);
    add_bias(s->xb, L->bo, n, e);
    for (size_t i = 0; i < (size_t)n * e; i++) s->x[i] += s->xb[i];

    for (int t = 0; t < n; t++) sd_rmsnorm(s->xb + (size_t)t * e, s->x + (size_t)t * e, L->ffn_norm, e, hp->norm_eps);
    if (L->moe) {
        sd_moe_ffn(s, il, n);   /* model/ffn_moe.c: adds into s->x */
        return;
    }
    float *const gu_out[2] = {s->hb, s->hb2};
    sd_matmul_multi(s->pool, gu, 2, s->xb, n, gu_out, s->xq, &down, 1);
    sd_kernel_swiglu()(s->hb, s->hb2, (int64_t)n * ff);
    sd_matmul_multi(s->pool, &down, 1, s->hb, n, &s->xb, s->xq, after, n_after);
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
    /* The next token starts with the first layer's Q, K and V. */
    const sd_weight *out_w = &m->output, *next[3] = {NULL};
    if (hp->n_layer) {
        next[0] = &m->layers[0].wq; next[1] = &m->layers[0].wk; next[2] = &m->layers[0].wv;
    }
    float *out = logits_out ? logits_out : s->logits;
    sd_matmul_multi(s->pool, &out_w, 1, s->xb, rows, &out, s->xq, hp->n_layer ? next : NULL, 3);
    s->pos += n;
}
