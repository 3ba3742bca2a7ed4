/* libFuzzer target for `plan --published FILE`: a published-results TSV is
 * mapped to our hardware ids and presets and every row predicted; any bytes
 * either do that or get one error naming the file and line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "showdown.h"
#include "plan/plan.h"
#include "fuzz_common.h"

static sd_hw_table *table(void)
{
    static sd_hw_table t;
    static int tried;
    if (!tried) {
        tried = 1;
        char path[1024], err[SD_ERR_LEN];
        if (!sd_hw_default_path(path, sizeof path) || sd_hw_load(path, &t, err)) {
            fprintf(stderr, "fuzz_published: no data/hardware.tsv (run from the repository root)\n");
            abort();
        }
    }
    return &t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    sd_hw_table *t = table();
    const char *path = fuzz_file(data, size);
    char err[SD_ERR_LEN] = "";
    sd_published_row *rows = NULL;
    int n = 0;
    if (sd_published_check(path, t, &rows, &n, err)) {
        fuzz_check_err(err, path);
        return 0;
    }
    free(rows);
    return 0;
}
