/* Streaming read bandwidth: every thread sums its slice of one buffer (once
 * for DRAM; for a cache-sized one, once untimed to bring it in, then several
 * sweeps); the clock runs from a common start (barrier) to the last thread done. */
#include <pthread.h>
#include <unistd.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "measure/calib_kernels.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

unsigned long long sd_calib_bw_bytes(void)
{
    unsigned long long want = 1ULL << 30;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psz > 0) {
        unsigned long long quarter = (unsigned long long)pages * (unsigned long long)psz / 4;
        if (quarter < want) want = quarter;
    }
    return want / 4096 * 4096;
}

/* Eight independent sums: the compiler vectorizes this into wide loads, and
 * the adds are far cheaper than the memory traffic they wait for. */
unsigned long long sd_calib_read(const void *buf, unsigned long long n)
{
    const uint64_t *p = buf;
    unsigned long long words = n / 8;
    uint64_t s[8] = {0};
    unsigned long long i = 0;
    for (; i + 8 <= words; i += 8)
        for (int j = 0; j < 8; j++) s[j] += p[i + j];
    for (; i < words; i++) s[0] += p[i];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

/* The same sums with a software prefetch 4 KiB ahead, as the packed weight
 * kernels do: on some hosts (an Ice Lake VM: 20.3 against 22.5 GB/s with 2
 * threads) the hardware prefetcher alone leaves DRAM bandwidth unused, and
 * a ceiling the engine's own kernels beat is no ceiling. Prefetching past
 * the end of the buffer is harmless (a hint, never a fault). */
static unsigned long long read_prefetched(const void *buf, unsigned long long n)
{
    const uint64_t *p = buf;
    unsigned long long words = n / 8;
    uint64_t s[8] = {0};
    unsigned long long i = 0;
    for (; i + 8 <= words; i += 8) {
        __builtin_prefetch((const char *)(p + i) + 4096);
        for (int j = 0; j < 8; j++) s[j] += p[i + j];
    }
    for (; i < words; i++) s[0] += p[i];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

typedef struct {
    const unsigned char *base;
    unsigned long long len;
    int sweeps, warm, prefetch;
    pthread_barrier_t *start;
    unsigned long long sink;
} bw_job;

/* The empty asm with a memory clobber keeps the compiler from reading the
 * buffer once and reusing the sum: sd_calib_read is pure and the buffer
 * does not change between sweeps. */
static void sweep(bw_job *j)
{
    for (int s = 0; s < j->sweeps; s++) {
        j->sink += j->prefetch ? read_prefetched(j->base, j->len) : sd_calib_read(j->base, j->len);
        __asm__ volatile("" ::: "memory");
    }
}

static void *bw_worker(void *arg)
{
    bw_job *j = arg;
    if (j->warm) j->sink += sd_calib_read(j->base, j->len);
    pthread_barrier_wait(j->start);
    sweep(j);
    return NULL;
}

static double bw_run(const unsigned char *buf, unsigned long long bytes, int threads, int passes, int sweeps, int warm)
{
    if (sweeps < 1) sweeps = 1;
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    bw_job jobs[256];
    pthread_t tid[256];
    unsigned long long slice = bytes / (unsigned long long)threads / 64 * 64;
    double best = 0;
    static volatile unsigned long long sink;   /* keeps the reads; read below so no compiler calls it unused */
    if (passes < 2) passes = 2;   /* odd passes prefetch, even ones do not: the best of both */
    for (int p = 0; p < passes; p++) {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)threads);
        int started = 1;
        for (int t = 0; t < threads; t++)
            jobs[t] = (bw_job){buf + slice * (unsigned long long)t, slice, sweeps, warm, p % 2, &start, 0};
        /* Thread 0 is this thread: it passes the barrier last-but-equal and
         * its clock starts when every reader is ready. */
        for (int t = 1; t < threads; t++)
            if (pthread_create(&tid[t], NULL, bw_worker, &jobs[t]) != 0) { started = 0; break; }
        if (!started) { pthread_barrier_destroy(&start); return -1; }
        if (warm) jobs[0].sink += sd_calib_read(jobs[0].base, jobs[0].len);
        pthread_barrier_wait(&start);
        double t0 = now_s();
        sweep(&jobs[0]);
        for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
        double dt = now_s() - t0;
        for (int t = 0; t < threads; t++) sink += jobs[t].sink;
        pthread_barrier_destroy(&start);
        double gbps = (double)(slice * (unsigned long long)threads) * sweeps / dt / 1e9;
        if (gbps > best) best = gbps;
    }
    (void)sink;
    return best;
}

double sd_calib_bw(const unsigned char *buf, unsigned long long bytes, int threads, int passes)
{
    return bw_run(buf, bytes, threads, passes, 1, 0);
}

double sd_calib_bw_cached(const unsigned char *buf, unsigned long long bytes, int threads, int passes, int sweeps)
{
    return bw_run(buf, bytes, threads, passes, sweeps, 1);
}
