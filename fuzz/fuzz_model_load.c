/* libFuzzer target for the model loader's checks (sd_model_load: the
 * hyper-parameters, every weight's name, shape and format, the vocabulary).
 * It takes a path, so the bytes go through a memfd. A model that loads must
 * describe weights that lie inside the file. */
#include <stdint.h>
#include <string.h>

#include "showdown.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 18) return 0;
    const char *path = fuzz_file(data, size);
    char err[SD_ERR_LEN] = "";
    sd_model *m = NULL;
    if (sd_model_load(path, &m, err)) {
        fuzz_check_err(err, path);
        return 0;
    }
    const sd_hparams *hp = sd_model_hparams(m);
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_vocab <= 0 || hp->head_dim <= 0) abort();
    if (sd_model_weight_bytes(m) > size) abort();
    sd_model_free(m);
    return 0;
}
