/* libFuzzer target for the SDRL logits file reader (run --logits-out output
 * and ../shared/reference files): a header that lies about its sizes must be
 * refused before anything is allocated from it. */
#include <stdint.h>

#include "showdown.h"
#include "eval/logits_file.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20) return 0;
    const char *path = fuzz_file(data, size);
    char err[SD_ERR_LEN] = "";
    sd_logits_file lf;
    if (sd_logits_file_read(path, &lf, err)) {
        fuzz_check_err(err, path);
        if (lf.prompt || lf.logits) abort();
        return 0;
    }
    uint64_t rows = (uint64_t)lf.n_prompt + lf.n_gen;
    if (16 + 4 * rows * (1 + (uint64_t)lf.n_vocab) != size) abort();
    volatile float sink = 0;   /* touch every row: all of it must be there */
    for (uint64_t r = 0; r < rows; r++) sink += lf.logits[r * lf.n_vocab + lf.n_vocab - 1] + (float)lf.prompt[r];
    (void)sink;
    sd_logits_file_free(&lf);
    return 0;
}
