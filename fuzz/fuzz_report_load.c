/* libFuzzer target for `showdown report`'s reader (bench JSONL or a JSON
 * array, src/bench/report_load.c and report_json.c): any bytes are either
 * rows with the bench schema or one error naming the file. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "bench/bench.h"
#include "bench/report.h"
#include "fuzz_common.h"

static void count_field(void *ud, const char *key, const char *str, double num, int is_null)
{
    (void)num; (void)is_null;
    if (!key || (str && strlen(str) >= 1024) || strlen(key) >= 256) abort();
    ++*(int *)ud;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20) return 0;
    const char *path = fuzz_file(data, size);
    char err[SD_ERR_LEN] = "";
    sd_report_row *rows;
    int n;
    if (sd_report_load(path, &rows, &n, err)) {
        fuzz_check_err(err, path);
        if (rows || n) abort();
    } else {
        if (n <= 0 || !rows) abort();
        for (int i = 0; i < n; i++)
            if (!rows[i].model[0] || memchr(rows[i].model, 0, sizeof rows[i].model) == NULL) abort();
        free(rows);
    }
    /* The object reader alone, on a NUL-terminated copy. */
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    int fields = 0;
    long used = sd_json_object(s, count_field, &fields, err);
    if (used > (long)strlen(s)) abort();
    free(s);
    return 0;
}
