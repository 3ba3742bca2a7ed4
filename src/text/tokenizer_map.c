/* Small containers the tokenizers share: a string -> int32 hash map, a growable
 * token list, and the UTF-8 lead-byte length table. */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;  /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int sd_strmap_init(sd_strmap *m, uint32_t n_entries)
{
    memset(m, 0, sizeof *m);
    uint32_t cap = 16;
    while (cap < 2ull * n_entries + 1) {
        if (cap >= (1u << 30)) return -1;
        cap <<= 1;
    }
    m->key = calloc(cap, sizeof *m->key);
    m->key_len = calloc(cap, sizeof *m->key_len);
    m->val = calloc(cap, sizeof *m->val);
    if (!m->key || !m->key_len || !m->val) { sd_strmap_free(m); return -1; }
    m->cap = cap;
    return 0;
}

void sd_strmap_free(sd_strmap *m)
{
    free(m->key);
    free(m->key_len);
    free(m->val);
    memset(m, 0, sizeof *m);
}

/* Slot holding key, or the empty slot where it would go. */
static uint32_t find_slot(const sd_strmap *m, const char *key, size_t len)
{
    uint32_t mask = m->cap - 1, i = (uint32_t)hash_bytes(key, len) & mask;
    while (m->key[i] && !(m->key_len[i] == len && !memcmp(m->key[i], key, len)))
        i = (i + 1) & mask;
    return i;
}

void sd_strmap_put(sd_strmap *m, const char *key, uint32_t len, int32_t val, int keep_first)
{
    uint32_t i = find_slot(m, key, len);
    if (m->key[i] && keep_first) return;
    m->key[i] = key;
    m->key_len[i] = len;
    m->val[i] = val;
}

int32_t sd_strmap_get(const sd_strmap *m, const char *key, size_t len)
{
    if (!m->cap || len > UINT32_MAX) return -1;
    uint32_t i = find_slot(m, key, len);
    return m->key[i] ? m->val[i] : -1;
}

size_t sd_utf8_len(uint8_t lead, size_t left)
{
    static const uint8_t by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t n = by_high_nibble[lead >> 4];
    return n < left ? n : left;
}

int sd_toklist_push(sd_toklist *l, int32_t id)
{
    if (l->n == l->cap) {
        if (l->cap > (1 << 28)) return -1;
        int cap = l->cap ? l->cap * 2 : 64;
        int32_t *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return 0;
}
