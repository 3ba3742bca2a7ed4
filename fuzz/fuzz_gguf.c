/* libFuzzer target for the GGUF reader and the model loader's checks: any
 * bytes must either parse (and then every tensor view lies inside the buffer)
 * or be refused with a message — never crash, hang or over-allocate. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "gguf/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[SD_ERR_LEN];
    gguf_file *f;
    if (gguf_parse(data, size, "fuzz.gguf", &f, err)) {
        if (strncmp(err, "fuzz.gguf: ", 11)) abort();   /* every message names the file */
        return 0;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        const uint8_t *p = t->data;
        if (p < data || p + t->n_bytes > data + size) abort();
    }
    uint32_t v;
    gguf_get_u32(f, "general.alignment", &v, err);
    gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING);
    gguf_close(f);
    return 0;
}
