/* The paged step's metadata (vk_paged.h): checked here on the host, since
 * the shaders index the device cache with it and trust every word. */
#include <stdio.h>

#include "showdown.h"
#include "gpu/vk_paged.h"

size_t sd_vk_paged_words(int n_batch, int n_seqs, int n_blocks)
{
    size_t seqs = (size_t)(n_seqs < n_batch ? n_seqs : n_batch);
    return 2 * (size_t)n_batch + seqs * (size_t)n_blocks;
}

long sd_vk_paged_meta(const sd_gpu_step *s, int n_blocks, uint32_t *m, size_t cap, char *err)
{
    int n = s->n_tok, blk = s->block;
    size_t at = 2 * (size_t)n;
    if (blk < 1 || at > cap) {
        snprintf(err, SD_ERR_LEN, "vulkan: paged step of %d tokens does not fit its metadata (%zu words)", n, cap);
        return -1;
    }
    for (int t = 0; t < n; t++) {
        int q = s->seq[t], p = s->pos_of[t];
        if (q < 0 || q >= s->n_seqs || p < 0 || !s->tables[q]) {
            snprintf(err, SD_ERR_LEN, "vulkan: paged step: token %d at position %d of sequence %d (of %d)", t, p, q,
                     s->n_seqs);
            return -1;
        }
        m[t] = (uint32_t)p;
        /* A sequence's table is written once, at its first token in the step. */
        int first = -1;
        for (int u = t - 1; u >= 0 && first < 0; u--)
            if (s->seq[u] == q) first = u;
        if (first >= 0) {
            m[n + t] = m[n + first];
            continue;
        }
        int hi = p;
        for (int u = t + 1; u < n; u++)
            if (s->seq[u] == q && s->pos_of[u] > hi) hi = s->pos_of[u];
        size_t nb = (size_t)(hi / blk) + 1;
        if (at + nb > cap) {
            snprintf(err, SD_ERR_LEN, "vulkan: paged step of %d tokens does not fit its metadata (%zu words)", n, cap);
            return -1;
        }
        m[n + t] = (uint32_t)at;
        for (size_t b = 0; b < nb; b++) {
            int id = s->tables[q][b];
            if (id < 0 || id >= n_blocks) {
                snprintf(err, SD_ERR_LEN, "vulkan: paged step: sequence %d's position %zu is in block %d, not one of "
                         "the pool's %d", q, b * (size_t)blk, id, n_blocks);
                return -1;
            }
            m[at + b] = (uint32_t)id;
        }
        at += nb;
    }
    return (long)at;
}
