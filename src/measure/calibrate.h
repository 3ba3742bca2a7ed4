/* This machine's ceilings, measured by `showdown calibrate` and cached in a
 * small profile file so `bench` (roofline_fraction) and `plan --hw this` can
 * use them without measuring again. */
#ifndef SD_CALIBRATE_H
#define SD_CALIBRATE_H

#include "measure/sysinfo.h"

#define SD_CALIB_MAX_THREADS 256
#define SD_CALIB_CACHE_SIZES 3

typedef struct {
    char cpu_model[128];
    int n_cpus;
    int max_threads;                               /* bw_gbps[1..max_threads] valid */
    double bw_gbps[SD_CALIB_MAX_THREADS + 1];      /* streaming read, GB/s, by threads */
    double gflops_f32, gflops_bf16, gops_int8;     /* sustained multiply-add rate, all threads */
    /* The caches the profile was measured on, and the streaming read rate of
     * data already in cache: working sets of half, an eighth and a 32nd of
     * the last-level cache (largest first), by threads. Zeros: unknown (a
     * profile written before these were measured still loads). */
    sd_cache_info cache;
    unsigned long long cache_ws_bytes[SD_CALIB_CACHE_SIZES];
    double cache_bw_gbps[SD_CALIB_CACHE_SIZES][SD_CALIB_MAX_THREADS + 1];
    char isa[32];
    long long measured_unix;                       /* when it was measured */
} sd_calibration;

/* Where the profile lives: $SHOWDOWN_PROFILE, else $XDG_CACHE_HOME/showdown/calibration.tsv,
 * else ~/.cache/showdown/calibration.tsv. */
const char *sd_calib_path(char *buf, unsigned long n);
/* Measures (progress on stderr when verbose); seconds bounds the time spent. */
int sd_calib_measure(sd_calibration *c, int max_threads, double seconds, int verbose, char *err);
int sd_calib_save(const sd_calibration *c, const char *path, char *err);
/* 0 loaded, -1 absent or unreadable (message in err). */
int sd_calib_load(sd_calibration *c, const char *path, char *err);

#endif
