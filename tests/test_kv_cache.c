/* The paged KV cache: blocks lent and returned, shared prefix blocks
 * counted, cached blocks evicted least recently used, a hash match
 * confirmed by its tokens. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "model/kv_cache.h"

static sd_model fake;

static sd_kv_cache *make(int n_pos, int n_seqs)
{
    memset(&fake, 0, sizeof fake);
    snprintf(fake.path, sizeof fake.path, "fake.gguf");
    fake.hp.n_layer = 2;
    fake.hp.n_head_kv = 2;
    fake.hp.head_dim = 8;
    sd_kv_cache *c;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_kv_cache_new(&fake, SD_KV_F32, n_pos, n_seqs, 16, &c, err), 0, "%s", err);
    return c;
}

static void fill(int32_t *t, int n, int seed)
{
    for (int i = 0; i < n; i++) t[i] = seed * 1000 + i;
}

Test(kv_cache, blocks_lent_and_returned)
{
    sd_kv_cache *c = make(64, 2);   /* 4 blocks */
    cr_assert_eq(c->n_blocks, 4);
    cr_assert_eq(sd_kv_cache_bytes(&fake, SD_KV_F32, 64, 2, 16), 2ull * 2 * 2 * 64 * 8 * 4);
    cr_assert_eq(sd_kv_seq_grow(c, 0, 40), 0);
    cr_assert_eq(c->seqs[0].n_blocks, 3);
    /* A lone sequence gets adjacent blocks, in order. */
    for (int i = 0; i < 3; i++) cr_assert_eq(c->seqs[0].blocks[i], i);
    cr_assert_eq(sd_kv_available(c), 1);
    cr_assert_eq(sd_kv_seq_grow(c, 1, 32), -1, "two blocks out of one");
    cr_assert_eq(c->seqs[1].n_blocks, 0, "a refused grow changes nothing");
    cr_assert_eq(sd_kv_seq_grow(c, 0, 48), 0);
    cr_assert_eq(c->seqs[0].n_blocks, 3, "positions 40..47 are in the third block");
    cr_assert_eq(sd_kv_seq_grow(c, 0, 49), 0);
    cr_assert_eq(sd_kv_available(c), 0);
    sd_kv_seq_release(c, 0);
    cr_assert_eq(sd_kv_available(c), 4);
    cr_assert_eq(c->full.n_free, 4, "unpublished blocks go straight back");
    /* One sequence may take the whole pool. */
    cr_assert_eq(sd_kv_seq_grow(c, 1, 64), 0);
    cr_assert_eq(sd_kv_seq_grow(c, 1, 65), -1);
    sd_kv_cache_free(c);
}

Test(kv_cache, prefix_blocks_shared_and_counted)
{
    sd_kv_cache *c = make(128, 3);
    int32_t t[40];
    fill(t, 40, 1);
    cr_assert_eq(sd_kv_seq_grow(c, 0, 40), 0);
    sd_kv_seq_publish(c, 0, t, 40);   /* two full blocks */
    int b0 = c->seqs[0].blocks[0], b1 = c->seqs[0].blocks[1];
    cr_assert_neq(c->full.hash[b0], 0);
    cr_assert_neq(c->full.hash[b1], 0);
    cr_assert_eq(c->full.hash[c->seqs[0].blocks[2]], 0, "a partial block is not published");
    /* While sequence 0 still runs, another reuses its full blocks. */
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 1, t, 40), 32);
    cr_assert_eq(c->seqs[1].blocks[0], b0);
    cr_assert_eq(c->seqs[1].blocks[1], b1);
    cr_assert_eq(c->full.ref[b0], 2);
    /* At least one token is left to compute: a prompt of exactly 32 reuses 16. */
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 2, t, 32), 16);
    cr_assert_eq(c->full.ref[b0], 3);
    cr_assert_eq(c->full.ref[b1], 2);
    sd_kv_seq_release(c, 0);
    sd_kv_seq_release(c, 2);
    cr_assert_eq(c->full.ref[b0], 1);
    cr_assert_eq(c->full.n_lru, 0, "still held by sequence 1");
    sd_kv_seq_release(c, 1);
    cr_assert_eq(c->full.n_lru, 2, "cached, nobody holds them");
    cr_assert_eq(sd_kv_available(c), 8);
    /* A different token in the second block: only the first matches. */
    int32_t u[40];
    memcpy(u, t, sizeof u);
    u[20] = -5;
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 0, u, 40), 16);
    sd_kv_seq_release(c, 0);
    /* A different first block: nothing, even though the second's tokens match. */
    memcpy(u, t, sizeof u);
    u[3] = -5;
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 0, u, 40), 0);
    sd_kv_seq_release(c, 0);
    sd_kv_cache_free(c);
}

Test(kv_cache, least_recently_used_evicted_first)
{
    sd_kv_cache *c = make(64, 2);   /* 4 blocks */
    int32_t a[17], b[17];
    fill(a, 17, 1);
    fill(b, 17, 2);
    cr_assert_eq(sd_kv_seq_grow(c, 0, 17), 0);
    sd_kv_seq_publish(c, 0, a, 17);
    cr_assert_eq(sd_kv_seq_grow(c, 1, 17), 0);
    sd_kv_seq_publish(c, 1, b, 17);
    sd_kv_seq_release(c, 0);   /* a's block used before b's */
    sd_kv_seq_release(c, 1);
    cr_assert_eq(c->full.n_lru, 2);
    cr_assert_eq(c->full.n_free, 2);
    /* Three blocks: the two free ones, then the least recently used (a's). */
    cr_assert_eq(sd_kv_seq_grow(c, 0, 48), 0);
    cr_assert_eq(c->full.evictions, 1);
    sd_kv_seq_release(c, 0);
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 1, a, 17), 0, "a was evicted");
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 1, b, 17), 16, "b is still cached");
    sd_kv_seq_release(c, 1);
    /* Using b again makes it the most recent: a new block evicts nothing
     * held, and the whole pool can still be taken. */
    cr_assert_eq(sd_kv_seq_grow(c, 0, 64), 0);
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 1, b, 17), 0, "evicted for the full grow");
    sd_kv_seq_release(c, 0);
    sd_kv_cache_free(c);
}

Test(kv_cache, too_large_refused_naming_bytes)
{
    memset(&fake, 0, sizeof fake);
    snprintf(fake.path, sizeof fake.path, "big.gguf");
    fake.hp.n_layer = 4096;
    fake.hp.n_head_kv = 64;
    fake.hp.head_dim = 256;
    sd_kv_cache *c = NULL;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_kv_cache_new(&fake, SD_KV_F32, 1 << 22, 1, 64, &c, err), -1);
    cr_assert(strstr(err, "bytes") && strstr(err, "KV cache"), "%s", err);
}
