/* libFuzzer target for building a tokenizer from fuzzed GGUF metadata
 * (sd_tokenizer_from_gguf): a vocabulary either loads, and then tokenizing
 * and decoding stay inside it, or is refused with a message naming the file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "gguf/gguf.h"
#include "text/tokenizer.h"

static void exercise(sd_tokenizer *t, const char *text, size_t len)
{
    char err[SD_ERR_LEN];
    int32_t *ids = NULL;
    int n = 0;
    if (sd_tokenize(t, text, len, 1, &ids, &n, err)) abort();   /* only fails on OOM */
    int nv = sd_tokenizer_n_vocab(t);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= nv) abort();
        size_t pl;
        const char *p = sd_token_piece(t, ids[i], &pl);
        if (pl && !p) abort();
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    char err[SD_ERR_LEN] = "";
    gguf_file *f;
    if (gguf_parse(data, size, "fuzz.gguf", &f, err)) return 0;
    sd_tokenizer *t = NULL;
    if (sd_tokenizer_from_gguf(f, &t, err)) {
        if (strncmp(err, "fuzz.gguf: ", 11) || strchr(err, '\n')) abort();
        gguf_close(f);
        return 0;
    }
    gguf_close(f);   /* the tokenizer must own everything it uses */
    static const char fixed[] = "Hello world, it's 2024!\n  \xe2\x96\x81<s> caf\xc3\xa9 \xf0\x9f\x98\x80 \xff\xfe";
    exercise(t, fixed, sizeof fixed - 1);
    exercise(t, (const char *)data, size > 256 ? 256 : size);
    int nv = sd_tokenizer_n_vocab(t);
    for (int i = 0; i < nv && i < 4096; i++) {
        size_t pl;
        sd_token_piece(t, i, &pl);
    }
    sd_tokenizer_free(t);
    return 0;
}
