/* SentencePiece-style tokenization as llama.cpp does it (llm_tokenizer_spm):
 *
 *  1. spaces become U+2581 "▁" (and one is prepended when asked);
 *  2. the text is cut into UTF-8 characters, each a symbol;
 *  3. repeatedly merge the adjacent pair whose concatenation is a vocabulary
 *     token with the highest score (ties: leftmost pair);
 *  4. each remaining symbol is its token, or, when the symbol is not in the
 *     vocabulary (an unknown character), its bytes as <0xNN> tokens.
 *
 * llama.cpp also keeps a "reverse merge" table to split a symbol that is not
 * a token back into its parts; merged symbols are always tokens here (a pair
 * is only queued when its text is one), so the byte fallback is the only case
 * that can occur and the table is not needed. */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

typedef struct { int prev, next; size_t off, n; } spm_symbol;
typedef struct { float score; int left, right; size_t size; } spm_bigram;

typedef struct {
    const sd_tokenizer *t;
    const char *text;
    spm_symbol *sym;
    spm_bigram *heap;
    size_t n_heap;
} spm_state;

/* a comes out of the queue before b: higher score, then leftmost. */
static int before(const spm_bigram *a, const spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(spm_state *s, spm_bigram b)
{
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&b, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = b;
}

static spm_bigram heap_pop(spm_state *s)
{
    spm_bigram top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static void try_add_bigram(spm_state *s, int left, int right)
{
    if (left < 0 || right < 0) return;
    const spm_symbol *l = &s->sym[left], *r = &s->sym[right];
    size_t n = l->n + r->n;  /* adjacent symbols: their texts are contiguous */
    int32_t id = sd_strmap_get(&s->t->vocab, s->text + l->off, n);
    if (id < 0) return;
    heap_push(s, (spm_bigram){s->t->score[id], left, right, n});
}

static int emit_symbol(const spm_state *s, const spm_symbol *sym, sd_toklist *out)
{
    int32_t id = sd_strmap_get(&s->t->vocab, s->text + sym->off, sym->n);
    if (id >= 0) return sd_toklist_push(out, id);
    for (size_t i = 0; i < sym->n; i++) {
        int32_t b = s->t->byte_token[(uint8_t)s->text[sym->off + i]];
        if (b >= 0 && sd_toklist_push(out, b)) return -1;
    }
    return 0;
}

/* Copy of text with the optional leading space and every ' ' as "▁". */
static char *escape_spaces(const char *text, size_t len, int space_prefix, size_t *out_len)
{
    if (len > (SIZE_MAX - 4) / 3) return NULL;
    char *e = malloc(3 * len + 4), *p = e;
    if (!e) return NULL;
    for (size_t i = 0; i < len + (space_prefix != 0); i++) {
        char c = space_prefix ? (i == 0 ? ' ' : text[i - 1]) : text[i];
        if (c == ' ') { memcpy(p, "\xe2\x96\x81", 3); p += 3; }
        else *p++ = c;
    }
    *out_len = (size_t)(p - e);
    return e;
}

int sd_spm_encode(const sd_tokenizer *t, const char *text, size_t len, int space_prefix, sd_toklist *out)
{
    size_t n_text;
    char *esc = escape_spaces(text, len, space_prefix, &n_text);
    if (!esc) return -1;
    if (n_text == 0) { free(esc); return 0; }
    spm_state s = {.t = t, .text = esc};
    s.sym = malloc(n_text * sizeof *s.sym);
    /* n-1 initial pairs plus at most two new ones per merge */
    s.heap = malloc(3 * n_text * sizeof *s.heap);
    int rc = -1;
    if (!s.sym || !s.heap) goto done;

    int n_sym = 0;
    for (size_t off = 0; off < n_text; n_sym++) {
        size_t n = sd_utf8_len((uint8_t)esc[off], n_text - off);
        s.sym[n_sym] = (spm_symbol){n_sym - 1, off + n == n_text ? -1 : n_sym + 1, off, n};
        off += n;
    }
    for (int i = 1; i < n_sym; i++) try_add_bigram(&s, i - 1, i);

    while (s.n_heap) {
        spm_bigram b = heap_pop(&s);
        spm_symbol *l = &s.sym[b.left], *r = &s.sym[b.right];
        /* Symbols only grow or vanish, so a stale pair shows as a size mismatch. */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s.sym[r->next].prev = b.left;
        try_add_bigram(&s, l->prev, b.left);
        try_add_bigram(&s, b.left, l->next);
    }
    for (int i = 0; i != -1; i = s.sym[i].next)
        if (emit_symbol(&s, &s.sym[i], out)) goto done;
    rc = 0;
done:
    free(s.sym);
    free(s.heap);
    free(esc);
    return rc;
}
