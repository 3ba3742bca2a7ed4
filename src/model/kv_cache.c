/* The paged KV cache and its prefix cache (model/kv_cache.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/arch_qwen3next.h"
#include "model/kv_cache.h"
#include "tensor/types.h"

static int kv_fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SD_ERR_LEN, fmt, ap);
    va_end(ap);
    return -1;
}

/* Layers with keys and values: qwen3next's recurrent layers have none. */
static int kv_layers(const sd_model *m)
{
    int n = m->hp.n_layer - (m->qnext ? m->qnext->n_recurrent : 0);
    return n > 0 ? n : 1;
}

uint64_t sd_kv_cache_bytes(const sd_model *m, sd_kv_type type, int64_t n_pos)
{
    int64_t blocks = (n_pos + SD_KV_BLOCK - 1) / SD_KV_BLOCK;
    uint64_t row = sd_row_bytes((uint32_t)type, (int64_t)m->hp.head_dim);
    return 2 * (uint64_t)kv_layers(m) * (uint64_t)m->hp.n_head_kv * (uint64_t)blocks * SD_KV_BLOCK * row;
}

int sd_kv_cache_new(const sd_model *m, sd_kv_type type, int n_pos, int n_seqs, sd_kv_cache **out, char *err)
{
    if (n_pos < 1 || n_seqs < 1) return kv_fail(err, "a KV cache needs positions and sequences");
    uint64_t need = sd_kv_cache_bytes(m, type, n_pos);
    sd_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return kv_fail(err, "out of memory");
    c->n_layer = kv_layers(m);
    c->n_head_kv = m->hp.n_head_kv;
    c->head_dim = m->hp.head_dim;
    c->type = type;
    c->kv_head = sd_row_bytes((uint32_t)type, m->hp.head_dim);
    c->n_blocks = (n_pos + SD_KV_BLOCK - 1) / SD_KV_BLOCK;
    c->n_seqs = n_seqs;
    c->plane = (size_t)c->n_blocks * SD_KV_BLOCK * c->kv_head;
    int nb = c->n_blocks;
    c->n_bucket = 16;
    while (c->n_bucket < nb) c->n_bucket *= 2;
    /* More than the machine's memory would only be promised by the kernel
     * (overcommit), then kill the process when touched. */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    c->state_bytes = sd_qnext_state_bytes(m);   /* recurrent layers' state beside the blocks */
    uint64_t state = (uint64_t)c->state_bytes * (uint64_t)n_seqs;
    int fits = pages <= 0 || psz <= 0 || need + state <= (uint64_t)pages * (uint64_t)psz;
    if (fits && need / 2 == (size_t)(need / 2)) {
        c->k = malloc((size_t)(need / 2));
        c->v = malloc((size_t)(need / 2));
    }
    c->ref = calloc((size_t)nb, sizeof *c->ref);
    c->hash = calloc((size_t)nb, sizeof *c->hash);
    c->parent = calloc((size_t)nb, sizeof *c->parent);
    c->toks = malloc((size_t)nb * SD_KV_BLOCK * sizeof *c->toks);
    c->bucket = malloc((size_t)c->n_bucket * sizeof *c->bucket);
    c->next = malloc((size_t)nb * sizeof *c->next);
    c->lru_prev = malloc((size_t)nb * sizeof *c->lru_prev);
    c->lru_next = malloc((size_t)nb * sizeof *c->lru_next);
    c->free_ids = malloc((size_t)nb * sizeof *c->free_ids);
    c->seqs = calloc((size_t)n_seqs, sizeof *c->seqs);
    int ok = c->k && c->v && c->ref && c->hash && c->parent && c->toks && c->bucket && c->next && c->lru_prev &&
             c->lru_next && c->free_ids && c->seqs;
    for (int s = 0; ok && s < n_seqs; s++) ok = (c->seqs[s].blocks = malloc((size_t)nb * sizeof(int))) != NULL;
    for (int s = 0; ok && c->state_bytes && s < n_seqs; s++) ok = (c->seqs[s].state = calloc(1, c->state_bytes)) != NULL;
    if (!ok) {
        sd_kv_cache_free(c);
        return kv_fail(err, "%s: not enough memory for a KV cache of %d positions%s: it needs %.1f MiB (%llu bytes)",
                       m->path, n_pos, state ? " and the recurrent state" : "", (double)(need + state) / (1 << 20),
                       (unsigned long long)(need + state));
    }
    for (int i = 0; i < c->n_bucket; i++) c->bucket[i] = -1;
    /* Free blocks are taken from the end of the stack: lowest ids first, so a
     * lone sequence gets adjacent blocks. */
    for (int i = 0; i < nb; i++) c->free_ids[i] = nb - 1 - i;
    c->n_free = nb;
    c->lru_head = c->lru_tail = -1;
    *out = c;
    return 0;
}

void sd_kv_cache_free(sd_kv_cache *c)
{
    if (!c) return;
    if (c->seqs)
        for (int s = 0; s < c->n_seqs; s++) {
            free(c->seqs[s].blocks);
            free(c->seqs[s].state);
        }
    free(c->seqs);
    free(c->k); free(c->v); free(c->ref); free(c->hash); free(c->parent); free(c->toks); free(c->bucket);
    free(c->next); free(c->lru_prev); free(c->lru_next); free(c->free_ids);
    free(c);
}

/* ---- the prefix cache's index ------------------------------------------ */

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The chained hash of a block of tokens after a prefix hashed to prev; never 0. */
static uint64_t block_hash(uint64_t prev, const int32_t *t)
{
    uint64_t h = mix(prev + 0x9e3779b97f4a7c15ull);
    for (int i = 0; i < SD_KV_BLOCK; i++) h = mix(h ^ ((uint64_t)(uint32_t)t[i] + 0x9e3779b97f4a7c15ull * (i + 1)));
    return h ? h : 1;
}

static int *bucket_of(sd_kv_cache *c, uint64_t h) { return &c->bucket[h & (uint64_t)(c->n_bucket - 1)]; }

static void index_remove(sd_kv_cache *c, int b)
{
    for (int *pp = bucket_of(c, c->hash[b]); *pp >= 0; pp = &c->next[*pp])
        if (*pp == b) {
            *pp = c->next[b];
            break;
        }
    c->hash[b] = c->parent[b] = 0;
}

static int index_find(sd_kv_cache *c, uint64_t h, uint64_t parent, const int32_t *t)
{
    for (int b = *bucket_of(c, h); b >= 0; b = c->next[b])
        if (c->hash[b] == h && c->parent[b] == parent &&
            !memcmp(c->toks + (size_t)b * SD_KV_BLOCK, t, SD_KV_BLOCK * sizeof *t))
            return b;
    return -1;
}

static void lru_unlink(sd_kv_cache *c, int b)
{
    int p = c->lru_prev[b], n = c->lru_next[b];
    if (p >= 0) c->lru_next[p] = n;
    else c->lru_head = n;
    if (n >= 0) c->lru_prev[n] = p;
    else c->lru_tail = p;
    c->n_lru--;
}

static void lru_append(sd_kv_cache *c, int b)
{
    c->lru_prev[b] = c->lru_tail;
    c->lru_next[b] = -1;
    if (c->lru_tail >= 0) c->lru_next[c->lru_tail] = b;
    else c->lru_head = b;
    c->lru_tail = b;
    c->n_lru++;
}

/* ---- blocks and sequences ---------------------------------------------- */

int sd_kv_available(const sd_kv_cache *c) { return c->n_free + c->n_lru; }

static int take_block(sd_kv_cache *c)
{
    int b;
    if (c->n_free) {
        b = c->free_ids[--c->n_free];
    } else {
        b = c->lru_head;   /* the least recently used cached block */
        lru_unlink(c, b);
        index_remove(c, b);
        c->evictions++;
    }
    c->ref[b] = 1;
    return b;
}

int sd_kv_seq_grow(sd_kv_cache *c, int s, int n_pos)
{
    sd_kv_seq *q = &c->seqs[s];
    int need = (n_pos + SD_KV_BLOCK - 1) / SD_KV_BLOCK - q->n_blocks;
    if (need <= 0) return 0;
    if (need > sd_kv_available(c)) return -1;
    while (need--) q->blocks[q->n_blocks++] = take_block(c);
    return 0;
}

void sd_kv_seq_release(sd_kv_cache *c, int s)
{
    sd_kv_seq *q = &c->seqs[s];
    /* Last block first: a chain's tail is evicted before its head. */
    for (int i = q->n_blocks - 1; i >= 0; i--) {
        int b = q->blocks[i];
        if (--c->ref[b] > 0) continue;
        if (c->hash[b]) lru_append(c, b);
        else c->free_ids[c->n_free++] = b;
    }
    q->n_blocks = q->n_hashed = 0;
    q->last_hash = 0;
    if (q->state) memset(q->state, 0, c->state_bytes);
}

int sd_kv_seq_reuse_prefix(sd_kv_cache *c, int s, const int32_t *tokens, int n)
{
    sd_kv_seq *q = &c->seqs[s];
    if (q->n_blocks || c->state_bytes) return 0;
    uint64_t h = 0;
    for (int i = 0; (i + 1) * SD_KV_BLOCK < n; i++) {
        const int32_t *t = tokens + (size_t)i * SD_KV_BLOCK;
        uint64_t hb = block_hash(h, t);
        int b = index_find(c, hb, h, t);
        if (b < 0) break;
        if (c->ref[b]++ == 0) lru_unlink(c, b);
        q->blocks[q->n_blocks++] = b;
        h = hb;
    }
    q->n_hashed = q->n_blocks;
    q->last_hash = h;
    return q->n_blocks * SD_KV_BLOCK;
}

void sd_kv_seq_publish(sd_kv_cache *c, int s, const int32_t *tokens, int n)
{
    sd_kv_seq *q = &c->seqs[s];
    int full = n / SD_KV_BLOCK;
    if (full > q->n_blocks) full = q->n_blocks;
    for (; q->n_hashed < full; q->n_hashed++) {
        int b = q->blocks[q->n_hashed];
        const int32_t *t = tokens + (size_t)q->n_hashed * SD_KV_BLOCK;
        uint64_t hb = block_hash(q->last_hash, t);
        /* The same prefix cached in another block already: keep that one. */
        if (!c->hash[b] && index_find(c, hb, q->last_hash, t) < 0) {
            c->hash[b] = hb;
            c->parent[b] = q->last_hash;
            memcpy(c->toks + (size_t)b * SD_KV_BLOCK, t, SD_KV_BLOCK * sizeof *t);
            int *head = bucket_of(c, hb);
            c->next[b] = *head;
            *head = b;
        }
        q->last_hash = hb;
    }
}
