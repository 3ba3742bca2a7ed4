/* The paged KV cache: one pool of fixed-size blocks of positions (each block
 * holds its positions' keys and values for every layer), lent to sequences
 * on demand through per-sequence block tables and returned when they end.
 *
 * Prefix cache: a full block whose tokens are known gets a hash chained
 * with its predecessor's (so it names the whole prefix up to its end).
 * A new sequence whose tokens begin with such a chain reuses those blocks
 * (reference-counted, read-only: a sequence only writes past them). Blocks
 * no sequence holds stay cached and are evicted least-recently-used when
 * the free ones run out.
 *
 * Memory layout: [layer][KV head][block][SD_KV_BLOCK][head_dim] in the
 * cache's type, so consecutive block ids are adjacent for one head: a
 * sequence whose blocks were handed out in order reads like one array. */
#ifndef SD_KV_CACHE_H
#define SD_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

#define SD_KV_BLOCK 16   /* positions per block */

typedef struct {
    int *blocks;         /* block table: position p lives in blocks[p / SD_KV_BLOCK] */
    int n_blocks;
    int n_hashed;        /* leading blocks already published to the prefix cache */
    uint64_t last_hash;  /* hash of block n_hashed - 1 (0 before the first) */
    /* A fixed-size per-sequence state beside the KV blocks, for recurrent
     * layers (qwen3next's linear attention): state_bytes of it, owned by the
     * cache, zeroed when the sequence is released. NULL while no model needs
     * it. Such a state is not positional, so a model that has one must not
     * reuse prefix blocks (sd_kv_seq_reuse_prefix refuses then). */
    void *state;
} sd_kv_seq;

typedef struct sd_kv_cache {
    int n_layer,   /* layers with keys and values (qwen3next: its attention layers) */
        n_head_kv, head_dim;
    sd_kv_type type;
    size_t kv_head;            /* bytes of one head's row at one position */
    int n_blocks, n_seqs;
    char *k, *v;
    size_t plane;              /* bytes of one (layer, KV head) plane: n_blocks * SD_KV_BLOCK rows */
    int *ref;                  /* sequences holding each block */
    uint64_t *hash, *parent;   /* 0: not in the prefix cache */
    int32_t *toks;             /* SD_KV_BLOCK tokens per hashed block, to confirm a hash match */
    int *bucket, n_bucket;     /* hash -> first block, chained through next */
    int *next;
    int *lru_prev, *lru_next;  /* cached blocks nobody holds, least recently used first */
    int lru_head, lru_tail, n_lru;
    int *free_ids, n_free;     /* blocks holding nothing */
    sd_kv_seq *seqs;
    size_t state_bytes;
    uint64_t evictions;
} sd_kv_cache;

/* Bytes a cache of n_pos positions needs (keys and values, all layers). */
uint64_t sd_kv_cache_bytes(const sd_model *m, sd_kv_type type, int64_t n_pos);
/* A cache of n_pos positions (rounded up to whole blocks) for n_seqs
 * sequences. Refuses, naming the bytes it would need, when they cannot be
 * allocated. */
int sd_kv_cache_new(const sd_model *m, sd_kv_type type, int n_pos, int n_seqs, sd_kv_cache **out, char *err);
void sd_kv_cache_free(sd_kv_cache *c);

/* Makes sequence s hold blocks for positions [0, n_pos): takes free blocks,
 * then evicts cached ones. Returns 0, or -1 when the pool is exhausted
 * (nothing changed then). */
int sd_kv_seq_grow(sd_kv_cache *c, int s, int n_pos);
/* Returns all of sequence s's blocks (cached ones stay in the prefix cache). */
void sd_kv_seq_release(sd_kv_cache *c, int s);
/* For an empty sequence s: takes the longest chain of cached full blocks
 * that tokens[0..n) begins with, leaving at least one token to compute.
 * Returns the positions reused (a multiple of SD_KV_BLOCK). */
int sd_kv_seq_reuse_prefix(sd_kv_cache *c, int s, const int32_t *tokens, int n);
/* Publishes sequence s's full blocks among its first n positions, whose
 * keys and values are written and whose tokens are tokens[0..n). */
void sd_kv_seq_publish(sd_kv_cache *c, int s, const int32_t *tokens, int n);
/* Blocks a sequence could still obtain (free plus evictable). */
int sd_kv_available(const sd_kv_cache *c);

/* Where position p of sequence s starts in layer l, KV head h. */
static inline size_t sd_kv_at(const sd_kv_cache *c, int l, int h, int block, int off)
{
    return ((size_t)l * c->n_head_kv + (size_t)h) * c->plane + ((size_t)block * SD_KV_BLOCK + (size_t)off) * c->kv_head;
}

#endif
