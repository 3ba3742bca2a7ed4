/* libFuzzer target for the device profile table (data/hardware.tsv, or any
 * file given to plan --hw-file): rows load with sane numbers or the file is
 * refused naming its line; lookups on a loaded table never misbehave. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "showdown.h"
#include "plan/plan.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    const char *path = fuzz_file(data, size);
    char err[SD_ERR_LEN] = "";
    sd_hw_table t;
    if (sd_hw_load(path, &t, err)) {
        fuzz_check_err(err, path);
        if (t.rows || t.n) abort();
        return 0;
    }
    for (int i = 0; i < t.n; i++) {
        const sd_hw *h = &t.rows[i];
        if (!(h->bw_gbps > 0) || !isfinite(h->bw_gbps) || !(h->mem_gib > 0) || !isfinite(h->mem_gib) ||
            h->usable_gib > h->mem_gib || h->cores < 0)
            abort();
        char id[80];
        sd_hw out;
        snprintf(id, sizeof id, "3x%s", h->id);
        sd_hw_find(&t, h->id, &out, err);
        sd_hw_find(&t, id, &out, err);
    }
    char list[4096];
    sd_hw_list(&t, list, sizeof list);
    sd_hw_free(&t);
    return 0;
}
