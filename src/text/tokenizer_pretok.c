/* Pre-tokenization for byte-level BPE: cuts text into the words the
 * reference engine's regexes would find, without a regex engine. A rule is a
 * list of stages; each stage cuts every piece the one before left (its
 * matches and the stretches between them are pieces), and the end of a
 * piece is the end of the text for the next stage, as in the reference
 * engine. The stages:
 *
 *  GPT2    's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
 *  LLAMA3  (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
 *          | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 *  QWEN2   as LLAMA3 but single digits: \p{N}
 *  DIGIT   \p{N}                       PUNCT  [\p{P}$+<=>^~|]+
 *  NUMBER  \p{N}+                      DIGIT3 [0-9][0-9][0-9]
 *
 * and the rules: gpt-2 = GPT2; llama3 = LLAMA3; qwen2 = QWEN2; smollm
 * (starcoder, refact, ...) = DIGIT, GPT2; default = PUNCT, GPT2, NUMBER,
 * DIGIT3. Alternatives are tried in order at each position, as a regex
 * engine does. The Unicode classes are an approximation: ASCII is exact;
 * beyond it the common whitespace, digit, punctuation, symbol, emoji and
 * combining-mark blocks are classified and every other code point counts as
 * a letter. */
#include <stdlib.h>
#include <string.h>

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

/* Unicode category P (punctuation): exact for ASCII and Latin-1, the
 * General Punctuation, CJK and fullwidth blocks beyond. */
static int is_punct(unsigned c)
{
    if (c < 0x80)
        return in(c, 0x21, 0x23) || in(c, 0x25, 0x2a) || in(c, 0x2c, 0x2f) || c == 0x3a || c == 0x3b || c == 0x3f ||
               c == 0x40 || in(c, 0x5b, 0x5d) || c == 0x5f || c == 0x7b || c == 0x7d;
    return c == 0xa1 || c == 0xa7 || c == 0xab || c == 0xb6 || c == 0xb7 || c == 0xbb || c == 0xbf ||
           c == 0x37e || c == 0x387 || in(c, 0x55a, 0x55f) || c == 0x589 || c == 0x58a || c == 0x5be ||
           c == 0x60c || c == 0x61b || c == 0x61f || c == 0x6d4 || c == 0x964 || c == 0x965 ||
           in(c, 0x2010, 0x2027) || in(c, 0x2030, 0x2043) || in(c, 0x2045, 0x2051) || in(c, 0x2053, 0x205e) ||
           in(c, 0x2e00, 0x2e4f) || in(c, 0x3001, 0x3003) || in(c, 0x3008, 0x3011) || in(c, 0x3014, 0x301f) ||
           c == 0x3030 || c == 0x303d || in(c, 0xfe10, 0xfe19) || in(c, 0xfe30, 0xfe4f) ||
           in(c, 0xff01, 0xff03) || in(c, 0xff05, 0xff0a) || in(c, 0xff0c, 0xff0f) || c == 0xff1a ||
           c == 0xff1b || c == 0xff1f || c == 0xff20 || in(c, 0xff3b, 0xff3d) || c == 0xff3f || c == 0xff5b ||
           c == 0xff5d || in(c, 0xff5f, 0xff65);
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
/* (n below is always the end of the current piece, not of the text.) */

static int is_nl(const cps *c, size_t i) { return c->cp[i] == '\r' || c->cp[i] == '\n'; }

static unsigned lower(unsigned c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Length (in characters) of a contraction at i, or 0. */
static size_t contraction(const cps *c, size_t i, size_t n, int fold)
{
    if (c->cp[i] != '\'' || i + 1 >= n) return 0;
    unsigned a = c->cp[i + 1], b = i + 2 < n ? c->cp[i + 2] : 0;
    if (fold) { a = lower(a); b = lower(b); }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

typedef enum { ST_GPT2, ST_LLAMA3, ST_QWEN2, ST_DIGIT, ST_PUNCT, ST_NUMBER, ST_DIGIT3 } stage;

/* Length of the GPT2/LLAMA3/QWEN2 word starting at character i of a piece
 * ending at n (always >= 1). */
static size_t match_at(stage kind, const cps *c, size_t i, size_t n)
{
    size_t j;
    int cls = c->cls[i], gpt2 = kind == ST_GPT2;
    size_t k = contraction(c, i, n, !gpt2);
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
        size_t max = kind == ST_LLAMA3 ? 3 : 1;
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

/* Length of the match of a run stage at i (0: none there). */
static size_t run_at(stage st, const cps *c, size_t i, size_t n)
{
    size_t j = i;
    switch (st) {
    case ST_DIGIT: return c->cls[i] == C_NUMBER;
    case ST_NUMBER: while (j < n && c->cls[j] == C_NUMBER) j++; return j - i;
    case ST_PUNCT:
        while (j < n && (is_punct(c->cp[j]) || (c->cp[j] && c->cp[j] < 0x80 && strchr("$+<=>^~|", (int)c->cp[j]))))
            j++;
        return j - i;
    case ST_DIGIT3:
        while (j < n && j - i < 3 && c->cp[j] >= '0' && c->cp[j] <= '9') j++;
        return j - i == 3 ? 3 : 0;
    default: return 0;
    }
}

typedef struct {
    const cps *c;
    const char *text;
    const stage *st;
    int n_st;
    sd_word_fn fn;
    void *ctx;
} pipeline;

/* Cuts characters [lo, hi) by stage k and hands each piece to stage k + 1. */
static int cut(const pipeline *p, int k, size_t lo, size_t hi)
{
    const cps *c = p->c;
    if (k == p->n_st) return p->fn(p->text + c->off[lo], c->off[hi] - c->off[lo], p->ctx);
    stage st = p->st[k];
    int rc = 0;
    if (st == ST_GPT2 || st == ST_LLAMA3 || st == ST_QWEN2) {
        for (size_t i = lo; i < hi && !rc; ) {   /* these cover every character */
            size_t w = match_at(st, c, i, hi);
            rc = cut(p, k + 1, i, i + w);
            i += w;
        }
        return rc;
    }
    size_t gap = lo;   /* start of the unmatched stretch before i */
    for (size_t i = lo; i < hi && !rc; ) {
        size_t w = run_at(st, c, i, hi);
        if (!w) { i++; continue; }
        if (gap < i) rc = cut(p, k + 1, gap, i);
        if (!rc) rc = cut(p, k + 1, i, i + w);
        i += w;
        gap = i;
    }
    if (!rc && gap < hi) rc = cut(p, k + 1, gap, hi);
    return rc;
}

int sd_pretokenize(sd_pretok_kind kind, const char *text, size_t len, sd_word_fn fn, void *ctx)
{
    static const stage gpt2[] = {ST_GPT2}, llama3[] = {ST_LLAMA3}, qwen2[] = {ST_QWEN2},
                       smollm[] = {ST_DIGIT, ST_GPT2}, dflt[] = {ST_PUNCT, ST_GPT2, ST_NUMBER, ST_DIGIT3};
    static const struct { const stage *st; int n; } rules[SD_PRE_COUNT] = {
        [SD_PRE_GPT2] = {gpt2, 1}, [SD_PRE_LLAMA3] = {llama3, 1}, [SD_PRE_QWEN2] = {qwen2, 1},
        [SD_PRE_SMOLLM] = {smollm, 2}, [SD_PRE_DEFAULT] = {dflt, 4}};
    if ((unsigned)kind >= SD_PRE_COUNT) kind = SD_PRE_GPT2;
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
    pipeline p = {&c, text, rules[kind].st, rules[kind].n, fn, ctx};
    rc = c.n ? cut(&p, 0, 0, c.n) : 0;
done:
    free(c.cp);
    free(c.cls);
    free(c.off);
    return rc;
}

/* ---- names -------------------------------------------------------------- */

/* tokenizer.ggml.pre names (the reference engine's) whose rule we have. */
static const struct { const char *name; sd_pretok_kind kind; int ignore_merges; } names[] = {
    {"gpt-2", SD_PRE_GPT2, 0}, {"gpt2", SD_PRE_GPT2, 0},   /* "gpt2": what showdown synth wrote before */
    {"phi-2", SD_PRE_GPT2, 0}, {"mpt", SD_PRE_GPT2, 0}, {"olmo", SD_PRE_GPT2, 0}, {"jais", SD_PRE_GPT2, 0},
    {"jina-es", SD_PRE_GPT2, 0}, {"jina-de", SD_PRE_GPT2, 0}, {"jina-v1-en", SD_PRE_GPT2, 0},
    {"jina-v2-es", SD_PRE_GPT2, 0}, {"jina-v2-de", SD_PRE_GPT2, 0}, {"jina-v2-code", SD_PRE_GPT2, 0},
    {"roberta-bpe", SD_PRE_GPT2, 0}, {"gigachat", SD_PRE_GPT2, 0},
    {"llama3", SD_PRE_LLAMA3, 1}, {"llama-v3", SD_PRE_LLAMA3, 1}, {"llama-bpe", SD_PRE_LLAMA3, 1},
    {"falcon3", SD_PRE_LLAMA3, 1}, {"smaug-bpe", SD_PRE_LLAMA3, 0}, {"dbrx", SD_PRE_LLAMA3, 0},
    {"qwen2", SD_PRE_QWEN2, 0}, {"stablelm2", SD_PRE_QWEN2, 0}, {"deepseek-r1-qwen", SD_PRE_QWEN2, 0},
    {"megrez", SD_PRE_QWEN2, 0},
    {"smollm", SD_PRE_SMOLLM, 0}, {"starcoder", SD_PRE_SMOLLM, 0}, {"refact", SD_PRE_SMOLLM, 0},
    {"command-r", SD_PRE_SMOLLM, 0}, {"codeshell", SD_PRE_SMOLLM, 0}, {"exaone", SD_PRE_SMOLLM, 0},
    {"minerva-7b", SD_PRE_SMOLLM, 0},
    {"default", SD_PRE_DEFAULT, 0},
};

int sd_pretok_by_name(const char *name, size_t len, sd_pretok_kind *kind, int *ignore_merges)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == len && !memcmp(names[i].name, name, len)) {
            *kind = names[i].kind;
            *ignore_merges = names[i].ignore_merges;
            return 1;
        }
    return 0;
}

const char *sd_pretok_name(sd_pretok_kind kind)
{
    static const char *n[SD_PRE_COUNT] = {"gpt-2", "llama3", "qwen2", "smollm", "default"};
    return (unsigned)kind < SD_PRE_COUNT ? n[kind] : "?";
}
