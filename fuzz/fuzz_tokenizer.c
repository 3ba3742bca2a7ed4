/* libFuzzer target: tokenize arbitrary bytes with the stories260K vocabulary
 * and check that the tokens decode back to the input.
 *
 * SentencePiece round trip, as llama.cpp behaves: the tokenizer prepends a
 * space and turns every ' ' into "▁" (U+2581), then cuts that text into
 * UTF-8 characters; a "▁" character decodes back to ' ', anything else to
 * its own bytes. So the pieces equal the escaped input with each whole "▁"
 * character replaced by a space: for valid UTF-8 that is " " + input, with
 * any literal "▁" of the input also read back as a space; a malformed lead
 * byte just before a space swallows part of its "▁", which then comes back
 * as raw bytes.
 *
 * Build (one line):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iinclude -Isrc
 *     fuzz/fuzz_tokenizer.c src/text/[star].c src/gguf/[star].c src/tensor/[star].c -lm
 *   SHOWDOWN_SHARED=../shared ./a.out */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "gguf/gguf.h"
#include "text/tokenizer.h"

static sd_tokenizer *vocab(void)
{
    static int tried;
    static sd_tokenizer *t;
    if (tried) return t;
    tried = 1;
    const char *root = getenv("SHOWDOWN_SHARED");
    char path[1024], err[SD_ERR_LEN];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", root ? root : "../shared");
    gguf_file *f = NULL;
    if (gguf_open(path, &f, err) == 0 && sd_tokenizer_from_gguf(f, &t, err) != 0) t = NULL;
    gguf_close(f);
    if (!t) fprintf(stderr, "fuzz_tokenizer: %s (nothing to fuzz)\n", err);
    return t;
}

/* What decoding should give (see the top of the file). out: room for 3 * len + 3. */
static size_t expected(const uint8_t *in, size_t len, int space_prefix, char *out)
{
    size_t e = 0, o = 0;
    uint8_t *tmp = malloc(3 * len + 3);
    if (!tmp) abort();
    for (size_t i = 0; i < len + (space_prefix && len); i++) {
        uint8_t c = space_prefix && len ? (i ? in[i - 1] : ' ') : in[i];
        if (c == ' ') { memcpy(tmp + e, "\xe2\x96\x81", 3); e += 3; }
        else tmp[e++] = c;
    }
    for (size_t i = 0; i < e;) {
        size_t n = sd_utf8_len(tmp[i], e - i);
        if (n == 3 && !memcmp(tmp + i, "\xe2\x96\x81", 3)) out[o++] = ' ';
        else { memcpy(out + o, tmp + i, n); o += n; }
        i += n;
    }
    free(tmp);
    return o;
}

/* The BPE pre-tokenizers must cut the input into non-empty words that
 * concatenate back to it exactly. */
typedef struct { const uint8_t *data; size_t at; } word_walk;

static int check_word(const char *w, size_t n, void *ctx)
{
    word_walk *ww = ctx;
    if (n == 0 || w != (const char *)ww->data + ww->at) abort();
    ww->at += n;
    return 0;
}

static void check_pretokenizers(const uint8_t *data, size_t size)
{
    for (int k = 0; k < SD_PRE_COUNT; k++) {
        word_walk ww = {data, 0};
        if (sd_pretokenize((sd_pretok_kind)k, (const char *)data, size, check_word, &ww) || ww.at != size) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sd_tokenizer *t = vocab();
    if (size > 4096) return 0;
    check_pretokenizers(data, size);
    if (!t) return 0;
    char err[SD_ERR_LEN];
    int32_t *ids = NULL;
    int n = 0;
    if (sd_tokenize(t, (const char *)data, size, 1, &ids, &n, err) != 0) abort();
    if (size && (n < 2 || ids[0] != sd_token_bos(t))) abort();

    size_t total = 0, got_len = 0, pl;
    for (int i = 1; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= sd_tokenizer_n_vocab(t)) abort();
        sd_token_piece(t, ids[i], &pl);
        total += pl;
    }
    char *want = malloc(3 * size + 3), *got = malloc(total + 1);
    if (!want || !got) abort();
    size_t want_len = expected(data, size, t->add_space_prefix, want);
    for (int i = 1; i < n; i++) {
        const char *p = sd_token_piece(t, ids[i], &pl);
        memcpy(got + got_len, p, pl);
        got_len += pl;
    }
    if (got_len != want_len || memcmp(got, want, got_len)) abort();
    free(want);
    free(got);
    free(ids);
    /* With control tokens parsed: ids in range, BOS first (no round trip:
     * "<s>" in the text becomes a token whose piece is empty). */
    if (sd_tokenize_special(t, (const char *)data, size, 1, &ids, &n, err) != 0) abort();
    if (size && (n < 1 || ids[0] != sd_token_bos(t))) abort();
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= sd_tokenizer_n_vocab(t)) abort();
    free(ids);
    return 0;
}
