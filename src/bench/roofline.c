/* Roofline ceilings from a calibration profile (see roofline.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/roofline.h"

double sd_roofline_bw(const sd_calibration *c, int t)
{
    if (!c || c->max_threads < 1) return NAN;
    if (t > c->max_threads) t = c->max_threads;   /* bandwidth saturates: use the widest measured */
    if (t < 1) t = 1;
    return c->bw_gbps[t] > 0 ? c->bw_gbps[t] : NAN;
}

/* Which kernel family a format's matmuls run on: quantized formats dot int8
 * activations, bf16 has its own instructions, f32/f16 run in f32. */
double sd_roofline_rate(const sd_calibration *c, const char *type, int t, const char **which)
{
    double all;
    if (!strncmp(type, "F32", 3) || !strncmp(type, "F16", 3)) { all = c->gflops_f32; *which = "f32"; }
    else if (!strncmp(type, "BF16", 4)) { all = c->gflops_bf16; *which = "bf16"; }
    else { all = c->gops_int8; *which = "int8"; }
    if (!(all > 0) || c->max_threads < 1) return NAN;
    if (t > c->max_threads) t = c->max_threads;
    return all * t / c->max_threads;   /* arithmetic scales with cores */
}

double sd_roofline_ts(const sd_calibration *c, const sd_roofline_in *in, char *note, size_t n)
{
    if (note && n) note[0] = 0;
    if (!c) return NAN;
    double seconds = 0;
    if (in->n_prompt > 0) {
        const char *which;
        double rate = sd_roofline_rate(c, in->type_name, in->n_threads, &which);
        if (!isfinite(rate) || in->n_params == 0) return NAN;
        seconds += in->n_prompt * 2.0 * (double)in->n_params / (rate * 1e9);
        if (note) snprintf(note, n, "prefill: %s rate %.0f G ops/s / (2 x params)", which, rate);
    }
    if (in->n_gen > 0) {
        double bw = sd_roofline_bw(c, in->n_threads);
        if (!isfinite(bw)) return NAN;
        /* mean context attended over the generated tokens */
        double ctx = in->n_depth + in->n_prompt + (in->n_gen + 1) / 2.0;
        double bytes = (double)in->weight_bytes_per_token + 2.0 * in->n_layer * in->kv_dim * in->kv_elem_bytes * ctx;
        seconds += in->n_gen * bytes / (bw * 1e9);
        if (note) {
            size_t l = strlen(note);
            snprintf(note + l, n - l, "%sdecode: %.1f GB/s / %.2f MB per token", l ? "; " : "", bw, bytes / 1e6);
        }
    }
    if (!(seconds > 0)) return NAN;
    return (in->n_prompt + in->n_gen) / seconds;
}
