/* Internal to the Vulkan backend: a layer's routed experts on the device
 * and their part of a step (router, top-k, the chosen experts' products,
 * activation, weighted sum into the residual stream). */
#ifndef SD_GPU_VK_MOE_H
#define SD_GPU_VK_MOE_H

#include "gpu/vk.h"

typedef struct sd_vk_moe sd_vk_moe;

/* A session's scratch for the experts of any layer: router logits, the
 * chosen experts of every layer (model/moe.h's layout, copied back to the
 * host after a step), their weights, and the pairs' gate, up and down rows. */
typedef struct {
    int n_ub, k;
    sd_vk_buffer logits, ids, ids_host, wts, g, u, y;
} sd_vk_moe_scratch;

/* Uploads src (each 3-D tensor in as many buffers as the device's largest
 * binding needs: whole experts each). */
int sd_vk_moe_upload(sd_vk_device *d, sd_vk_buffer *stage, const sd_gpu_moe *src, int n_embd, sd_vk_moe **out,
                     char *err);
void sd_vk_moe_free(sd_vk_device *d, sd_vk_moe *m);
/* Descriptor sets one layer's experts take per step at most. */
uint32_t sd_vk_moe_sets(const sd_vk_moe *m);
/* The widest expert row (n_ff), experts per token, experts: for sizing. */
void sd_vk_moe_dims(const sd_vk_moe *m, int *n_ff, int *k, int *n_expert);

int sd_vk_moe_scratch_new(sd_vk_device *d, int n_ub, int n_layer, int n_embd, int n_ff, int k, int n_expert,
                          sd_vk_moe_scratch *s, char *err);
void sd_vk_moe_scratch_free(sd_vk_device *d, sd_vk_moe_scratch *s);

/* x[t] += MoE(xb[t]) for n tokens of layer il of n_layer (xb: the FFN-normed input). */
void sd_vk_moe_record(sd_vk_rec *R, const sd_vk_moe *m, sd_vk_moe_scratch *s, sd_vk_buffer *xb, sd_vk_buffer *x, int n,
                      int il, int n_layer);

#endif
