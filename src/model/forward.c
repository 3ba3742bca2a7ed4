/* The llama-family forward pass (llama, mistral, qwen2, qwen3, gemma3's and
 * gpt-oss's attention variants) over a batch of tokens from any sequences:
 * embedding, then per layer RMSNorm -> attention over the paged KV cache ->
 * residual -> RMSNorm -> SwiGLU FFN -> residual, then the output projection
 * for the tokens whose logits are wanted. Gemma 3's additions
 * (model/arch_gemma3.h): scaled embeddings, post-norms before each residual
 * add, GELU gating, logit soft-capping. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/geglu.h"
#include "kernels/ops.h"
#include "model/forward.h"
#include "model/arch_qwen3next.h"
#include "model/moe.h"
#include "model/offload.h"
#include "tensor/types.h"
#include "runtime/errf.h"

/* ---- attention ------------------------------------------------------------
 * Work units are (token, KV head, chunk of SD_ATT_CHUNK positions at fixed
 * offsets). An item (token, KV head) of one chunk is normalized straight
 * into att_out; the chunks of a longer item leave partial results (max
 * score, sum of exponentials, unnormalized output per query head) in
 * records folded in chunk order after the run. The threads take equal
 * slices of the work in whole units, so the result of a token never
 * depends on how the work was cut. */

typedef struct {
    sd_fwd *f;
    const sd_batch *b;
    int layer, kv_layer;   /* the model's layer; its planes in the KV cache */
    const sd_att_unit *u;
    int n_units;
    int64_t total;
} attn_job;

/* Positions [u->p0, u->p1) of token u->t's query heads against KV head
 * u->kvh: scores, exponentials (positions below u->lo count as absent), and
 * the weighted sum of V rows into o (group x hd, zeroed here). */
static void attend_unit(const attn_job *j, int ti, const sd_att_unit *u, float *o, float *mx, float *sum)
{
    sd_fwd *f = j->f;
    const sd_kv_cache *c = f->kv;
    const sd_hparams *hp = &f->m->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, n = u->p1 - u->p0, kvh = u->kvh;
    uint32_t kt = (uint32_t)c->type;
    const sd_type_traits *tr = sd_type_get(kt);
    const int *table = sd_kv_table(c, j->kv_layer, j->b->seq[u->t]);
    size_t row = c->kv_head;
    float *att = f->att + (size_t)ti * group * SD_ATT_CHUNK;
    float *vbuf = f->att_tmp + (size_t)ti * SD_ATT_TMP(hd, group), *qenc = vbuf + hd + 32;
    size_t qenc_stride = (size_t)hd + 32;
    float scale = f->m->q_scale / sqrtf((float)hd);
    const float *q = f->q + ((size_t)u->t * hp->n_head + (size_t)kvh * group) * hd;
    sd_attn_score_fn score = hd % 8 ? NULL : sd_kernel_attn_score(kt);
    sd_attn_accum_fn accum = hd % 8 ? NULL : sd_kernel_attn_accum(kt);
    const char *kbase = c->k + sd_kv_at(c, j->kv_layer, kvh, 0, 0), *vbase = c->v + sd_kv_at(c, j->kv_layer, kvh, 0, 0);

    /* Segments: runs of adjacent blocks. Every segment starts on a block
     * boundary or at p0 (a multiple of 8), so the kernels group positions
     * the same way whatever the blocks' placement. */
#define FOR_SEGMENTS(...)                                                                    \
    for (int p = u->p0; p < u->p1;) {                                                        \
        int bi = p / SD_KV_BLOCK, blk = table[bi], nb = 1, e = (bi + 1) * SD_KV_BLOCK;       \
        while (e < u->p1 && table[bi + nb] == blk + nb) {                                    \
            e += SD_KV_BLOCK;                                                                \
            nb++;                                                                            \
        }                                                                                    \
        if (e > u->p1) e = u->p1;                                                            \
        size_t at = ((size_t)blk * SD_KV_BLOCK + (size_t)(p % SD_KV_BLOCK)) * row;           \
        int sn = e - p, so = p - u->p0;                                                      \
        __VA_ARGS__;                                                                          \
        p = e;                                                                               \
    }

    if (score) {
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
        FOR_SEGMENTS(score(hd, kbase + at, row, sn, qf, group, scale, att + so, SD_ATT_CHUNK))
    } else {
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
        FOR_SEGMENTS(for (int i = 0; i < sn; i++) for (int g = 0; g < group; g++)
                         att[(size_t)g * SD_ATT_CHUNK + so + i] = dot(hd, kbase + at + (size_t)i * row, qx[g]) * scale)
    }
    int masked = u->lo - u->p0;
    for (int g = 0; g < group; g++) {
        float *a = att + (size_t)g * SD_ATT_CHUNK;
        for (int i = 0; i < masked; i++) a[i] = -INFINITY;
        sum[g] = sd_kernel_exp_sum()(a, n, &mx[g]);
        for (int i = 0; i < masked; i++) {
            sum[g] -= a[i];
            a[i] = 0;
        }
    }
    memset(o, 0, (size_t)group * hd * sizeof(float));
    if (accum) {
        FOR_SEGMENTS(accum(hd, vbase + at, row, sn, att + so, SD_ATT_CHUNK, group, o))
        return;
    }
    sd_to_float_fn deq = sd_kernel_to_float(kt);
    FOR_SEGMENTS(for (int i = 0; i < sn; i++) {
        const float *vr = (const float *)(vbase + at + (size_t)i * row);
        if (kt != SD_TYPE_F32) { deq(vbase + at + (size_t)i * row, vbuf, hd); vr = vbuf; }
        for (int g = 0; g < group; g++) {
            float a = att[(size_t)g * SD_ATT_CHUNK + so + i], *og = o + (size_t)g * hd;
            for (int k = 0; k < hd; k++) og[k] += a * vr[k];
        }
    })
#undef FOR_SEGMENTS
}

/* out = o / (sum + e^(sink - max)) per query head; sinks: per query head or NULL. */
static void finalize(float *o, const float *mx, const float *sum, int group, int hd, const float *sinks)
{
    for (int g = 0; g < group; g++) {
        float inv = 1.0f / sum[g];
        if (sinks) {
            float m = mx[g] > sinks[g] ? mx[g] : sinks[g], c = expf(mx[g] - m);
            inv = c / (sum[g] * c + expf(sinks[g] - m));
        }
        for (int i = 0; i < hd; i++) o[(size_t)g * hd + i] *= inv;
    }
}

/* The first unit whose work starts at or after w. */
static int unit_at(const attn_job *j, int64_t w)
{
    int lo = 0, hi = j->n_units;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (j->u[mid].start < w) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void attention(void *ctx, int ti, int nt)
{
    const attn_job *j = ctx;
    sd_fwd *f = j->f;
    const sd_hparams *hp = &f->m->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    size_t rec_floats = (size_t)group * (hd + 2);
    const float *sinks = f->m->layers[j->layer].attn_sinks;
    int u0 = unit_at(j, j->total * ti / nt), u1 = unit_at(j, j->total * (ti + 1) / nt);
    float mx[SD_MAX_GROUP], sum[SD_MAX_GROUP];
    for (int i = u0; i < u1; i++) {
        const sd_att_unit *u = &j->u[i];
        if (u->rec < 0) {
            float *o = f->att_out + ((size_t)u->t * hp->n_head + (size_t)u->kvh * group) * hd;
            attend_unit(j, ti, u, o, mx, sum);
            finalize(o, mx, sum, group, hd, sinks ? sinks + (size_t)u->kvh * group : NULL);
        } else {
            float *r = f->recs + (size_t)u->rec * rec_floats;
            attend_unit(j, ti, u, r + 2 * group, r, r + group);
        }
    }
}

/* Folds the records of an item (n of them from rec) into att_out, in order. */
static void fold_item(sd_fwd *f, int layer, int t, int kvh, int rec, int n)
{
    const sd_hparams *hp = &f->m->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    size_t rec_floats = (size_t)group * (hd + 2);
    float *acc = f->recs + (size_t)rec * rec_floats;
    for (int k = 1; k < n; k++) {
        float *r = acc + (size_t)k * rec_floats;
        for (int g = 0; g < group; g++) {
            float ma = acc[g], mr = r[g], m = ma > mr ? ma : mr;
            float ca = expf(ma - m), cr = expf(mr - m);
            acc[g] = m;
            acc[group + g] = acc[group + g] * ca + r[group + g] * cr;
            float *oa = acc + 2 * group + (size_t)g * hd, *orr = r + 2 * group + (size_t)g * hd;
            for (int i = 0; i < hd; i++) oa[i] = oa[i] * ca + orr[i] * cr;
        }
    }
    const float *sinks = f->m->layers[layer].attn_sinks;
    float *o = f->att_out + ((size_t)t * hp->n_head + (size_t)kvh * group) * hd;
    memcpy(o, acc + 2 * group, (size_t)group * hd * sizeof(float));
    finalize(o, acc, acc + group, group, hd, sinks ? sinks + (size_t)kvh * group : NULL);
}

/* A few hundred (position, KV head) pairs take less time than waking the
 * pool: the first tokens of a decode, tiny models. */
#define SMALL_ATTENTION 256

/* Units of tokens [t0, t1) into f->units. */
static int plan_units(sd_fwd *f, const sd_batch *b, int layer, int t0, int t1, int64_t *total)
{
    const sd_layer *L = &f->m->layers[layer];
    int nkv = f->m->hp.n_head_kv, n = 0, rec = 0;
    *total = 0;
    for (int t = t0; t < t1; t++) {
        int hi = b->pos[t] + 1, lo = L->swa > 0 && hi > L->swa ? hi - L->swa : 0;
        int c0 = lo / SD_ATT_CHUNK, c1 = (hi - 1) / SD_ATT_CHUNK, nch = c1 - c0 + 1;
        for (int h = 0; h < nkv; h++)
            for (int c = c0; c <= c1; c++) {
                sd_att_unit *u = &f->units[n++];
                u->t = t;
                u->kvh = h;
                u->lo = lo > c * SD_ATT_CHUNK ? lo : c * SD_ATT_CHUNK;
                u->p0 = u->lo & ~7;
                if (u->p0 < c * SD_ATT_CHUNK) u->p0 = c * SD_ATT_CHUNK;
                u->p1 = hi < (c + 1) * SD_ATT_CHUNK ? hi : (c + 1) * SD_ATT_CHUNK;
                u->rec = nch > 1 ? rec++ : -1;
                u->start = *total;
                *total += u->p1 - u->p0;
            }
    }
    return n;
}

static void run_attention(sd_fwd *f, const sd_batch *b, int il, int kvl)
{
    int nkv = f->m->hp.n_head_kv;
    const sd_layer *L = &f->m->layers[il];
    for (int t0 = 0; t0 < b->n;) {
        /* As many tokens as the records hold. */
        int t1 = t0, units = 0, recs = 0;
        while (t1 < b->n) {
            int hi = b->pos[t1] + 1, lo = L->swa > 0 && hi > L->swa ? hi - L->swa : 0;
            int nch = (hi - 1) / SD_ATT_CHUNK - lo / SD_ATT_CHUNK + 1;
            int nu = nkv * nch, nr = nch > 1 ? nu : 0;
            if (t1 > t0 && (units + nu > f->max_units || recs + nr > f->max_recs)) break;
            units += nu;
            recs += nr;
            t1++;
        }
        attn_job j = {f, b, il, kvl, f->units, 0, 0};
        j.n_units = plan_units(f, b, il, t0, t1, &j.total);
        if (j.total <= SMALL_ATTENTION) attention(&j, 0, 1);
        else sd_pool_run(f->pool, attention, &j);
        for (int i = 0; i < j.n_units;) {
            const sd_att_unit *u = &j.u[i];
            if (u->rec < 0) { i++; continue; }
            int k = i;
            while (k < j.n_units && j.u[k].t == u->t && j.u[k].kvh == u->kvh) k++;
            fold_item(f, il, u->t, u->kvh, u->rec, k - i);
            i = k;
        }
        t0 = t1;
    }
}

void sd_fwd_attention(sd_fwd *f, const sd_batch *b, int il, int kvl) { run_attention(f, b, il, kvl); }

/* ---- layers ------------------------------------------------------------- */

static void add_bias(float *x, const float *b, int n_tok, int n)
{
    if (!b) return;
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < n; i++) x[(size_t)t * n + i] += b[i];
}

/* Gemma's norm of a sublayer's output (in xb) before the residual add. */
static void post_norm(sd_fwd *f, const float *w, int n)
{
    int e = f->m->hp.n_embd;
    for (int t = 0; w && t < n; t++) sd_rmsnorm(f->xb + (size_t)t * e, f->xb + (size_t)t * e, w, e, f->m->hp.norm_eps);
}

static void layer(sd_fwd *f, const sd_batch *b, int il)
{
    const sd_model *m = f->m;
    const sd_hparams *hp = &m->hp;
    const sd_layer *L = &m->layers[il];
    sd_kv_cache *c = f->kv;
    int n = b->n, e = hp->n_embd, hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd, ff = hp->n_ff;
    if (m->qnext) {
        sd_qnext_forward_layer(f, b, il);   /* model/arch_qwen3next.c */
        return;
    }

    for (int t = 0; t < n; t++) sd_rmsnorm(f->xb + (size_t)t * e, f->x + (size_t)t * e, L->attn_norm, e, hp->norm_eps);
    /* Each product names the one after it, for the threads to prefetch. */
    const sd_weight *qkv[3] = {&L->wq, &L->wk, &L->wv}, *wo = &L->wo, *gu[2] = {&L->w_gate, &L->w_up};
    const sd_weight *down = &L->w_down, *next_qkv[3] = {&m->output}, *const *after = next_qkv;
    int n_after = 1;
    if (il + 1 < hp->n_layer) {
        const sd_layer *N = &m->layers[il + 1];
        next_qkv[0] = &N->wq; next_qkv[1] = &N->wk; next_qkv[2] = &N->wv;
        n_after = 3;
    }
    float *const qkv_out[3] = {f->q, f->k, f->v};
    sd_matmul_multi(f->pool, qkv, 3, f->xb, n, qkv_out, f->xq, &wo, 1);
    add_bias(f->q, L->bq, n, qd);
    add_bias(f->k, L->bk, n, kvd);
    add_bias(f->v, L->bv, n, kvd);
    sd_from_float_fn kv_enc = sd_kernel_quantize_act((uint32_t)c->type);
    for (int t = 0; t < n; t++) {
        float *q = f->q + (size_t)t * qd, *k = f->k + (size_t)t * kvd;
        if (L->q_norm) {
            for (int h = 0; h < hp->n_head; h++) sd_rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, hp->norm_eps);
            for (int h = 0; h < hp->n_head_kv; h++) sd_rmsnorm(k + h * hd, k + h * hd, L->k_norm, hd, hp->norm_eps);
        }
        int pos = b->pos[t], blk = sd_kv_table(c, il, b->seq[t])[pos / SD_KV_BLOCK];
        sd_rope_ext(q, hp->n_head, k, hp->n_head_kv, hd, pos, L->rope_base, L->rope_scale, hp->rope_neox,
                    m->rope_freq_factors, m->yarn.freq_scale > 0 ? &m->yarn : NULL);
        for (int h = 0; h < hp->n_head_kv; h++) {
            size_t at = sd_kv_at(c, il, h, blk, pos % SD_KV_BLOCK);
            kv_enc(k + (size_t)h * hd, c->k + at, hd);
            kv_enc(f->v + (size_t)t * kvd + (size_t)h * hd, c->v + at, hd);
        }
    }
    run_attention(f, b, il, il);
    sd_matmul_multi(f->pool, &wo, 1, f->att_out, n, &f->xb, f->xq, L->moe ? NULL : gu, L->moe ? 0 : 2);
    add_bias(f->xb, L->bo, n, e);
    post_norm(f, L->post_attn_norm, n);
    for (size_t i = 0; i < (size_t)n * e; i++) f->x[i] += f->xb[i];

    for (int t = 0; t < n; t++) sd_rmsnorm(f->xb + (size_t)t * e, f->x + (size_t)t * e, L->ffn_norm, e, hp->norm_eps);
    if (L->moe) {
        sd_moe_ffn(f, il, n);   /* model/ffn_moe.c: adds into f->x */
        return;
    }
    float *const gu_out[2] = {f->hb, f->hb2};
    sd_matmul_multi(f->pool, gu, 2, f->xb, n, gu_out, f->xq, &down, 1);
    if (m->ffn_gelu) sd_geglu(f->hb, f->hb2, (int64_t)n * ff);
    else sd_kernel_swiglu()(f->hb, f->hb2, (int64_t)n * ff);
    sd_matmul_multi(f->pool, &down, 1, f->hb, n, &f->xb, f->xq, after, n_after);
    post_norm(f, L->post_ffn_norm, n);
    for (size_t i = 0; i < (size_t)n * e; i++) f->x[i] += f->xb[i];
}

void sd_forward_batch(sd_fwd *f, const sd_batch *b, float *logits)
{
    const sd_model *m = f->m;
    const sd_hparams *hp = &m->hp;
    int e = hp->n_embd, n = b->n;
    sd_model_prepare(m, sd_pool_size(f->pool));   /* the first pass repacks the weights (model/model_pack.c) */
    const sd_type_traits *et = sd_type_get(m->tok_embd.type);
    for (int t = 0; t < n; t++) {
        float *x = f->x + (size_t)t * e;
        et->to_float((const char *)m->tok_embd.data + (size_t)b->tok[t] * m->tok_embd.row_bytes, x, e);
        for (int i = 0; i < e; i++) x[i] *= m->tok_embd.scale * m->embd_scale;
    }
    /* A run of GPU layers is one step (model/offload.c); past n_layer: the
     * GPU did the output head too, or failed (f->gpu_err). */
    int il = 0;
    while (il < hp->n_layer) {
        int to = sd_offload_run(f, b, il, logits);
        if (to == il) layer(f, b, to++);
        il = to;
    }
    if (il > hp->n_layer) return;
    /* Only the rows asked for go through the (vocabulary-sized) output matrix. */
    for (int i = 0; i < b->n_out; i++)
        sd_rmsnorm(f->xb + (size_t)i * e, f->x + (size_t)b->out[i] * e, m->output_norm, e, hp->norm_eps);
    if (!b->n_out) return;
    /* The next token starts with the first layer's Q, K and V. */
    const sd_weight *out_w = &m->output, *next[3] = {NULL};
    if (hp->n_layer) {
        next[0] = &m->layers[0].wq; next[1] = &m->layers[0].wk; next[2] = &m->layers[0].wv;
    }
    sd_matmul_multi(f->pool, &out_w, 1, f->xb, b->n_out, &logits, f->xq, hp->n_layer ? next : NULL, 3);
    if (m->logit_softcap > 0)
        for (size_t i = 0; i < (size_t)b->n_out * hp->n_vocab; i++)
            logits[i] = m->logit_softcap * tanhf(logits[i] / m->logit_softcap);
}

/* ---- scratch ------------------------------------------------------------ */

/* Largest activation-conversion scratch any matrix of the model needs. */
static size_t xq_bytes(const sd_model *m, int n_tok)
{
    size_t mx = sd_matmul_scratch_bytes(m->output.type, m->output.rows, m->output.cols, n_tok);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const sd_layer *L = &m->layers[il];
        const sd_weight *lw[] = {SD_LAYER_MATRICES(L)};
        for (size_t i = 0; i < sizeof lw / sizeof lw[0]; i++) {
            size_t b = sd_matmul_scratch_bytes(lw[i]->type, lw[i]->rows, lw[i]->cols, n_tok);
            mx = b > mx ? b : mx;
        }
    }
    size_t moe = sd_moe_xq_bytes(m, n_tok);
    return moe > mx ? moe : mx;
}

int sd_fwd_init(sd_fwd *f, sd_model *m, sd_kv_cache *kv, int max_tok, int n_threads, char *err)
{
    const sd_hparams *hp = &m->hp;
    memset(f, 0, sizeof *f);
    if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv || hp->n_head / hp->n_head_kv > SD_MAX_GROUP)
        return sd_errf(err, "%s: %d query heads over %d KV heads is not supported", m->path, hp->n_head, hp->n_head_kv);
    if (n_threads < 1 || n_threads > 512) return sd_errf(err, "%d threads is not supported", n_threads);
    f->m = m;
    f->kv = kv;
    f->max_tok = max_tok;
    int group = hp->n_head / hp->n_head_kv;
    size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim, q_dim = (size_t)hp->n_head * hp->head_dim;
    size_t B = (size_t)max_tok, e = (size_t)hp->n_embd;
    f->x = malloc(B * e * sizeof(float));
    f->xb = malloc(B * (q_dim > e ? q_dim : e) * sizeof(float));
    f->q = malloc(B * q_dim * sizeof(float));
    f->k = malloc(B * kv_dim * sizeof(float));
    f->v = malloc(B * kv_dim * sizeof(float));
    f->att_out = malloc(B * q_dim * sizeof(float));
    f->hb = malloc(B * hp->n_ff * sizeof(float));
    f->hb2 = malloc(B * hp->n_ff * sizeof(float));
    f->att = malloc((size_t)n_threads * group * SD_ATT_CHUNK * sizeof(float));
    f->att_tmp = malloc((size_t)n_threads * SD_ATT_TMP(hp->head_dim, group) * sizeof(float));
    f->xq = malloc(xq_bytes(m, max_tok) + 64);
    /* Records for a few tokens at the longest context; a batch with more
     * runs its attention in parts. */
    int chunks = (kv->n_blocks * SD_KV_BLOCK + SD_ATT_CHUNK - 1) / SD_ATT_CHUNK + 1;
    f->max_recs = hp->n_head_kv * chunks * 4;
    f->max_units = f->max_recs + max_tok * hp->n_head_kv;
    f->units = malloc((size_t)f->max_units * sizeof *f->units);
    f->recs = malloc((size_t)f->max_recs * group * (hp->head_dim + 2) * sizeof(float));
    f->pool = sd_pool_new(n_threads);
    size_t qn_floats = sd_qnext_scratch_floats(m, max_tok, n_threads);
    if (qn_floats && !(f->qnext = malloc(qn_floats * sizeof(float)))) {
        sd_fwd_free(f);
        return sd_errf(err, "%s: out of memory for the recurrent layers' scratch (%d tokens)", m->path, max_tok);
    }
    size_t moe_floats = sd_moe_scratch_floats(m, max_tok);
    if (moe_floats) {
        f->moe = malloc(moe_floats * sizeof(float));
        f->moe_ids = calloc(B * (size_t)hp->n_layer * (size_t)hp->n_expert_used, sizeof(int32_t));
        if (!f->moe || !f->moe_ids) {
            sd_fwd_free(f);
            return sd_errf(err, "%s: out of memory for the experts' scratch (%d tokens)", m->path, max_tok);
        }
    }
    if (!f->x || !f->xb || !f->q || !f->k || !f->v || !f->att_out || !f->hb || !f->hb2 || !f->att || !f->att_tmp ||
        !f->xq || !f->units || !f->recs || !f->pool) {
        sd_fwd_free(f);
        return sd_errf(err, "%s: out of memory for the forward pass's scratch (%d tokens)", m->path, max_tok);
    }
    return 0;
}

void sd_fwd_free(sd_fwd *f)
{
    free(f->x); free(f->xb); free(f->q); free(f->k); free(f->v); free(f->att_out); free(f->hb); free(f->hb2);
    free(f->att); free(f->att_tmp); free(f->xq); free(f->units); free(f->recs); free(f->moe); free(f->moe_ids);
    free(f->qnext);
    sd_pool_free(f->pool);
    memset(f, 0, sizeof *f);
}
