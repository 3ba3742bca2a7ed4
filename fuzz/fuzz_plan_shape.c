/* libFuzzer target for `plan --model FILE`: the shape read from a GGUF header
 * alone (sd_shape_from_gguf, through gguf_open_header) and a prediction from
 * it. Neither may crash, hang or divide by zero on a hostile header. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "showdown.h"
#include "plan/plan.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 18) return 0;
    const char *path = fuzz_file(data, size);
    char err[SD_ERR_LEN] = "";
    sd_gguf_model g;
    if (sd_shape_from_gguf(path, &g, err)) {
        fuzz_check_err(err, path);
        return 0;
    }
    const sd_model_shape *s = &g.shape;
    if (s->n_embd <= 0 || s->n_layer <= 0 || s->n_head <= 0 || s->n_vocab <= 0) abort();
    /* Predict it on a fixed CPU row so the cost model sees the fuzzed shape. */
    static sd_hw cpu = {.id = "cpu", .name = "fuzz cpu", .kind = SD_HW_CPU, .family = "cpu", .count = 1,
                        .mem_gib = 64, .usable_gib = 48, .bw_gbps = 100, .link = "-", .tflops_f16 = 2,
                        .tops_int8 = 4, .load_w = 100, .idle_w = 10, .cores = 16};
    sd_model_ref ref = {.shape = s, .params = g.params, .file = &g};
    sd_recipe r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "file");
    sd_plan_opts o;
    sd_plan_default_opts(&o);
    o.n_ctx = s->n_ctx_train > 0 && s->n_ctx_train < 4096 ? s->n_ctx_train : 4096;
    static sd_hw gpu = {.id = "gpu", .name = "fuzz gpu", .kind = SD_HW_GPU, .family = "cuda", .count = 1,
                        .mem_gib = 0.001, .usable_gib = 0.001, .bw_gbps = 1000, .link = "pcie4x16",
                        .link_gbps = 31.5, .tflops_f16 = 100, .tops_int8 = 200, .load_w = 300, .idle_w = 20};
    sd_plan_result res;
    for (int k = 0; k < 2; k++) {
        sd_plan_predict(&ref, &r, &cpu, NULL, &o, &res, err);
        sd_plan_predict(&ref, &r, &gpu, &cpu, &o, &res, err);   /* does not fit: splits layers */
        if (sd_plan_recipe_find("q4_k_m", &r, err)) break;
    }
    return 0;
}
