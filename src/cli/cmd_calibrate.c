/* showdown calibrate: measure this machine's read bandwidth (1..N threads)
 * and multiply-add rates, print them, and cache them in the profile file. */
#include <stdio.h>
#include <string.h>

#include "showdown.h"
#include "cli/cli.h"
#include "measure/calibrate.h"
#include "measure/sysinfo.h"

static void calibrate_usage(FILE *out)
{
    fputs("usage: showdown calibrate [options]\n\n"
          "Measures streaming read bandwidth with 1..N threads (a buffer of up to 1 GiB,\n"
          "best of several passes), the same from buffers of 1/2, 1/8 and 1/32 of the\n"
          "last-level cache (the rate of data already in cache), and the sustained\n"
          "multiply-add rate of blocked f32, bf16 and int8 dot-product kernels, then\n"
          "caches them, with the cache sizes, in the profile that `showdown bench` uses\n"
          "for roofline_fraction.\n\n"
          "  -t, --threads N   measure bandwidth with 1..N threads (default: all CPUs)\n"
          "  --seconds S       time budget, roughly (default 10)\n"
          "  --profile FILE    where to write (default: $SHOWDOWN_PROFILE, else\n"
          "                    $XDG_CACHE_HOME or ~/.cache /showdown/calibration.tsv)\n"
          "  --show            print the cached profile and measure nothing\n"
          "  -q, --quiet       no progress lines\n",
          out);
}

static void print_profile(const sd_calibration *c, const char *path)
{
    printf("profile: %s\n", path);
    char caches[160];
    printf("cpu: %s (%d CPUs)\n", c->cpu_model, c->n_cpus);
    printf("caches: %s\n", c->cache.llc_bytes ? sd_cache_info_str(&c->cache, caches, sizeof caches)
                                               : "not in this profile (older, or the OS names none)");
    printf("streaming read bandwidth (GB/s, best of passes): DRAM (1 GiB buffer)");
    for (int k = 0; k < SD_CALIB_CACHE_SIZES && c->cache_ws_bytes[k]; k++)
        printf(", %.2f MiB", c->cache_ws_bytes[k] / 1048576.0);
    printf("%s\n", c->cache_ws_bytes[0] ? " in cache" : "; cache read rate unknown");
    for (int t = 1; t <= c->max_threads; t++) {
        printf("  %3d thread%s %8.2f", t, t > 1 ? "s" : " ", c->bw_gbps[t]);
        for (int k = 0; k < SD_CALIB_CACHE_SIZES && c->cache_ws_bytes[k]; k++) printf("  %8.2f", c->cache_bw_gbps[k][t]);
        putchar('\n');
    }
    printf("multiply-add rate, %d threads (G ops/s, 2 per multiply-add):\n", c->max_threads);
    printf("  f32  %10.1f\n  bf16 %10.1f\n  int8 %10.1f\n", c->gflops_f32, c->gflops_bf16, c->gops_int8);
    printf("kernels: %s\n", c->isa);
}

int cmd_calibrate(int argc, char **argv)
{
    long threads = 0;
    double seconds = 10;
    int quiet = 0, show = 0;
    const char *profile = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { calibrate_usage(stdout); return 0; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!strcmp(a, "--show")) { show = 1; continue; }
        if (!v) return fail("%s needs a value (showdown calibrate --help)", a);
        i++;
        if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { if (parse_int(a, v, 1, SD_CALIB_MAX_THREADS, &threads)) return 1; }
        else if (!strcmp(a, "--seconds")) { if (parse_float(a, v, 0.5, 3600, &seconds)) return 1; }
        else if (!strcmp(a, "--profile")) profile = v;
        else return fail("unknown option '%s' (showdown calibrate --help)", a);
    }
    char pathbuf[1024], err[SD_ERR_LEN];
    const char *path = profile ? profile : sd_calib_path(pathbuf, sizeof pathbuf);
    sd_calibration c;
    if (show) {
        if (sd_calib_load(&c, path, err) != 0) return fail("%s (run showdown calibrate)", err);
        print_profile(&c, path);
        return 0;
    }
    if (sd_calib_measure(&c, (int)threads, seconds, !quiet, err) != 0) return fail("%s", err);
    if (sd_calib_save(&c, path, err) != 0) return fail("%s", err);
    print_profile(&c, path);
    return 0;
}
