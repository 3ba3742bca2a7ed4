/* The physical ceiling for a test on this machine (method.md): decode reads
 * every weight (and the KV cache so far) once per token, so a step takes at
 * least the time to read those bytes (sd_roofline_decode_bound: from DRAM,
 * except what the caches can hold); prefill does 2 x params multiply-adds
 * per token, so tokens/s <= multiply-add rate / (2 x params). */
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

/* One decode step's memory bound. Every byte of the step is read once, so a
 * byte can come from cache only if it was there when the step began: at
 * most `cache_bytes` of them (whatever the replacement policy); the rest
 * must come from DRAM. The bound reads the cached part at the cache rate
 * (at least the DRAM rate) and the rest at the DRAM rate, one after the
 * other: the same cores issue both streams and the calibrated rates are
 * each what those cores reach alone (docs/BENCHMARKS-report.md, Roofline). */
typedef struct {
    double seconds;            /* the least time one step takes; NAN: no bound */
    double cached_bytes;       /* the bytes the bound lets the caches serve */
    const char *ceiling;       /* "dram": cache sizes unknown; "cache": all of it fits;
                                * "cache+dram"; "dram-misses": the cache rate is unknown
                                * (older profile), cached bytes taken as free */
} sd_decode_bound;

/* bytes read per step; cache_bytes <= 0: unknown; cache_gbps <= 0 or NAN: unknown. */
sd_decode_bound sd_roofline_decode_bound(double bytes, double cache_bytes, double dram_gbps, double cache_gbps);
/* Bytes the data caches of n_threads cores can hold at once: L1d, L2 (when
 * the LLC is an L3) and LLC, each counted once per instance those threads
 * can occupy (one thread per instance at best). An upper bound: it takes the
 * levels as exclusive; an inclusive LLC holds only its own size. 0: unknown. */
double sd_roofline_cache_capacity(const sd_cache_info *c, int n_threads);

typedef struct {
    double ts;                 /* ceiling tokens/s; NAN when the calibration lacks what it needs */
    char ceiling[32];          /* "compute" (prefill), a decode ceiling, or "compute+<decode>" */
    char note[224];            /* the basis, one line */
} sd_roofline_out;

void sd_roofline_eval(const sd_calibration *c, const sd_roofline_in *in, sd_roofline_out *out);
/* Ceiling tokens/s (n_prompt + n_gen over the ceiling time) alone. */
double sd_roofline_ts(const sd_calibration *c, const sd_roofline_in *in, char *note, size_t n);
/* The calibrated rate (G ops/s) that bounds prefill for a weight format with
 * n_threads threads, and its name ("int8", "bf16", "f32"). */
double sd_roofline_rate(const sd_calibration *c, const char *type_name, int n_threads, const char **which);
/* DRAM read bandwidth (GB/s) at n_threads: the widest measured when
 * n_threads is larger; NAN when not measured. */
double sd_roofline_bw(const sd_calibration *c, int n_threads);
/* The cache read rate for ws cached bytes: the one measured on the largest
 * working set no larger than ws (reads slow as the set grows, so this is the
 * generous choice), the smallest measured when ws is below them all; NAN
 * when the profile has none. */
double sd_roofline_cache_bw(const sd_calibration *c, int n_threads, double ws);

#endif
