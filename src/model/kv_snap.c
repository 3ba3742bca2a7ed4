/* Snapshots of the recurrent state at the ends of cached prefixes (model/kv_cache.h). */
#include <stdlib.h>
#include <string.h>

#include "model/kv_cache.h"

static void slot_free(sd_kv_snaps *sn, sd_kv_snap *x, size_t state_bytes)
{
    if (x->data) sn->bytes -= state_bytes;
    free(x->data);
    free(x->toks);
    memset(x, 0, sizeof *x);
    x->owner = -1;
}

void sd_kv_snap_free(sd_kv_cache *c)
{
    for (int i = 0; i < c->snap.cap; i++) slot_free(&c->snap, &c->snap.slot[i], c->state_bytes);
    free(c->snap.slot);
    c->snap.slot = NULL;
    c->snap.cap = 0;
}

void sd_kv_snap_limit(sd_kv_cache *c, int cap)
{
    if (!c->state_bytes) return;
    for (int s = 0; s < c->n_seqs; s++) sd_kv_snap_drop(c, s);
    sd_kv_snap_free(c);
    if (cap < 1 || !(c->snap.slot = calloc((size_t)cap, sizeof *c->snap.slot))) return;
    c->snap.cap = cap;
    for (int i = 0; i < cap; i++) c->snap.slot[i].owner = -1;
}

/* The snapshot of exactly tokens[0..n), kept (or, with filling, also
 * being filled), or NULL. */
static sd_kv_snap *find(sd_kv_cache *c, const int32_t *tokens, int n, int filling)
{
    for (int i = 0; i < c->snap.cap; i++) {
        sd_kv_snap *x = &c->snap.slot[i];
        if ((filling || x->owner < 0) && x->n_tok == n && !memcmp(x->toks, tokens, (size_t)n * sizeof *tokens))
            return x;
    }
    return NULL;
}

int sd_kv_snap_resume(sd_kv_cache *c, int s, const int32_t *tokens, int k)
{
    for (; k > 0; k--) {
        sd_kv_snap *x = find(c, tokens, k * SD_KV_BLOCK, 0);
        if (!x) continue;
        memcpy(c->seqs[s].state, x->data, c->state_bytes);
        x->used = ++c->snap.clock;
        c->snap.hits++;
        return k;
    }
    return 0;
}

void sd_kv_seq_plan_snapshot(sd_kv_cache *c, int s, const int32_t *tokens, int n)
{
    sd_kv_seq *q = &c->seqs[s];
    int p = (n - 1) / SD_KV_BLOCK * SD_KV_BLOCK;
    if (!c->snap.cap || q->snap || p < SD_KV_BLOCK || p <= q->n_blocks * SD_KV_BLOCK) return;
    sd_kv_snap *x = find(c, tokens, p, 1);
    if (x) {   /* kept or being filled already (by a sequence with the same prompt) */
        x->used = ++c->snap.clock;
        return;
    }
    /* An empty slot, else the least recently used kept one. */
    for (int i = 0; i < c->snap.cap; i++) {
        sd_kv_snap *y = &c->snap.slot[i];
        if (y->owner >= 0) continue;
        if (!x || (x->n_tok && (!y->n_tok || y->used < x->used))) x = y;
    }
    if (!x) return;   /* every slot being filled */
    if (x->n_tok) c->snap.replaced++;
    int32_t *toks = realloc(x->toks, (size_t)p * sizeof *toks);
    if (toks) x->toks = toks;
    if (!x->data && toks && (x->data = malloc(c->state_bytes))) c->snap.bytes += c->state_bytes;
    x->n_tok = 0;
    if (!toks || !x->data) return;   /* no memory: no snapshot, nothing else changes */
    memcpy(x->toks, tokens, (size_t)p * sizeof *tokens);
    x->n_tok = p;
    x->owner = s;
    q->snap = x->data;
    q->snap_pos = p;
    q->snap_slot = (int)(x - c->snap.slot);
}

void sd_kv_snap_commit(sd_kv_cache *c, int s, int n)
{
    sd_kv_seq *q = &c->seqs[s];
    if (!q->snap || n < q->snap_pos) return;
    sd_kv_snap *x = &c->snap.slot[q->snap_slot];
    x->owner = -1;
    x->used = ++c->snap.clock;
    c->snap.stores++;
    q->snap = NULL;
    q->snap_pos = 0;
}

void sd_kv_snap_drop(sd_kv_cache *c, int s)
{
    sd_kv_seq *q = &c->seqs[s];
    if (!q->snap) return;
    sd_kv_snap *x = &c->snap.slot[q->snap_slot];
    x->owner = -1;
    x->n_tok = 0;
    q->snap = NULL;
    q->snap_pos = 0;
}
