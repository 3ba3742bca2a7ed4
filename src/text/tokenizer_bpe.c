/* Byte-level BPE (GGUF "gpt2": GPT-2, Llama 3, Qwen) as llama.cpp does it
 * (llm_tokenizer_bpe):
 *
 *  1. pre-tokenize the text into words (tokenizer_pretok.c);
 *  2. map every byte of a word to a printable character (GPT-2's
 *     bytes_to_unicode), each mapped character a symbol;
 *  3. repeatedly merge the adjacent pair with the lowest merge rank
 *     (ties: leftmost), looking pairs up as "left right" in the merges;
 *  4. each symbol is its token; a symbol missing from the vocabulary falls
 *     back to the tokens of its single characters.
 * Llama 3 vocabularies first look the whole word up ("ignore_merges"). */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

/* Bytes that GPT-2 keeps as their own code point: printable Latin-1. */
static int byte_is_self(unsigned b)
{
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
}

/* Code point of byte b: itself, or 256 + its rank among the other bytes. */
static unsigned byte_codepoint(uint8_t b)
{
    if (byte_is_self(b)) return b;
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++) n += !byte_is_self(c);
    return 256 + n;
}

size_t sd_bpe_byte_to_utf8(uint8_t b, char out[4])
{
    unsigned cp = byte_codepoint(b);
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    out[0] = (char)(0xc0 | (cp >> 6));  /* every mapped code point is < 0x800 */
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

size_t sd_bpe_unmap(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = (uint8_t)s[i];
        unsigned cp = 0x110000;
        if (c < 0x80) cp = c;
        else if ((c & 0xe0) == 0xc0 && i + 1 < len && ((uint8_t)s[i + 1] & 0xc0) == 0x80)
            cp = ((c & 0x1fu) << 6) | ((uint8_t)s[i + 1] & 0x3fu);
        if (cp < 256 && byte_is_self(cp)) { out[o++] = (char)cp; i += cp < 0x80 ? 1 : 2; continue; }
        if (cp >= 256 && cp < 256 + 68) {
            unsigned want = cp - 256, n = 0;
            for (unsigned b = 0; b < 256; b++)
                if (!byte_is_self(b) && n++ == want) { out[o++] = (char)b; break; }
            i += 2;
            continue;
        }
        /* not a mapped character: copy its bytes unchanged */
        size_t n = sd_utf8_len(c, len - i);
        memcpy(out + o, s + i, n);
        o += n;
        i += n;
    }
    return o;
}

typedef struct { int prev, next; size_t off, n; } bpe_symbol;
typedef struct { int rank, left, right; size_t size; } bpe_bigram;

typedef struct {
    const sd_tokenizer *t;
    sd_toklist *out;
    char *mapped;       /* the current word, bytes mapped to characters */
    char *pair;         /* scratch for "left right" */
    bpe_symbol *sym;
    bpe_bigram *heap;
    size_t n_heap;
} bpe_state;

static int before(const bpe_bigram *a, const bpe_bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(bpe_state *s, bpe_bigram b)
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

static bpe_bigram heap_pop(bpe_state *s)
{
    bpe_bigram top = s->heap[0], last = s->heap[--s->n_heap];
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

static void add_bigram(bpe_state *s, int left, int right)
{
    if (left < 0 || right < 0) return;
    const bpe_symbol *l = &s->sym[left], *r = &s->sym[right];
    memcpy(s->pair, s->mapped + l->off, l->n);
    s->pair[l->n] = ' ';
    memcpy(s->pair + l->n + 1, s->mapped + r->off, r->n);
    int32_t rank = sd_strmap_get(&s->t->merges, s->pair, l->n + 1 + r->n);
    if (rank < 0) return;
    heap_push(s, (bpe_bigram){rank, left, right, l->n + r->n});
}

static int emit_symbol(bpe_state *s, const char *text, size_t n)
{
    int32_t id = sd_strmap_get(&s->t->vocab, text, n);
    if (id >= 0) return sd_toklist_push(s->out, id);
    for (size_t i = 0; i < n;) {  /* unknown symbol: its characters one by one */
        size_t cl = sd_utf8_len((uint8_t)text[i], n - i);
        id = sd_strmap_get(&s->t->vocab, text + i, cl);
        if (id < 0) id = s->t->unk;
        if (id >= 0 && sd_toklist_push(s->out, id)) return -1;
        i += cl;
    }
    return 0;
}

static int encode_word(const char *w, size_t len, void *ctx)
{
    bpe_state *s = ctx;
    size_t n_mapped = 0;
    for (size_t i = 0; i < len; i++) n_mapped += sd_bpe_byte_to_utf8((uint8_t)w[i], s->mapped + n_mapped);
    if (s->t->ignore_merges && sd_strmap_get(&s->t->vocab, s->mapped, n_mapped) >= 0)
        return emit_symbol(s, s->mapped, n_mapped);

    int n_sym = 0;
    for (size_t off = 0; off < n_mapped; n_sym++) {
        size_t n = sd_utf8_len((uint8_t)s->mapped[off], n_mapped - off);
        s->sym[n_sym] = (bpe_symbol){n_sym - 1, off + n == n_mapped ? -1 : n_sym + 1, off, n};
        off += n;
    }
    s->n_heap = 0;
    for (int i = 1; i < n_sym; i++) add_bigram(s, i - 1, i);
    while (s->n_heap) {
        bpe_bigram b = heap_pop(s);
        bpe_symbol *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;  /* stale pair */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s->sym[r->next].prev = b.left;
        add_bigram(s, l->prev, b.left);
        add_bigram(s, b.left, l->next);
    }
    for (int i = 0; n_sym && i != -1; i = s->sym[i].next)
        if (emit_symbol(s, s->mapped + s->sym[i].off, s->sym[i].n)) return -1;
    return 0;
}

int sd_bpe_encode(const sd_tokenizer *t, const char *text, size_t len, sd_toklist *out)
{
    if (!len) return 0;
    if (len > (SIZE_MAX - 8) / 8) return -1;
    /* Buffers sized for the whole text serve every word. */
    bpe_state s = {.t = t, .out = out};
    s.mapped = malloc(2 * len);
    s.pair = malloc(2 * len + 1);
    s.sym = malloc(len * sizeof *s.sym);
    s.heap = malloc(3 * len * sizeof *s.heap);
    int rc = -1;
    if (s.mapped && s.pair && s.sym && s.heap) rc = sd_pretokenize(t->pre, text, len, encode_word, &s);
    free(s.mapped);
    free(s.pair);
    free(s.sym);
    free(s.heap);
    return rc;
}
