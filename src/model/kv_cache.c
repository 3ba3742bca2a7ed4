/* The paged KV cache, its window pool and its prefix cache (model/kv_cache.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/arch_qwen3next.h"
#include "model/kv_cache.h"
#include "tensor/types.h"
#include "runtime/errf.h"

/* ---- shape: which layers go to the window pool, and the pools' sizes ---- */

typedef struct {
    int64_t full_blocks, win_blocks;   /* pool sizes; win_blocks 0: no window pool */
    int64_t per_seq;                   /* window blocks one sequence may hold */
    int window, n_win_layers;          /* layers with swa > 0 live in the window pool */
} kv_shape;

/* Layers with keys and values in this pool: qwen3next's recurrent layers
 * have none, and a layer placed on a GPU keeps its cache on the device
 * (model/offload.c; GPU layers are the last ones, so the CPU layers [0, n)
 * index the pool as before; qwen3next never runs on a GPU). */
static int kv_layers(const sd_model *m)
{
    int gpu = sd_model_gpu_layers(m);
    if (gpu) return m->hp.n_layer - gpu;   /* 0 when every layer is on the GPU */
    int n = m->hp.n_layer - (m->qnext ? m->qnext->n_recurrent : 0);
    return n > 0 ? n : 1;
}

/* The window of KV layer l (0: none; qwen3next's attention layers have none). */
static int layer_swa(const sd_model *m, int l) { return m->layers && !m->qnext ? m->layers[l].swa : 0; }

static kv_shape shape_of(const sd_model *m, int64_t n_pos, int n_seqs, int n_batch)
{
    kv_shape s = {(n_pos + SD_KV_BLOCK - 1) / SD_KV_BLOCK, 0, 0, 0, 0};
    int n_win = 0, window = 0;
    for (int l = 0; l < kv_layers(m) && l < m->hp.n_layer; l++) {
        int w = layer_swa(m, l);
        if (w > 0) n_win++;
        if (w > window) window = w;
    }
    const char *env = getenv("SHOWDOWN_KV_WINDOW");
    if (!n_win || n_batch < 1 || n_seqs < 1 || (env && !strcmp(env, "0"))) return s;
    /* A pass writes up to n_batch positions and reads back window - 1 before
     * the first: that many positions span at most this many blocks. */
    int64_t span = (int64_t)window + n_batch - 1, per_seq = (span + SD_KV_BLOCK - 2) / SD_KV_BLOCK + 1;
    if (per_seq * n_seqs >= s.full_blocks) return s;   /* no smaller than keeping every position */
    s.win_blocks = per_seq * n_seqs;
    s.per_seq = per_seq;
    s.window = window;
    s.n_win_layers = n_win;
    return s;
}

static uint64_t shape_bytes(const sd_model *m, sd_kv_type type, const kv_shape *s)
{
    uint64_t row = sd_row_bytes((uint32_t)type, (int64_t)m->hp.head_dim);
    uint64_t rows = (uint64_t)(kv_layers(m) - s->n_win_layers) * (uint64_t)s->full_blocks +
                    (uint64_t)s->n_win_layers * (uint64_t)s->win_blocks;
    return 2 * rows * (uint64_t)m->hp.n_head_kv * SD_KV_BLOCK * row;
}

uint64_t sd_kv_cache_bytes(const sd_model *m, sd_kv_type type, int64_t n_pos, int n_seqs, int n_batch)
{
    kv_shape s = shape_of(m, n_pos, n_seqs, n_batch);
    return shape_bytes(m, type, &s);
}

/* ---- pools ---------------------------------------------------------------- */

static int pool_init(sd_kv_pool *p, int nb)
{
    p->n_blocks = nb;
    p->n_bucket = 16;
    while (p->n_bucket < nb) p->n_bucket *= 2;
    p->ref = calloc((size_t)nb, sizeof *p->ref);
    p->hash = calloc((size_t)nb, sizeof *p->hash);
    p->parent = calloc((size_t)nb, sizeof *p->parent);
    p->toks = malloc((size_t)nb * SD_KV_BLOCK * sizeof *p->toks);
    p->bucket = malloc((size_t)p->n_bucket * sizeof *p->bucket);
    p->next = malloc((size_t)nb * sizeof *p->next);
    p->lru_prev = malloc((size_t)nb * sizeof *p->lru_prev);
    p->lru_next = malloc((size_t)nb * sizeof *p->lru_next);
    p->free_ids = malloc((size_t)nb * sizeof *p->free_ids);
    if (!p->ref || !p->hash || !p->parent || !p->toks || !p->bucket || !p->next || !p->lru_prev || !p->lru_next ||
        !p->free_ids)
        return -1;
    for (int i = 0; i < p->n_bucket; i++) p->bucket[i] = -1;
    /* Free blocks are taken from the end of the stack: lowest ids first, so a
     * lone sequence gets adjacent blocks. */
    for (int i = 0; i < nb; i++) p->free_ids[i] = nb - 1 - i;
    p->n_free = nb;
    p->lru_head = p->lru_tail = -1;
    return 0;
}

static void pool_free(sd_kv_pool *p)
{
    free(p->ref); free(p->hash); free(p->parent); free(p->toks); free(p->bucket); free(p->next);
    free(p->lru_prev); free(p->lru_next); free(p->free_ids);
}

int sd_kv_cache_new(const sd_model *m, sd_kv_type type, int n_pos, int n_seqs, int n_batch, sd_kv_cache **out,
                    char *err)
{
    if (n_pos < 1 || n_seqs < 1) return sd_errf(err, "a KV cache needs positions and sequences");
    kv_shape sh = shape_of(m, n_pos, n_seqs, n_batch);
    uint64_t need = shape_bytes(m, type, &sh);
    sd_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return sd_errf(err, "out of memory");
    c->n_layer = kv_layers(m);
    c->n_head_kv = m->hp.n_head_kv;
    c->head_dim = m->hp.head_dim;
    c->type = type;
    c->kv_head = sd_row_bytes((uint32_t)type, m->hp.head_dim);
    c->n_blocks = (int)sh.full_blocks;
    c->n_seqs = n_seqs;
    c->n_batch = n_batch;
    c->window = sh.window;
    c->win_blocks = (int)sh.per_seq;
    c->bytes = need;
    int nb = c->n_blocks, nl = c->n_layer > 0 ? c->n_layer : 1;
    /* More than the machine's memory would only be promised by the kernel
     * (overcommit), then kill the process when touched. */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    c->state_bytes = sd_qnext_state_bytes(m);   /* recurrent layers' state beside the blocks */
    uint64_t state = (uint64_t)c->state_bytes * (uint64_t)n_seqs;
    int fits = pages <= 0 || psz <= 0 || need + state <= (uint64_t)pages * (uint64_t)psz;
    if (fits && need / 2 == (size_t)(need / 2)) {   /* every layer on a GPU: nothing here (1 byte) */
        c->k = malloc(need ? (size_t)(need / 2) : 1);
        c->v = malloc(need ? (size_t)(need / 2) : 1);
    }
    c->seqs = calloc((size_t)n_seqs, sizeof *c->seqs);
    c->layer_at = malloc((size_t)nl * sizeof *c->layer_at);
    c->layer_plane = malloc((size_t)nl * sizeof *c->layer_plane);
    c->layer_win = calloc((size_t)nl, 1);
    int ok = c->k && c->v && c->seqs && c->layer_at && c->layer_plane && c->layer_win && !pool_init(&c->full, nb);
    if (ok && sh.win_blocks)
        ok = !pool_init(&c->win, (int)sh.win_blocks) && (c->chain = malloc((size_t)nb * sizeof *c->chain));
    for (int s = 0; ok && s < n_seqs; s++) {
        ok = (c->seqs[s].blocks = malloc((size_t)nb * sizeof(int))) != NULL;
        if (ok && sh.win_blocks && (ok = (c->seqs[s].win = malloc((size_t)nb * sizeof(int))) != NULL))
            for (int i = 0; i < nb; i++) c->seqs[s].win[i] = -1;
    }
    for (int s = 0; ok && c->state_bytes && s < n_seqs; s++) ok = (c->seqs[s].state = calloc(1, c->state_bytes)) != NULL;
    if (!ok) {
        sd_kv_cache_free(c);
        return sd_errf(err, "%s: not enough memory for a KV cache of %d positions%s: it needs %.1f MiB (%llu bytes)",
                       m->path, n_pos, state ? " and the recurrent state" : "", (double)(need + state) / (1 << 20),
                       (unsigned long long)(need + state));
    }
    if (c->state_bytes) {
        const char *env = getenv("SHOWDOWN_STATE_SNAPSHOTS");
        sd_kv_snap_limit(c, env ? atoi(env) : n_seqs);
    }
    /* The full pool's layers first, then the window pool's. */
    size_t at = 0, full_plane = (size_t)nb * SD_KV_BLOCK * c->kv_head;
    size_t win_plane = (size_t)sh.win_blocks * SD_KV_BLOCK * c->kv_head;
    for (int pass = 0; pass < 2; pass++)
        for (int l = 0; l < c->n_layer; l++) {
            int in_win = sh.win_blocks && layer_swa(m, l) > 0;
            if (in_win != pass) continue;
            c->layer_win[l] = (unsigned char)in_win;
            c->layer_at[l] = at;
            c->layer_plane[l] = in_win ? win_plane : full_plane;
            at += (size_t)c->n_head_kv * c->layer_plane[l];
        }
    *out = c;
    return 0;
}

void sd_kv_cache_free(sd_kv_cache *c)
{
    if (!c) return;
    sd_kv_snap_free(c);
    if (c->seqs)
        for (int s = 0; s < c->n_seqs; s++) {
            free(c->seqs[s].blocks);
            free(c->seqs[s].win);
            free(c->seqs[s].state);
        }
    free(c->seqs);
    pool_free(&c->full);
    pool_free(&c->win);
    free(c->k); free(c->v); free(c->chain); free(c->layer_at); free(c->layer_plane); free(c->layer_win);
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

static int *bucket_of(sd_kv_pool *p, uint64_t h) { return &p->bucket[h & (uint64_t)(p->n_bucket - 1)]; }

static void index_remove(sd_kv_pool *p, int b)
{
    for (int *pp = bucket_of(p, p->hash[b]); *pp >= 0; pp = &p->next[*pp])
        if (*pp == b) {
            *pp = p->next[b];
            break;
        }
    p->hash[b] = p->parent[b] = 0;
}

static int index_find(sd_kv_pool *p, uint64_t h, uint64_t parent, const int32_t *t)
{
    for (int b = *bucket_of(p, h); b >= 0; b = p->next[b])
        if (p->hash[b] == h && p->parent[b] == parent &&
            !memcmp(p->toks + (size_t)b * SD_KV_BLOCK, t, SD_KV_BLOCK * sizeof *t))
            return b;
    return -1;
}

/* Block b of p now holds the prefix hashed to h (unless another block does already). */
static void index_add(sd_kv_pool *p, int b, uint64_t h, uint64_t parent, const int32_t *t)
{
    if (p->hash[b] || index_find(p, h, parent, t) >= 0) return;
    p->hash[b] = h;
    p->parent[b] = parent;
    memcpy(p->toks + (size_t)b * SD_KV_BLOCK, t, SD_KV_BLOCK * sizeof *t);
    int *head = bucket_of(p, h);
    p->next[b] = *head;
    *head = b;
}

static void lru_unlink(sd_kv_pool *p, int b)
{
    int pv = p->lru_prev[b], n = p->lru_next[b];
    if (pv >= 0) p->lru_next[pv] = n;
    else p->lru_head = n;
    if (n >= 0) p->lru_prev[n] = pv;
    else p->lru_tail = pv;
    p->n_lru--;
}

static void lru_append(sd_kv_pool *p, int b)
{
    p->lru_prev[b] = p->lru_tail;
    p->lru_next[b] = -1;
    if (p->lru_tail >= 0) p->lru_next[p->lru_tail] = b;
    else p->lru_head = b;
    p->lru_tail = b;
    p->n_lru++;
}

/* ---- blocks and sequences ---------------------------------------------- */

int sd_kv_available(const sd_kv_cache *c) { return c->full.n_free + c->full.n_lru; }

static int take_block(sd_kv_pool *p)
{
    int b;
    if (p->n_free) {
        b = p->free_ids[--p->n_free];
    } else {
        b = p->lru_head;   /* the least recently used cached block */
        lru_unlink(p, b);
        index_remove(p, b);
        p->evictions++;
    }
    p->ref[b] = 1;
    return b;
}

/* Lets go of block b: cached if its prefix is known, else free. */
static void drop_block(sd_kv_pool *p, int b)
{
    if (--p->ref[b] > 0) return;
    if (p->hash[b]) lru_append(p, b);
    else p->free_ids[p->n_free++] = b;
}

/* Lets go of sequence q's window blocks outside [lo, hi), last first (the
 * free stack then hands them out first to last again: a ring). */
static void drop_window(sd_kv_cache *c, sd_kv_seq *q, int lo, int hi)
{
    for (int i = q->win_hi - 1; i >= q->win_lo; i--)
        if (i < lo || i >= hi) {
            drop_block(&c->win, q->win[i]);
            q->win[i] = -1;
        }
}

int sd_kv_seq_grow(sd_kv_cache *c, int s, int n_pos)
{
    sd_kv_seq *q = &c->seqs[s];
    int need = (n_pos + SD_KV_BLOCK - 1) / SD_KV_BLOCK - q->n_blocks;
    if (need <= 0) return 0;
    if (need > sd_kv_available(c)) return -1;
    while (need--) q->blocks[q->n_blocks++] = take_block(&c->full);
    return 0;
}

int sd_kv_seq_window(sd_kv_cache *c, int s, int p0, int p1)
{
    if (!c->win.n_blocks || p1 <= p0) return 0;
    sd_kv_seq *q = &c->seqs[s];
    if (p0 < 0 || p1 - p0 > c->n_batch || p1 > c->n_blocks * SD_KV_BLOCK) return -1;
    int lo = p0 + 1 - c->window > 0 ? p0 + 1 - c->window : 0, b_lo = lo / SD_KV_BLOCK;
    int b_hi = (p1 - 1) / SD_KV_BLOCK + 1;
    /* The positions before p0 it reads were written by earlier passes. */
    for (int i = b_lo; lo < p0 && i <= (p0 - 1) / SD_KV_BLOCK; i++)
        if (q->win[i] < 0) return -1;
    drop_window(c, q, b_lo, b_hi);
    /* At most win_blocks held by each sequence in a pool of n_seqs times
     * that: the blocks this one lacks are free or evictable. */
    int need = 0;
    for (int i = b_lo; i < b_hi; i++) need += q->win[i] < 0;
    if (need > c->win.n_free + c->win.n_lru) return -1;
    for (int i = b_lo; i < b_hi; i++)
        if (q->win[i] < 0) q->win[i] = take_block(&c->win);
    q->win_lo = b_lo;
    q->win_hi = b_hi;
    return 0;
}

void sd_kv_seq_release(sd_kv_cache *c, int s)
{
    sd_kv_seq *q = &c->seqs[s];
    /* Last block first: a chain's tail is evicted before its head. */
    for (int i = q->n_blocks - 1; i >= 0; i--) drop_block(&c->full, q->blocks[i]);
    if (q->win) drop_window(c, q, 0, 0);
    q->n_blocks = q->n_hashed = q->win_lo = q->win_hi = 0;
    q->last_hash = 0;
    sd_kv_snap_drop(c, s);
    if (q->state) memset(q->state, 0, c->state_bytes);
}

/* With a window pool: are the window blocks a reuse of k full blocks needs
 * (those of positions k * SD_KV_BLOCK + 1 - window ..) cached? */
static int window_cached(sd_kv_cache *c, const int32_t *tokens, int k, int *first)
{
    int lo = k * SD_KV_BLOCK + 1 - c->window;
    *first = lo > 0 ? lo / SD_KV_BLOCK : 0;
    for (int i = *first; i < k; i++)
        if (index_find(&c->win, c->chain[i], i ? c->chain[i - 1] : 0, tokens + (size_t)i * SD_KV_BLOCK) < 0) return 0;
    return 1;
}

int sd_kv_seq_reuse_prefix(sd_kv_cache *c, int s, const int32_t *tokens, int n)
{
    sd_kv_seq *q = &c->seqs[s];
    if (q->n_blocks || q->win_hi) return 0;
    int k = 0;
    uint64_t h = 0;
    for (int i = 0; (i + 1) * SD_KV_BLOCK < n && i < c->n_blocks; i++) {
        const int32_t *t = tokens + (size_t)i * SD_KV_BLOCK;
        uint64_t hb = block_hash(h, t);
        int b = index_find(&c->full, hb, h, t);
        if (b < 0) break;
        if (c->chain) c->chain[i] = hb;
        h = hb;
        k++;
    }
    /* With recurrent state: only as far as a snapshot of the state goes. */
    if (c->state_bytes) k = sd_kv_snap_resume(c, s, tokens, k);
    /* A sliding layer's window of the first position computed must be
     * cached too: shorten the prefix until it is. */
    int first = 0;
    if (c->win.n_blocks) {
        while (k > 0 && !window_cached(c, tokens, k, &first)) k--;
        for (int i = first; i < k; i++) {
            int b = index_find(&c->win, c->chain[i], i ? c->chain[i - 1] : 0, tokens + (size_t)i * SD_KV_BLOCK);
            if (c->win.ref[b]++ == 0) lru_unlink(&c->win, b);
            q->win[i] = b;
        }
        q->win_lo = k ? first : 0;
        q->win_hi = k;
    }
    h = 0;
    for (int i = 0; i < k; i++) {
        const int32_t *t = tokens + (size_t)i * SD_KV_BLOCK;
        uint64_t hb = block_hash(h, t);
        int b = index_find(&c->full, hb, h, t);
        if (c->full.ref[b]++ == 0) lru_unlink(&c->full, b);
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
        int i = q->n_hashed;
        const int32_t *t = tokens + (size_t)i * SD_KV_BLOCK;
        uint64_t hb = block_hash(q->last_hash, t);
        /* The same prefix cached in another block already: keep that one. */
        index_add(&c->full, q->blocks[i], hb, q->last_hash, t);
        if (q->win && i >= q->win_lo && i < q->win_hi) index_add(&c->win, q->win[i], hb, q->last_hash, t);
        q->last_hash = hb;
    }
    sd_kv_snap_commit(c, s, n);
}
