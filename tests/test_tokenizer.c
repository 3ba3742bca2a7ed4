/* The tokenizers. SentencePiece: ids must equal llama.cpp's on the Llama-2
 * vocabulary (its published tokenizer test vectors) and the reference files'
 * prompt tokens on the stories260K vocabulary. Byte-level BPE: a small
 * vocabulary built here in memory, whose merges give hand-derived answers.
 * Bad metadata is refused with a message; `showdown tokenize` is run too. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "showdown.h"
#include "gguf/gguf.h"
#include "text/tokenizer.h"
#include "common.h"

/* ---- helpers ------------------------------------------------------------ */

static sd_tokenizer *load_shared(const char *rel, gguf_file **f)
{
    char path[512], err[SD_ERR_LEN] = "";
    sd_tokenizer *t = NULL;
    shared_path(path, sizeof path, rel);
    cr_assert_eq(gguf_open(path, f, err), 0, "%s", err);
    cr_assert_eq(sd_tokenizer_from_gguf(*f, &t, err), 0, "%s", err);
    return t;
}

static void expect_tokens(const sd_tokenizer *t, const char *text, size_t len, int add_bos,
                          const int32_t *want, int n_want)
{
    char err[SD_ERR_LEN] = "";
    int32_t *got = NULL;
    int n = -1;
    cr_assert_eq(sd_tokenize(t, text, len, add_bos, &got, &n, err), 0, "%s", err);
    cr_assert_not_null(got);
    int same = n == n_want;
    for (int i = 0; same && i < n; i++) same = got[i] == want[i];
    if (!same) {
        char msg[2048] = "";
        size_t o = 0;
        for (int i = 0; i < n && o < sizeof msg - 16; i++) o += (size_t)snprintf(msg + o, sizeof msg - o, " %d", got[i]);
        cr_assert(0, "'%s': got%s (%d tokens, want %d)", text, msg, n, n_want);
    }
    free(got);
}

#define EXPECT(t, text, ...) do { \
        static const int32_t want_[] = {__VA_ARGS__}; \
        expect_tokens(t, text, strlen(text), 0, want_, (int)(sizeof want_ / sizeof want_[0])); \
    } while (0)

/* Concatenated pieces of text's tokens (no BOS). */
static char *detokenize(const sd_tokenizer *t, const char *text, size_t len, size_t *out_len)
{
    char err[SD_ERR_LEN];
    int32_t *ids;
    int n;
    cr_assert_eq(sd_tokenize(t, text, len, 0, &ids, &n, err), 0, "%s", err);
    char *s = malloc(8 * len + 16);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t pl;
        const char *p = sd_token_piece(t, ids[i], &pl);
        memcpy(s + o, p, pl);
        o += pl;
    }
    free(ids);
    *out_len = o;
    return s;
}

/* ---- SentencePiece: the Llama-2 vocabulary ------------------------------- */

static gguf_file *llama_f;
static sd_tokenizer *llama_t;
static void llama_setup(void) { llama_t = load_shared("models/vocab-llama-spm.gguf", &llama_f); }
static void llama_teardown(void) { sd_tokenizer_free(llama_t); gguf_close(llama_f); }

TestSuite(tokenizer_llama, .init = llama_setup, .fini = llama_teardown);

Test(tokenizer_llama, metadata)
{
    cr_assert_eq(sd_tokenizer_n_vocab(llama_t), 32000);
    cr_assert_eq(sd_token_bos(llama_t), 1);
    cr_assert_eq(sd_token_eos(llama_t), 2);
}

Test(tokenizer_llama, bos_and_leading_space)
{
    static const int32_t hello_bos[] = {1, 15043, 3186};
    expect_tokens(llama_t, "Hello world", 11, 1, hello_bos, 3);
    EXPECT(llama_t, "Hello world", 15043, 3186);
    EXPECT(llama_t, " Hello world", 29871, 15043, 3186);  /* "▁" then "▁Hello" */
    EXPECT(llama_t, "Hello World", 15043, 2787);
    EXPECT(llama_t, " Hello World!", 29871, 15043, 2787, 29991);
    EXPECT(llama_t, "Hello, world!", 15043, 29892, 3186, 29991);
}

Test(tokenizer_llama, empty_and_whitespace)
{
    static const int32_t bos_only[] = {1};
    expect_tokens(llama_t, "", 0, 1, bos_only, 1);
    expect_tokens(llama_t, "", 0, 0, NULL, 0);
    EXPECT(llama_t, " ", 259);
    EXPECT(llama_t, "  ", 1678);
    EXPECT(llama_t, "   ", 268);
    EXPECT(llama_t, "\t", 29871, 12);
    EXPECT(llama_t, "\n", 29871, 13);
    EXPECT(llama_t, "\t\n", 29871, 12, 13);
    EXPECT(llama_t, "  Hello", 259, 15043);
    EXPECT(llama_t, "    Hello\n    Hello", 268, 15043, 13, 1678, 15043);
    EXPECT(llama_t, "\n =", 29871, 13, 353);
}

Test(tokenizer_llama, multilingual_and_byte_fallback)
{
    EXPECT(llama_t, "нещо на Български", 1538, 4851, 665, 1386, 29713, 1305);
    /* 🦙 is not in the vocabulary: its four UTF-8 bytes as <0xNN> tokens (3 + byte) */
    EXPECT(llama_t, " this is 🦙.cpp", 29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223);
    EXPECT(llama_t, "w048 7tuijk dsdfhu", 281, 29900, 29946, 29947, 29871, 29955, 9161, 13535, 18031, 2176, 6905);
    EXPECT(llama_t, "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
           15043, 29892, 343, 29915, 497, 29991, 1128, 526, 366, 29871, 243, 162, 155, 132, 1577, 30672, 31522,
           30505, 11548, 31041, 30732, 29896, 29941, 29896, 29946, 29896, 29945, 29896, 30408, 30739);
    EXPECT(llama_t, "កាន់តែពិសេសអាចខលចេញ", 29871, 31849, 31324, 31934, 228, 162, 142, 228, 161, 146, 228, 162,
           133, 228, 161, 153, 228, 161, 186, 31708, 228, 162, 132, 31708, 228, 161, 165, 31324, 228, 161, 136, 228,
           161, 132, 228, 161, 158, 228, 161, 136, 228, 162, 132, 228, 161, 140);
    EXPECT(llama_t, "' era", 525, 3152);
    EXPECT(llama_t, "33", 29871, 29941, 29941);
}

Test(tokenizer_llama, pieces)
{
    size_t n;
    cr_assert_str_eq(sd_token_piece(llama_t, 15043, &n), " Hello");
    cr_assert_eq(n, 6);
    cr_assert_str_eq(sd_token_piece(llama_t, 1, &n), "");   /* <s> is a control token */
    cr_assert_eq(n, 0);
    const char *nl = sd_token_piece(llama_t, 13, &n);      /* <0x0A> */
    cr_assert_eq(n, 1);
    cr_assert_eq(nl[0], '\n');
    sd_token_piece(llama_t, 3, &n);                        /* <0x00>: one NUL byte */
    cr_assert_eq(n, 1);
    cr_assert_str_eq(sd_token_piece(llama_t, -1, &n), "");
    cr_assert_str_eq(sd_token_piece(llama_t, 32000, &n), "");
}

Test(tokenizer_llama, round_trip)
{
    static const char *texts[] = {"Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
                                  "  multiple   spaces\n\n\ttabs\r\nend ", "naïve café — «quotes»"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t len = strlen(texts[i]), n;
        char *s = detokenize(llama_t, texts[i], len, &n);
        cr_assert_eq(n, len + 1, "%s", texts[i]);  /* the added leading space */
        cr_assert(s[0] == ' ' && !memcmp(s + 1, texts[i], len), "%s", texts[i]);
        free(s);
    }
}

/* ---- SentencePiece: stories260K (512 tokens) ----------------------------- */

static gguf_file *st_f;
static sd_tokenizer *st_t;
static void st_setup(void) { st_t = load_shared("models/stories260K.gguf", &st_f); }
static void st_teardown(void) { sd_tokenizer_free(st_t); gguf_close(st_f); }

TestSuite(tokenizer_stories, .init = st_setup, .fini = st_teardown);

/* The prompt tokens a reference file records: "SDRL", n_vocab, n_prompt, n_gen, tokens. */
static int32_t *ref_prompt(const char *rel, int *n)
{
    char path[512];
    size_t len;
    uint8_t *b = read_all(shared_path(path, sizeof path, rel), &len);
    cr_assert_not_null(b, "cannot read %s", path);
    cr_assert(len >= 16 && !memcmp(b, "SDRL", 4));
    uint32_t np;
    memcpy(&np, b + 8, 4);
    cr_assert(np > 0 && np < 64 && 16 + 4 * (size_t)np <= len);
    int32_t *ids = malloc(4 * (size_t)np);
    memcpy(ids, b + 16, 4 * (size_t)np);
    free(b);
    *n = (int)np;
    return ids;
}

static void check_ref(const char *rel, const char *prompt)
{
    int n;
    int32_t *want = ref_prompt(rel, &n);
    cr_assert_eq(want[0], 1);
    expect_tokens(st_t, prompt, strlen(prompt), 1, want, n);
    free(want);
}

Test(tokenizer_stories, reference_prompts)
{
    check_ref("reference/stories260K-once.ref", "Once upon a time");
    check_ref("reference/stories260K-dog.ref", "The little dog");
    check_ref("reference/tiny-q4_0.ref", "Once upon a time");
}

Test(tokenizer_stories, small_vocab_falls_back_to_bytes)
{
    cr_assert_eq(sd_tokenizer_n_vocab(st_t), 512);
    /* Cyrillic is not in the 512-token vocabulary: UTF-8 bytes, 410 is "▁" */
    EXPECT(st_t, "Привет мир", 410, 211, 162, 212, 131, 211, 187, 211, 181, 211, 184, 212, 133, 410, 211, 191,
           211, 187, 212, 131);
    EXPECT(st_t, "日本語", 410, 233, 154, 168, 233, 159, 175, 235, 173, 161);
    EXPECT(st_t, "😀", 410, 243, 162, 155, 131);
    EXPECT(st_t, "héllo", 270, 485, 306, 414);
    EXPECT(st_t, "  multiple   spaces", 410, 410, 284, 425, 421, 413, 417, 427, 305, 410, 410, 262, 427, 412, 331, 419);
    EXPECT(st_t, "line1\nline2", 278, 271, 411, 475, 13, 421, 271, 411, 479);
    EXPECT(st_t, "\ttab", 410, 12, 413, 412, 430);
    EXPECT(st_t, " ", 410, 410);
}

Test(tokenizer_stories, round_trip_every_byte)
{
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)i;
    size_t n;
    char *s = detokenize(st_t, all, 256, &n);
    cr_assert_eq(n, 257);
    cr_assert(s[0] == ' ' && !memcmp(s + 1, all, 256));
    free(s);
}

/* ---- GGUF metadata built in memory -------------------------------------- */

typedef struct { uint8_t *b; size_t n, cap; uint64_t n_kv; } gbuf;

static void put(gbuf *x, const void *p, size_t n)
{
    if (!n) return;
    if (x->n + n > x->cap) {
        x->cap = (x->n + n) * 2 + 1024;
        x->b = realloc(x->b, x->cap);
    }
    memcpy(x->b + x->n, p, n);
    x->n += n;
}
static void u32(gbuf *x, uint32_t v) { put(x, &v, 4); }
static void u64(gbuf *x, uint64_t v) { put(x, &v, 8); }
static void str(gbuf *x, const char *s) { u64(x, strlen(s)); put(x, s, strlen(s)); }
static void key(gbuf *x, const char *k, uint32_t type) { str(x, k); u32(x, type); x->n_kv++; }
static void kv_str(gbuf *x, const char *k, const char *v) { key(x, k, GGUF_STRING); str(x, v); }
static void kv_u32(gbuf *x, const char *k, uint32_t v) { key(x, k, GGUF_UINT32); u32(x, v); }
static void kv_bool(gbuf *x, const char *k, int v) { key(x, k, GGUF_BOOL); uint8_t b = (uint8_t)v; put(x, &b, 1); }
static void kv_strs(gbuf *x, const char *k, const char **v, int n)
{
    key(x, k, GGUF_ARRAY);
    u32(x, GGUF_STRING);
    u64(x, (uint64_t)n);
    for (int i = 0; i < n; i++) str(x, v[i]);
}
static void kv_nums(gbuf *x, const char *k, uint32_t type, const void *v, int n)
{
    key(x, k, GGUF_ARRAY);
    u32(x, type);
    u64(x, (uint64_t)n);
    put(x, v, 4 * (size_t)n);
}

/* Header in front of the kvs written so far (no tensors). */
static gguf_file *finish(gbuf *x, gbuf *out)
{
    out->n = 0;
    put(out, "GGUF", 4);
    u32(out, 3);
    u64(out, 0);
    u64(out, x->n_kv);
    put(out, x->b, x->n);
    char err[SD_ERR_LEN];
    gguf_file *f = NULL;
    cr_assert_eq(gguf_parse(out->b, out->n, "mem.gguf", &f, err), 0, "%s", err);
    return f;
}

/* A tokenizer from the kvs in x; returns 0 or -1 with err filled. */
static int try_load(gbuf *x, sd_tokenizer **t, char *err)
{
    gbuf whole = {0};
    gguf_file *f = finish(x, &whole);
    err[0] = 0;
    int rc = sd_tokenizer_from_gguf(f, t, err);
    gguf_close(f);
    free(whole.b);  /* the tokenizer copied what it needs */
    return rc;
}

/* ---- byte-level BPE on a vocabulary built here --------------------------- */

/* Tokens 0..255: GPT-2's character for each byte; then merged tokens. */
static const char *bpe_extra[] = {"he", "ll", "hell", "hello", "\xc4\xa0w", "or", "\xc4\xa0wor", "ld",
                                  "\xc4\xa0world", "el", "<|end|>", "<sep>"};
enum { HE = 256, LL, HELL, HELLO, GW, OR, GWOR, LD, GWORLD, EL, END, SEP, N_BPE };
static const char *bpe_merges[] = {"h e", "l l", "o r", "he ll", "hell o", "\xc4\xa0 w", "\xc4\xa0w or", "l d",
                                   "\xc4\xa0wor ld", "e l"};

static void bpe_kvs(gbuf *x, const char *pre)
{
    static char bytes[256][4];
    const char *tokens[N_BPE];
    int32_t types[N_BPE];
    for (int b = 0; b < 256; b++) {
        size_t n = sd_bpe_byte_to_utf8((uint8_t)b, bytes[b]);
        bytes[b][n] = 0;
        tokens[b] = bytes[b];
    }
    for (int i = 256; i < N_BPE; i++) tokens[i] = bpe_extra[i - 256];
    for (int i = 0; i < N_BPE; i++) types[i] = i == END ? SD_TOKTYPE_CONTROL : i == SEP ? SD_TOKTYPE_USER_DEFINED : 1;
    kv_str(x, "tokenizer.ggml.model", "gpt2");
    if (pre) kv_str(x, "tokenizer.ggml.pre", pre);
    kv_strs(x, "tokenizer.ggml.tokens", tokens, N_BPE);
    kv_nums(x, "tokenizer.ggml.token_type", GGUF_INT32, types, N_BPE);
    kv_strs(x, "tokenizer.ggml.merges", bpe_merges, (int)(sizeof bpe_merges / sizeof bpe_merges[0]));
    kv_u32(x, "tokenizer.ggml.eos_token_id", END);
}

static sd_tokenizer *bpe_tokenizer(const char *pre)
{
    gbuf x = {0};
    char err[SD_ERR_LEN];
    sd_tokenizer *t = NULL;
    bpe_kvs(&x, pre);
    cr_assert_eq(try_load(&x, &t, err), 0, "%s", err);
    free(x.b);
    return t;
}

Test(tokenizer_bpe, byte_mapping)
{
    char u[4];
    cr_assert_eq(sd_bpe_byte_to_utf8('a', u), 1);
    cr_assert_eq(u[0], 'a');
    cr_assert_eq(sd_bpe_byte_to_utf8(' ', u), 2);           /* space -> U+0120 "Ġ" */
    cr_assert(!memcmp(u, "\xc4\xa0", 2));
    cr_assert_eq(sd_bpe_byte_to_utf8('\n', u), 2);          /* newline -> U+010A "Ċ" */
    cr_assert(!memcmp(u, "\xc4\x8a", 2));
    cr_assert_eq(sd_bpe_byte_to_utf8(0xe9, u), 2);          /* é stays U+00E9 */
    cr_assert(!memcmp(u, "\xc3\xa9", 2));
    for (int b = 0; b < 256; b++) {                        /* the mapping inverts */
        char back[4];
        size_t n = sd_bpe_byte_to_utf8((uint8_t)b, u);
        cr_assert_eq(sd_bpe_unmap(u, n, back), 1);
        cr_assert_eq((uint8_t)back[0], b);
    }
}

Test(tokenizer_bpe, merges_by_rank)
{
    sd_tokenizer *t = bpe_tokenizer(NULL);
    cr_assert_eq(sd_token_bos(t), -1);
    cr_assert_eq(sd_token_eos(t), END);
    EXPECT(t, "hello world", HELLO, GWORLD);
    /* "h e" (rank 0) beats "e l" (rank 9): he + l, never h + el */
    EXPECT(t, "hel", HE, 'l');
    EXPECT(t, "el", EL);
    EXPECT(t, "  world", ' ', GWORLD);         /* \s+(?!\S) leaves one space to " world" */
    EXPECT(t, "hello\n", HELLO, '\n');
    /* no BOS for gpt2 vocabularies unless they ask for one */
    static const int32_t hello[] = {HELLO};
    expect_tokens(t, "hello", 5, 1, hello, 1);
    sd_tokenizer_free(t);
}

Test(tokenizer_bpe, special_tokens)
{
    sd_tokenizer *t = bpe_tokenizer(NULL);
    /* user-defined tokens are matched in the text; control tokens are not */
    EXPECT(t, "hello<sep>hello", HELLO, SEP, HELLO);
    EXPECT(t, "<|end|>", '<', '|', 'e', 'n', 'd', '|', '>');
    size_t n;
    cr_assert_str_eq(sd_token_piece(t, END, &n), "");
    cr_assert_str_eq(sd_token_piece(t, SEP, &n), "<sep>");
    cr_assert_str_eq(sd_token_piece(t, GWORLD, &n), " world");
    cr_assert_str_eq(sd_token_piece(t, '\n', &n), "\n");
    sd_tokenizer_free(t);
}

Test(tokenizer_bpe, round_trip_bytes)
{
    sd_tokenizer *t = bpe_tokenizer("llama-bpe");
    static const char *texts[] = {"hello world", "Hello, y'all! 😁 12345\n\n  x", "\xff\xfe raw \x80 bytes\t"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t len = strlen(texts[i]), n;
        char *s = detokenize(t, texts[i], len, &n);
        cr_assert(n == len && !memcmp(s, texts[i], len), "%s", texts[i]);
        free(s);
    }
    sd_tokenizer_free(t);
}

/* Pre-tokenizer words joined with '|'. */
static int collect(const char *w, size_t n, void *ctx)
{
    char *acc = ctx;
    if (*acc) strcat(acc, "|");
    strncat(acc, w, n);
    return 0;
}

static void expect_words(sd_pretok_kind kind, const char *text, const char *want)
{
    char got[512] = "";
    cr_assert_eq(sd_pretokenize(kind, text, strlen(text), collect, got), 0);
    cr_assert_str_eq(got, want, "pre-tokenizing '%s'", text);
}

Test(tokenizer_bpe, pretokenizer)
{
    expect_words(SD_PRE_GPT2, "Hello, world!  It's 2024", "Hello|,| world|!| | It|'s| 2024");
    expect_words(SD_PRE_GPT2, "a\n\nb  ", "a|\n|\n|b|  ");  /* \s+(?!\S) backs off one */
    expect_words(SD_PRE_GPT2, "I'LL go", "I|'|LL| go");
    expect_words(SD_PRE_LLAMA3, "I'LL go", "I|'LL| go");
    expect_words(SD_PRE_LLAMA3, "abc 12345", "abc| |123|45");
    expect_words(SD_PRE_QWEN2, "abc 123", "abc| |1|2|3");
    expect_words(SD_PRE_LLAMA3, "(hi) x.\n\ny", "(hi|)| x|.\n\n|y");
    expect_words(SD_PRE_LLAMA3, "a \n b", "a| \n| b");
    expect_words(SD_PRE_GPT2, "naïve Привет", "naïve| Привет");
}

Test(tokenizer_bpe, pretokenizer_rules_by_name)
{
    /* smollm (starcoder, refact): every digit alone first, then GPT-2 */
    expect_words(SD_PRE_SMOLLM, "I can't believe it's 2026!", "I| can|'t| believe| it|'s| |2|0|2|6|!");
    expect_words(SD_PRE_SMOLLM, "3.14159 and 42", "3|.|1|4|1|5|9| and| |4|2");
    /* default: punctuation runs, GPT-2, number runs, three ASCII digits */
    expect_words(SD_PRE_DEFAULT, "Hello, world!  It's 12345", "Hello|,| world|!| | It|'|s| |123|45");
    expect_words(SD_PRE_DEFAULT, "a<=b $9", "a|<=|b| |$|9");
    static const struct { const char *name; sd_pretok_kind kind; int ignore_merges; } want[] = {
        {"gpt-2", SD_PRE_GPT2, 0}, {"gpt2", SD_PRE_GPT2, 0}, {"smollm", SD_PRE_SMOLLM, 0},
        {"starcoder", SD_PRE_SMOLLM, 0}, {"refact", SD_PRE_SMOLLM, 0}, {"default", SD_PRE_DEFAULT, 0},
        {"llama-bpe", SD_PRE_LLAMA3, 1}, {"llama3", SD_PRE_LLAMA3, 1}, {"smaug-bpe", SD_PRE_LLAMA3, 0},
        {"qwen2", SD_PRE_QWEN2, 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        sd_pretok_kind k = SD_PRE_COUNT;
        int im = -1;
        cr_assert_eq(sd_pretok_by_name(want[i].name, strlen(want[i].name), &k, &im), 1, "%s", want[i].name);
        cr_assert(k == want[i].kind && im == want[i].ignore_merges, "%s", want[i].name);
    }
    sd_pretok_kind k;
    int im;
    cr_assert_eq(sd_pretok_by_name("tekken", 6, &k, &im), 0);
    cr_assert_str_eq(sd_pretok_name(SD_PRE_GPT2), "gpt-2");
}

/* An unknown or missing pre-tokenizer name is a warning naming the rule used. */
Test(tokenizer_bpe, pretokenizer_warnings)
{
    sd_tokenizer *t = bpe_tokenizer("tekken");
    const char *w = sd_tokenizer_warning(t);
    cr_assert(w && strstr(w, "'tekken'") && strstr(w, "gpt-2"), "%s", w ? w : "(none)");
    cr_assert_eq(t->pre, SD_PRE_GPT2);
    sd_tokenizer_free(t);
    t = bpe_tokenizer(NULL);
    w = sd_tokenizer_warning(t);
    cr_assert(w && strstr(w, "no tokenizer.ggml.pre") && strstr(w, "'default'"), "%s", w ? w : "(none)");
    cr_assert_eq(t->pre, SD_PRE_DEFAULT);
    sd_tokenizer_free(t);
    static const char *quiet[] = {"gpt-2", "gpt2", "smollm", "llama-bpe"};
    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++) {
        t = bpe_tokenizer(quiet[i]);
        cr_assert_null(sd_tokenizer_warning(t), "%s: %s", quiet[i], sd_tokenizer_warning(t));
        sd_tokenizer_free(t);
    }
}

/* Control tokens in the text become their ids only when asked. */
Test(tokenizer_bpe, special_tokens_parsed_when_asked)
{
    sd_tokenizer *t = bpe_tokenizer("gpt-2");
    char err[SD_ERR_LEN];
    int32_t *ids;
    int n;
    cr_assert_eq(sd_tokenize_special(t, "hello<|end|><sep>hello", 22, 0, &ids, &n, err), 0, "%s", err);
    cr_assert(n == 4 && ids[0] == HELLO && ids[1] == END && ids[2] == SEP && ids[3] == HELLO, "n=%d", n);
    free(ids);
    EXPECT(t, "hello<|end|>", HELLO, '<', '|', 'e', 'n', 'd', '|', '>');
    sd_tokenizer_free(t);
}

/* EOS, the EOT/EOM ids and the end-of-turn tokens found by name end a generation. */
Test(tokenizer_bpe, end_of_generation)
{
    gbuf x = {0};
    char err[SD_ERR_LEN];
    sd_tokenizer *t = NULL;
    bpe_kvs(&x, "gpt-2");
    kv_u32(&x, "tokenizer.ggml.eot_token_id", SEP);
    cr_assert_eq(try_load(&x, &t, err), 0, "%s", err);
    free(x.b);
    cr_assert(sd_token_is_eog(t, END));      /* EOS, and named <|end|> */
    cr_assert(sd_token_is_eog(t, SEP));      /* EOT */
    cr_assert(!sd_token_is_eog(t, HELLO));
    cr_assert(!sd_token_is_eog(t, -1));
    cr_assert(!sd_token_is_eog(t, N_BPE + 5));
    sd_tokenizer_free(t);
}

/* ---- metadata validation ------------------------------------------------- */

static const char *spm_tokens[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "\xe2\x96\x81" "a"};
static const float spm_scores[] = {0, 0, 0, -1, -2, -0.5f};
static const int32_t spm_types[] = {2, 3, 3, 1, 1, 1};

static void expect_refused(gbuf *x, const char *needle)
{
    char err[SD_ERR_LEN];
    sd_tokenizer *t = NULL;
    cr_assert_eq(try_load(x, &t, err), -1, "should be refused (%s)", needle);
    cr_assert_null(t);
    cr_assert(strstr(err, "mem.gguf: ") == err, "message should name the file: %s", err);
    cr_assert(strstr(err, needle), "expected '%s' in: %s", needle, err);
    free(x->b);
    memset(x, 0, sizeof *x);
}

Test(tokenizer_meta, tiny_spm_loads)
{
    gbuf x = {0};
    char err[SD_ERR_LEN];
    sd_tokenizer *t = NULL;
    kv_str(&x, "tokenizer.ggml.model", "llama");
    kv_strs(&x, "tokenizer.ggml.tokens", spm_tokens, 6);
    kv_nums(&x, "tokenizer.ggml.scores", GGUF_FLOAT32, spm_scores, 6);
    kv_nums(&x, "tokenizer.ggml.token_type", GGUF_INT32, spm_types, 6);
    kv_bool(&x, "tokenizer.ggml.add_bos_token", 0);
    cr_assert_eq(try_load(&x, &t, err), 0, "%s", err);
    EXPECT(t, "a a", 5, 5);
    static const int32_t no_bos[] = {5};  /* add_bos_token false wins */
    expect_tokens(t, "a", 1, 1, no_bos, 1);
    EXPECT(t, "b", 3, 0);                 /* no byte tokens: <unk> */
    size_t n;
    cr_assert_str_eq(sd_token_piece(t, 0, &n), "\xe2\x96\x85");
    sd_tokenizer_free(t);
    free(x.b);
}

Test(tokenizer_meta, bad_metadata_refused)
{
    gbuf x = {0};
    expect_refused(&x, "no tokenizer.ggml.model");

    kv_str(&x, "tokenizer.ggml.model", "bert");
    expect_refused(&x, "unsupported tokenizer.ggml.model 'bert'");

    kv_str(&x, "tokenizer.ggml.model", "llama");
    expect_refused(&x, "no tokenizer.ggml.tokens");

    kv_str(&x, "tokenizer.ggml.model", "llama");
    kv_strs(&x, "tokenizer.ggml.tokens", spm_tokens, 6);
    expect_refused(&x, "no tokenizer.ggml.scores");

    kv_str(&x, "tokenizer.ggml.model", "llama");
    kv_strs(&x, "tokenizer.ggml.tokens", spm_tokens, 6);
    kv_nums(&x, "tokenizer.ggml.scores", GGUF_FLOAT32, spm_scores, 5);
    expect_refused(&x, "scores has 5 entries, tokens has 6");

    kv_str(&x, "tokenizer.ggml.model", "llama");
    kv_strs(&x, "tokenizer.ggml.tokens", spm_tokens, 6);
    kv_nums(&x, "tokenizer.ggml.scores", GGUF_INT32, spm_types, 6);
    expect_refused(&x, "scores must be an array of");

    static const int32_t bad_types[] = {2, 3, 3, 1, 99, 1};
    kv_str(&x, "tokenizer.ggml.model", "llama");
    kv_strs(&x, "tokenizer.ggml.tokens", spm_tokens, 6);
    kv_nums(&x, "tokenizer.ggml.scores", GGUF_FLOAT32, spm_scores, 6);
    kv_nums(&x, "tokenizer.ggml.token_type", GGUF_INT32, bad_types, 6);
    expect_refused(&x, "token 4 has unknown token_type 99");

    kv_str(&x, "tokenizer.ggml.model", "llama");
    kv_strs(&x, "tokenizer.ggml.tokens", spm_tokens, 6);
    kv_nums(&x, "tokenizer.ggml.scores", GGUF_FLOAT32, spm_scores, 6);
    kv_u32(&x, "tokenizer.ggml.bos_token_id", 6);
    expect_refused(&x, "bos_token_id = 6 is not a token id");

    kv_str(&x, "tokenizer.ggml.model", "llama");
    kv_strs(&x, "tokenizer.ggml.tokens", spm_tokens, 6);
    kv_nums(&x, "tokenizer.ggml.scores", GGUF_FLOAT32, spm_scores, 6);
    kv_u32(&x, "tokenizer.ggml.add_bos_token", 1);
    expect_refused(&x, "add_bos_token must be a bool");

    kv_str(&x, "tokenizer.ggml.model", "gpt2");
    kv_strs(&x, "tokenizer.ggml.tokens", spm_tokens, 6);
    expect_refused(&x, "no tokenizer.ggml.merges");

    static const char *bad_merge[] = {"ab"};
    kv_str(&x, "tokenizer.ggml.model", "gpt2");
    kv_strs(&x, "tokenizer.ggml.tokens", spm_tokens, 6);
    kv_strs(&x, "tokenizer.ggml.merges", bad_merge, 1);
    expect_refused(&x, "merge 0 is not of the form");
}

Test(tokenizer_meta, none_ids_accepted)
{
    /* 0xFFFFFFFF means "no such token" (stories260K's padding id uses it) */
    gbuf x = {0};
    char err[SD_ERR_LEN];
    sd_tokenizer *t = NULL;
    kv_str(&x, "tokenizer.ggml.model", "llama");
    kv_strs(&x, "tokenizer.ggml.tokens", spm_tokens, 6);
    kv_nums(&x, "tokenizer.ggml.scores", GGUF_FLOAT32, spm_scores, 6);
    kv_u32(&x, "tokenizer.ggml.eos_token_id", 0xffffffffu);
    cr_assert_eq(try_load(&x, &t, err), 0, "%s", err);
    cr_assert_eq(sd_token_eos(t), -1);
    sd_tokenizer_free(t);
    free(x.b);
}

/* ---- the CLI ------------------------------------------------------------- */

/* Runs a shell command; returns its exit status, stdout in out. */
static int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(tokenize_cli, prints_ids)
{
    char model[512], cmd[2048], out[4096];
    shared_path(model, sizeof model, "models/vocab-llama-spm.gguf");
    snprintf(cmd, sizeof cmd, "%s tokenize -m '%s' -p 'Hello world'", showdown_bin(), model);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0);
    cr_assert_str_eq(out, "1 15043 3186\n");
    snprintf(cmd, sizeof cmd, "%s tokenize -m '%s' --no-bos -p 'Hello world'", showdown_bin(), model);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0);
    cr_assert_str_eq(out, "15043 3186\n");
    /* -f takes the bytes exactly: the trailing newline is a token */
    char tmp[] = "/tmp/sd_tokenize_XXXXXX";
    int fd = mkstemp(tmp);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, "Hello world\n", 12), 12);
    close(fd);
    snprintf(cmd, sizeof cmd, "%s tokenize -m '%s' -f '%s'", showdown_bin(), model, tmp);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0);
    unlink(tmp);
    cr_assert_str_eq(out, "1 15043 3186 13\n");
}

Test(tokenize_cli, errors)
{
    char model[512], cmd[2048], out[4096];
    shared_path(model, sizeof model, "models/vocab-llama-spm.gguf");
    snprintf(cmd, sizeof cmd, "%s tokenize -p hi 2>&1", showdown_bin());
    cr_assert_neq(run_cmd(cmd, out, sizeof out), 0);
    cr_assert(strstr(out, "error: ") && strstr(out, "-m MODEL"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s tokenize -m '%s' --bogus 2>&1", showdown_bin(), model);
    cr_assert_neq(run_cmd(cmd, out, sizeof out), 0);
    cr_assert(strstr(out, "--bogus"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s tokenize -m '%s' -f /nonexistent/x.txt 2>&1", showdown_bin(), model);
    cr_assert_neq(run_cmd(cmd, out, sizeof out), 0);
    cr_assert(strstr(out, "error: /nonexistent/x.txt: "), "%s", out);
    snprintf(cmd, sizeof cmd, "%s tokenize -m /nonexistent/m.gguf -p hi 2>&1", showdown_bin());
    cr_assert_neq(run_cmd(cmd, out, sizeof out), 0);
    cr_assert(strstr(out, "/nonexistent/m.gguf"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s tokenize --help", showdown_bin());
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0);
    cr_assert(strstr(out, "usage: showdown tokenize"), "%s", out);
}
