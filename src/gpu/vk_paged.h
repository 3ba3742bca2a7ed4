/* The metadata of a paged step (the serving engine's batch: several
 * sequences, each token at its own position, keys and values in a pool of
 * blocks lent through per-sequence block tables), as rope_paged.comp,
 * kv_store_paged.comp and attention_paged.comp read it, one 32-bit word
 * each: [0, n) each token's position, [n, 2n) the word where its sequence's
 * block table starts, then the tables of the step's sequences, each as far
 * as that sequence's furthest position in the step. */
#ifndef SD_GPU_VK_PAGED_H
#define SD_GPU_VK_PAGED_H

#include <stddef.h>
#include <stdint.h>

#include "gpu/backend.h"

/* Words the metadata of any step may need: up to n_batch tokens of up to
 * n_seqs sequences over a pool of n_blocks blocks. */
size_t sd_vk_paged_words(int n_batch, int n_seqs, int n_blocks);
/* Writes step s's metadata into m (cap words) for a pool of n_blocks
 * blocks. Returns the words written, or -1 with the reason in err when a token's sequence
 * or position is out of range, a block it reads is not one of the pool's
 * (a table not yet grown that far), or the metadata exceeds cap: a step
 * the shaders must not see, since they index the cache with these words. */
long sd_vk_paged_meta(const sd_gpu_step *s, int n_blocks, uint32_t *m, size_t cap, char *err);

#endif
