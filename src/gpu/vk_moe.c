/* The Vulkan backend's routed experts (see vk_moe.h). A 3-D expert tensor
 * goes into buffers of whole experts, as many as the device's largest
 * storage binding asks (lavapipe binds at most 128 MiB: a big model's
 * tensor spans several); matvec_id.comp then runs once per buffer and
 * each (token, slot) pair's workgroups read only the rows of the expert the
 * router chose for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "gpu/vk_moe.h"
#include "tensor/types.h"

enum { E_GATE, E_UP, E_DOWN };

struct sd_vk_moe {
    int n_expert, k, n_ff, n_embd, topk_softmax, oai;
    sd_weight router_meta, meta[3];   /* shapes and formats (no data) */
    sd_vk_buffer router, router_b, bias[3];
    VkDeviceSize expert_bytes[3];
    int per_buf[3], n_buf[3];         /* experts per buffer, buffers */
    sd_vk_buffer *bufs[3];
};

static int fail(char *err, const char *what)
{
    snprintf(err, SD_ERR_LEN, "vulkan: %s", what);
    return -1;
}

static int upload_vec(sd_vk_device *d, sd_vk_buffer *stage, const float *v, size_t n, sd_vk_buffer *b, char *err)
{
    if (!v) return 0;
    return sd_vk_buffer_new(d, n * 4, 0, b, err) || sd_vk_upload(d, b, v, n * 4, stage, err) ? -1 : 0;
}

/* One kind of expert matrix (n_expert views of one shape) into whole-expert buffers. */
static int upload_experts(sd_vk_device *d, sd_vk_buffer *stage, sd_vk_moe *m, int kind, const sd_weight *w, char *err)
{
    if (sd_vk_matvec_index(w[0].type) < 0) {
        snprintf(err, SD_ERR_LEN, "vulkan: no kernel for %s expert weights", sd_type_name(w[0].type));
        return -1;
    }
    VkDeviceSize eb = (VkDeviceSize)w[0].rows * w[0].row_bytes, range = d->max_binding;
    if (eb > range) {
        snprintf(err, SD_ERR_LEN, "vulkan: an expert's matrix of %llu bytes exceeds %s's largest binding (%llu)",
                 (unsigned long long)eb, d->info.name, (unsigned long long)range);
        return -1;
    }
    int per = (int)(range / eb);
    if (per > m->n_expert) per = m->n_expert;
    m->expert_bytes[kind] = eb;
    m->per_buf[kind] = per;
    m->n_buf[kind] = (m->n_expert + per - 1) / per;
    if (!(m->bufs[kind] = calloc((size_t)m->n_buf[kind], sizeof *m->bufs[kind]))) return fail(err, "out of memory");
    for (int b = 0; b < m->n_buf[kind]; b++) {
        int e0 = b * per, e1 = e0 + per < m->n_expert ? e0 + per : m->n_expert;
        if (sd_vk_buffer_new(d, eb * (VkDeviceSize)(e1 - e0), 0, &m->bufs[kind][b], err)) return -1;
        for (int e = e0; e < e1; e++) {
            if (w[e].type != w[0].type || w[e].rows != w[0].rows || w[e].cols != w[0].cols || w[e].scale != w[0].scale)
                return fail(err, "experts of one layer differ in shape, format or scale");
            if (sd_vk_upload_at(d, &m->bufs[kind][b], eb * (VkDeviceSize)(e - e0), w[e].data, eb, stage, err))
                return -1;
        }
    }
    m->meta[kind] = w[0];
    m->meta[kind].data = NULL;
    m->meta[kind].packed = NULL;
    return 0;
}

int sd_vk_moe_upload(sd_vk_device *d, sd_vk_buffer *stage, const sd_gpu_moe *src, int n_embd, sd_vk_moe **out,
                     char *err)
{
    sd_vk_moe *m = calloc(1, sizeof *m);
    if (!m) return fail(err, "out of memory");
    *out = m;
    m->n_expert = src->n_expert;
    m->k = src->n_used;
    m->n_ff = src->n_ff;
    m->n_embd = n_embd;
    m->topk_softmax = src->topk_softmax;
    m->oai = src->oai_swiglu;
    if (sd_vk_matvec_index(src->router->type) < 0) {
        snprintf(err, SD_ERR_LEN, "vulkan: no kernel for a %s router", sd_type_name(src->router->type));
        return -1;
    }
    VkDeviceSize rb = (VkDeviceSize)src->router->rows * src->router->row_bytes;
    if (sd_vk_buffer_new(d, rb, 0, &m->router, err) || sd_vk_upload(d, &m->router, src->router->data, rb, stage, err))
        return -1;
    m->router_meta = *src->router;
    m->router_meta.data = NULL;
    m->router_meta.packed = NULL;
    size_t E = (size_t)m->n_expert, F = (size_t)m->n_ff, D = (size_t)n_embd;
    if (upload_experts(d, stage, m, E_GATE, src->gate, err) || upload_experts(d, stage, m, E_UP, src->up, err) ||
        upload_experts(d, stage, m, E_DOWN, src->down, err) ||
        upload_vec(d, stage, src->router_b, E, &m->router_b, err) ||
        upload_vec(d, stage, src->b_gate, E * F, &m->bias[E_GATE], err) ||
        upload_vec(d, stage, src->b_up, E * F, &m->bias[E_UP], err) ||
        upload_vec(d, stage, src->b_down, E * D, &m->bias[E_DOWN], err))
        return -1;
    return 0;
}

void sd_vk_moe_free(sd_vk_device *d, sd_vk_moe *m)
{
    if (!m) return;
    sd_vk_buffer_free(d, &m->router);
    sd_vk_buffer_free(d, &m->router_b);
    for (int i = 0; i < 3; i++) {
        sd_vk_buffer_free(d, &m->bias[i]);
        for (int b = 0; m->bufs[i] && b < m->n_buf[i]; b++) sd_vk_buffer_free(d, &m->bufs[i][b]);
        free(m->bufs[i]);
    }
    free(m);
}

uint32_t sd_vk_moe_sets(const sd_vk_moe *m)
{
    /* router (its encoding and product), routing, two encodings, activation,
     * the sum, and the products: one per buffer */
    return 7u + (uint32_t)(m->n_buf[E_GATE] + m->n_buf[E_UP] + m->n_buf[E_DOWN]);
}

void sd_vk_moe_dims(const sd_vk_moe *m, int *n_ff, int *k, int *n_expert)
{
    *n_ff = m->n_ff;
    *k = m->k;
    *n_expert = m->n_expert;
}

int sd_vk_moe_scratch_new(sd_vk_device *d, int n_ub, int n_layer, int n_embd, int n_ff, int k, int n_expert,
                          sd_vk_moe_scratch *s, char *err)
{
    VkDeviceSize S = (VkDeviceSize)n_ub * (VkDeviceSize)k, ids = (VkDeviceSize)n_ub * n_layer * k * 4;
    s->n_ub = n_ub;
    s->k = k;
    if (sd_vk_buffer_new(d, (VkDeviceSize)n_ub * n_expert * 4, 0, &s->logits, err) ||
        sd_vk_buffer_new(d, ids, 0, &s->ids, err) || sd_vk_buffer_new(d, ids, 1, &s->ids_host, err) ||
        sd_vk_buffer_new(d, S * 4, 0, &s->wts, err) || sd_vk_buffer_new(d, S * n_ff * 4, 0, &s->g, err) ||
        sd_vk_buffer_new(d, S * n_ff * 4, 0, &s->u, err) || sd_vk_buffer_new(d, S * n_embd * 4, 0, &s->y, err))
        return -1;
    return 0;
}

void sd_vk_moe_scratch_free(sd_vk_device *d, sd_vk_moe_scratch *s)
{
    sd_vk_buffer *bs[] = {&s->logits, &s->ids, &s->ids_host, &s->wts, &s->g, &s->u, &s->y};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) sd_vk_buffer_free(d, bs[i]);
}

#define MATVEC_ID_ROWS 2   /* matvec_id.comp's NR */

/* y[s] = W_e(s) x[s / x_div] for the n_pairs pairs, one dispatch per buffer of experts. */
static void products(sd_vk_rec *R, const sd_vk_moe *m, int kind, sd_vk_moe_scratch *s, sd_vk_buffer *x, int x_rows,
                     int x_div, sd_vk_buffer *y, int n_pairs, int il, int n_layer)
{
    const sd_weight *w = &m->meta[kind];
    sd_vk_buffer *xin = sd_vk_rec_encode(R, w->type, x, 0, (int)w->cols, x_rows);
    for (int b = 0; b < m->n_buf[kind]; b++) {
        int e0 = b * m->per_buf[kind], e1 = e0 + m->per_buf[kind];
        struct {
            uint32_t rows, cols, row_bytes, expert_bytes;
            float scale;
            uint32_t s_off, x_div, k, tok_stride, ids_base, e0, e1;
        } pc = {(uint32_t)w->rows, (uint32_t)w->cols, (uint32_t)w->row_bytes, (uint32_t)m->expert_bytes[kind],
                w->scale, (uint32_t)((uint64_t)x_rows * w->cols), (uint32_t)x_div, (uint32_t)m->k,
                (uint32_t)(n_layer * m->k), (uint32_t)(il * m->k), (uint32_t)e0, (uint32_t)e1};
        sd_vk_buffer *bs[4] = {&m->bufs[kind][b], xin, y, &s->ids};
        sd_vk_rec_dispatch(R, SD_VK_MATVEC_ID_FIRST + sd_vk_matvec_index(w->type), bs, 4, &pc, sizeof pc,
                           (uint32_t)((w->rows + MATVEC_ID_ROWS - 1) / MATVEC_ID_ROWS), (uint32_t)n_pairs);
    }
}

void sd_vk_moe_record(sd_vk_rec *R, const sd_vk_moe *m, sd_vk_moe_scratch *s, sd_vk_buffer *xb, sd_vk_buffer *x, int n,
                      int il, int n_layer)
{
    uint32_t tok_stride = (uint32_t)(n_layer * m->k), ids_base = (uint32_t)(il * m->k), gx, gy;
    int pairs = n * m->k;
    sd_vk_rec_matvec(R, &m->router_meta, (sd_vk_buffer *)&m->router, xb, &s->logits, n);
    sd_vk_rec_barrier(R);
    struct { uint32_t n_expert, k, gating, has_bias, tok_stride, ids_base; } rp = {
        (uint32_t)m->n_expert, (uint32_t)m->k, (uint32_t)m->topk_softmax, m->router_b.buf != VK_NULL_HANDLE,
        tok_stride, ids_base};
    sd_vk_buffer *rb[4] = {&s->logits, (sd_vk_buffer *)&m->router_b, &s->ids, &s->wts};
    sd_vk_rec_dispatch(R, SD_VK_MOE_ROUTE, rb, 4, &rp, sizeof rp, (uint32_t)n, 1);
    sd_vk_rec_barrier(R);
    products(R, m, E_GATE, s, xb, n, m->k, &s->g, pairs, il, n_layer);
    products(R, m, E_UP, s, xb, n, m->k, &s->u, pairs, il, n_layer);
    sd_vk_rec_barrier(R);
    struct { uint32_t n_ff, n, k, tok_stride, ids_base, has_bias, oai; } ap = {
        (uint32_t)m->n_ff, (uint32_t)(pairs * m->n_ff), (uint32_t)m->k, tok_stride, ids_base,
        m->bias[E_GATE].buf != VK_NULL_HANDLE, (uint32_t)m->oai};
    sd_vk_buffer *ab[5] = {&s->g, &s->u, &s->ids, (sd_vk_buffer *)&m->bias[E_GATE], (sd_vk_buffer *)&m->bias[E_UP]};
    sd_vk_grid(((uint64_t)ap.n + 63) / 64, &gx, &gy);
    sd_vk_rec_dispatch(R, SD_VK_MOE_ACT, ab, 5, &ap, sizeof ap, gx, gy);
    sd_vk_rec_barrier(R);
    products(R, m, E_DOWN, s, &s->g, pairs, 1, &s->y, pairs, il, n_layer);
    sd_vk_rec_barrier(R);
    struct { uint32_t n_embd, n_tok, k, tok_stride, ids_base, has_bias; } cp = {
        (uint32_t)m->n_embd, (uint32_t)n, (uint32_t)m->k, tok_stride, ids_base, m->bias[E_DOWN].buf != VK_NULL_HANDLE};
    sd_vk_buffer *cb[5] = {x, &s->y, &s->ids, &s->wts, (sd_vk_buffer *)&m->bias[E_DOWN]};
    sd_vk_grid(((uint64_t)n * m->n_embd + 63) / 64, &gx, &gy);
    sd_vk_rec_dispatch(R, SD_VK_MOE_COMBINE, cb, 5, &cp, sizeof cp, gx, gy);
    sd_vk_rec_barrier(R);
}
