/* Calibration: the profile file round-trips and is checked, the kernels do
 * the arithmetic they claim, and a short measurement gives positive numbers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "measure/calib_kernels.h"
#include "measure/calibrate.h"
#include "showdown.h"

Test(calibrate, profile_path_follows_the_environment)
{
    char buf[512];
    setenv("SHOWDOWN_PROFILE", "/tmp/x/profile.tsv", 1);
    cr_assert_str_eq(sd_calib_path(buf, sizeof buf), "/tmp/x/profile.tsv");
    unsetenv("SHOWDOWN_PROFILE");
    setenv("XDG_CACHE_HOME", "/tmp/cachehome", 1);
    cr_assert_str_eq(sd_calib_path(buf, sizeof buf), "/tmp/cachehome/showdown/calibration.tsv");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/someone", 1);
    cr_assert_str_eq(sd_calib_path(buf, sizeof buf), "/home/someone/.cache/showdown/calibration.tsv");
}

Test(calibrate, profile_round_trips)
{
    sd_calibration c = {0}, d;
    snprintf(c.cpu_model, sizeof c.cpu_model, "Test CPU 9000");
    snprintf(c.isa, sizeof c.isa, "avx512-vnni");
    c.n_cpus = 4;
    c.max_threads = 3;
    c.bw_gbps[1] = 20.5;
    c.bw_gbps[2] = 35.25;
    c.bw_gbps[3] = 40;
    c.gflops_f32 = 100;
    c.gflops_bf16 = 200;
    c.gops_int8 = 400;
    c.measured_unix = 1700000000;
    char dir[] = "/tmp/sd-calib-XXXXXX", path[128], err[SD_ERR_LEN];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/sub/dir/p.tsv", dir);   /* parents are created */
    cr_assert_eq(sd_calib_save(&c, path, err), 0, "%s", err);
    cr_assert_eq(sd_calib_load(&d, path, err), 0, "%s", err);
    cr_assert_str_eq(d.cpu_model, "Test CPU 9000");
    cr_assert_str_eq(d.isa, "avx512-vnni");
    cr_assert_eq(d.max_threads, 3);
    cr_assert_eq(d.n_cpus, 4);
    cr_assert_float_eq(d.bw_gbps[2], 35.25, 1e-9);
    cr_assert_float_eq(d.gops_int8, 400, 1e-9);
    cr_assert_eq(d.measured_unix, 1700000000);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(calibrate, load_rejects_what_is_not_a_profile)
{
    char path[] = "/tmp/sd-notprofile-XXXXXX", err[SD_ERR_LEN];
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert(write(fd, "hello\tworld\n", 12) == 12);
    close(fd);
    sd_calibration c;
    cr_assert_eq(sd_calib_load(&c, path, err), -1);
    cr_assert(strstr(err, "not a showdown calibration profile"), "%s", err);
    unlink(path);
    cr_assert_eq(sd_calib_load(&c, "/nonexistent/profile.tsv", err), -1);
    cr_assert(strstr(err, "/nonexistent/profile.tsv"), "%s", err);
}

Test(calibrate, streaming_read_sums_every_word)
{
    uint64_t buf[1003];
    uint64_t want = 0;
    for (int i = 0; i < 1003; i++) { buf[i] = (uint64_t)i * 7 + 1; want += buf[i]; }
    cr_assert_eq(sd_calib_read(buf, sizeof buf), want);
}

Test(calibrate, kernels_count_their_operations)
{
    for (int k = 0; k < 3; k++) {
        double ops = 0;
        double v = sd_calib_kernel((calib_kind)k, 3, &ops);
        cr_assert(isfinite(v));
        cr_assert(ops >= 2.0 * 128 * 6 * 16, "kind %d: %g ops per iteration", k, ops);
        cr_assert(strlen(sd_calib_kernel_isa((calib_kind)k)) > 0);
    }
}

Test(calibrate, short_measurements_are_positive)
{
    size_t n = 64u << 20;
    unsigned char *buf = malloc(n);
    cr_assert(buf);
    memset(buf, 1, n);
    double bw = sd_calib_bw(buf, n, 2, 2);
    free(buf);
    /* Bounds loose enough for a sanitized build on a busy 2-core machine (0.43
     * GB/s seen): the test is that the measurement is sane, not fast. */
    cr_assert(bw > 0.02 && bw < 10000, "bandwidth %g GB/s", bw);
    double r = sd_calib_rate(CALIB_F32, 1, 0.05);
    cr_assert(r > 0.02, "f32 rate %g G ops/s", r);
}

/* A profile file with the given body after the magic line; returns its path. */
static void write_profile(char *path, const char *body)
{
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# showdown calibration profile v1 (written by `showdown calibrate`)\n%s", body);
    fclose(f);
}

/* What `showdown calibrate` wrote before it measured caches: still loads,
 * with the cache fields unknown (zeros), which the roofline reads as "dram". */
Test(calibrate, a_profile_without_cache_fields_still_loads)
{
    char path[] = "/tmp/sd-oldprofile-XXXXXX", err[SD_ERR_LEN];
    write_profile(path, "cpu_model\tOld CPU\nn_cpus\t2\nmax_threads\t2\nisa\tavx512\nmeasured_unix\t1700000000\n"
                        "gflops_f32\t100.000\ngflops_bf16\t200.000\ngops_int8\t400.000\n"
                        "bw_gbps\t1\t20.000\nbw_gbps\t2\t30.000\n");
    sd_calibration *c = malloc(sizeof *c);
    cr_assert_eq(sd_calib_load(c, path, err), 0, "%s", err);
    cr_assert_float_eq(c->bw_gbps[2], 30, 1e-9);
    cr_assert_eq(c->cache.llc_bytes, 0);
    cr_assert_eq(c->cache.l2_bytes, 0);
    cr_assert_eq(c->cache_ws_bytes[0], 0);
    cr_assert_float_eq(c->cache_bw_gbps[0][1], 0, 0);
    unlink(path);
    free(c);
}

Test(calibrate, cache_fields_round_trip)
{
    sd_calibration *c = calloc(1, sizeof *c), *d = malloc(sizeof *d);
    snprintf(c->cpu_model, sizeof c->cpu_model, "Cache CPU");
    c->n_cpus = 16;
    c->max_threads = 2;
    c->bw_gbps[1] = 20;
    c->bw_gbps[2] = 30;
    c->cache_ws_bytes[0] = 8 << 20;
    c->cache_bw_gbps[0][1] = 55.5;
    c->cache_bw_gbps[0][2] = 101.25;
    c->cache_ws_bytes[1] = 2 << 20;
    c->cache_bw_gbps[1][2] = 250;
    c->cache = (sd_cache_info){.l1d_bytes = 32 << 10, .l2_bytes = 512 << 10, .llc_bytes = 16 << 20, .l1d_shared_cpus = 2,
                               .l2_shared_cpus = 2, .llc_shared_cpus = 8, .llc_level = 3, .n_cpus = 16};
    char path[] = "/tmp/sd-cacheprofile-XXXXXX", err[SD_ERR_LEN];
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(sd_calib_save(c, path, err), 0, "%s", err);
    cr_assert_eq(sd_calib_load(d, path, err), 0, "%s", err);
    cr_assert_eq(memcmp(&c->cache, &d->cache, sizeof c->cache), 0);
    cr_assert_eq(d->cache_ws_bytes[0], 8 << 20);
    cr_assert_eq(d->cache_ws_bytes[1], 2 << 20);
    cr_assert_eq(d->cache_ws_bytes[2], 0);
    cr_assert_float_eq(d->cache_bw_gbps[0][2], 101.25, 1e-9);
    cr_assert_float_eq(d->cache_bw_gbps[0][1], 55.5, 1e-9);
    cr_assert_float_eq(d->cache_bw_gbps[1][2], 250, 1e-9);
    cr_assert_float_eq(d->cache_bw_gbps[1][1], 0, 0);
    /* a machine whose caches the OS does not name: no cache lines, loads as unknown */
    memset(&c->cache, 0, sizeof c->cache);
    memset(c->cache_bw_gbps, 0, sizeof c->cache_bw_gbps);
    memset(c->cache_ws_bytes, 0, sizeof c->cache_ws_bytes);
    cr_assert_eq(sd_calib_save(c, path, err), 0, "%s", err);
    cr_assert_eq(sd_calib_load(d, path, err), 0, "%s", err);
    cr_assert_eq(d->cache.llc_bytes, 0);
    cr_assert_eq(d->cache_ws_bytes[0], 0);
    unlink(path);
    free(c);
    free(d);
}

Test(calibrate, malformed_cache_lines_are_refused)
{
    const char *bad[] = {"llc_bytes\tmany\t2\t3\n", "llc_bytes\t50331648\t2\n", "llc_bytes\t50331648\t0\t3\n",
                         "llc_bytes\t50331648\t2\t1\n", "l2_bytes\t1310720\n",
                         "cache_bw_gbps\t1048576\t1\tnan\n", "cache_bw_gbps\t1048576\t0\t5\n",
                         "cache_bw_gbps\t1\t5.000\n", "cache_bw_gbps\t0\t1\t5\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[512], path[] = "/tmp/sd-badcache-XXXXXX", err[SD_ERR_LEN];
        snprintf(body, sizeof body, "max_threads\t1\nbw_gbps\t1\t20.000\n%s", bad[i]);
        write_profile(path, body);
        sd_calibration *c = malloc(sizeof *c);
        cr_assert_eq(sd_calib_load(c, path, err), -1, "accepted: %s", bad[i]);
        cr_assert(strstr(err, "malformed line"), "%s", err);
        unlink(path);
        free(c);
    }
}

Test(calibrate, sweeping_a_small_buffer_gives_a_rate)
{
    /* a 256 KiB buffer read 4 times per pass: a rate, positive and finite */
    size_t n = 256u << 10;
    unsigned char *buf = malloc(n);
    cr_assert(buf);
    memset(buf, 1, n);
    double bw = sd_calib_bw_cached(buf, n, 2, 2, 4);
    free(buf);
    cr_assert(bw > 0 && isfinite(bw), "bandwidth %g GB/s", bw);
}
