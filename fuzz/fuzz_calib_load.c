/* libFuzzer target for the calibration profile reader (sd_calib_load, the
 * TSV `showdown calibrate` writes and bench/plan read back). */
#include <math.h>
#include <stdint.h>

#include "showdown.h"
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
    return 0;
}
