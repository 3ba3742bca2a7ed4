/* libFuzzer target for the bench JSONL reader `plan --hw this --compare`
 * uses (src/plan/bench_compare.c). */
#include <stdint.h>
#include <stdlib.h>

#include "showdown.h"
#include "plan/plan.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20) return 0;
    const char *path = fuzz_file(data, size);
    char err[SD_ERR_LEN] = "";
    sd_bench_row *rows;
    int n;
    if (sd_bench_jsonl_read(path, &rows, &n, err)) {
        fuzz_check_err(err, path);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (rows[i].n_prompt < 0 || rows[i].n_gen < 0 || rows[i].n_threads < 0 || !(rows[i].avg_ts >= 0)) abort();
    free(rows);
    return 0;
}
