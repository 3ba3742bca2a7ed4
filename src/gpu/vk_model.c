/* The Vulkan backend's model side: a model's layers uploaded to one device,
 * a session's KV cache and scratch there, and one forward step recorded as
 * one command buffer (a barrier between dependent dispatches). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "gpu/spv.h"
#include "gpu/vk.h"
#include "gpu/vk_moe.h"
#include "gpu/vk_paged.h"
#include "kernels/geglu.h"
#include "tensor/types.h"

enum { W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN };
enum { V_ATTN_NORM, V_FFN_NORM, V_BQ, V_BK, V_BV, V_QN, V_KN, V_POST_ATTN, V_POST_FFN, V_BO, V_SINKS, N_VEC };

typedef struct {
    int on;
    sd_vk_buffer w[7], vec[N_VEC];
    sd_weight meta[7];   /* shape and format (data not kept) */
    float rope_base, rope_scale;
    int swa;             /* sliding window, 0: none (the cache still holds the whole context) */
    sd_vk_moe *moe;      /* routed experts instead of w[gate, up, down] (vk_moe.c), or NULL */
} vk_layer;

struct sd_gpu_model {
    sd_vk_device d;
    sd_gpu_shape shape;
    int n_layer, has_output;
    vk_layer *layers;
    sd_vk_buffer out_norm, freq, dummy, stage, gelu;   /* gelu: the CPU's GELU table (kernels/geglu.h) */
    sd_vk_buffer *out_w;   /* the output head in parts of out_rows rows: a device binds */
    int n_out, out_rows;   /* a limited range (lavapipe: 128 MiB; a large vocabulary's head is more) */
    sd_weight out_meta;
};

struct sd_gpu_state {
    sd_gpu_model *g;
    int n_ctx, n_ub, kv_f32;
    sd_vk_buffer *kc, *vc;   /* per layer (uploaded ones only) */
    sd_vk_buffer x, xb, q, k, v, att, hb, hb2, xq, io;
    size_t io_logits;        /* float offset of the logits in io */
    sd_vk_moe_scratch moe;   /* when a layer has experts */
    VkDescriptorPool pool;
    uint32_t pool_sets;
    VkCommandBuffer cb;
    /* The serving engine's paged pool (batch_new): n_ctx = n_blocks * block
     * positions lent to sequences through their block tables. */
    int paged, block, n_blocks, n_out;
    size_t meta_words;
    sd_vk_buffer meta;       /* host-visible: a paged step's metadata (vk_paged.h) */
    sd_vk_buffer meta_dev;   /* its device copy, which the shaders read */
};

#define STAGE_BYTES (16u << 20)

static int vk_list(sd_gpu_device_info *out, int max, char *err)
{
    sd_vk_instance vk;
    if (!sd_spv_table[0].name) {
        snprintf(err, SD_ERR_LEN, "vulkan: this build has no shaders (glslc was missing when it was built)");
        return 0;
    }
    if (sd_vk_instance_new(&vk, err)) return 0;
    VkPhysicalDevice devs[16];
    int n = 0;
    if (sd_vk_physical_devices(&vk, devs, 16, &n, err)) n = 0;
    else if (n == 0) snprintf(err, SD_ERR_LEN, "vulkan: no device (the loader found no driver)");
    if (n > max) n = max;
    for (int i = 0; i < n; i++) sd_vk_describe(&vk, devs[i], &out[i]);
    sd_vk_instance_free(&vk);
    return n;
}

static int vk_supports(uint32_t type) { return sd_vk_matvec_index(type) >= 0; }

static int vk_model_new(int device, const sd_gpu_shape *shape, int n_layer, sd_gpu_model **out, char *err)
{
    if (shape->head_dim > 512 || shape->head_dim % 2) {
        snprintf(err, SD_ERR_LEN, "vulkan: head size %d is not supported (even, at most 512)", shape->head_dim);
        return -1;
    }
    sd_gpu_model *g = calloc(1, sizeof *g);
    if (g) g->layers = calloc((size_t)n_layer, sizeof *g->layers);
    if (!g || !g->layers) {
        if (g) free(g);
        snprintf(err, SD_ERR_LEN, "vulkan: out of memory");
        return -1;
    }
    g->shape = *shape;
    g->n_layer = n_layer;
    if (sd_vk_device_open(device, &g->d, err)) { free(g->layers); free(g); return -1; }
    int half = shape->head_dim / 2;
    if (sd_vk_buffer_new(&g->d, 16, 0, &g->dummy, err) || sd_vk_buffer_new(&g->d, STAGE_BYTES, 1, &g->stage, err) ||
        sd_vk_buffer_new(&g->d, (VkDeviceSize)half * 4, 0, &g->freq, err))
        goto fail;
    if (shape->rope_freq_factors &&
        sd_vk_upload(&g->d, &g->freq, shape->rope_freq_factors, (VkDeviceSize)half * 4, &g->stage, err))
        goto fail;
    if (shape->ffn_gelu && (sd_vk_buffer_new(&g->d, 2u << 16, 0, &g->gelu, err) ||
                            sd_vk_upload(&g->d, &g->gelu, sd_geglu_table(), 2u << 16, &g->stage, err)))
        goto fail;
    *out = g;
    return 0;
fail:
    g->shape.rope_freq_factors = NULL;
    sd_gpu_vulkan.model_free(g);
    return -1;
}

static int upload_vec(sd_gpu_model *g, const float *v, int n, sd_vk_buffer *b, char *err)
{
    if (!v) return 0;
    return sd_vk_buffer_new(&g->d, (VkDeviceSize)n * 4, 0, b, err) ||
           sd_vk_upload(&g->d, b, v, (VkDeviceSize)n * 4, &g->stage, err) ? -1 : 0;
}

static int upload_weight(sd_gpu_model *g, const sd_weight *w, sd_vk_buffer *b, sd_weight *meta, char *err)
{
    if (!vk_supports(w->type)) {
        snprintf(err, SD_ERR_LEN, "vulkan: no kernel for %s weights", sd_type_name(w->type));
        return -1;
    }
    VkDeviceSize bytes = (VkDeviceSize)w->rows * w->row_bytes;
    if (sd_vk_buffer_new(&g->d, bytes, 0, b, err) || sd_vk_upload(&g->d, b, w->data, bytes, &g->stage, err) ||
        sd_vk_coop_check(&g->d, w, b, err))
        return -1;
    *meta = *w;
    meta->data = NULL;
    meta->packed = NULL;
    return 0;
}

static int vk_upload_layer(sd_gpu_model *g, int il, const sd_gpu_layer *L, char *err)
{
    vk_layer *V = &g->layers[il];
    const sd_gpu_shape *s = &g->shape;
    int e = s->n_embd, qd = s->n_head * s->head_dim, kvd = s->n_head_kv * s->head_dim;
    for (int i = 0; i < (L->moe ? 4 : 7); i++)
        if (upload_weight(g, L->w[i], &V->w[i], &V->meta[i], err)) return -1;
    if (upload_vec(g, L->attn_norm, e, &V->vec[V_ATTN_NORM], err) || upload_vec(g, L->ffn_norm, e, &V->vec[V_FFN_NORM], err) ||
        upload_vec(g, L->bq, qd, &V->vec[V_BQ], err) || upload_vec(g, L->bk, kvd, &V->vec[V_BK], err) ||
        upload_vec(g, L->bv, kvd, &V->vec[V_BV], err) || upload_vec(g, L->q_norm, s->head_dim, &V->vec[V_QN], err) ||
        upload_vec(g, L->k_norm, s->head_dim, &V->vec[V_KN], err) ||
        upload_vec(g, L->post_attn_norm, e, &V->vec[V_POST_ATTN], err) ||
        upload_vec(g, L->post_ffn_norm, e, &V->vec[V_POST_FFN], err) || upload_vec(g, L->bo, e, &V->vec[V_BO], err) ||
        upload_vec(g, L->attn_sinks, s->n_head, &V->vec[V_SINKS], err))
        return -1;
    if (L->moe && sd_vk_moe_upload(&g->d, &g->stage, L->moe, e, &V->moe, err)) return -1;
    V->rope_base = L->rope_base;
    V->rope_scale = L->rope_scale;
    V->swa = L->swa;
    V->on = 1;
    return 0;
}

static int vk_upload_output(sd_gpu_model *g, const float *norm, const sd_weight *w, char *err)
{
    if (!vk_supports(w->type)) {
        snprintf(err, SD_ERR_LEN, "vulkan: no kernel for %s weights", sd_type_name(w->type));
        return -1;
    }
    uint64_t per = g->d.max_binding / w->row_bytes;
    if (per > (uint64_t)w->rows) per = (uint64_t)w->rows;
    if (per < 1) { snprintf(err, SD_ERR_LEN, "vulkan: an output row exceeds the device's binding limit"); return -1; }
    g->out_rows = (int)per;
    g->n_out = (int)((w->rows + (int64_t)per - 1) / (int64_t)per);
    if (!(g->out_w = calloc((size_t)g->n_out, sizeof *g->out_w))) { snprintf(err, SD_ERR_LEN, "vulkan: out of memory"); return -1; }
    for (int i = 0; i < g->n_out; i++) {
        sd_weight part = *w;
        part.rows = w->rows - (int64_t)i * g->out_rows < g->out_rows ? w->rows - (int64_t)i * g->out_rows : g->out_rows;
        part.data = (const char *)w->data + (size_t)i * g->out_rows * w->row_bytes;
        if (upload_weight(g, &part, &g->out_w[i], &g->out_meta, err)) return -1;
    }
    g->out_meta.rows = w->rows;
    if (upload_vec(g, norm, g->shape.n_embd, &g->out_norm, err)) return -1;
    g->has_output = 1;
    return 0;
}

static void vk_model_free(sd_gpu_model *g)
{
    if (!g) return;
    sd_vk_device *d = &g->d;
    if (d->dev) {
        d->vk.vkDeviceWaitIdle(d->dev);
        for (int il = 0; il < g->n_layer; il++) {
            for (int i = 0; i < 7; i++) sd_vk_buffer_free(d, &g->layers[il].w[i]);
            for (int i = 0; i < N_VEC; i++) sd_vk_buffer_free(d, &g->layers[il].vec[i]);
            sd_vk_moe_free(d, g->layers[il].moe);
        }
        for (int i = 0; g->out_w && i < g->n_out; i++) sd_vk_buffer_free(d, &g->out_w[i]);
        free(g->out_w);
        sd_vk_buffer_free(d, &g->out_norm); sd_vk_buffer_free(d, &g->freq);
        sd_vk_buffer_free(d, &g->dummy); sd_vk_buffer_free(d, &g->stage); sd_vk_buffer_free(d, &g->gelu);
    }
    sd_vk_device_close(d);
    free(g->layers);
    free(g);
}

/* Encoded activations of n_tok rows of up to `cols` values, with Q8_1's
 * block sums after them (quant_act.comp). */
static VkDeviceSize xq_bytes(int n_tok, VkDeviceSize cols)
{
    return (VkDeviceSize)n_tok * (cols + cols / 32 + 1) * 4;
}

/* KV cache of n_ctx positions, scratch for n_ub tokens, logits for n_out of
 * them, meta_words of paged metadata (0: a session's state). */
static int state_alloc(sd_gpu_model *g, int n_ctx, int n_ub, int n_out, size_t meta_words, int kv_f32,
                       sd_gpu_state **out, char *err)
{
    sd_vk_device *d = &g->d;
    const sd_gpu_shape *s = &g->shape;
    sd_gpu_state *st = calloc(1, sizeof *st);
    if (st) { st->kc = calloc((size_t)g->n_layer, sizeof *st->kc); st->vc = calloc((size_t)g->n_layer, sizeof *st->vc); }
    if (!st || !st->kc || !st->vc) {
        if (st) { free(st->kc); free(st->vc); free(st); }
        snprintf(err, SD_ERR_LEN, "vulkan: out of memory");
        return -1;
    }
    st->g = g; st->n_ctx = n_ctx; st->n_ub = n_ub; st->kv_f32 = kv_f32; st->n_out = n_out; st->meta_words = meta_words;
    VkDeviceSize B = (VkDeviceSize)n_ub * 4, e = (VkDeviceSize)s->n_embd, qd = (VkDeviceSize)s->n_head * s->head_dim;
    VkDeviceSize kvd = (VkDeviceSize)s->n_head_kv * s->head_dim, kv = (VkDeviceSize)n_ctx * kvd * (kv_f32 ? 4 : 2);
    for (int il = 0; il < g->n_layer; il++)
        if (g->layers[il].on &&
            (sd_vk_buffer_new(d, kv, 0, &st->kc[il], err) || sd_vk_buffer_new(d, kv, 0, &st->vc[il], err)))
            goto fail;
    VkDeviceSize ff = (VkDeviceSize)(s->n_ff > 0 ? s->n_ff : 1), widest = ff > qd ? ff : qd;   /* columns of any product */
    if (e > widest) widest = e;
    /* Experts: the largest of any layer's (all of a model's are alike);
     * their down products encode n_ub x k rows of n_ff. */
    int moe_ff = 0, moe_k = 0, moe_e = 0;
    uint32_t sets = 0;
    for (int il = 0; il < g->n_layer; il++) {
        if (!g->layers[il].on) continue;
        sets += 34u;   /* at most 27 dispatches per layer (biases, norms, post-norms), 7 activation conversions */
        if (!g->layers[il].moe) continue;
        int f, k, ne;
        sd_vk_moe_dims(g->layers[il].moe, &f, &k, &ne);
        moe_ff = f > moe_ff ? f : moe_ff; moe_k = k > moe_k ? k : moe_k; moe_e = ne > moe_e ? ne : moe_e;
        sets += sd_vk_moe_sets(g->layers[il].moe);
    }
    VkDeviceSize xq = xq_bytes(n_ub, widest);
    if (moe_k) {
        VkDeviceSize xm = xq_bytes(n_ub * moe_k, (VkDeviceSize)(moe_ff > s->n_embd ? moe_ff : s->n_embd));
        xq = xm > xq ? xm : xq;
        if (sd_vk_moe_scratch_new(d, n_ub, g->n_layer, s->n_embd, moe_ff, moe_k, moe_e, &st->moe, err)) goto fail;
    }
    st->io_logits = (size_t)n_ub * (size_t)e;
    VkDeviceSize io = (st->io_logits + (g->has_output ? (size_t)n_out * (size_t)s->n_vocab : 0)) * 4;
    if (sd_vk_buffer_new(d, B * e, 0, &st->x, err) || sd_vk_buffer_new(d, B * (qd > e ? qd : e), 0, &st->xb, err) ||
        sd_vk_buffer_new(d, B * qd, 0, &st->q, err) || sd_vk_buffer_new(d, B * kvd, 0, &st->k, err) ||
        sd_vk_buffer_new(d, B * kvd, 0, &st->v, err) || sd_vk_buffer_new(d, B * qd, 0, &st->att, err) ||
        sd_vk_buffer_new(d, B * ff, 0, &st->hb, err) || sd_vk_buffer_new(d, B * ff, 0, &st->hb2, err) ||
        sd_vk_buffer_new(d, xq, 0, &st->xq, err) || sd_vk_buffer_new(d, io, 1, &st->io, err) ||
        (meta_words && (sd_vk_buffer_new(d, (VkDeviceSize)meta_words * 4, 1, &st->meta, err) ||
                        sd_vk_buffer_new(d, (VkDeviceSize)meta_words * 4, 0, &st->meta_dev, err))))
        goto fail;
    /* The layers' (above; a paged step's layer: one more, record_paged_attention);
     * the head's norm, encoding, parts and soft-cap. */
    st->pool_sets = sets + 8u + (uint32_t)g->n_out + (meta_words ? 2u * (uint32_t)g->n_layer : 0);
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SD_VK_BINDINGS * st->pool_sets};
    VkDescriptorPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                      .maxSets = st->pool_sets, .poolSizeCount = 1, .pPoolSizes = &ps};
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = d->cpool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VkResult r = d->vk.vkCreateDescriptorPool(d->dev, &pci, NULL, &st->pool);
    if (r != VK_SUCCESS) st->pool = VK_NULL_HANDLE;
    if (r == VK_SUCCESS) r = d->vk.vkAllocateCommandBuffers(d->dev, &ai, &st->cb);
    if (r != VK_SUCCESS) {
        st->cb = VK_NULL_HANDLE;
        snprintf(err, SD_ERR_LEN, "vulkan: %s: %s", d->info.name, sd_vk_result(r));
        goto fail;
    }
    *out = st;
    return 0;
fail:
    sd_gpu_vulkan.state_free(st);
    return -1;
}

static int vk_state_new(sd_gpu_model *g, int n_ctx, int n_ub, int kv_f32, sd_gpu_state **out, char *err)
{
    return state_alloc(g, n_ctx, n_ub, n_ub, 0, kv_f32, out, err);
}

static int vk_batch_new(sd_gpu_model *g, int n_pos, int block, int n_seqs, int n_batch, int n_out, int kv_f32,
                        sd_gpu_state **out, char *err)
{
    if (block < 1 || n_pos < block || n_pos % block || n_seqs < 1 || n_batch < 1 || n_out < 1 || n_out > n_batch) {
        snprintf(err, SD_ERR_LEN, "vulkan: bad paged pool (%d positions in blocks of %d, %d sequences, %d tokens)",
                 n_pos, block, n_seqs, n_batch);
        return -1;
    }
    if (state_alloc(g, n_pos, n_batch, n_out, sd_vk_paged_words(n_batch, n_seqs, n_pos / block), kv_f32, out, err))
        return -1;
    (*out)->paged = 1;
    (*out)->block = block;
    (*out)->n_blocks = n_pos / block;
    return 0;
}

static void vk_state_free(sd_gpu_state *st)
{
    if (!st) return;
    sd_vk_device *d = &st->g->d;
    d->vk.vkDeviceWaitIdle(d->dev);
    for (int il = 0; il < st->g->n_layer; il++) { sd_vk_buffer_free(d, &st->kc[il]); sd_vk_buffer_free(d, &st->vc[il]); }
    sd_vk_buffer *bs[] = {&st->x, &st->xb, &st->q, &st->k, &st->v, &st->att, &st->hb, &st->hb2, &st->xq, &st->io,
                          &st->meta, &st->meta_dev};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) sd_vk_buffer_free(d, bs[i]);
    sd_vk_moe_scratch_free(d, &st->moe);
    if (st->cb) d->vk.vkFreeCommandBuffers(d->dev, d->cpool, 1, &st->cb);
    if (st->pool) d->vk.vkDestroyDescriptorPool(d->dev, st->pool, NULL);
    free(st->kc); free(st->vc);
    free(st);
}

/* ---- recording ---------------------------------------------------------- */

typedef struct sd_vk_rec {
    sd_gpu_state *st;
    sd_vk_device *d;
    VkCommandBuffer cb;
    int failed;
    char *err;
    /* What st->xq holds: activations of qsrc at qoff, n_tok rows, as mode. */
    sd_vk_buffer *qsrc;
    uint32_t qoff;
    int qmode, qn;
    int path;   /* SD_VK_PATH_*: which kernel takes batches above MATMUL_MIN_TOK */
} rec;

static void barrier(rec *R)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                           VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    R->d->vk.vkCmdPipelineBarrier(R->cb, st, st, 0, 1, &mb, 0, NULL, 0, NULL);
}

void sd_vk_rec_barrier(sd_vk_rec *R) { barrier(R); }

/* One dispatch of pipeline pipe on nb buffers (NULL or past nb: a dummy). */
void sd_vk_rec_dispatch(rec *R, int pipe, sd_vk_buffer *const *bs, int nb, const void *pc, uint32_t pc_bytes,
                        uint32_t gx, uint32_t gy)
{
    if (R->failed) return;
    sd_vk_device *d = R->d;
    if (sd_vk_pipeline(d, pipe, R->err)) {
        R->failed = 1;
        return;
    }
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = R->st->pool, .descriptorSetCount = 1, .pSetLayouts = &d->dsl};
    VkDescriptorSet ds;
    VkResult r = d->vk.vkAllocateDescriptorSets(d->dev, &ai, &ds);
    if (r != VK_SUCCESS) {
        snprintf(R->err, SD_ERR_LEN, "vulkan: descriptor set: %s", sd_vk_result(r));
        R->failed = 1;
        return;
    }
    VkDescriptorBufferInfo bi[SD_VK_BINDINGS];
    VkWriteDescriptorSet w[SD_VK_BINDINGS];
    for (int i = 0; i < SD_VK_BINDINGS; i++) {
        sd_vk_buffer *b = i < nb && bs[i] && bs[i]->buf ? bs[i] : &R->st->g->dummy;
        bi[i] = (VkDescriptorBufferInfo){b->buf, 0, VK_WHOLE_SIZE};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = ds,
                                      .dstBinding = (uint32_t)i, .descriptorCount = 1,
                                      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &bi[i]};
    }
    d->vk.vkUpdateDescriptorSets(d->dev, SD_VK_BINDINGS, w, 0, NULL);
    d->vk.vkCmdBindPipeline(R->cb, VK_PIPELINE_BIND_POINT_COMPUTE, d->pipes[pipe]);
    d->vk.vkCmdBindDescriptorSets(R->cb, VK_PIPELINE_BIND_POINT_COMPUTE, d->layout, 0, 1, &ds, 0, NULL);
    d->vk.vkCmdPushConstants(R->cb, d->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, pc_bytes, pc);
    d->vk.vkCmdDispatch(R->cb, gx, gy, 1);
    if (pipe >= SD_VK_N_FORMATS && pipe < SD_VK_MATMUL_FIRST && pipe != SD_VK_QUANT_ACT) R->qsrc = NULL;   /* it may have written the source */
}

/* The same on up to 4 buffers. */
static void dispatch(rec *R, int pipe, sd_vk_buffer *b0, sd_vk_buffer *b1, sd_vk_buffer *b2, sd_vk_buffer *b3,
                     const void *pc, uint32_t pc_bytes, uint32_t gx, uint32_t gy)
{
    sd_vk_buffer *bs[4] = {b0, b1, b2, b3};
    sd_vk_rec_dispatch(R, pipe, bs, 4, pc, pc_bytes, gx, gy);
}

void sd_vk_grid(uint64_t groups, uint32_t *gx, uint32_t *gy)
{
    *gx = groups < 65535 ? (uint32_t)(groups ? groups : 1) : 65535;
    *gy = (uint32_t)((groups + 65534) / 65535);
    if (!*gy) *gy = 1;
}

static void elementwise(rec *R, int pipe, sd_vk_buffer *b0, sd_vk_buffer *b1, const void *pc, uint32_t pcb, uint64_t n)
{
    uint32_t gx, gy;
    sd_vk_grid((n + 63) / 64, &gx, &gy);
    dispatch(R, pipe, b0, b1, NULL, NULL, pc, pcb, gx, gy);
}

/* How the CPU encodes the activations for a format's dot product
 * (quant_act.comp's modes): 0 as they are, 1 F16, 2 BF16, 3 Q8_0, 4 Q8_K,
 * 5 Q8_1 (Q8_0's values plus each block's F16 sum after the rows). */
static int act_mode(uint32_t type)
{
    switch (sd_type_get(type)->vec_dot_type) {
    case SD_TYPE_F16: return 1;
    case SD_TYPE_BF16: return 2;
    case SD_TYPE_Q8_0: return 3;
    case SD_TYPE_Q8_1: return 5;
    case SD_TYPE_Q8_K: return 4;
    default: return 0;
    }
}

/* Batches above this many tokens take the tiled matmul kernel (a weight
 * value decoded once per 32 tokens); decode and short batches the matvec,
 * whose one-row workgroups keep a single token's product spread wide. */
#define MATMUL_MIN_TOK 16
#define MATVEC_ROWS 2   /* matvec.comp's NR */

sd_vk_buffer *sd_vk_rec_encode(rec *R, uint32_t type, sd_vk_buffer *x, uint32_t x_off, int cols, int n_tok)
{
    int mode = act_mode(type);
    if (!mode) return x;
    if (R->qsrc != x || R->qoff != x_off || R->qmode != mode || R->qn != n_tok) {
        struct { uint32_t n, rows, x_off, mode; } qp = {(uint32_t)cols, (uint32_t)n_tok, x_off, (uint32_t)mode};
        barrier(R);   /* an earlier product may still read st->xq */
        dispatch(R, SD_VK_QUANT_ACT, x, &R->st->xq, NULL, NULL, &qp, sizeof qp, (uint32_t)n_tok, 1);
        barrier(R);
        R->qsrc = x; R->qoff = x_off; R->qmode = mode; R->qn = n_tok;
    }
    return &R->st->xq;
}

/* y[t * y_stride + y_off + r] (+)= row r of m times x[t] (y_stride: m's rows, or more for a part of a matrix). */
static void matvec_rows(rec *R, const sd_weight *m, sd_vk_buffer *w, sd_vk_buffer *x, uint32_t x_off, sd_vk_buffer *y,
                        uint32_t y_off, uint32_t y_stride, int n_tok, int add)
{
    if (act_mode(m->type)) {
        x = sd_vk_rec_encode(R, m->type, x, x_off, (int)m->cols, n_tok);
        x_off = 0;
    }
    struct { uint32_t rows, cols, n_tok, row_bytes, x_off, x_stride, y_off, y_stride; float scale; uint32_t add, s_off; } pc = {
        (uint32_t)m->rows, (uint32_t)m->cols, (uint32_t)n_tok, (uint32_t)m->row_bytes, x_off, (uint32_t)m->cols, y_off,
        y_stride, m->scale, (uint32_t)add, (uint32_t)((uint64_t)n_tok * m->cols)};
    uint32_t gx, gy;
    int fi = sd_vk_matvec_index(m->type);
    const sd_vk_coop *c = &R->d->coop;
    if (n_tok > MATMUL_MIN_TOK && R->path != SD_VK_PATH_PLAIN && c->on && c->state[fi] == 1) {
        /* matmul_coop.comp: 4m x 4n tiles of rows x tokens */
        dispatch(R, SD_VK_COOP_FIRST + fi, w, x, y, NULL, &pc, sizeof pc, (uint32_t)((m->rows + c->bm - 1) / c->bm),
                 (uint32_t)((n_tok + c->bn - 1) / c->bn));
    } else if (n_tok > MATMUL_MIN_TOK && R->path == SD_VK_PATH_COOP) {
        if (!R->failed) snprintf(R->err, SD_ERR_LEN, "vulkan: no cooperative-matrix kernel for %s on %s%s%s",
                                 sd_type_name(m->type), R->d->info.name, c->notice[0] ? ": " : "", c->notice);
        R->failed = 1;
    } else if (n_tok > MATMUL_MIN_TOK) {
        /* matmul.comp: 32 x 32 tiles of rows x tokens */
        dispatch(R, SD_VK_MATMUL_FIRST + sd_vk_matvec_index(m->type), w, x, y, NULL, &pc, sizeof pc,
                 (uint32_t)((m->rows + 31) / 32), (uint32_t)((n_tok + 31) / 32));
    } else {
        sd_vk_grid(((uint64_t)m->rows + MATVEC_ROWS - 1) / MATVEC_ROWS, &gx, &gy);
        dispatch(R, SD_VK_MATVEC_FIRST + sd_vk_matvec_index(m->type), w, x, y, NULL, &pc, sizeof pc, gx, gy);
    }
    if (y == R->qsrc) R->qsrc = NULL;
}

static void matvec(rec *R, const sd_weight *m, sd_vk_buffer *w, sd_vk_buffer *x, uint32_t x_off, sd_vk_buffer *y,
                   uint32_t y_off, int n_tok, int add)
{
    matvec_rows(R, m, w, x, x_off, y, y_off, (uint32_t)m->rows, n_tok, add);
}

void sd_vk_rec_matvec(rec *R, const sd_weight *m, sd_vk_buffer *w, sd_vk_buffer *x, sd_vk_buffer *y, int n_tok)
{
    matvec(R, m, w, x, 0, y, 0, n_tok, 0);
}

static void rmsnorm(rec *R, sd_vk_buffer *x, uint32_t x_off, sd_vk_buffer *w, sd_vk_buffer *o, int n, int rows)
{
    struct { uint32_t n, rows, x_off, o_off; float eps; } pc = {(uint32_t)n, (uint32_t)rows, x_off, 0,
                                                                R->st->g->shape.norm_eps};
    dispatch(R, SD_VK_RMSNORM, x, w, o, NULL, &pc, sizeof pc, (uint32_t)rows, 1);
}

/* x += the output projection wi of src, through its bias (V_BO with W_O)
 * and its post-norm (gemma3) when the layer has them. */
static void sublayer_out(rec *R, vk_layer *L, int wi, sd_vk_buffer *src, int post, int n)
{
    sd_gpu_state *st = R->st;
    int e = st->g->shape.n_embd;
    sd_vk_buffer *bias = wi == W_O && L->vec[V_BO].buf ? &L->vec[V_BO] : NULL;
    if (!L->vec[post].buf && !bias) {
        matvec(R, &L->meta[wi], &L->w[wi], src, 0, &st->x, 0, n, 1);
        barrier(R);
        return;
    }
    matvec(R, &L->meta[wi], &L->w[wi], src, 0, &st->xb, 0, n, 0);
    barrier(R);
    if (bias) {
        struct { uint32_t n, n_tok; } bp = {(uint32_t)e, (uint32_t)n};
        elementwise(R, SD_VK_ADD_BIAS, &st->xb, bias, &bp, sizeof bp, (uint64_t)e * n);
        barrier(R);
    }
    if (L->vec[post].buf) {
        rmsnorm(R, &st->xb, 0, &L->vec[post], &st->xb, e, n);
        barrier(R);
    }
    struct { uint32_t n, n_tok; } ap = {(uint32_t)((uint64_t)n * e), 1};   /* x += xb: a "bias" as long as x */
    elementwise(R, SD_VK_ADD_BIAS, &st->x, &st->xb, &ap, sizeof ap, ap.n);
    barrier(R);
}

/* A paged step's RoPE, cache write and attention for layer il: q rotated
 * into st->att and attended there in place, keys rotated in place and
 * written with the values to the rows their block tables give. A sliding
 * layer reads its window from the sequence's full table (the CPU's window
 * pool, when there is one, serves the CPU's layers only). */
static void record_paged_attention(rec *R, int il, int n)
{
    sd_gpu_state *st = R->st;
    sd_gpu_model *g = st->g;
    const sd_gpu_shape *s = &g->shape;
    vk_layer *L = &g->layers[il];
    int hd = s->head_dim, kvd = s->n_head_kv * hd;
    struct {
        uint32_t n_tok, n_head, hd; float base, scale; uint32_t neox, has_ff;
        float yarn_fs, corr_lo, corr_hi, mscale;
    } rq = {(uint32_t)n, (uint32_t)s->n_head, (uint32_t)hd, L->rope_base, L->rope_scale, (uint32_t)s->rope_neox,
            s->rope_freq_factors != NULL, s->yarn_freq_scale, s->yarn_corr_lo, s->yarn_corr_hi, s->yarn_mscale}, rk = rq;
    rk.n_head = (uint32_t)s->n_head_kv;
    uint32_t gx, gy;
    sd_vk_grid(((uint64_t)n * s->n_head * (hd / 2) + 63) / 64, &gx, &gy);
    dispatch(R, SD_VK_ROPE_PAGED, &st->q, &g->freq, &st->meta_dev, &st->att, &rq, sizeof rq, gx, gy);
    sd_vk_grid(((uint64_t)n * s->n_head_kv * (hd / 2) + 63) / 64, &gx, &gy);
    dispatch(R, SD_VK_ROPE_PAGED, &st->k, &g->freq, &st->meta_dev, &st->k, &rk, sizeof rk, gx, gy);
    barrier(R);
    struct { uint32_t n_tok, n_kv, hd, n_pos, block, f32; } kp = {(uint32_t)n, (uint32_t)s->n_head_kv, (uint32_t)hd,
                                                                  (uint32_t)st->n_ctx, (uint32_t)st->block,
                                                                  (uint32_t)st->kv_f32};
    sd_vk_grid(((uint64_t)n * kvd / (st->kv_f32 ? 1 : 2) + 63) / 64, &gx, &gy);
    dispatch(R, SD_VK_KV_STORE_PAGED, &st->k, &st->kc[il], &st->meta_dev, NULL, &kp, sizeof kp, gx, gy);
    dispatch(R, SD_VK_KV_STORE_PAGED, &st->v, &st->vc[il], &st->meta_dev, NULL, &kp, sizeof kp, gx, gy);
    barrier(R);
    struct { uint32_t n_head, n_kv, hd, n_pos, n_tok, block, f32; float scale; uint32_t swa, sinks; } ap = {
        (uint32_t)s->n_head, (uint32_t)s->n_head_kv, (uint32_t)hd, (uint32_t)st->n_ctx, (uint32_t)n,
        (uint32_t)st->block, (uint32_t)st->kv_f32, (s->q_scale > 0 ? s->q_scale : 1.0f) / sqrtf((float)hd),
        (uint32_t)L->swa, L->vec[V_SINKS].buf != VK_NULL_HANDLE};
    sd_vk_buffer *ab[5] = {&st->att, &st->kc[il], &st->vc[il], &st->meta_dev, &L->vec[V_SINKS]};
    sd_vk_rec_dispatch(R, SD_VK_ATTENTION_PAGED, ab, 5, &ap, sizeof ap, (uint32_t)s->n_head, (uint32_t)n);
}

static void record_layer(rec *R, int il, int n, int pos)
{
    sd_gpu_state *st = R->st;
    sd_gpu_model *g = st->g;
    const sd_gpu_shape *s = &g->shape;
    vk_layer *L = &g->layers[il];
    int e = s->n_embd, hd = s->head_dim, qd = s->n_head * hd, kvd = s->n_head_kv * hd;

    rmsnorm(R, &st->x, 0, &L->vec[V_ATTN_NORM], &st->xb, e, n);
    barrier(R);
    matvec(R, &L->meta[W_Q], &L->w[W_Q], &st->xb, 0, &st->q, 0, n, 0);
    matvec(R, &L->meta[W_K], &L->w[W_K], &st->xb, 0, &st->k, 0, n, 0);
    matvec(R, &L->meta[W_V], &L->w[W_V], &st->xb, 0, &st->v, 0, n, 0);
    barrier(R);
    if (L->vec[V_BQ].buf) {
        struct { uint32_t n, n_tok; } bq = {(uint32_t)qd, (uint32_t)n}, bk = {(uint32_t)kvd, (uint32_t)n};
        elementwise(R, SD_VK_ADD_BIAS, &st->q, &L->vec[V_BQ], &bq, sizeof bq, (uint64_t)qd * n);
        elementwise(R, SD_VK_ADD_BIAS, &st->k, &L->vec[V_BK], &bk, sizeof bk, (uint64_t)kvd * n);
        elementwise(R, SD_VK_ADD_BIAS, &st->v, &L->vec[V_BV], &bk, sizeof bk, (uint64_t)kvd * n);
        barrier(R);
    }
    if (L->vec[V_QN].buf) {
        rmsnorm(R, &st->q, 0, &L->vec[V_QN], &st->q, hd, n * s->n_head);
        rmsnorm(R, &st->k, 0, &L->vec[V_KN], &st->k, hd, n * s->n_head_kv);
        barrier(R);
    }
    if (st->paged) {
        record_paged_attention(R, il, n);   /* each token at its own position, through its block table */
        goto attended;
    }
    struct {
        uint32_t n_tok, n_head, hd, pos0; float base, scale; uint32_t neox, has_ff;
        float yarn_fs, corr_lo, corr_hi, mscale;
    } rq = {(uint32_t)n, (uint32_t)s->n_head, (uint32_t)hd, (uint32_t)pos, L->rope_base, L->rope_scale,
            (uint32_t)s->rope_neox, s->rope_freq_factors != NULL, s->yarn_freq_scale, s->yarn_corr_lo,
            s->yarn_corr_hi, s->yarn_mscale}, rk = rq;
    rk.n_head = (uint32_t)s->n_head_kv;
    elementwise(R, SD_VK_ROPE, &st->q, &g->freq, &rq, sizeof rq, (uint64_t)n * s->n_head * (hd / 2));
    elementwise(R, SD_VK_ROPE, &st->k, &g->freq, &rk, sizeof rk, (uint64_t)n * s->n_head_kv * (hd / 2));
    barrier(R);
    struct { uint32_t n_tok, n_kv, hd, pos0, n_ctx, f32; } kp = {(uint32_t)n, (uint32_t)s->n_head_kv, (uint32_t)hd,
                                                                 (uint32_t)pos, (uint32_t)st->n_ctx, (uint32_t)st->kv_f32};
    uint64_t words = (uint64_t)n * kvd / (st->kv_f32 ? 1 : 2);
    dispatch(R, SD_VK_KV_STORE, &st->k, &st->v, &st->kc[il], &st->vc[il], &kp, sizeof kp, (uint32_t)((words + 63) / 64), 1);
    barrier(R);
    struct { uint32_t n_head, n_kv, hd, n_ctx, pos0, f32; float scale; uint32_t swa, sinks; } ap = {
        (uint32_t)s->n_head, (uint32_t)s->n_head_kv, (uint32_t)hd, (uint32_t)st->n_ctx, (uint32_t)pos,
        (uint32_t)st->kv_f32, (s->q_scale > 0 ? s->q_scale : 1.0f) / sqrtf((float)hd), (uint32_t)L->swa,
        L->vec[V_SINKS].buf != VK_NULL_HANDLE};
    sd_vk_buffer *ab[5] = {&st->q, &st->kc[il], &st->vc[il], &st->att, &L->vec[V_SINKS]};
    sd_vk_rec_dispatch(R, SD_VK_ATTENTION, ab, 5, &ap, sizeof ap, (uint32_t)s->n_head, (uint32_t)n);
attended:
    barrier(R);
    sublayer_out(R, L, W_O, &st->att, V_POST_ATTN, n);
    rmsnorm(R, &st->x, 0, &L->vec[V_FFN_NORM], &st->xb, e, n);
    barrier(R);
    if (L->moe) {
        sd_vk_moe_record(R, L->moe, &st->moe, &st->xb, &st->x, n, il, g->n_layer);   /* adds into x */
        return;
    }
    matvec(R, &L->meta[W_GATE], &L->w[W_GATE], &st->xb, 0, &st->hb, 0, n, 0);
    matvec(R, &L->meta[W_UP], &L->w[W_UP], &st->xb, 0, &st->hb2, 0, n, 0);
    barrier(R);
    struct { uint32_t n; } sp = {(uint32_t)((uint64_t)n * s->n_ff)};
    if (s->ffn_gelu) {
        sd_vk_buffer *gb[3] = {&st->hb, &st->hb2, &g->gelu};
        uint32_t gx, gy;
        sd_vk_grid(((uint64_t)sp.n + 63) / 64, &gx, &gy);
        sd_vk_rec_dispatch(R, SD_VK_GEGLU, gb, 3, &sp, sizeof sp, gx, gy);
    } else elementwise(R, SD_VK_SWIGLU, &st->hb, &st->hb2, &sp, sizeof sp, sp.n);
    barrier(R);
    sublayer_out(R, L, W_DOWN, &st->hb, V_POST_FFN, n);
}

/* A paged step's shape against its state: the pool's block size, and
 * output rows ascending within the batch, no more than the logits held. */
static int bad_paged_step(const sd_gpu_state *st, const sd_gpu_step *step)
{
    if (step->block != st->block || !step->seq || !step->tables) return 1;
    if (!step->output) return 0;
    if (!step->out || step->n_out < 1 || step->n_out > st->n_out) return 1;
    for (int i = 0; i < step->n_out; i++)
        if (step->out[i] < (i ? step->out[i - 1] + 1 : 0) || step->out[i] >= step->n_tok) return 1;
    return 0;
}

/* x's rows out[0..rows) into xb's rows 0..rows, for the output head. */
static void gather_out_rows(rec *R, const int *out, int rows)
{
    sd_gpu_state *st = R->st;
    VkDeviceSize row = (VkDeviceSize)st->g->shape.n_embd * sizeof(float);
    VkBufferCopy c[64];
    for (int i = 0; i < rows && !R->failed;) {
        uint32_t k = 0;
        for (; k < 64 && i < rows; k++, i++) c[k] = (VkBufferCopy){(VkDeviceSize)out[i] * row, (VkDeviceSize)i * row, row};
        R->d->vk.vkCmdCopyBuffer(R->cb, st->x.buf, st->xb.buf, k, c);
    }
    barrier(R);
}

static int vk_run(sd_gpu_state *st, const sd_gpu_step *step, char *err)
{
    sd_gpu_model *g = st->g;
    sd_vk_device *d = &g->d;
    const sd_gpu_shape *s = &g->shape;
    int n = step->n_tok, e = s->n_embd;
    if (d->lost) {
        snprintf(err, SD_ERR_LEN, "vulkan: %s failed earlier in this run (%s)", d->info.name, d->lost_why);
        return -1;
    }
    int paged = step->pos_of != NULL;
    if (paged != st->paged || n < 1 || n > st->n_ub || (!paged && step->pos + n > st->n_ctx) ||
        (step->output && !g->has_output) || (paged && bad_paged_step(st, step))) {
        snprintf(err, SD_ERR_LEN, "vulkan: bad %sstep (%d tokens at %d)", paged ? "paged " : "", n, paged ? 0 : step->pos);
        return -1;
    }
    long meta_words = paged ? sd_vk_paged_meta(step, st->n_blocks, st->meta.map, st->meta_words, err) : 0;
    if (meta_words < 0) return -1;
    for (int il = step->layer_begin; il < step->layer_end; il++)
        if (!g->layers[il].on) { snprintf(err, SD_ERR_LEN, "vulkan: layer %d is not on the device", il); return -1; }
    VkResult r = d->vk.vkResetDescriptorPool(d->dev, st->pool, 0);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if (r == VK_SUCCESS) r = d->vk.vkResetCommandBuffer(st->cb, 0);
    if (r == VK_SUCCESS) r = d->vk.vkBeginCommandBuffer(st->cb, &bi);
    if (r != VK_SUCCESS) { snprintf(err, SD_ERR_LEN, "vulkan: command buffer: %s", sd_vk_result(r)); return -1; }
    rec R = {st, d, st->cb, 0, err, NULL, 0, 0, 0, SD_VK_PATH_AUTO};
    size_t xb = (size_t)n * e * sizeof(float);
    memcpy(st->io.map, step->x, xb);
    VkBufferCopy c = {0, 0, xb};
    d->vk.vkCmdCopyBuffer(st->cb, st->io.buf, st->x.buf, 1, &c);
    if (paged) {
        VkBufferCopy mc = {0, 0, (VkDeviceSize)meta_words * 4};
        d->vk.vkCmdCopyBuffer(st->cb, st->meta.buf, st->meta_dev.buf, 1, &mc);
    }
    barrier(&R);
    for (int il = step->layer_begin; il < step->layer_end; il++) record_layer(&R, il, n, step->pos);
    int rows = paged ? step->n_out : n - step->first_row;
    if (step->output) {
        if (paged) gather_out_rows(&R, step->out, rows);   /* then normalized in place */
        rmsnorm(&R, paged ? &st->xb : &st->x, paged ? 0 : (uint32_t)(step->first_row * e), &g->out_norm, &st->xb, e,
                rows);
        barrier(&R);
        for (int i = 0; i < g->n_out; i++) {
            sd_weight part = g->out_meta;
            int64_t r0 = (int64_t)i * g->out_rows;
            part.rows = g->out_meta.rows - r0 < g->out_rows ? g->out_meta.rows - r0 : g->out_rows;
            matvec_rows(&R, &part, &g->out_w[i], &st->xb, 0, &st->io, (uint32_t)(st->io_logits + (size_t)r0),
                        (uint32_t)g->out_meta.rows, rows, 0);
        }
        if (s->logit_softcap > 0) {
            barrier(&R);
            struct { uint32_t n, off; float cap; } cp = {(uint32_t)((uint64_t)rows * s->n_vocab),
                                                         (uint32_t)st->io_logits, s->logit_softcap};
            elementwise(&R, SD_VK_SOFTCAP, &st->io, NULL, &cp, sizeof cp, cp.n);
        }
    }
    int moe_k = st->moe.k;
    VkBufferCopy ic = {0, 0, (VkDeviceSize)n * g->n_layer * moe_k * 4};
    if (step->moe_ids && moe_k) {
        barrier(&R);
        d->vk.vkCmdCopyBuffer(st->cb, st->moe.ids.buf, st->moe.ids_host.buf, 1, &ic);
    }
    d->vk.vkCmdCopyBuffer(st->cb, st->x.buf, st->io.buf, 1, &c);
    VkMemoryBarrier hb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    d->vk.vkCmdPipelineBarrier(st->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                               VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &hb, 0, NULL, 0, NULL);
    if (R.failed) { d->vk.vkEndCommandBuffer(st->cb); return -1; }
    if (sd_vk_submit_wait(d, st->cb, 1, err)) return -1;
    memcpy(step->x, st->io.map, xb);
    if (step->output)
        memcpy(step->logits, (const float *)st->io.map + st->io_logits, (size_t)rows * s->n_vocab * sizeof(float));
    /* the chosen experts of the GPU's layers (the CPU's wrote theirs) */
    for (int t = 0; step->moe_ids && moe_k && t < n; t++)
        for (int il = step->layer_begin; il < step->layer_end; il++) {
            size_t at = ((size_t)t * g->n_layer + il) * moe_k;
            if (g->layers[il].moe) memcpy(step->moe_ids + at, (const int32_t *)st->moe.ids_host.map + at, moe_k * 4u);
        }
    return 0;
}

static const char *vk_notice(const sd_gpu_model *g) { return g->d.coop.notice[0] ? g->d.coop.notice : NULL; }

const sd_gpu_backend sd_gpu_vulkan = {
    "vulkan", vk_list, vk_supports, vk_model_new, vk_upload_layer, vk_upload_output, vk_model_free,
    vk_state_new, vk_state_free, vk_run, vk_notice, vk_batch_new,
};

const sd_gpu_backend *const sd_gpu_backends[] = {&sd_gpu_vulkan, NULL};

/* ---- one product alone, for the tests ----------------------------------- */

int sd_vk_matvec_once(int device, const sd_weight *w, const float *x, int n_tok, float *y, char *err)
{
    return sd_vk_product_once(device, w, x, n_tok, SD_VK_PATH_PLAIN, y, err);
}

int sd_vk_product_once(int device, const sd_weight *w, const float *x, int n_tok, int path, float *y, char *err)
{
    sd_gpu_model *g = calloc(1, sizeof *g);
    sd_gpu_state *st = calloc(1, sizeof *st);
    if (!g || !st) { free(g); free(st); snprintf(err, SD_ERR_LEN, "out of memory"); return -1; }
    int rc = -1;
    sd_vk_device *d = &g->d;
    sd_vk_buffer wb = {0}, xb = {0}, yb = {0};
    if (!vk_supports(w->type)) { snprintf(err, SD_ERR_LEN, "vulkan: no kernel for %s", sd_type_name(w->type)); goto out; }
    if (sd_vk_device_open(device, d, err)) goto out;
    st->g = g;
    size_t xbytes = (size_t)n_tok * w->cols * 4, ybytes = (size_t)n_tok * w->rows * 4;
    sd_weight meta;
    if (sd_vk_buffer_new(d, 16, 0, &g->dummy, err) || sd_vk_buffer_new(d, STAGE_BYTES, 1, &g->stage, err) ||
        upload_weight(g, w, &wb, &meta, err) || sd_vk_buffer_new(d, xbytes, 1, &xb, err) ||
        sd_vk_buffer_new(d, ybytes, 1, &yb, err) || sd_vk_buffer_new(d, xq_bytes(n_tok, (VkDeviceSize)w->cols), 0, &st->xq, err))
        goto out;
    memcpy(xb.map, x, xbytes);
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SD_VK_BINDINGS * 4};
    VkDescriptorPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 4,
                                      .poolSizeCount = 1, .pPoolSizes = &ps};
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = d->cpool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    if (d->vk.vkCreateDescriptorPool(d->dev, &pci, NULL, &st->pool) != VK_SUCCESS) { st->pool = VK_NULL_HANDLE; goto vkfail; }
    if (d->vk.vkAllocateCommandBuffers(d->dev, &ai, &st->cb) != VK_SUCCESS) { st->cb = VK_NULL_HANDLE; goto vkfail; }
    d->vk.vkBeginCommandBuffer(st->cb, &bi);
    rec R = {st, d, st->cb, 0, err, NULL, 0, 0, 0, path};
    matvec(&R, &meta, &wb, &xb, 0, &yb, 0, n_tok, 0);
    VkMemoryBarrier hb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    d->vk.vkCmdPipelineBarrier(st->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &hb, 0,
                               NULL, 0, NULL);
    if (R.failed || sd_vk_submit_wait(d, st->cb, 0, err)) goto out;
    memcpy(y, yb.map, ybytes);
    rc = 0;
    goto out;
vkfail:
    snprintf(err, SD_ERR_LEN, "vulkan: descriptor pool or command buffer");
out:
    if (d->dev) {
        d->vk.vkDeviceWaitIdle(d->dev);
        sd_vk_buffer_free(d, &wb); sd_vk_buffer_free(d, &xb); sd_vk_buffer_free(d, &yb);
        sd_vk_buffer_free(d, &st->xq); sd_vk_buffer_free(d, &g->dummy); sd_vk_buffer_free(d, &g->stage);
        if (st->cb) d->vk.vkFreeCommandBuffers(d->dev, d->cpool, 1, &st->cb);
        if (st->pool) d->vk.vkDestroyDescriptorPool(d->dev, st->pool, NULL);
        sd_vk_device_close(d);
    }
    free(st);
    free(g);
    return rc;
}
