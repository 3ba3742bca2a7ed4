/* The decode ceiling's rule (roofline.h), as pure arithmetic: what the caches
 * can serve, which ceiling a row names, and the markdown flag for a row above
 * its ceiling. No timing. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/emit.h"
#include "bench/roofline.h"
#include "measure/sysinfo.h"

#define MB 1e6

Test(roofline, no_cache_sizes_is_dram_alone)
{
    sd_decode_bound b = sd_roofline_decode_bound(100 * MB, 0, 20, 90);
    cr_assert_str_eq(b.ceiling, "dram");
    cr_assert_float_eq(b.seconds, 100 * MB / 20e9, 1e-15);
    cr_assert_float_eq(b.cached_bytes, 0, 0);
}

Test(roofline, a_working_set_that_fits_reads_at_the_cache_rate)
{
    sd_decode_bound b = sd_roofline_decode_bound(40 * MB, 50 * MB, 20, 80);
    cr_assert_str_eq(b.ceiling, "cache");
    cr_assert_float_eq(b.cached_bytes, 40 * MB, 1e-6);
    cr_assert_float_eq(b.seconds, 40 * MB / 80e9, 1e-15);
}

Test(roofline, a_larger_one_gets_at_most_the_capacity_from_cache)
{
    /* 100 MB through 50 MB of caches: 50 MB at 80 GB/s, 50 MB at 20 GB/s */
    sd_decode_bound b = sd_roofline_decode_bound(100 * MB, 50 * MB, 20, 80);
    cr_assert_str_eq(b.ceiling, "cache+dram");
    cr_assert_float_eq(b.cached_bytes, 50 * MB, 1e-6);
    cr_assert_float_eq(b.seconds, 50 * MB / 80e9 + 50 * MB / 20e9, 1e-15);
    /* far larger: the DRAM bound, less a negligible cached share */
    sd_decode_bound big = sd_roofline_decode_bound(4000 * MB, 50 * MB, 20, 80);
    cr_assert(big.seconds < 4000 * MB / 20e9 && big.seconds > 0.98 * 4000 * MB / 20e9);
}

Test(roofline, the_bound_never_tightens_as_the_cache_grows)
{
    double prev = INFINITY;
    for (double cap = 0; cap <= 200 * MB; cap += 10 * MB) {
        sd_decode_bound b = sd_roofline_decode_bound(100 * MB, cap, 20, 80);
        cr_assert(b.seconds <= prev, "capacity %g: %g s after %g s", cap, b.seconds, prev);
        prev = b.seconds;
    }
}

Test(roofline, a_cache_rate_below_dram_counts_as_dram)
{
    /* noise in the calibration must not make the ceiling stricter than DRAM alone */
    sd_decode_bound b = sd_roofline_decode_bound(100 * MB, 50 * MB, 20, 10);
    cr_assert_float_eq(b.seconds, 100 * MB / 20e9, 1e-15);
}

Test(roofline, an_unmeasured_cache_rate_reads_the_cached_part_free)
{
    sd_decode_bound b = sd_roofline_decode_bound(100 * MB, 30 * MB, 20, NAN);
    cr_assert_str_eq(b.ceiling, "dram-misses");
    cr_assert_float_eq(b.seconds, 70 * MB / 20e9, 1e-15);
    /* everything cacheable and no cache rate: no bound at all */
    cr_assert(isnan(sd_roofline_decode_bound(10 * MB, 30 * MB, 20, 0).seconds));
    cr_assert(isnan(sd_roofline_decode_bound(10 * MB, 30 * MB, 0, 50).seconds), "no DRAM rate: no bound");
}

Test(roofline, capacity_counts_each_cache_the_threads_can_occupy)
{
    /* this VM: L1d 48K, L2 1280K per CPU, one 48M L3 for 2 CPUs */
    sd_cache_info vm = {.l1d_bytes = 48 << 10, .l2_bytes = 1280 << 10, .llc_bytes = 48 << 20, .l1d_shared_cpus = 1,
                        .l2_shared_cpus = 1, .llc_shared_cpus = 2, .llc_level = 3, .n_cpus = 2};
    cr_assert_float_eq(sd_roofline_cache_capacity(&vm, 1), (48 << 20) + (1280 << 10) + (48 << 10), 0.5);
    cr_assert_float_eq(sd_roofline_cache_capacity(&vm, 2), (48 << 20) + 2.0 * ((1280 << 10) + (48 << 10)), 0.5);
    cr_assert_float_eq(sd_roofline_cache_capacity(&vm, 64), sd_roofline_cache_capacity(&vm, 2), 0.5);
    /* two 16M L3s (8 CPUs each, SMT pairs share L1d/L2): 2 threads may sit on both */
    sd_cache_info epyc = {.l1d_bytes = 32 << 10, .l2_bytes = 512 << 10, .llc_bytes = 16 << 20, .l1d_shared_cpus = 2,
                          .l2_shared_cpus = 2, .llc_shared_cpus = 8, .llc_level = 3, .n_cpus = 16};
    cr_assert_float_eq(sd_roofline_cache_capacity(&epyc, 2), 2.0 * ((16 << 20) + (512 << 10) + (32 << 10)), 0.5);
    cr_assert_float_eq(sd_roofline_cache_capacity(&epyc, 16), 2.0 * (16 << 20) + 8.0 * ((512 << 10) + (32 << 10)), 0.5);
    /* the last level is the L2: not counted twice */
    sd_cache_info arm = {.l1d_bytes = 64 << 10, .l2_bytes = 4 << 20, .llc_bytes = 4 << 20, .l1d_shared_cpus = 1,
                         .l2_shared_cpus = 4, .llc_shared_cpus = 4, .llc_level = 2, .n_cpus = 4};
    cr_assert_float_eq(sd_roofline_cache_capacity(&arm, 4), (4 << 20) + 4.0 * (64 << 10), 0.5);
    sd_cache_info none = {0};
    cr_assert_float_eq(sd_roofline_cache_capacity(&none, 4), 0, 0);
}

static sd_calibration *profile(void)
{
    sd_calibration *c = calloc(1, sizeof *c);
    c->max_threads = 2;
    c->bw_gbps[1] = 10;
    c->bw_gbps[2] = 20;
    c->cache_ws_bytes[0] = 25000000;   /* measured on half the LLC only */
    c->cache_bw_gbps[0][1] = 40;
    c->cache_bw_gbps[0][2] = 80;
    c->gops_int8 = 400;
    c->cache = (sd_cache_info){.llc_bytes = 50000000, .llc_shared_cpus = 2, .llc_level = 3, .n_cpus = 2};
    return c;
}

Test(roofline, rows_name_their_ceiling)
{
    sd_calibration *c = profile();
    sd_roofline_in in = {.weight_bytes_per_token = 100000000, .n_params = 1000000000, .type_name = "Q4_0",
                         .n_threads = 2, .n_gen = 10};
    sd_roofline_out o;
    sd_roofline_eval(c, &in, &o);
    cr_assert_str_eq(o.ceiling, "cache+dram");
    cr_assert_float_eq(o.ts, 1 / (50e6 / 80e9 + 50e6 / 20e9), 1e-9);
    cr_assert(strstr(o.note, "50.00 MB of it cacheable"), "%s", o.note);
    in.weight_bytes_per_token = 40000000;
    sd_roofline_eval(c, &in, &o);
    cr_assert_str_eq(o.ceiling, "cache");
    cr_assert_float_eq(o.ts, 80e9 / 40e6, 1e-9);
    in.n_prompt = 64;   /* pp+tg: compute, then the decode ceiling */
    sd_roofline_eval(c, &in, &o);
    cr_assert_str_eq(o.ceiling, "compute+cache");
    cr_assert_float_eq(o.ts, 74 / (64 * 2e9 / 400e9 + 10 * 40e6 / 80e9), 1e-9);
    /* a profile older than the cache fields: DRAM alone, as before */
    memset(&c->cache, 0, sizeof c->cache);
    memset(c->cache_bw_gbps, 0, sizeof c->cache_bw_gbps);
    memset(c->cache_ws_bytes, 0, sizeof c->cache_ws_bytes);
    in.n_prompt = 0;
    sd_roofline_eval(c, &in, &o);
    cr_assert_str_eq(o.ceiling, "dram");
    cr_assert_float_eq(o.ts, 20e9 / 40e6, 1e-9);
    cr_assert_float_eq(sd_roofline_ts(c, &in, NULL, 0), o.ts, 1e-12);
    free(c);
}

Test(roofline, the_cache_rate_is_the_one_of_the_largest_set_that_fits)
{
    sd_calibration *c = profile();
    c->cache_ws_bytes[1] = 6000000;
    c->cache_bw_gbps[1][1] = 60;
    c->cache_bw_gbps[1][2] = 120;
    c->cache_ws_bytes[2] = 1500000;
    c->cache_bw_gbps[2][2] = 300;   /* no 1-thread figure at this size */
    cr_assert_float_eq(sd_roofline_cache_bw(c, 2, 40e6), 80, 1e-12);
    cr_assert_float_eq(sd_roofline_cache_bw(c, 2, 25e6), 80, 1e-12);
    cr_assert_float_eq(sd_roofline_cache_bw(c, 2, 24e6), 120, 1e-12);
    cr_assert_float_eq(sd_roofline_cache_bw(c, 2, 2e6), 300, 1e-12);
    cr_assert_float_eq(sd_roofline_cache_bw(c, 2, 1e3), 300, 1e-12, "below every size: the smallest measured");
    cr_assert_float_eq(sd_roofline_cache_bw(c, 1, 2e6), 60, 1e-12, "a size without this thread count is skipped");
    cr_assert_float_eq(sd_roofline_cache_bw(c, 9, 7e6), 120, 1e-12, "more threads than measured: the widest");
    /* a row: 5 MB per token, all of it cacheable, read at the 1.5 MB set's rate */
    sd_roofline_in in = {.weight_bytes_per_token = 5000000, .n_params = 1, .type_name = "Q4_0", .n_threads = 2,
                         .n_gen = 1};
    sd_roofline_out o;
    sd_roofline_eval(c, &in, &o);
    cr_assert_str_eq(o.ceiling, "cache");
    cr_assert_float_eq(o.ts, 300e9 / 5e6, 1e-9);
    memset(c->cache_ws_bytes, 0, sizeof c->cache_ws_bytes);
    cr_assert(isnan(sd_roofline_cache_bw(c, 2, 1e6)));
    free(c);
}

Test(roofline, no_cache_rate_and_everything_fits_is_no_ceiling)
{
    sd_calibration *c = profile();
    memset(c->cache_bw_gbps, 0, sizeof c->cache_bw_gbps);
    memset(c->cache_ws_bytes, 0, sizeof c->cache_ws_bytes);
    sd_roofline_in in = {.weight_bytes_per_token = 40000000, .n_params = 1, .type_name = "Q8_0", .n_threads = 1,
                         .n_gen = 4};
    sd_roofline_out o;
    sd_roofline_eval(c, &in, &o);
    cr_assert(isnan(o.ts));
    cr_assert_str_eq(o.ceiling, "");
    cr_assert(strstr(o.note, "rerun showdown calibrate"), "%s", o.note);
    free(c);
}

Test(roofline, markdown_flags_a_row_above_its_ceiling)
{
    sd_bench_row *r = calloc(1, sizeof *r);
    snprintf(r->model_filename, sizeof r->model_filename, "m.gguf");
    snprintf(r->type_k, sizeof r->type_k, "f16");
    snprintf(r->roofline_ceiling, sizeof r->roofline_ceiling, "dram");
    r->n_gen = 32;
    r->avg_ts = 164;
    r->roofline_ts = 100;
    r->roofline_fraction = 1.64;
    r->energy_j = NAN;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sd_bench_md_row(f, r);
    r->roofline_fraction = 0.82;
    sd_bench_md_row(f, r);
    fclose(f);
    cr_assert(strstr(buf, "| 164.0%! dram |"), "%s", buf);
    cr_assert(strstr(buf, "| 82.0% dram |"), "%s", buf);
    free(buf);
    free(r);
}
