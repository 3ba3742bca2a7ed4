/* Pre-tokenization for byte-level BPE: cuts text into the words the GPT-2
 * family regexes would find, without a regex engine. The three variants:
 *
 *  GPT2   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
 *  LLAMA3 (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
 *         | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 *  QWEN2  as LLAMA3 but single digits: \p{N}
 *
 * Alternatives are tried in order at each position, as a regex engine does.
 * The Unicode classes are an approximation: ASCII is exact; beyond it the
 * common whitespace, digit, punctuation, symbol, emoji and combining-mark
 * blocks are classified and every other code point counts as a letter. */
#include <stdlib.h>

#include "text/tokenizer.h"

enum { C_LETTER, C_NUMBER, C_SPACE, C_OTHER };

static int in(unsigned c, unsigned lo, unsigned hi) { return c >= lo && c <= hi; }

static int classify(unsigned c)
{
    if (c < 0x80) {
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return C_LETTER;
        if (c >= '0' && c <= '9') return C_NUMBER;
        if (c == ' ' || in(c, 9, 13)) return C_SPACE;
        return C_OTHER;
    }
    if (c == 0x85 || c == 0xa0 || c == 0x1680 || in(c, 0x2000, 0x200a) || c == 0x2028 || c == 0x2029 ||
        c == 0x202f || c == 0x205f || c == 0x3000)
        return C_SPACE;
    if (c == 0xb2 || c == 0xb3 || c == 0xb9 || in(c, 0xbc, 0xbe) || in(c, 0x660, 0x669) || in(c, 0x6f0, 0x6f9) ||
        in(c, 0x966, 0x96f) || c == 0x2070 || in(c, 0x2074, 0x2079) || in(c, 0x2080, 0x2089) ||
        in(c, 0x2150, 0x2189) || in(c, 0x2460, 0x249b) || c == 0x3007 || in(c, 0x3021, 0x3029) ||
        in(c, 0xff10, 0xff19))
        return C_NUMBER;
    if (c == 0xaa || c == 0xb5 || c == 0xba) return C_LETTER;
    if (in(c, 0x80, 0xbf) || c == 0xd7 || c == 0xf7 ||
        in(c, 0x300, 0x36f) || in(c, 0x1ab0, 0x1aff) || in(c, 0x1dc0, 0x1dff) ||  /* combining marks */
        in(c, 0x2000, 0x2bff) || in(c, 0x2e00, 0x2e7f) ||       /* punctuation, symbols, arrows, boxes */
        in(c, 0x3001, 0x303f) || in(c, 0xd800, 0xf8ff) ||       /* CJK punctuation, surrogates, private use */
        in(c, 0xfe00, 0xfe4f) || in(c, 0xff01, 0xff0f) || in(c, 0xff1a, 0xff20) ||
        in(c, 0xff3b, 0xff40) || in(c, 0xff5b, 0xff65) || in(c, 0xfff0, 0xffff) ||
        in(c, 0x1f000, 0x1faff) || in(c, 0xe0000, 0xe007f) || c > 0x10ffff)
        return C_OTHER;
    return C_LETTER;
}

/* Decodes one UTF-8 character; malformed bytes become 0xFFFFFFFF (class OTHER), length 1. */
static unsigned decode(const uint8_t *s, size_t left, size_t *n)
{
    size_t len = sd_utf8_len(s[0], left);
    static const uint8_t lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    unsigned cp = s[0] & lead_mask[len];
    int ok = (s[0] & 0xc0) != 0x80 && len == (s[0] < 0x80 ? 1u : s[0] < 0xe0 ? 2u : s[0] < 0xf0 ? 3u : 4u);
    for (size_t i = 1; ok && i < len; i++) {
        ok = (s[i] & 0xc0) == 0x80;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    *n = ok ? len : 1;
    return ok ? cp : 0xffffffffu;
}

typedef struct { unsigned *cp; uint8_t *cls; size_t *off; size_t n; } cps;

static int is_nl(const cps *c, size_t i) { return c->cp[i] == '\r' || c->cp[i] == '\n'; }

static unsigned lower(unsigned c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Length (in characters) of a contraction at i, or 0. */
static size_t contraction(const cps *c, size_t i, int fold)
{
    if (c->cp[i] != '\'' || i + 1 >= c->n) return 0;
    unsigned a = c->cp[i + 1], b = i + 2 < c->n ? c->cp[i + 2] : 0;
    if (fold) { a = lower(a); b = lower(b); }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* Length of the word starting at character i (always >= 1). */
static size_t match_at(sd_pretok_kind kind, const cps *c, size_t i)
{
    size_t n = c->n, j;
    int cls = c->cls[i], gpt2 = kind == SD_PRE_GPT2;
    size_t k = contraction(c, i, !gpt2);
    if (k) return k;
    /* letters, with one optional leading character */
    j = i;
    if (gpt2 ? c->cp[i] == ' ' : (cls != C_LETTER && cls != C_NUMBER && !is_nl(c, i))) j++;
    if (j < n && c->cls[j] == C_LETTER) {
        while (j < n && c->cls[j] == C_LETTER) j++;
        return j - i;
    }
    if (cls == C_LETTER) {
        for (j = i; j < n && c->cls[j] == C_LETTER; j++) {}
        return j - i;
    }
    /* numbers: GPT-2 takes a leading space and any run; Llama 3 runs of up to
     * three digits; Qwen2 single digits */
    if (gpt2) {
        j = i + (c->cp[i] == ' ');
        if (j < n && c->cls[j] == C_NUMBER) {
            while (j < n && c->cls[j] == C_NUMBER) j++;
            return j - i;
        }
    } else if (cls == C_NUMBER) {
        size_t max = kind == SD_PRE_LLAMA3 ? 3 : 1;
        for (j = i; j < n && c->cls[j] == C_NUMBER && j - i < max; j++) {}
        return j - i;
    }
    /* punctuation and symbols, with one optional leading space */
    j = i + (c->cp[i] == ' ');
    if (j < n && c->cls[j] == C_OTHER) {
        while (j < n && c->cls[j] == C_OTHER) j++;
        if (!gpt2) while (j < n && is_nl(c, j)) j++;
        return j - i;
    }
    if (cls != C_SPACE) return 1;  /* not reached: every class is handled above */
    /* whitespace */
    size_t e = i;
    while (e < n && c->cls[e] == C_SPACE) e++;
    if (!gpt2) {  /* \s*[\r\n]+ : up to the last line break of the run */
        size_t last = e;
        for (j = i; j < e; j++) if (is_nl(c, j)) last = j;
        if (last != e) return last + 1 - i;
    }
    if (e == n) return e - i;            /* \s+(?!\S) at the end */
    if (e - i > 1) return e - 1 - i;     /* leave one space for the next word */
    return 1;                            /* \s+ */
}

int sd_pretokenize(sd_pretok_kind kind, const char *text, size_t len, sd_word_fn fn, void *ctx)
{
    cps c = {0};
    c.cp = malloc((len + 1) * sizeof *c.cp);
    c.cls = malloc(len + 1);
    c.off = malloc((len + 1) * sizeof *c.off);
    int rc = -1;
    if (!c.cp || !c.cls || !c.off) goto done;
    for (size_t o = 0, n; o < len; o += n) {
        c.cp[c.n] = decode((const uint8_t *)text + o, len - o, &n);
        c.cls[c.n] = (uint8_t)classify(c.cp[c.n]);
        c.off[c.n++] = o;
    }
    c.off[c.n] = len;
    rc = 0;
    for (size_t i = 0; i < c.n && !rc;) {
        size_t k = match_at(kind, &c, i);
        rc = fn(text + c.off[i], c.off[i + k] - c.off[i], ctx);
        i += k;
    }
done:
    free(c.cp);
    free(c.cls);
    free(c.off);
    return rc;
}
