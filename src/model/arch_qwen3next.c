/* Qwen3-Next: hyper-parameters, tensors and the forward pass of its two kinds
 * of layers (see arch_qwen3next.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/deltanet.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "model/arch_qwen3next.h"
#include "model/moe.h"
#include "tensor/types.h"

/* ---- loading ------------------------------------------------------------ */

/* qwen3next.<sfx>: required keys must be present; every value must lie in [lo, hi]. */
static int key(sd_model *m, const char *sfx, int required, uint32_t def, int lo, int hi, int *out, char *err)
{
    char k[96];
    uint32_t v = def;
    snprintf(k, sizeof k, "%s.%s", m->hp.arch_name, sfx);
    int r = gguf_get_u32(m->gguf, k, &v, err);
    if (r < 0) return -1;
    if (r == 0 && required) return gguf_fail(err, m->path, "missing hyper-parameter %s", k);
    if (v < (uint32_t)lo || v > (uint32_t)hi)
        return gguf_fail(err, m->path, "%s = %u is out of range (%d..%d)", k, v, lo, hi);
    *out = (int)v;
    return 0;
}

int sd_qnext_hparams(sd_model *m, char *err)
{
    sd_hparams *hp = &m->hp;
    struct sd_qnext *q = calloc(1, sizeof *q);
    if (!q) return gguf_fail(err, m->path, "out of memory");
    m->qnext = q;
    int inner = 0;
    if (key(m, "ssm.conv_kernel", 1, 0, 1, 64, &q->d_conv, err) ||
        key(m, "ssm.state_size", 1, 0, 1, 4096, &q->head_k, err) ||
        key(m, "ssm.group_count", 1, 0, 1, 4096, &q->n_k_heads, err) ||
        key(m, "ssm.time_step_rank", 1, 0, 1, 4096, &q->n_v_heads, err) ||
        key(m, "ssm.inner_size", 1, 0, 1, 1 << 20, &inner, err) ||
        key(m, "full_attention_interval", 0, 4, 1, SD_MAX_LAYERS, &q->interval, err) ||
        key(m, "rope.dimension_count", 0, (uint32_t)hp->head_dim, 2, hp->head_dim, &q->n_rot, err))
        return -1;
    if (q->n_rot % 2) return gguf_fail(err, m->path, "%s.rope.dimension_count = %d is odd", hp->arch_name, q->n_rot);
    if (inner % q->n_v_heads)
        return gguf_fail(err, m->path, "%s.ssm.inner_size = %d is not a multiple of ssm.time_step_rank = %d",
                         hp->arch_name, inner, q->n_v_heads);
    if (q->n_v_heads % q->n_k_heads)
        return gguf_fail(err, m->path, "%s.ssm.time_step_rank = %d is not a multiple of ssm.group_count = %d",
                         hp->arch_name, q->n_v_heads, q->n_k_heads);
    q->head_v = inner / q->n_v_heads;
    if (q->head_v != q->head_k)
        return gguf_fail(err, m->path,
                         "%s.ssm.inner_size / ssm.time_step_rank = %d (value head size) differs from ssm.state_size "
                         "= %d (key head size); the reference's delta rule needs them equal",
                         hp->arch_name, q->head_v, q->head_k);
    q->key_dim = q->head_k * q->n_k_heads;
    q->value_dim = inner;
    if ((int64_t)q->key_dim > (1 << 20))
        return gguf_fail(err, m->path, "%s.ssm.state_size x ssm.group_count = %lld is absurd", hp->arch_name,
                         (long long)q->head_k * q->n_k_heads);
    q->conv_dim = 2 * q->key_dim + q->value_dim;
    if (key(m, "expert_shared_feed_forward_length", 0, (uint32_t)(hp->n_ff_exp ? hp->n_ff_exp : hp->n_ff), 1,
            1 << 20, &q->n_ff_shexp, err))
        return -1;
    q->rec_index = malloc((size_t)hp->n_layer * sizeof *q->rec_index);
    q->kv_index = malloc((size_t)hp->n_layer * sizeof *q->kv_index);
    if (!q->rec_index || !q->kv_index) return gguf_fail(err, m->path, "out of memory");
    for (int il = 0, n_att = 0; il < hp->n_layer; il++) {
        int rec = (il + 1) % q->interval != 0;
        q->rec_index[il] = rec ? q->n_recurrent++ : -1;
        q->kv_index[il] = rec ? -1 : n_att++;
    }
    const char *chunk = getenv("SHOWDOWN_DELTANET_CHUNK");
    q->chunk = chunk ? atoi(chunk) : 32;   /* measured fastest for 128-wide heads (docs/BENCHMARKS.md) */
    q->layer_state = (size_t)q->conv_dim * (size_t)(q->d_conv - 1) +
                     (size_t)q->n_v_heads * (size_t)q->head_v * (size_t)q->head_k;
    return 0;
}

static int gated_attention(sd_model *m, int il, char *err)
{
    const sd_hparams *hp = &m->hp;
    sd_layer *L = &m->layers[il];
    int64_t e = hp->n_embd, qd = (int64_t)hp->n_head * hp->head_dim, kv = (int64_t)hp->n_head_kv * hp->head_dim;
    char n[6][64];
    static const char *sfx[6] = {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                 "attn_q_norm.weight", "attn_k_norm.weight"};
    for (int i = 0; i < 6; i++) snprintf(n[i], sizeof n[i], "blk.%d.%s", il, sfx[i]);
    return sd_load_matrix(m, n[0], e, 2 * qd, 0, &L->wq, err) || sd_load_matrix(m, n[1], e, kv, 0, &L->wk, err) ||
                   sd_load_matrix(m, n[2], e, kv, 0, &L->wv, err) || sd_load_matrix(m, n[3], qd, e, 0, &L->wo, err) ||
                   sd_load_vector(m, n[4], hp->head_dim, 0, &L->q_norm, err) ||
                   sd_load_vector(m, n[5], hp->head_dim, 0, &L->k_norm, err)
               ? -1
               : 0;
}

static int linear_attention(sd_model *m, int il, struct sd_qnext_layer *ql, char *err)
{
    const struct sd_qnext *q = m->qnext;
    sd_layer *L = &m->layers[il];
    int64_t e = m->hp.n_embd;
    char n[64];
#define NAME(sfx) (snprintf(n, sizeof n, "blk.%d." sfx, il), n)
    /* The fused layout (the first converters'): one ssm_in of, per key head,
     * [q | k | its value heads' v | their z]; or attn_qkv and attn_gate. */
    ql->fused = !gguf_find_tensor(m->gguf, NAME("attn_qkv.weight")) && gguf_find_tensor(m->gguf, NAME("ssm_in.weight"));
    if (ql->fused ? sd_load_matrix(m, NAME("ssm_in.weight"), e, q->conv_dim + q->value_dim, 0, &L->wq, err)
                  : sd_load_matrix(m, NAME("attn_qkv.weight"), e, q->conv_dim, 0, &L->wq, err) ||
                        sd_load_matrix(m, NAME("attn_gate.weight"), e, q->value_dim, 0, &L->wk, err))
        return -1;
    if (sd_load_matrix(m, NAME("ssm_ba.weight"), e, 2 * q->n_v_heads, 0, &L->wv, err) ||
        sd_load_matrix(m, NAME("ssm_out.weight"), q->value_dim, e, 0, &L->wo, err) ||
        sd_load_vector(m, NAME("ssm_dt.bias"), q->n_v_heads, 0, &ql->dt_bias, err) ||
        sd_load_vector(m, NAME("ssm_a"), q->n_v_heads, 0, &ql->a, err) ||
        sd_load_vector(m, NAME("ssm_norm.weight"), q->head_v, 0, &ql->ssm_norm, err))
        return -1;
    /* The convolution: {d_conv, conv_dim}, read whole as a vector. */
    const gguf_tensor *t = gguf_find_tensor(m->gguf, NAME("ssm_conv1d.weight"));
    if (!t) return gguf_fail(err, m->path, "missing tensor %s", n);
    if (t->n_dims != 2 || t->ne[0] != q->d_conv || t->ne[1] != q->conv_dim)
        return gguf_fail(err, m->path, "tensor %s has shape [%lld, %lld], expected [%d, %d] (ssm.conv_kernel, and "
                         "2 x ssm.state_size x ssm.group_count + ssm.inner_size)", n, (long long)t->ne[0],
                         (long long)t->ne[1], q->d_conv, q->conv_dim);
    const sd_type_traits *tr = sd_type_get(t->type);
    if (!tr || !tr->to_float) return gguf_fail(err, m->path, "tensor %s: format %s unreadable", n, sd_type_name(t->type));
    if (!(ql->conv = malloc((size_t)t->n_elements * sizeof(float)))) return gguf_fail(err, m->path, "out of memory");
    tr->to_float(t->data, ql->conv, (int64_t)t->n_elements);
#undef NAME
    return 0;
}

/* The shared expert beside the routed ones, present with its gate. */
static int shared_expert(sd_model *m, int il, struct sd_qnext_layer *ql, char *err)
{
    const struct sd_qnext *q = m->qnext;
    sd_layer *L = &m->layers[il];
    int64_t e = m->hp.n_embd, f = q->n_ff_shexp;
    char n[4][64];
    static const char *sfx[4] = {"ffn_gate_inp_shexp.weight", "ffn_gate_shexp.weight", "ffn_up_shexp.weight",
                                 "ffn_down_shexp.weight"};
    for (int i = 0; i < 4; i++) snprintf(n[i], sizeof n[i], "blk.%d.%s", il, sfx[i]);
    if (sd_load_vector(m, n[0], e, 1, &ql->shexp_gate, err)) return -1;
    if (!ql->shexp_gate) {
        for (int i = 1; i < 4; i++)
            if (gguf_find_tensor(m->gguf, n[i]))
                return gguf_fail(err, m->path, "tensor %s without its gate %s", n[i], n[0]);
        return 0;
    }
    return sd_load_matrix(m, n[1], e, f, 0, &L->w_gate, err) || sd_load_matrix(m, n[2], e, f, 0, &L->w_up, err) ||
                   sd_load_matrix(m, n[3], f, e, 0, &L->w_down, err)
               ? -1
               : 0;
}

int sd_qnext_layer(sd_model *m, int il, char *err)
{
    struct sd_qnext_layer *ql = calloc(1, sizeof *ql);
    if (!ql) return gguf_fail(err, m->path, "out of memory");
    m->layers[il].qn = ql;
    m->layers[il].rope_base = m->hp.rope_base;
    m->layers[il].rope_scale = m->hp.rope_scale;
    if (m->qnext->rec_index[il] < 0 ? gated_attention(m, il, err) : linear_attention(m, il, ql, err)) return -1;
    return m->hp.n_expert ? shared_expert(m, il, ql, err) : 0;
}

void sd_qnext_free(sd_model *m)
{
    for (int il = 0; m->layers && il < m->hp.n_layer; il++) {
        struct sd_qnext_layer *ql = m->layers[il].qn;
        if (!ql) continue;
        free(ql->conv); free(ql->dt_bias); free(ql->a); free(ql->ssm_norm); free(ql->shexp_gate);
        free(ql);
        m->layers[il].qn = NULL;
    }
    if (m->qnext) { free(m->qnext->rec_index); free(m->qnext->kv_index); }
    free(m->qnext);
    m->qnext = NULL;
}

size_t sd_qnext_state_bytes(const sd_model *m)
{
    return m->qnext ? (size_t)m->qnext->n_recurrent * m->qnext->layer_state * sizeof(float) : 0;
}

/* ---- scratch ------------------------------------------------------------ */

typedef struct {
    float *qg, *gate;            /* attention: [query | gate] per head; the gates */
    float *mix, *z, *bd, *o;     /* recurrent: conv input/output, z, beta and decay, delta output */
    float *qkvz;                 /* recurrent, fused ssm_in: its output before the split */
    float *sh_g, *sh_u, *sh_y, *sh_w;   /* shared expert */
    float *work;                 /* per thread: sd_deltanet_run's work space */
    size_t work_floats;
} qn_scratch;

static size_t layout(const sd_model *m, int max_tok, int n_threads, float *base, qn_scratch *sc)
{
    const struct sd_qnext *q = m->qnext;
    size_t B = (size_t)max_tok, qd = (size_t)m->hp.n_head * m->hp.head_dim, o = 0;
#define TAKE(field, count) do { if (base) sc->field = base + o; o += (count); } while (0)
    TAKE(qg, B * 2 * qd);
    TAKE(gate, B * qd);
    TAKE(mix, B * q->conv_dim);
    TAKE(qkvz, B * (q->conv_dim + q->value_dim));
    TAKE(z, B * q->value_dim);
    TAKE(bd, B * 2 * q->n_v_heads);
    TAKE(o, B * q->value_dim);
    TAKE(sh_g, B * q->n_ff_shexp);
    TAKE(sh_u, B * q->n_ff_shexp);
    TAKE(sh_y, B * m->hp.n_embd);
    TAKE(sh_w, B);
    size_t wf = sd_deltanet_work_floats(q->head_k, q->head_v);
    if (base) sc->work_floats = wf;
    TAKE(work, (size_t)(n_threads > 0 ? n_threads : 1) * wf);
#undef TAKE
    return o;
}

size_t sd_qnext_scratch_floats(const sd_model *m, int max_tok, int n_threads)
{
    return m->qnext ? layout(m, max_tok, n_threads, NULL, NULL) : 0;
}

/* ---- the layers --------------------------------------------------------- */

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static void gated_attention_fwd(sd_fwd *f, const sd_batch *b, int il, qn_scratch *sc)
{
    const sd_model *m = f->m;
    const sd_hparams *hp = &m->hp;
    const sd_layer *L = &m->layers[il];
    sd_kv_cache *c = f->kv;
    int n = b->n, e = hp->n_embd, hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
    int n_rot = m->qnext->n_rot;
    const sd_weight *qkv[3] = {&L->wq, &L->wk, &L->wv}, *wo = &L->wo;
    float *const out[3] = {sc->qg, f->k, f->v};
    sd_matmul_multi(f->pool, qkv, 3, f->xb, n, out, f->xq, &wo, 1);
    sd_from_float_fn kv_enc = sd_kernel_quantize_act((uint32_t)c->type);
    for (int t = 0; t < n; t++) {
        float *q = f->q + (size_t)t * qd, *k = f->k + (size_t)t * kvd, *g = sc->gate + (size_t)t * qd;
        const float *qg = sc->qg + (size_t)t * 2 * qd;
        for (int h = 0; h < hp->n_head; h++) {
            memcpy(q + (size_t)h * hd, qg + (size_t)h * 2 * hd, (size_t)hd * sizeof(float));
            memcpy(g + (size_t)h * hd, qg + (size_t)h * 2 * hd + hd, (size_t)hd * sizeof(float));
        }
        int pos = b->pos[t], blk = c->seqs[b->seq[t]].blocks[pos / SD_KV_BLOCK];
        /* Partial RoPE: the first n_rot values of each head turn, the rest stay. */
        for (int h = 0; h < hp->n_head; h++) {
            sd_rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, hp->norm_eps);
            sd_rope_ext(q + h * hd, 1, NULL, 0, n_rot, pos, L->rope_base, L->rope_scale, 1, NULL, NULL);
        }
        for (int h = 0; h < hp->n_head_kv; h++) {
            sd_rmsnorm(k + h * hd, k + h * hd, L->k_norm, hd, hp->norm_eps);
            sd_rope_ext(k + h * hd, 1, NULL, 0, n_rot, pos, L->rope_base, L->rope_scale, 1, NULL, NULL);
            size_t at = sd_kv_at(c, m->qnext->kv_index[il], h, blk, pos % SD_KV_BLOCK);
            kv_enc(k + (size_t)h * hd, c->k + at, hd);
            kv_enc(f->v + (size_t)t * kvd + (size_t)h * hd, c->v + at, hd);
        }
    }
    sd_fwd_attention(f, b, il, m->qnext->kv_index[il]);
    for (size_t i = 0; i < (size_t)n * qd; i++) f->att_out[i] *= sigmoidf(sc->gate[i]);
    sd_matmul_multi(f->pool, &wo, 1, f->att_out, n, &f->xb, f->xq, NULL, 0);
    for (size_t i = 0; i < (size_t)n * e; i++) f->x[i] += f->xb[i];
}

typedef struct {
    sd_fwd *f;
    const sd_batch *b;
    int il;
    qn_scratch *sc;
} rec_job;

static float *seq_state(const sd_fwd *f, int seq, int il)
{
    const struct sd_qnext *q = f->m->qnext;
    return (float *)f->kv->seqs[seq].state + (size_t)q->rec_index[il] * q->layer_state;
}

/* Where the state of layer il after token t goes besides the sequence's
 * own: its snapshot (model/kv_cache.h) when t ends the snapshot's prefix. */
static float *snapshot_after(const sd_fwd *f, const sd_batch *b, int t, int il)
{
    const sd_kv_seq *s = &f->kv->seqs[b->seq[t]];
    if (!s->snap || b->pos[t] + 1 != s->snap_pos) return NULL;
    return (float *)s->snap + (size_t)f->m->qnext->rec_index[il] * f->m->qnext->layer_state;
}

/* Threads take slices of the channels; each runs its channels through the
 * batch's tokens in order (a sequence's tokens come in position order). */
static void conv_part(void *ctx, int ti, int nt)
{
    const rec_job *j = ctx;
    const struct sd_qnext *q = j->f->m->qnext;
    const struct sd_qnext_layer *ql = j->f->m->layers[j->il].qn;
    int c0 = (int)((int64_t)q->conv_dim * ti / nt), c1 = (int)((int64_t)q->conv_dim * (ti + 1) / nt), m = q->d_conv - 1;
    if (c1 <= c0) return;
    size_t part = (size_t)(c1 - c0) * m * sizeof(float);
    for (int t = 0; t < j->b->n; t++) {
        float *st = seq_state(j->f, j->b->seq[t], j->il) + (size_t)c0 * m, *snap;
        if (j->b->pos[t] == 0) memset(st, 0, part);
        float *x = j->sc->mix + (size_t)t * q->conv_dim + c0;
        sd_conv_step(st, ql->conv + (size_t)c0 * q->d_conv, x, c1 - c0, q->d_conv);
        for (int i = 0; i < c1 - c0; i++) x[i] = x[i] * sigmoidf(x[i]);
        if ((snap = snapshot_after(j->f, j->b, t, j->il))) memcpy(snap + (size_t)c0 * m, st, part);
    }
}

/* Threads take slices of the value heads; each runs its heads through the
 * batch's runs of tokens (a sequence's consecutive positions), in chunks. */
static void delta_part(void *ctx, int ti, int nt)
{
    const rec_job *j = ctx;
    const struct sd_qnext *q = j->f->m->qnext;
    const sd_batch *b = j->b;
    int h0 = q->n_v_heads * ti / nt, h1 = q->n_v_heads * (ti + 1) / nt, dk = q->head_k, dv = q->head_v;
    int r = q->n_v_heads / q->n_k_heads, H = q->n_v_heads;
    size_t conv_floats = (size_t)q->conv_dim * (q->d_conv - 1), mat = (size_t)dv * dk;
    float *work = j->sc->work + (size_t)ti * j->sc->work_floats;
    if (h1 <= h0) return;
    for (int t0 = 0, t1; t0 < b->n; t0 = t1) {
        /* A run ends where its sequence's snapshot is taken. */
        for (t1 = t0 + 1; t1 < b->n && b->seq[t1] == b->seq[t0] && b->pos[t1] == b->pos[t1 - 1] + 1 &&
                          !snapshot_after(j->f, b, t1 - 1, j->il);
             t1++)
            ;
        float *S = seq_state(j->f, b->seq[t0], j->il) + conv_floats, *snap;
        const float *mix = j->sc->mix + (size_t)t0 * q->conv_dim, *bd = j->sc->bd + (size_t)t0 * 2 * H;
        if (b->pos[t0] == 0) memset(S + h0 * mat, 0, (size_t)(h1 - h0) * mat * sizeof(float));
        for (int h = h0; h < h1; h++) {
            int kh = h / r;
            sd_deltanet_run(S + h * mat, mix + (size_t)kh * dk, mix + q->key_dim + (size_t)kh * dk, q->conv_dim,
                            mix + 2 * q->key_dim + (size_t)h * dv, q->conv_dim, bd + h, bd + H + h, 2 * (size_t)H,
                            t1 - t0, dk, dv, j->sc->o + (size_t)t0 * q->value_dim + (size_t)h * dv, q->value_dim,
                            q->chunk, work);
        }
        if ((snap = snapshot_after(j->f, b, t1 - 1, j->il)))
            memcpy(snap + conv_floats + h0 * mat, S + h0 * mat, (size_t)(h1 - h0) * mat * sizeof(float));
    }
}

/* ssm_in's rows per key head g, [q_g | k_g | v of its r value heads | z of
 * them], into mix = [q | k | v] (all heads each) and z. */
static void unfuse(const struct sd_qnext *q, qn_scratch *sc, int n)
{
    int dk = q->head_k, r = q->n_v_heads / q->n_k_heads, gv = r * q->head_v;
    size_t w = (size_t)q->conv_dim + q->value_dim, fk = sizeof(float) * dk, fv = sizeof(float) * gv;
    for (int t = 0; t < n; t++) {
        const float *in = sc->qkvz + (size_t)t * w;
        float *mix = sc->mix + (size_t)t * q->conv_dim, *z = sc->z + (size_t)t * q->value_dim;
        for (int g = 0; g < q->n_k_heads; g++, in += 2 * dk + 2 * gv) {
            memcpy(mix + (size_t)g * dk, in, fk);
            memcpy(mix + q->key_dim + (size_t)g * dk, in + dk, fk);
            memcpy(mix + 2 * q->key_dim + (size_t)g * gv, in + 2 * dk, fv);
            memcpy(z + (size_t)g * gv, in + 2 * dk + gv, fv);
        }
    }
}

static void linear_attention_fwd(sd_fwd *f, const sd_batch *b, int il, qn_scratch *sc)
{
    const sd_model *m = f->m;
    const struct sd_qnext *q = m->qnext;
    const struct sd_qnext_layer *ql = m->layers[il].qn;
    const sd_layer *L = &m->layers[il];
    int n = b->n, e = m->hp.n_embd, H = q->n_v_heads, r = H / q->n_k_heads, dk = q->head_k, dv = q->head_v;
    const sd_weight *in[3] = {&L->wq, &L->wk, &L->wv}, *wo = &L->wo;
    if (ql->fused) {
        const sd_weight *in2[2] = {&L->wq, &L->wv};
        float *const out2[2] = {sc->qkvz, sc->bd};
        sd_matmul_multi(f->pool, in2, 2, f->xb, n, out2, f->xq, &wo, 1);
        unfuse(q, sc, n);
    } else {
        float *const out[3] = {sc->mix, sc->z, sc->bd};
        sd_matmul_multi(f->pool, in, 3, f->xb, n, out, f->xq, &wo, 1);
    }
    /* beta and decay per value head, in place: [beta (H) | decay (H)] per token */
    for (int t = 0; t < n; t++) {
        float *bd = sc->bd + (size_t)t * 2 * H, tmp[2 * 4096];
        memcpy(tmp, bd, (size_t)2 * H * sizeof(float));
        for (int h = 0; h < H; h++) {
            int g = h / r, i = h % r;
            float beta = tmp[(size_t)g * 2 * r + i], alpha = tmp[(size_t)g * 2 * r + r + i] + ql->dt_bias[h];
            float sp = alpha > 20.0f ? alpha : logf(1.0f + expf(alpha));
            bd[h] = sigmoidf(beta);
            bd[H + h] = expf(fminf(sp * ql->a[h], 50.0f));
        }
    }
    rec_job j = {f, b, il, sc};
    if ((int64_t)n * q->conv_dim < 4096) conv_part(&j, 0, 1);
    else sd_pool_run(f->pool, conv_part, &j);
    float qs = 1.0f / sqrtf((float)dk);
    for (int t = 0; t < n; t++) {
        float *mix = sc->mix + (size_t)t * q->conv_dim;
        for (int kh = 0; kh < q->n_k_heads; kh++) {
            float *qh = mix + (size_t)kh * dk, *kk = mix + q->key_dim + (size_t)kh * dk;
            sd_l2norm(qh, dk, m->hp.norm_eps);
            sd_l2norm(kk, dk, m->hp.norm_eps);
            for (int i = 0; i < dk; i++) qh[i] *= qs;
        }
    }
    if ((int64_t)n * H * dv * dk < 65536) delta_part(&j, 0, 1);
    else sd_pool_run(f->pool, delta_part, &j);
    /* RMSNorm of each head's output times SiLU(z), then ssm_out */
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++) {
            float *o = sc->o + (size_t)t * q->value_dim + (size_t)h * dv;
            const float *z = sc->z + (size_t)t * q->value_dim + (size_t)h * dv;
            sd_rmsnorm(o, o, ql->ssm_norm, dv, m->hp.norm_eps);
            for (int i = 0; i < dv; i++) o[i] *= z[i] * sigmoidf(z[i]);
        }
    sd_matmul_multi(f->pool, &wo, 1, sc->o, n, &f->xb, f->xq, NULL, 0);
    for (size_t i = 0; i < (size_t)n * e; i++) f->x[i] += f->xb[i];
}

/* post_attention_norm, then the routed experts and the gated shared expert (or a dense FFN). */
static void ffn_fwd(sd_fwd *f, int il, int n, qn_scratch *sc)
{
    const sd_model *m = f->m;
    const sd_hparams *hp = &m->hp;
    const sd_layer *L = &m->layers[il];
    const struct sd_qnext_layer *ql = L->qn;
    int e = hp->n_embd;
    for (int t = 0; t < n; t++) sd_rmsnorm(f->xb + (size_t)t * e, f->x + (size_t)t * e, L->ffn_norm, e, hp->norm_eps);
    const sd_weight *gu[2] = {&L->w_gate, &L->w_up}, *down = &L->w_down;
    if (!L->moe) {
        float *const o[2] = {f->hb, f->hb2};
        sd_matmul_multi(f->pool, gu, 2, f->xb, n, o, f->xq, &down, 1);
        sd_kernel_swiglu()(f->hb, f->hb2, (int64_t)n * hp->n_ff);
        sd_matmul_multi(f->pool, &down, 1, f->hb, n, &f->xb, f->xq, NULL, 0);
        for (size_t i = 0; i < (size_t)n * e; i++) f->x[i] += f->xb[i];
        return;
    }
    int ff = m->qnext->n_ff_shexp;
    if (ql->shexp_gate) {
        float *const o[2] = {sc->sh_g, sc->sh_u};
        sd_matmul_multi(f->pool, gu, 2, f->xb, n, o, f->xq, &down, 1);
        sd_kernel_swiglu()(sc->sh_g, sc->sh_u, (int64_t)n * ff);
        sd_matmul_multi(f->pool, &down, 1, sc->sh_g, n, &sc->sh_y, f->xq, NULL, 0);
        for (int t = 0; t < n; t++) {
            const float *x = f->xb + (size_t)t * e;
            float s = 0.0f;
            for (int i = 0; i < e; i++) s += x[i] * ql->shexp_gate[i];
            sc->sh_w[t] = sigmoidf(s);
        }
    }
    sd_moe_ffn(f, il, n);   /* adds the routed experts into f->x */
    if (ql->shexp_gate)
        for (int t = 0; t < n; t++)
            for (int i = 0; i < e; i++) f->x[(size_t)t * e + i] += sc->sh_w[t] * sc->sh_y[(size_t)t * e + i];
}

void sd_qnext_forward_layer(sd_fwd *f, const sd_batch *b, int il)
{
    const sd_model *m = f->m;
    const sd_layer *L = &m->layers[il];
    int e = m->hp.n_embd;
    qn_scratch sc;
    layout(m, f->max_tok, sd_pool_size(f->pool), f->qnext, &sc);
    for (int t = 0; t < b->n; t++) sd_rmsnorm(f->xb + (size_t)t * e, f->x + (size_t)t * e, L->attn_norm, e, m->hp.norm_eps);
    if (m->qnext->rec_index[il] < 0) gated_attention_fwd(f, b, il, &sc);
    else linear_attention_fwd(f, b, il, &sc);
    ffn_fwd(f, il, b->n, &sc);
}
