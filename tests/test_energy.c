/* Energy probes against a fake powercap tree built under /tmp per test
 * (SHOWDOWN_POWERCAP_ROOT points the probe at it): wrap-around, permission
 * denial, missing sensors, and that an unavailable probe never yields a number.
 *
 * Permission denial: the suite runs as root in CI and chmod 000 does not stop
 * root, so the test swaps the probe's open function (sd_rapl_open_fn) for one
 * that fails with EACCES on energy_uj, exactly as the kernel does for a
 * non-root reader since Linux 5.10. When not root, a real chmod 000 is tested too. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "measure/energy.h"
#include "showdown.h"

static char root[64];

static void write_file(const char *zone, const char *file, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, zone);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, zone, file);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* package-0 with core and dram sub-zones; counters wrap at 262143328850 uJ. */
static void make_tree(void)
{
    snprintf(root, sizeof root, "/tmp/sd-powercap-XXXXXX");
    cr_assert(mkdtemp(root));
    write_file("intel-rapl:0", "name", "package-0\n");
    write_file("intel-rapl:0", "max_energy_range_uj", "262143328850\n");
    write_file("intel-rapl:0", "energy_uj", "1000000\n");
    write_file("intel-rapl:0:0", "name", "core\n");
    write_file("intel-rapl:0:0", "max_energy_range_uj", "262143328850\n");
    write_file("intel-rapl:0:0", "energy_uj", "5000\n");
    write_file("intel-rapl:0:1", "name", "dram\n");
    write_file("intel-rapl:0:1", "max_energy_range_uj", "65532610987\n");
    write_file("intel-rapl:0:1", "energy_uj", "100\n");
    setenv("SHOWDOWN_POWERCAP_ROOT", root, 1);
}

static void remove_tree(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (root[0]) cr_assert_eq(system(cmd), 0);
}

TestSuite(energy, .init = make_tree, .fini = remove_tree);

Test(energy, delta_without_and_with_wrap)
{
    cr_assert_eq(sd_rapl_delta_uj(100, 350, 1000), 250);
    cr_assert_eq(sd_rapl_delta_uj(900, 100, 1000), 200);   /* 100 to the top, 100 from zero */
    cr_assert_eq(sd_rapl_delta_uj(0, 0, 1000), 0);
}

Test(energy, package_counter_is_read_and_named)
{
    sd_energy *e = sd_energy_open("rapl", -1);
    cr_assert(sd_energy_available(e), "%s", sd_energy_source(e));
    cr_assert_str_eq(sd_energy_source(e), "rapl:package-0");
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_energy_begin(e, err), 0, "%s", err);
    write_file("intel-rapl:0", "energy_uj", "3500000\n");
    double j = -1;
    cr_assert_eq(sd_energy_end(e, &j, err), 0, "%s", err);
    cr_assert_float_eq(j, 2.5, 1e-9);
    sd_energy_close(e);
}

Test(energy, wrap_around_is_counted_once)
{
    write_file("intel-rapl:0", "energy_uj", "262142328850\n");   /* 1 J below the top */
    sd_energy *e = sd_energy_open("rapl:package", -1);
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_energy_begin(e, err), 0, "%s", err);
    write_file("intel-rapl:0", "energy_uj", "500000\n");         /* wrapped, then 0.5 J */
    double j = -1;
    cr_assert_eq(sd_energy_end(e, &j, err), 0, "%s", err);
    cr_assert_float_eq(j, 1.5, 1e-9);
    sd_energy_close(e);
}

Test(energy, sub_zone_domains_are_named_after_their_package)
{
    sd_energy *e = sd_energy_open("rapl:dram", -1);
    cr_assert(sd_energy_available(e), "%s", sd_energy_source(e));
    cr_assert_str_eq(sd_energy_source(e), "rapl:package-0/dram");
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_energy_begin(e, err), 0);
    write_file("intel-rapl:0:1", "energy_uj", "50\n");           /* wrapped at the dram range */
    double j;
    cr_assert_eq(sd_energy_end(e, &j, err), 0, "%s", err);
    cr_assert_float_eq(j, (65532610987.0 - 100 + 50) / 1e6, 1e-6);
    sd_energy_close(e);
}

Test(energy, sampling_thread_gives_the_same_total)
{
    sd_energy *e = sd_energy_open("rapl", 5);
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_energy_begin(e, err), 0);
    usleep(30000);
    write_file("intel-rapl:0", "energy_uj", "2000000\n");
    usleep(30000);
    double j;
    cr_assert_eq(sd_energy_end(e, &j, err), 0, "%s", err);
    cr_assert_float_eq(j, 1.0, 1e-9);
    sd_energy_close(e);
}

static int deny_energy(const char *path, int flags)
{
    if (strstr(path, "energy_uj")) { errno = EACCES; return -1; }
    return open(path, flags);
}

Test(energy, permission_denied_is_not_missing)
{
    sd_rapl_open_fn = deny_energy;
    sd_energy *e = sd_energy_open("rapl", -1);
    cr_assert_not(sd_energy_available(e));
    cr_assert(strstr(sd_energy_source(e), "unavailable: rapl: permission denied reading"), "%s", sd_energy_source(e));
    cr_assert(strstr(sd_energy_source(e), "intel-rapl:0/energy_uj"), "%s", sd_energy_source(e));
    double j = 42;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_energy_begin(e, err), -1);
    cr_assert_eq(sd_energy_end(e, &j, err), -1);
    cr_assert_float_eq(j, 42, 0, "an unavailable probe must not produce a number");
    sd_energy_close(e);
}

Test(energy, real_chmod_denial_when_not_root)
{
    if (geteuid() == 0) return;   /* root reads anything: covered by the hook test */
    char path[256];
    snprintf(path, sizeof path, "%s/intel-rapl:0/energy_uj", root);
    cr_assert_eq(chmod(path, 0), 0);
    sd_energy *e = sd_energy_open("rapl", -1);
    cr_assert(strstr(sd_energy_source(e), "permission denied"), "%s", sd_energy_source(e));
    sd_energy_close(e);
}

Test(energy, missing_tree_is_no_sensor)
{
    setenv("SHOWDOWN_POWERCAP_ROOT", "/nonexistent/powercap", 1);
    sd_energy *e = sd_energy_open("auto", -1);
    cr_assert_not(sd_energy_available(e));
    cr_assert(strstr(sd_energy_source(e), "unavailable: no readable sensor"), "%s", sd_energy_source(e));
    sd_energy_close(e);
}

Test(energy, tree_without_rapl_zones_is_no_sensor)
{
    char empty[96];
    snprintf(empty, sizeof empty, "%s/empty", root);
    mkdir(empty, 0755);
    setenv("SHOWDOWN_POWERCAP_ROOT", empty, 1);
    sd_energy *e = sd_energy_open("rapl", -1);
    cr_assert(strstr(sd_energy_source(e), "unavailable: no readable sensor (no intel-rapl:* zones"), "%s", sd_energy_source(e));
    sd_energy_close(e);
}

Test(energy, counter_that_is_not_a_number_is_refused)
{
    write_file("intel-rapl:0", "energy_uj", "garbage\n");
    sd_energy *e = sd_energy_open("rapl", -1);
    cr_assert_not(sd_energy_available(e));
    cr_assert(strstr(sd_energy_source(e), "not a readable counter"), "%s", sd_energy_source(e));
    sd_energy_close(e);
}

Test(energy, nvml_without_driver_is_unavailable)
{
    setenv("SHOWDOWN_NVML_LIB", "/nonexistent/libnvidia-ml.so.1", 1);
    sd_energy *e = sd_energy_open("nvml", -1);
    cr_assert_not(sd_energy_available(e));
    cr_assert(strstr(sd_energy_source(e), "unavailable: no readable sensor (nvml:"), "%s", sd_energy_source(e));
    sd_energy_close(e);
}

Test(energy, powermetrics_and_unknown_probes)
{
#ifndef __APPLE__
    sd_energy *e = sd_energy_open("powermetrics", -1);
    cr_assert(strstr(sd_energy_source(e), "macOS only"), "%s", sd_energy_source(e));
    sd_energy_close(e);
#endif
    sd_energy *u = sd_energy_open("thermometer", -1);
    cr_assert(strstr(sd_energy_source(u), "unknown energy probe"), "%s", sd_energy_source(u));
    sd_energy_close(u);
    sd_energy *n = sd_energy_open("rapl:gpu", -1);
    cr_assert(strstr(sd_energy_source(n), "unknown domain"), "%s", sd_energy_source(n));
    sd_energy_close(n);
}
