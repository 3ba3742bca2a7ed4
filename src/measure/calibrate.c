/* `showdown calibrate`: measure the machine's ceilings and keep them in a
 * small TSV profile (key, value[, value]) that bench and plan read back. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "showdown.h"
#include "measure/calib_kernels.h"
#include "measure/calibrate.h"
#include "measure/sysinfo.h"

#define PROFILE_MAGIC "# showdown calibration profile v1"

const char *sd_calib_path(char *buf, unsigned long n)
{
    const char *p = getenv("SHOWDOWN_PROFILE");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (p && *p) snprintf(buf, n, "%s", p);
    else if (xdg && *xdg) snprintf(buf, n, "%s/showdown/calibration.tsv", xdg);
    else snprintf(buf, n, "%s/.cache/showdown/calibration.tsv", home && *home ? home : ".");
    return buf;
}

/* A page-aligned buffer with every page touched (and something non-zero
 * for the reads to add); NULL with err set when it cannot be had. */
static unsigned char *filled_buffer(unsigned long long bytes, const char *test, char *err)
{
    unsigned char *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, bytes) != 0) {
        snprintf(err, SD_ERR_LEN, "cannot allocate %llu KiB for the %s test", bytes >> 10, test);
        return NULL;
    }
    for (unsigned long long i = 0; i < bytes; i += 8) {
        unsigned long long v = i * 0x9E3779B97F4A7C15ULL;
        memcpy(buf + i, &v, 8);
    }
    return buf;
}

/* The read rate of data already in cache: working sets of half the LLC (all
 * of it would lose lines to conflicts and to whatever else runs), an eighth
 * and a 32nd, read over and over. A smaller set reads faster (more of it in
 * the private L2, less contention), and the roofline uses the largest set no
 * larger than the bytes it lets the caches serve. Unknown (zeros) when the
 * OS does not say how big the LLC is. About `seconds` in all. */
static int measure_cache_bw(sd_calibration *c, double seconds, int verbose, char *err)
{
    if (sd_cache_info_read(NULL, &c->cache) != 0) {
        if (verbose) fprintf(stderr, "calibrate: cache sizes unknown here: no cache read rate\n");
        return 0;
    }
    c->cache.n_cpus = c->n_cpus;   /* as a loaded profile has it */
    unsigned long long most = c->cache.llc_bytes / 2 / 4096 * 4096;
    if (most < 65536) most = 65536;
    unsigned char *buf = filled_buffer(most, "cache bandwidth", err);
    if (!buf) return -1;
    for (int k = 0; k < SD_CALIB_CACHE_SIZES; k++) {
        unsigned long long bytes = most >> (2 * k) & ~4095ULL;
        if (bytes < 65536) break;
        c->cache_ws_bytes[k] = bytes;
        /* ~64 MiB per pass (the clock starts after every thread has read its
         * slice once), best of up to 16 within this size and thread count's
         * share of the time, 3 at least: short passes are the ones a busy
         * machine leaves alone. */
        int sweeps = (int)((64ULL << 20) / bytes);
        double share_ms = 1e3 * seconds / (SD_CALIB_CACHE_SIZES * c->max_threads);
        for (int t = 1; t <= c->max_threads; t++) {
            double bw = 0, t0 = sd_time_ms();
            for (int p = 0; p < 16 && (p < 3 || sd_time_ms() - t0 < share_ms); p++) {
                double one = sd_calib_bw_cached(buf, bytes, t, 1, sweeps);
                if (one < 0) {
                    free(buf);
                    snprintf(err, SD_ERR_LEN, "cannot start %d threads for the cache bandwidth test", t);
                    return -1;
                }
                if (one > bw) bw = one;
            }
            c->cache_bw_gbps[k][t] = bw;
            if (verbose) fprintf(stderr, "calibrate: cache read (%6.2f MiB), %3d thread%s: %7.2f GB/s\n",
                                 bytes / 1048576.0, t, t > 1 ? "s" : " ", bw);
        }
    }
    free(buf);
    return 0;
}

int sd_calib_measure(sd_calibration *c, int max_threads, double seconds, int verbose, char *err)
{
    memset(c, 0, sizeof *c);
    c->n_cpus = sd_online_cpus();
    if (max_threads <= 0) max_threads = c->n_cpus;
    if (max_threads > SD_CALIB_MAX_THREADS) max_threads = SD_CALIB_MAX_THREADS;
    if (seconds <= 0) seconds = 10;
    c->max_threads = max_threads;
    sd_cpu_model(c->cpu_model, sizeof c->cpu_model);

    unsigned long long bytes = sd_calib_bw_bytes();
    unsigned char *buf = filled_buffer(bytes, "bandwidth", err);
    if (!buf) return -1;
    /* About half the time on DRAM bandwidth (passes per thread count from a
     * trial), a tenth on the cache read rate, the rest on arithmetic. */
    double t0 = sd_time_ms();
    sd_calib_bw(buf, bytes, 1, 1);
    double one_pass_s = (sd_time_ms() - t0) / 1e3;
    int passes = (int)(0.5 * seconds / (one_pass_s * max_threads));
    if (passes < 2) passes = 2;
    if (passes > 8) passes = 8;
    for (int t = 1; t <= max_threads; t++) {
        c->bw_gbps[t] = sd_calib_bw(buf, bytes, t, passes);
        if (verbose) fprintf(stderr, "calibrate: read bandwidth, %3d thread%s: %7.2f GB/s\n", t, t > 1 ? "s" : " ", c->bw_gbps[t]);
        if (c->bw_gbps[t] < 0) {
            free(buf);
            snprintf(err, SD_ERR_LEN, "cannot start %d threads for the bandwidth test", t);
            return -1;
        }
    }
    free(buf);
    if (measure_cache_bw(c, 0.1 * seconds, verbose, err) != 0) return -1;

    double per_kind = 0.4 * seconds / 3;
    double *rates[3] = {&c->gflops_f32, &c->gflops_bf16, &c->gops_int8};
    const char *names[3] = {"f32 FMA", "bf16 dot", "int8 dot"};
    for (int k = 0; k < 3; k++) {
        *rates[k] = sd_calib_rate((calib_kind)k, max_threads, per_kind);
        if (*rates[k] < 0) { snprintf(err, SD_ERR_LEN, "cannot start %d threads for the compute test", max_threads); return -1; }
        if (verbose) fprintf(stderr, "calibrate: %-8s (%s, %d threads): %9.1f G ops/s\n", names[k],
                             sd_calib_kernel_isa((calib_kind)k), max_threads, *rates[k]);
    }
    snprintf(c->isa, sizeof c->isa, "%s", sd_calib_kernel_isa(CALIB_INT8));
    c->measured_unix = (long long)time(NULL);
    return 0;
}

/* mkdir -p of the directory part of path. */
static int make_parent_dirs(const char *path, char *err)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) goto fail;
        *p = '/';
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) goto fail;
    return 0;
fail:
    snprintf(err, SD_ERR_LEN, "cannot create directory %.400s: %s", dir, strerror(errno));
    return -1;
}

int sd_calib_save(const sd_calibration *c, const char *path, char *err)
{
    if (make_parent_dirs(path, err) != 0) return -1;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) { snprintf(err, SD_ERR_LEN, "%.400s: %s", tmp, strerror(errno)); return -1; }
    fprintf(f, PROFILE_MAGIC " (written by `showdown calibrate`)\n");
    fprintf(f, "cpu_model\t%s\n", c->cpu_model);
    fprintf(f, "n_cpus\t%d\n", c->n_cpus);
    fprintf(f, "max_threads\t%d\n", c->max_threads);
    fprintf(f, "isa\t%s\n", c->isa);
    fprintf(f, "measured_unix\t%lld\n", c->measured_unix);
    fprintf(f, "gflops_f32\t%.3f\n", c->gflops_f32);
    fprintf(f, "gflops_bf16\t%.3f\n", c->gflops_bf16);
    fprintf(f, "gops_int8\t%.3f\n", c->gops_int8);
    for (int t = 1; t <= c->max_threads; t++) fprintf(f, "bw_gbps\t%d\t%.3f\n", t, c->bw_gbps[t]);
    /* Added after v1's first files: a reader that predates them skips unknown keys. */
    const sd_cache_info *ci = &c->cache;
    if (ci->llc_bytes) {
        fprintf(f, "l1d_bytes\t%llu\t%d\n", (unsigned long long)ci->l1d_bytes, ci->l1d_shared_cpus);
        fprintf(f, "l2_bytes\t%llu\t%d\n", (unsigned long long)ci->l2_bytes, ci->l2_shared_cpus);
        fprintf(f, "llc_bytes\t%llu\t%d\t%d\n", (unsigned long long)ci->llc_bytes, ci->llc_shared_cpus, ci->llc_level);
    }
    for (int k = 0; k < SD_CALIB_CACHE_SIZES; k++)
        for (int t = 1; c->cache_ws_bytes[k] && t <= c->max_threads; t++)
            if (c->cache_bw_gbps[k][t] > 0)
                fprintf(f, "cache_bw_gbps\t%llu\t%d\t%.3f\n", c->cache_ws_bytes[k], t, c->cache_bw_gbps[k][t]);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        snprintf(err, SD_ERR_LEN, "%.400s: write failed: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* "bytes<TAB>shared CPUs" (the LLC adds "<TAB>level"): 0, or -1 when malformed. */
static int parse_cache_line(sd_calibration *c, const char *key, const char *val)
{
    unsigned long long bytes;
    int shared, level = 0, n = sscanf(val, "%llu\t%d\t%d", &bytes, &shared, &level);
    int is_llc = !strcmp(key, "llc_bytes");
    if (n < 2 || shared < 0 || shared > 1 << 20 || bytes > 1ULL << 44) return -1;
    if (is_llc && (n != 3 || level < 2 || level > 9 || bytes == 0 || shared < 1)) return -1;
    sd_cache_info *k = &c->cache;
    if (key[1] == '1') { k->l1d_bytes = bytes; k->l1d_shared_cpus = shared; }
    else if (key[1] == '2') { k->l2_bytes = bytes; k->l2_shared_cpus = shared; }
    else { k->llc_bytes = bytes; k->llc_shared_cpus = shared; k->llc_level = level; }
    return 0;
}

/* "working set bytes<TAB>threads<TAB>GB/s": 0, or -1 when malformed. Sizes
 * beyond the SD_CALIB_CACHE_SIZES this build keeps are skipped. */
static int parse_cache_bw(sd_calibration *c, const char *val)
{
    unsigned long long bytes;
    int t;
    double v;
    if (sscanf(val, "%llu\t%d\t%lf", &bytes, &t, &v) != 3 || bytes == 0 || t < 1 || t > SD_CALIB_MAX_THREADS ||
        !(v > 0) || isinf(v))
        return -1;
    for (int k = 0; k < SD_CALIB_CACHE_SIZES; k++) {
        if (c->cache_ws_bytes[k] && c->cache_ws_bytes[k] != bytes) continue;
        c->cache_ws_bytes[k] = bytes;
        c->cache_bw_gbps[k][t] = v;
        break;
    }
    return 0;
}

int sd_calib_load(sd_calibration *c, const char *path, char *err)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "r");
    if (!f) { snprintf(err, SD_ERR_LEN, "%.400s: %s", path, strerror(errno)); return -1; }
    char line[512];
    int lineno = 0, rc = 0, have_bw = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (lineno == 1 && strncmp(line, PROFILE_MAGIC, strlen(PROFILE_MAGIC))) {
            snprintf(err, SD_ERR_LEN, "%.400s: not a showdown calibration profile", path);
            rc = -1;
            break;
        }
        if (!line[0] || line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab) { rc = -1; break; }
        *tab = 0;
        const char *key = line, *val = tab + 1;
        int t;
        double v;
        if (!strcmp(key, "cpu_model")) snprintf(c->cpu_model, sizeof c->cpu_model, "%s", val);
        else if (!strcmp(key, "isa")) snprintf(c->isa, sizeof c->isa, "%s", val);
        else if (!strcmp(key, "n_cpus")) c->n_cpus = atoi(val);
        else if (!strcmp(key, "max_threads")) c->max_threads = atoi(val);
        else if (!strcmp(key, "measured_unix")) c->measured_unix = atoll(val);
        else if (!strcmp(key, "gflops_f32")) c->gflops_f32 = atof(val);
        else if (!strcmp(key, "gflops_bf16")) c->gflops_bf16 = atof(val);
        else if (!strcmp(key, "gops_int8")) c->gops_int8 = atof(val);
        else if (!strcmp(key, "bw_gbps")) {
            /* !(v > 0) also refuses nan; inf is no bandwidth either */
            if (sscanf(val, "%d\t%lf", &t, &v) != 2 || t < 1 || t > SD_CALIB_MAX_THREADS || !(v > 0) || isinf(v)) {
                rc = -1;
                break;
            }
            c->bw_gbps[t] = v;
            have_bw = 1;
        }
        else if (!strcmp(key, "cache_bw_gbps")) {
            if (parse_cache_bw(c, val) != 0) { rc = -1; break; }
        }
        else if (!strcmp(key, "l1d_bytes") || !strcmp(key, "l2_bytes") || !strcmp(key, "llc_bytes")) {
            if (parse_cache_line(c, key, val) != 0) { rc = -1; break; }
        }
        /* unknown keys: a newer profile; ignore them */
    }
    int read_errno = ferror(f) ? (errno ? errno : EIO) : 0;   /* a directory opens, then fails to read */
    fclose(f);
    if (read_errno) { snprintf(err, SD_ERR_LEN, "%.400s: cannot read: %s", path, strerror(read_errno)); return -1; }
    if (rc == 0 && lineno == 0) { snprintf(err, SD_ERR_LEN, "%.400s: empty profile", path); return -1; }
    if (rc != 0) {
        if (lineno > 1) snprintf(err, SD_ERR_LEN, "%.400s:%d: malformed line (rerun showdown calibrate)", path, lineno);
        return -1;
    }
    if (c->max_threads < 1 || c->max_threads > SD_CALIB_MAX_THREADS || !have_bw || c->bw_gbps[1] <= 0) {
        snprintf(err, SD_ERR_LEN, "%.400s: incomplete profile (rerun showdown calibrate)", path);
        return -1;
    }
    c->cache.n_cpus = c->n_cpus;
    return 0;
}
