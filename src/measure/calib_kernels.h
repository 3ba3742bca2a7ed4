/* The blocked multiply-add kernels `calibrate` times. Each keeps its operands
 * in L1 (a K x 16 panel of B against 6 broadcast rows of A, 12 independent
 * accumulators) so the number is the arithmetic rate, not memory. */
#ifndef SD_CALIB_KERNELS_H
#define SD_CALIB_KERNELS_H

typedef enum { CALIB_F32 = 0, CALIB_BF16 = 1, CALIB_INT8 = 2 } calib_kind;

/* Runs the kernel `iters` times; returns a value that depends on every
 * product (so the compiler cannot drop the work). *ops: multiply-add
 * operations (2 per fused multiply-add) per iteration. */
double sd_calib_kernel(calib_kind k, long iters, double *ops);
/* Which implementation sd_calib_kernel uses here: "avx512", "avx512-bf16-vnni", "generic". */
const char *sd_calib_kernel_isa(calib_kind k);

/* x86 versions (calib_kernels_x86.c); return -1 where the CPU lacks them. */
double sd_calib_kernel_x86(calib_kind k, long iters, double *ops);
int sd_calib_x86_supported(calib_kind k);

/* Streaming read of n bytes (calib_bw.c): sum of 64-bit words. */
unsigned long long sd_calib_read(const void *buf, unsigned long long n);
/* Best of `passes` streaming reads of buf with `threads` threads, in GB/s. */
double sd_calib_bw(const unsigned char *buf, unsigned long long bytes, int threads, int passes);
/* The same for a buffer that fits in cache: each thread reads its slice once
 * untimed (so the timed reads find it in cache, even after another process
 * ran), then `sweeps` times per pass, so one pass lasts long enough to time. */
double sd_calib_bw_cached(const unsigned char *buf, unsigned long long bytes, int threads, int passes, int sweeps);
/* The bandwidth test's buffer: 1 GiB, but at most a quarter of RAM. */
unsigned long long sd_calib_bw_bytes(void);
/* Sustained multiply-add rate with `threads` threads running the kernel for
 * about `seconds`, in G operations/s (calib_compute.c). */
double sd_calib_rate(calib_kind k, int threads, double seconds);

#endif
