/* libFuzzer target for the calibration profile reader (sd_calib_load, the
 * TSV `showdown calibrate` writes and bench/plan read back). */
#include <math.h>
#include <stdint.h>

#include "showdown.h"
#include "bench/roofline.h"
#include "measure/calibrate.h"
#include "plan/plan.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    const char *path = fuzz_file(data, size);
    char err[SD_ERR_LEN] = "";
    sd_calibration c;
    if (sd_calib_load(&c, path, err)) {
        fuzz_check_err(err, path);
        return 0;
    }
    if (c.max_threads < 1 || c.max_threads > SD_CALIB_MAX_THREADS || !(c.bw_gbps[1] > 0) || !isfinite(c.bw_gbps[1]))
        abort();
    /* And its consumer, `plan --hw this`: a usable, finite bandwidth or an error. */
    sd_hw h;
    int threads = size ? data[size - 1] % 8 : 0;
    if (sd_hw_this(path, threads, &h, err) == 0 && (!(h.bw_gbps > 0) || !isfinite(h.bw_gbps))) abort();
    if (!memchr(c.cpu_model, 0, sizeof c.cpu_model) || !memchr(c.isa, 0, sizeof c.isa)) abort();
    /* And bench's decode ceiling from whatever cache fields it holds: a
     * positive, finite ceiling with a name, or none (NAN, no name). */
    sd_roofline_in in = {.weight_bytes_per_token = size ? (uint64_t)data[0] << 20 : 1, .n_params = 1, .n_layer = 1,
                         .kv_dim = 8, .kv_elem_bytes = 2, .type_name = "Q4_0", .n_threads = threads, .n_gen = 4};
    sd_roofline_out o;
    sd_roofline_eval(&c, &in, &o);
    if (isfinite(o.ts) ? !(o.ts > 0) || !o.ceiling[0] : o.ceiling[0] != 0) abort();
    if (!memchr(o.note, 0, sizeof o.note)) abort();
    return 0;
}
