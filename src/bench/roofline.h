/* The physical ceiling for a test on this machine (method.md): decode reads
 * every weight (and the KV cache so far) once per token, so tokens/s <=
 * bandwidth / bytes per token; prefill does 2 x params multiply-adds per
 * token, so tokens/s <= multiply-add rate / (2 x params). */
#ifndef SD_ROOFLINE_H
#define SD_ROOFLINE_H

#include <stddef.h>
#include <stdint.h>

#include "measure/calibrate.h"

typedef struct {
    uint64_t weight_bytes_per_token;   /* weights one decode step reads */
    uint64_t n_params;
    int n_layer, kv_dim;               /* kv_dim = n_head_kv * head_dim */
    double kv_elem_bytes;              /* 4 f32, 2 f16, 34/32 q8_0 */
    const char *type_name;             /* dominant weight format: picks the arithmetic rate */
    int n_threads, n_prompt, n_gen, n_depth;
} sd_roofline_in;

/* Ceiling tokens/s (n_prompt + n_gen over the ceiling time), NAN when the
 * calibration lacks what it needs. note: the basis, one line. */
double sd_roofline_ts(const sd_calibration *c, const sd_roofline_in *in, char *note, size_t n);
/* The calibrated rate (G ops/s) that bounds prefill for a weight format with
 * n_threads threads, and its name ("int8", "bf16", "f32"). */
double sd_roofline_rate(const sd_calibration *c, const char *type_name, int n_threads, const char **which);
double sd_roofline_bw(const sd_calibration *c, int n_threads);

#endif
