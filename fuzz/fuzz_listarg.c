/* libFuzzer target for the llama-bench style list flags (-p 16-1024*2,
 * src/bench/listarg.c): values stay in range and bounded in number, or the
 * flag is refused with a message naming it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "bench/listarg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) return 0;
    /* First byte picks the bounds a flag might use. */
    static const long bounds[][2] = {{0, 1 << 20}, {1, 1024}, {0, 2147483647L}, {-5, 5}};
    long lo = bounds[data[0] & 3][0], hi = bounds[data[0] & 3][1];
    char *s = malloc(size);
    if (!s) return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    char err[SD_ERR_LEN] = "";
    int *vals = NULL, n = 0;
    if (sd_parse_int_list("-p", s, lo, hi, &vals, &n, err) == 0) {
        if (n < 1 || n > 4096) abort();
        for (int i = 0; i < n; i++)
            if (vals[i] < lo || vals[i] > hi) abort();
    } else if (strncmp(err, "-p: ", 4) && strcmp(err, "out of memory")) {
        abort();
    }
    free(vals);
    char **strs = NULL;
    n = 0;
    int rc = sd_parse_str_list("-m", s, &strs, &n, err);
    for (int i = 0; i < n; i++) {
        if (rc == 0 && (!strs[i][0] || strchr(strs[i], ','))) abort();
        free(strs[i]);
    }
    free(strs);
    free(s);
    return 0;
}
