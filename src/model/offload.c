/* Layer placement on a GPU: llama.cpp's -ngl counted from the last layer,
 * a fit check against the device's free memory before anything is
 * uploaded, the upload (CPU copies dropped after), and the forward pass's
 * hook that runs a run of GPU layers and hands the activations back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpu/backend.h"
#include "kernels/pack.h"
#include "model/forward.h"
#include "model/moe.h"
#include "model/offload.h"
#include "tensor/types.h"

struct sd_offload {
    const sd_gpu_backend *be;
    sd_gpu_model *g;
    int first;        /* layers [first, n_layer) are on the device */
    int output;       /* the output head too */
    char placement[600];
    char device[256];
};

static struct sd_offload *get(sd_model *m)
{
    if (!m->gpu) m->gpu = calloc(1, sizeof *m->gpu);
    return m->gpu;
}

static uint64_t weight_bytes(const sd_weight *w) { return (uint64_t)w->rows * w->row_bytes; }

static uint64_t layer_bytes(const sd_model *m, int il)
{
    const sd_layer *L = &m->layers[il];
    const sd_weight *lw[] = {SD_LAYER_MATRICES(L)};
    uint64_t b = 0;
    for (int i = 0; i < SD_LAYER_N_MATRICES; i++) b += weight_bytes(lw[i]);
    const sd_hparams *hp = &m->hp;
    const sd_moe *moe = L->moe;
    if (moe) {
        b += weight_bytes(&moe->router) + 4ull * moe->n_expert;
        for (int e = 0; e < moe->n_expert; e++)
            b += weight_bytes(&moe->gate[e]) + weight_bytes(&moe->up[e]) + weight_bytes(&moe->down[e]) +
                 4ull * (2ull * moe->n_ff + hp->n_embd);   /* and the biases */
    }
    /* norms (post-norms too), biases, per-head norms, sinks */
    return b + 4ull * (5ull * hp->n_embd + 2ull * hp->head_dim + (uint64_t)(2 * hp->n_head + 2 * hp->n_head_kv) * hp->head_dim);
}

static uint64_t kv_bytes(const sd_model *m, int n_ctx, sd_kv_type kv)
{
    return 2ull * (uint64_t)n_ctx * (uint64_t)m->hp.n_head_kv * m->hp.head_dim * (kv == SD_KV_F32 ? 4 : 2);
}

static uint64_t scratch_bytes(const sd_model *m)
{
    const sd_hparams *hp = &m->hp;
    uint64_t e = (uint64_t)hp->n_embd, qd = (uint64_t)hp->n_head * hp->head_dim, kvd = (uint64_t)hp->n_head_kv * hp->head_dim;
    uint64_t ff = (uint64_t)hp->n_ff, widest = ff > qd ? ff : qd;
    widest = widest > e ? widest : e;
    /* x, xb, q, att, k, v, two FFN rows, encoded activations (with Q8_1's
     * sums), the host-visible in/out buffer with a logits row per token */
    uint64_t b = 4ull * SD_UBATCH * (e + (qd > e ? qd : e) + 2 * qd + 2 * kvd + 2 * ff + widest + widest / 32 + 1 +
                                     e + (uint64_t)hp->n_vocab);
    if (hp->n_expert) {
        /* experts: router rows, chosen ids (twice) and weights, gate/up/down
         * rows of each (token, slot), their encoded activations */
        uint64_t k = (uint64_t)hp->n_expert_used, fe = (uint64_t)hp->n_ff_exp, w = fe > e ? fe : e;
        b += 4ull * SD_UBATCH * ((uint64_t)hp->n_expert + 2 * k * (uint64_t)hp->n_layer + k + k * (2 * fe + e) +
                                 k * (w + w / 32 + 1));
    }
    return b;
}

/* Why a model's layers cannot run on the GPU (why: room for the reason), or NULL. */
static const char *unsupported(const sd_model *m, const sd_offload_params *p, const sd_gpu_backend *be, char *why,
                               size_t why_len)
{
    const sd_hparams *hp = &m->hp;
    if (m->qnext || hp->arch == SD_ARCH_QWEN3NEXT) return "qwen3next's recurrent layers are not supported on the GPU yet";
    if (p->kv_type == SD_KV_Q8_0) return "a q8_0 KV cache is not supported on the GPU (f16, f32 are)";
    for (int il = 0; il < hp->n_layer; il++) {
        const sd_layer *L = &m->layers[il];
        if (L->moe && L->post_ffn_norm) return "routed experts with a post-FFN norm are not supported on the GPU";
        const sd_weight *lw[] = {SD_LAYER_MATRICES(L)};
        int nw = L->moe ? 4 : SD_LAYER_N_MATRICES;
        const sd_weight *ew[4] = {NULL};
        if (L->moe) {
            ew[0] = &L->moe->router; ew[1] = &L->moe->gate[0]; ew[2] = &L->moe->up[0]; ew[3] = &L->moe->down[0];
        }
        for (int i = 0; i < nw + (L->moe ? 4 : 0); i++) {
            const sd_weight *w = i < nw ? lw[i] : ew[i - nw];
            if (!be->supports_type(w->type)) {
                snprintf(why, why_len, "no GPU kernel for %s weights", sd_type_name(w->type));
                return why;
            }
        }
    }
    if (!be->supports_type(m->output.type)) return "no GPU kernel for the output head's format";
    return NULL;
}

static void drop_cpu_copy(sd_model *m, sd_weight *w)
{
    sd_weight_unpack(w);
    if (w->data == m->tok_embd.data || !m->gguf || !m->gguf->map) return;   /* the embedding stays readable */
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)w->data;
    uintptr_t lo = (a + pg - 1) / pg * pg, hi = (a + (uintptr_t)weight_bytes(w)) / pg * pg;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* be: the backend's name to put first, NULL when why already names it. */
static int fallback(struct sd_offload *o, const char *be, const char *why)
{
    snprintf(o->placement, sizeof o->placement, "%s%s%s; running on the CPU", be ? be : "", be ? ": " : "", why);
    return 0;
}

int sd_model_offload(sd_model *m, const sd_offload_params *p, char *err)
{
    const sd_hparams *hp = &m->hp;
    struct sd_offload *o = get(m);
    if (!o) { snprintf(err, SD_ERR_LEN, "out of memory"); return -1; }
    if (o->g) { snprintf(err, SD_ERR_LEN, "%s: the model is already offloaded", m->path); return -1; }
    if (p->n_gpu_layers == 0) return fallback(o, "cpu", "-ngl 0");
    const sd_gpu_backend *be = sd_gpu_backends[0];
    char why[SD_ERR_LEN] = "";
    sd_gpu_device_info devs[16];
    int nd = be->list(devs, 16, why);
    if (nd == 0) return fallback(o, NULL, why);
    if (p->device < 0 || p->device >= nd) {
        snprintf(err, SD_ERR_LEN, "--device %d: %d %s device%s (showdown devices lists them)", p->device, nd, be->name,
                 nd == 1 ? "" : "s");
        return -1;
    }
    const char *no = unsupported(m, p, be, why, sizeof why);
    if (no) return fallback(o, be->name, no);
    const sd_gpu_device_info *dev = &devs[p->device];
    int n_ctx = p->n_ctx > 0 ? p->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    uint64_t fixed = scratch_bytes(m), per_kv = kv_bytes(m, n_ctx, p->kv_type), out_b = weight_bytes(&m->output);
    int ngl = p->n_gpu_layers, output;
    if (ngl == SD_NGL_AUTO) {
        /* From the last layer down while the next one fits; the head last. */
        uint64_t budget = dev->mem_free / 100 * 95, used = fixed;
        ngl = 0;
        while (ngl < hp->n_layer && used + layer_bytes(m, hp->n_layer - 1 - ngl) + per_kv <= budget)
            used += layer_bytes(m, hp->n_layer - 1 - ngl++) + per_kv;
        if (ngl == hp->n_layer && used + out_b <= budget) ngl++;
        if (ngl == 0) return fallback(o, be->name, "not one layer fits the device's free memory (-ngl auto)");
    }
    output = ngl > hp->n_layer;
    int nl = ngl > hp->n_layer ? hp->n_layer : ngl;
    uint64_t need = fixed + (output ? out_b : 0);
    for (int il = hp->n_layer - nl; il < hp->n_layer; il++) need += layer_bytes(m, il) + per_kv;
    if (need > dev->mem_free) {
        snprintf(err, SD_ERR_LEN, "%s: %d layers%s on %s need %.2f GiB (%llu bytes: weights, KV cache of %d tokens, "
                 "scratch) but %.2f GiB (%llu bytes) are free; try a smaller -ngl or -ngl auto", m->path, nl,
                 output ? " and the output" : "", dev->name, need / 1073741824.0, (unsigned long long)need, n_ctx,
                 dev->mem_free / 1073741824.0, (unsigned long long)dev->mem_free);
        return -1;
    }
    sd_gpu_shape shape = {hp->n_embd, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff, hp->n_vocab,
                          hp->norm_eps, hp->rope_neox, m->rope_freq_factors, m->q_scale, m->logit_softcap,
                          m->ffn_gelu, m->yarn.freq_scale, m->yarn.corr_lo, m->yarn.corr_hi, m->yarn.mscale};
    if (be->model_new(p->device, &shape, hp->n_layer, &o->g, err)) { o->g = NULL; return -1; }
    uint64_t done = 0, total = output ? out_b : 0;
    o->first = hp->n_layer - nl;
    for (int il = o->first; il < hp->n_layer; il++) total += layer_bytes(m, il);
    for (int il = o->first; il < hp->n_layer; il++) {
        sd_layer *L = &m->layers[il];
        const sd_moe *mo = L->moe;
        sd_gpu_moe gm = {0};
        if (mo)
            gm = (sd_gpu_moe){mo->n_expert, mo->n_used, mo->n_ff, mo->gating == SD_MOE_TOPK_SOFTMAX,
                              mo->act == SD_MOE_SWIGLU_OAI, &mo->router, mo->router_b, mo->gate, mo->up, mo->down,
                              mo->b_gate, mo->b_up, mo->b_down};
        sd_gpu_layer gl = {L->attn_norm, L->ffn_norm, L->bq, L->bk, L->bv, L->q_norm, L->k_norm, L->rope_base,
                           L->rope_scale, {SD_LAYER_MATRICES(L)}, L->post_attn_norm, L->post_ffn_norm, L->swa,
                           L->bo, L->attn_sinks, mo ? &gm : NULL};
        if (be->upload_layer(o->g, il, &gl, err)) goto fail;
        done += layer_bytes(m, il);
        if (p->progress) p->progress(p->progress_ctx, done, total);
    }
    if (output && be->upload_output(o->g, m->output_norm, &m->output, err)) goto fail;
    if (output && p->progress) p->progress(p->progress_ctx, total, total);
    /* Uploaded: the CPU copies of the GPU layers go. */
    for (int il = o->first; il < hp->n_layer; il++) {
        sd_weight *lw[] = {SD_LAYER_MATRICES(&m->layers[il])};
        for (int i = 0; i < SD_LAYER_N_MATRICES; i++) drop_cpu_copy(m, lw[i]);
        sd_moe *mo = m->layers[il].moe;
        for (int e = 0; mo && e < mo->n_expert; e++) {
            drop_cpu_copy(m, &mo->gate[e]);
            drop_cpu_copy(m, &mo->up[e]);
            drop_cpu_copy(m, &mo->down[e]);
        }
    }
    if (output) drop_cpu_copy(m, &m->output);
    o->be = be;
    o->output = output;
    snprintf(o->device, sizeof o->device, "%s", dev->name);
    const char *note = be->notice ? be->notice(o->g) : NULL;
    if (nl)
        snprintf(o->placement, sizeof o->placement, "%s: layers %d-%d on %s, output on %s%s%s", be->name, o->first,
                 hp->n_layer - 1, dev->name, output ? "GPU" : "CPU", note ? "; " : "", note ? note : "");
    else
        snprintf(o->placement, sizeof o->placement, "%s: no layer on %s (-ngl %d)", be->name, dev->name, ngl);
    return 0;
fail:
    be->model_free(o->g);
    o->g = NULL;
    return -1;
}

void sd_offload_free(sd_model *m)
{
    if (!m->gpu) return;
    if (m->gpu->g) m->gpu->be->model_free(m->gpu->g);
    free(m->gpu);
    m->gpu = NULL;
}

const char *sd_model_placement(const sd_model *m) { return m->gpu ? m->gpu->placement : ""; }
const char *sd_model_backend(const sd_model *m) { return m->gpu && m->gpu->g ? m->gpu->be->name : "cpu"; }
int sd_model_gpu_layers(const sd_model *m) { return m->gpu && m->gpu->g ? m->hp.n_layer - m->gpu->first : 0; }
const char *sd_model_gpu_device(const sd_model *m) { return m->gpu && m->gpu->g ? m->gpu->device : ""; }

int sd_offload_session_new(sd_session *s, char *err)
{
    struct sd_offload *o = s->m->gpu;
    if (!o || !o->g) return 0;
    if (s->kv_type == SD_KV_Q8_0) {
        snprintf(err, SD_ERR_LEN, "a q8_0 KV cache is not supported with GPU layers (f16, f32 are)");
        return -1;
    }
    s->f.gpu_err = calloc(1, SD_ERR_LEN);
    if (!s->f.gpu_err) { snprintf(err, SD_ERR_LEN, "out of memory"); return -1; }
    return o->be->state_new(o->g, s->n_ctx, SD_UBATCH, s->kv_type == SD_KV_F32, &s->f.gpu, err);
}

void sd_offload_session_free(sd_session *s)
{
    if (s->f.gpu) s->m->gpu->be->state_free(s->f.gpu);
    s->f.gpu = NULL;
    free(s->f.gpu_err);
    s->f.gpu_err = NULL;
}

int sd_offload_engine_new(sd_fwd *f, int n_out, char *err)
{
    struct sd_offload *o = f->m->gpu;
    const sd_kv_cache *c = f->kv;
    if (!o || !o->g) return 0;
    if (c->type == SD_KV_Q8_0) {
        snprintf(err, SD_ERR_LEN, "a q8_0 KV cache is not supported with GPU layers (f16, f32 are)");
        return -1;
    }
    /* Sliding GPU layers read their windows from the full pool's tables
     * (attention_paged.comp), which hold every position of a sequence: the
     * window pool, when there is one, serves the CPU's layers only. */
    if (!(f->gpu_err = calloc(1, SD_ERR_LEN))) { snprintf(err, SD_ERR_LEN, "out of memory"); return -1; }
    if (o->be->batch_new(o->g, c->n_blocks * SD_KV_BLOCK, SD_KV_BLOCK, c->n_seqs, f->max_tok, n_out,
                         c->type == SD_KV_F32, &f->gpu, err)) {
        f->gpu = NULL;
        sd_offload_engine_free(f);
        return -1;
    }
    f->gpu_paged = 1;
    return 0;
}

void sd_offload_engine_free(sd_fwd *f)
{
    if (f->gpu) f->m->gpu->be->state_free(f->gpu);
    f->gpu = NULL;
    f->gpu_paged = 0;
    free(f->gpu_err);
    f->gpu_err = NULL;
}

/* The engine's batch on the paged pool: the sequences' block tables as the
 * CPU cache holds them (GPU layers read the full pool's). */
static int run_paged(sd_fwd *f, const sd_batch *b, int il, float *logits)
{
    struct sd_offload *o = f->m->gpu;
    const sd_kv_cache *c = f->kv;
    int nl = f->m->hp.n_layer;
    const int *tabs[c->n_seqs];
    for (int s = 0; s < c->n_seqs; s++) tabs[s] = c->seqs[s].blocks;
    sd_gpu_step st = {.x = f->x, .n_tok = b->n, .layer_begin = il, .layer_end = nl,
                      .output = o->output && b->n_out > 0, .logits = logits, .pos_of = b->pos, .seq = b->seq,
                      .tables = tabs, .n_seqs = c->n_seqs, .block = SD_KV_BLOCK, .out = b->out, .n_out = b->n_out,
                      .moe_ids = f->moe_ids};
    if (o->be->run(f->gpu, &st, f->gpu_err)) {
        if (!f->gpu_err[0]) snprintf(f->gpu_err, SD_ERR_LEN, "%s: GPU step failed", o->be->name);
        return nl + 1;
    }
    if (f->moe_ids) f->moe_n = b->n;
    return o->output ? nl + 1 : nl;
}

int sd_offload_run(sd_fwd *f, const sd_batch *b, int il, float *logits)
{
    const sd_model *m = f->m;
    struct sd_offload *o = m->gpu;
    int nl = m->hp.n_layer, n = b->n;
    if (!f->gpu || il < o->first) return il;
    if (f->gpu_paged) return run_paged(f, b, il, logits);
    int ok = n > 0 && b->n_out >= (o->output ? 1 : 0) && b->n_out <= n;
    for (int t = 0; ok && t < n; t++) ok = b->seq[t] == b->seq[0] && b->pos[t] == b->pos[0] + t;
    for (int i = 0; ok && i < b->n_out; i++) ok = b->out[i] == n - b->n_out + i;
    if (!ok) {
        snprintf(f->gpu_err, SD_ERR_LEN, "%s: GPU layers run one sequence at a time", o->be->name);
        return nl + 1;
    }
    sd_gpu_step st = {.x = f->x, .n_tok = n, .pos = b->pos[0], .layer_begin = il, .layer_end = nl,
                      .output = o->output && b->n_out > 0, .first_row = n - b->n_out, .logits = logits,
                      .moe_ids = f->moe_ids};
    if (o->be->run(f->gpu, &st, f->gpu_err)) {
        if (!f->gpu_err[0]) snprintf(f->gpu_err, SD_ERR_LEN, "%s: GPU step failed", o->be->name);
        return nl + 1;
    }
    if (f->moe_ids) f->moe_n = n;
    return o->output ? nl + 1 : nl;
}
