/* The paged KV cache: pools of fixed-size blocks of positions (each block
 * holds its positions' keys and values for the pool's layers), lent to
 * sequences on demand through per-sequence block tables and returned when
 * they end.
 *
 * Sliding-window layers (sd_layer.swa) get a pool of their own when that
 * saves memory: position p of such a layer attends to p-window+1 .. p only,
 * so a sequence holds those layers' blocks for the positions its next pass
 * can still see (sd_kv_seq_window) and gives the older ones back. The pool
 * has room for every sequence's window plus one pass's chunk, so a sequence
 * never waits for window blocks; the other layers keep every position.
 *
 * Prefix cache: a full block whose tokens are known gets a hash chained
 * with its predecessor's (so it names the whole prefix up to its end).
 * A new sequence whose tokens begin with such a chain reuses those blocks
 * (reference-counted, read-only: a sequence only writes past them); with a
 * window pool, a prefix is reused only as far as the window blocks its end
 * needs are still cached too. Blocks no sequence holds stay cached and are
 * evicted least-recently-used when the free ones run out.
 *
 * Recurrent state snapshots (kv_snap.c): a model with a per-sequence state
 * (qwen3next) can reuse a cached prefix only together with the state at its
 * end. When a prompt is admitted, a snapshot slot is armed for the end of
 * its last full block before its last token; the forward pass copies the
 * state there as it passes that position, and publishing commits it. A
 * later sequence whose tokens begin with that prefix (and whose blocks are
 * still cached) resumes from the copy; a shorter cached chain, or one with
 * no snapshot, is not reused. At most snap.cap snapshots of state_bytes are
 * held (the least recently used one is replaced).
 *
 * Memory layout: per pool [layer][KV head][block][SD_KV_BLOCK][head_dim] in
 * the cache's type (the window pool's planes after the full pool's, in the
 * same arrays), so consecutive block ids are adjacent for one head: a
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
    /* The window pool's table (NULL without one): position p of a sliding
     * layer lives in win[p / SD_KV_BLOCK], held for blocks [win_lo, win_hi)
     * only, -1 elsewhere. */
    int *win;
    int win_lo, win_hi;
    /* A fixed-size per-sequence state beside the KV blocks, for recurrent
     * layers (qwen3next's linear attention): state_bytes of it, owned by the
     * cache, zeroed when the sequence is released. NULL while no model needs
     * it. Such a state is not positional: a prefix is reused only where a
     * snapshot of it is kept (see above). */
    void *state;
    /* An armed snapshot: the forward pass copies the state after position
     * snap_pos - 1 to snap (NULL: none armed). */
    void *snap;
    int snap_pos, snap_slot;
} sd_kv_seq;

/* The snapshots of recurrent state at the ends of cached prefixes. */
typedef struct {
    void *data;        /* state_bytes, or NULL while the slot has never held one */
    int32_t *toks;     /* the prefix's tokens */
    int n_tok;         /* its length, a multiple of SD_KV_BLOCK (0: empty) */
    int owner;         /* the sequence filling it (armed), or -1 */
    uint64_t used;     /* for least-recently-used replacement */
} sd_kv_snap;

typedef struct {
    int cap;           /* snapshots at most (0: none kept) */
    sd_kv_snap *slot;
    uint64_t clock, hits, stores, replaced;
    uint64_t bytes;    /* of the snapshots allocated: at most cap x state_bytes */
} sd_kv_snaps;

/* One pool of blocks and its part of the prefix cache. */
typedef struct {
    int n_blocks;
    int *ref;                  /* sequences holding each block */
    uint64_t *hash, *parent;   /* 0: not in the prefix cache */
    int32_t *toks;             /* SD_KV_BLOCK tokens per hashed block, to confirm a hash match */
    int *bucket, n_bucket;     /* hash -> first block, chained through next */
    int *next;
    int *lru_prev, *lru_next;  /* cached blocks nobody holds, least recently used first */
    int lru_head, lru_tail, n_lru;
    int *free_ids, n_free;     /* blocks holding nothing */
    uint64_t evictions;
} sd_kv_pool;

typedef struct sd_kv_cache {
    int n_layer,   /* layers with keys and values (qwen3next: its attention layers) */
        n_head_kv, head_dim;
    sd_kv_type type;
    size_t kv_head;            /* bytes of one head's row at one position */
    int n_blocks, n_seqs;      /* n_blocks: the full pool's (every layer's without a window pool) */
    char *k, *v;
    uint64_t bytes;            /* of k and v together */
    sd_kv_pool full;           /* layers that keep every position */
    sd_kv_pool win;            /* sliding layers' (n_blocks 0: none, they use the full pool) */
    int window;                /* positions a sliding layer sees (the largest swa among them) */
    int n_batch;               /* most positions one sequence writes in one pass */
    int win_blocks;            /* window blocks one sequence may hold: its window and one pass */
    uint64_t *chain;           /* n_blocks hashes: sd_kv_seq_reuse_prefix's scratch (window pool only) */
    size_t *layer_at;          /* per layer: byte offset of its first plane in k and v */
    size_t *layer_plane;       /* per layer: bytes of one of its (layer, KV head) planes */
    unsigned char *layer_win;  /* per layer: 1 if it lives in the window pool */
    sd_kv_seq *seqs;
    size_t state_bytes;
    sd_kv_snaps snap;          /* with state_bytes: the recurrent state snapshots */
} sd_kv_cache;

/* Bytes of the cache sd_kv_cache_new would make for these arguments (keys
 * and values of the layers with attention that run on the CPU: a GPU
 * layer's cache lives on its device). */
uint64_t sd_kv_cache_bytes(const sd_model *m, sd_kv_type type, int64_t n_pos, int n_seqs, int n_batch);
/* A cache of n_pos positions (rounded up to whole blocks) for n_seqs
 * sequences, none of which writes more than n_batch positions in one pass.
 * Sliding layers get a window pool when n_seqs windows take fewer blocks
 * than n_pos (not with SHOWDOWN_KV_WINDOW=0 in the environment: the tests'
 * way to compare with keeping every position). Refuses, naming the bytes it
 * would need, when they cannot be allocated. */
int sd_kv_cache_new(const sd_model *m, sd_kv_type type, int n_pos, int n_seqs, int n_batch, sd_kv_cache **out,
                    char *err);
void sd_kv_cache_free(sd_kv_cache *c);

/* Makes sequence s hold full-pool blocks for positions [0, n_pos): takes
 * free blocks, then evicts cached ones. Returns 0, or -1 when the pool is
 * exhausted (nothing changed then). */
int sd_kv_seq_grow(sd_kv_cache *c, int s, int n_pos);
/* Before a pass writes positions [p0, p1) of sequence s: makes it hold the
 * window blocks of positions [p0 + 1 - window, p1) and gives back the rest
 * (a no-op without a window pool). Positions of that range below p0 must
 * have been written (p0 == 0, or the sequence moves forward). Returns -1,
 * nothing changed, when p1 - p0 exceeds the cache's n_batch or the earlier
 * positions are gone. Otherwise it cannot run out of blocks (each sequence
 * holds at most win_blocks of a pool of n_seqs times that); -1 then would
 * be a bug, checked before a block is taken. */
int sd_kv_seq_window(sd_kv_cache *c, int s, int p0, int p1);
/* Returns all of sequence s's blocks (cached ones stay in the prefix cache). */
void sd_kv_seq_release(sd_kv_cache *c, int s);
/* For an empty sequence s: takes the longest chain of cached full blocks
 * that tokens[0..n) begins with (and the cached window blocks its end
 * needs), leaving at least one token to compute. Returns the positions
 * reused (a multiple of SD_KV_BLOCK). */
int sd_kv_seq_reuse_prefix(sd_kv_cache *c, int s, const int32_t *tokens, int n);
/* Publishes sequence s's full blocks among its first n positions, whose
 * keys and values are written and whose tokens are tokens[0..n). */
void sd_kv_seq_publish(sd_kv_cache *c, int s, const int32_t *tokens, int n);
/* For a model with recurrent state: arms a snapshot of sequence s's state
 * at the end of the last full block before tokens[n - 1] (its prompt),
 * unless one of that prefix is kept already or the sequence reused that
 * much; replaces the least recently used snapshot when cap are kept. */
void sd_kv_seq_plan_snapshot(sd_kv_cache *c, int s, const int32_t *tokens, int n);
/* Keeps at most cap snapshots (drops all those not being filled).
 * sd_kv_cache_new sets n_seqs, or SHOWDOWN_STATE_SNAPSHOTS from the environment. */
void sd_kv_snap_limit(sd_kv_cache *c, int cap);
/* Between kv_cache.c and kv_snap.c: the longest prefix of at most k blocks
 * of tokens with a snapshot, copied into sequence s's state (blocks, 0 if
 * none); the armed snapshot of s committed once n positions are written, or
 * dropped (its sequence released); every snapshot freed. */
int sd_kv_snap_resume(sd_kv_cache *c, int s, const int32_t *tokens, int k);
void sd_kv_snap_commit(sd_kv_cache *c, int s, int n);
void sd_kv_snap_drop(sd_kv_cache *c, int s);
void sd_kv_snap_free(sd_kv_cache *c);

/* Full-pool blocks a sequence could still obtain (free plus evictable). */
int sd_kv_available(const sd_kv_cache *c);

/* Where position (block, off) of layer l, KV head h starts in k and v. */
static inline size_t sd_kv_at(const sd_kv_cache *c, int l, int h, int block, int off)
{
    return c->layer_at[l] + (size_t)h * c->layer_plane[l] + ((size_t)block * SD_KV_BLOCK + (size_t)off) * c->kv_head;
}

/* The block table layer l of sequence s is read through. */
static inline const int *sd_kv_table(const sd_kv_cache *c, int l, int s)
{
    return c->layer_win[l] ? c->seqs[s].win : c->seqs[s].blocks;
}

#endif
