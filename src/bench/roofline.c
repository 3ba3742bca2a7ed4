/* Roofline ceilings from a calibration profile (see roofline.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/roofline.h"

static double by_threads(const sd_calibration *c, const double *v, int t)
{
    if (!c || c->max_threads < 1) return NAN;
    if (t > c->max_threads) t = c->max_threads;   /* bandwidth saturates: use the widest measured */
    if (t < 1) t = 1;
    return v[t] > 0 ? v[t] : NAN;
}

double sd_roofline_bw(const sd_calibration *c, int t) { return c ? by_threads(c, c->bw_gbps, t) : NAN; }

double sd_roofline_cache_bw(const sd_calibration *c, int t, double ws)
{
    double best = NAN, best_size = 0, small = NAN, small_size = INFINITY;
    for (int k = 0; c && k < SD_CALIB_CACHE_SIZES; k++) {
        double size = (double)c->cache_ws_bytes[k], bw = by_threads(c, c->cache_bw_gbps[k], t);
        if (!(size > 0) || !isfinite(bw)) continue;
        if (size <= ws && size > best_size) { best = bw; best_size = size; }
        if (size < small_size) { small = bw; small_size = size; }
    }
    return isfinite(best) ? best : small;
}

sd_decode_bound sd_roofline_decode_bound(double bytes, double cache_bytes, double dram_gbps, double cache_gbps)
{
    sd_decode_bound b = {NAN, 0, "dram"};
    if (!(bytes > 0) || !(dram_gbps > 0) || isinf(dram_gbps)) return b;
    if (!(cache_bytes > 0)) { b.seconds = bytes / (dram_gbps * 1e9); return b; }
    b.cached_bytes = cache_bytes < bytes ? cache_bytes : bytes;
    double miss = bytes - b.cached_bytes;
    if (!(cache_gbps > 0) || isinf(cache_gbps)) {
        /* No cache rate: a bound still holds if cached reads cost nothing,
         * but only while something must come from DRAM. */
        b.ceiling = "dram-misses";
        b.seconds = miss > 0 ? miss / (dram_gbps * 1e9) : NAN;
        return b;
    }
    /* A cache slower than DRAM is noise in the calibration: data in cache can
     * always be read at least as fast as from memory. */
    double cbw = cache_gbps > dram_gbps ? cache_gbps : dram_gbps;
    b.ceiling = miss > 0 ? "cache+dram" : "cache";
    b.seconds = b.cached_bytes / (cbw * 1e9) + miss / (dram_gbps * 1e9);
    return b;
}

/* Instances of a cache shared by `shared` of n_cpus CPUs that t threads can occupy. */
static double instances(int shared, int n_cpus, int t)
{
    if (shared < 1) shared = 1;
    int all = n_cpus > 0 ? n_cpus / shared : t;
    if (all < 1) all = 1;
    return t < all ? t : all;
}

double sd_roofline_cache_capacity(const sd_cache_info *c, int t)
{
    if (!c || !c->llc_bytes) return 0;
    if (t < 1) t = 1;
    double cap = (double)c->llc_bytes * instances(c->llc_shared_cpus, c->n_cpus, t);
    if (c->llc_level > 2) cap += (double)c->l2_bytes * instances(c->l2_shared_cpus, c->n_cpus, t);
    if (c->llc_level > 1) cap += (double)c->l1d_bytes * instances(c->l1d_shared_cpus, c->n_cpus, t);
    return cap;
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

static void decode_note(char *note, size_t n, double bytes, const sd_decode_bound *b, double dram, double cache,
                        double capacity)
{
    if (!strcmp(b->ceiling, "dram"))
        snprintf(note, n, "decode: %.1f GB/s / %.2f MB per token (no cache sizes in the profile)", dram,
                 bytes / 1e6);
    else if (!strcmp(b->ceiling, "dram-misses"))
        snprintf(note, n, "decode: %.2f MB per token, %.2f MB cacheable read free (no cache rate: rerun showdown "
                 "calibrate), rest at %.1f GB/s", bytes / 1e6, b->cached_bytes / 1e6, dram);
    else
        snprintf(note, n, "decode: %.2f MB per token, %.2f MB of it cacheable (%.1f MB of caches) at %.1f GB/s, "
                 "rest at %.1f GB/s", bytes / 1e6, b->cached_bytes / 1e6, capacity / 1e6,
                 cache > dram ? cache : dram, dram);
}

void sd_roofline_eval(const sd_calibration *c, const sd_roofline_in *in, sd_roofline_out *out)
{
    out->ts = NAN;
    out->ceiling[0] = out->note[0] = 0;
    if (!c) return;
    double seconds = 0;
    if (in->n_prompt > 0) {
        const char *which;
        double rate = sd_roofline_rate(c, in->type_name, in->n_threads, &which);
        if (!isfinite(rate) || in->n_params == 0) return;
        seconds += in->n_prompt * 2.0 * (double)in->n_params / (rate * 1e9);
        snprintf(out->ceiling, sizeof out->ceiling, "compute");
        snprintf(out->note, sizeof out->note, "prefill: %s rate %.0f G ops/s / (2 x params)", which, rate);
    }
    if (in->n_gen > 0) {
        double bw = sd_roofline_bw(c, in->n_threads);
        if (!isfinite(bw)) return;
        double capacity = sd_roofline_cache_capacity(&c->cache, in->n_threads);
        /* mean context attended over the generated tokens */
        double ctx = in->n_depth + in->n_prompt + (in->n_gen + 1) / 2.0;
        double bytes = (double)in->weight_bytes_per_token + 2.0 * in->n_layer * in->kv_dim * in->kv_elem_bytes * ctx;
        double cbw = sd_roofline_cache_bw(c, in->n_threads, bytes < capacity ? bytes : capacity);
        sd_decode_bound b = sd_roofline_decode_bound(bytes, capacity, bw, cbw);
        if (!isfinite(b.seconds)) {
            snprintf(out->note, sizeof out->note, "decode: no bound (all %.2f MB per token fit in cache, whose read "
                     "rate the profile lacks: rerun showdown calibrate)", bytes / 1e6);
            out->ceiling[0] = 0;
            return;
        }
        seconds += in->n_gen * b.seconds;
        size_t l = strlen(out->ceiling);
        snprintf(out->ceiling + l, sizeof out->ceiling - l, "%s%s", l ? "+" : "", b.ceiling);
        l = strlen(out->note);
        if (l) snprintf(out->note + l, sizeof out->note - l, "; ");
        l = strlen(out->note);
        decode_note(out->note + l, sizeof out->note - l, bytes, &b, bw, cbw, capacity);
    }
    if (!(seconds > 0)) { out->ceiling[0] = 0; return; }
    out->ts = (in->n_prompt + in->n_gen) / seconds;
}

double sd_roofline_ts(const sd_calibration *c, const sd_roofline_in *in, char *note, size_t n)
{
    sd_roofline_out o;
    sd_roofline_eval(c, in, &o);
    if (note && n) snprintf(note, n, "%s", o.note);
    return o.ts;
}
