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
