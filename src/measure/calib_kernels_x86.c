/* AVX-512 versions of the calibration kernels: FMA for f32, VDPBF16PS for
 * bf16, VPDPBUSD (VNNI) for int8. Target attributes keep them out of a
 * portable build's baseline; the CPU is checked before they run. */
#include "measure/calib_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#include <immintrin.h>
#include <stdint.h>

#define KB 128
#define ROWS 6

int sd_calib_x86_supported(calib_kind k)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) return 0;
    if (k == CALIB_BF16) return __builtin_cpu_supports("avx512bf16");
    if (k == CALIB_INT8) return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
    return 1;
}

/* 6 rows x 2 vectors = 12 accumulators: enough independent chains to cover
 * FMA latency on two pipes. B panel: KB x 32 lanes. */
__attribute__((target("avx512f,fma")))
static double f32_avx512(long iters, double *ops)
{
    static float a[KB][ROWS], b[KB][32] __attribute__((aligned(64)));
    for (int k = 0; k < KB; k++) {
        for (int r = 0; r < ROWS; r++) a[k][r] = 1e-3f * (float)(k + r);
        for (int c = 0; c < 32; c++) b[k][c] = 1e-3f * (float)(k - c);
    }
    __m512 acc[ROWS][2];
    for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (long it = 0; it < iters; it++)
        for (int k = 0; k < KB; k++) {
            __m512 b0 = _mm512_load_ps(b[k]), b1 = _mm512_load_ps(b[k] + 16);
            for (int r = 0; r < ROWS; r++) {
                __m512 av = _mm512_set1_ps(a[k][r]);
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            }
        }
    *ops = 2.0 * KB * ROWS * 32;
    __m512 s = _mm512_setzero_ps();
    for (int r = 0; r < ROWS; r++) s = _mm512_add_ps(s, _mm512_add_ps(acc[r][0], acc[r][1]));
    return _mm512_reduce_add_ps(s);
}

/* Each VDPBF16PS does 32 bf16 products into 16 f32 lanes (pairs). */
__attribute__((target("avx512f,avx512bf16")))
static double bf16_avx512(long iters, double *ops)
{
    static uint32_t a[KB][ROWS];
    static uint16_t b[KB][64] __attribute__((aligned(64)));
    for (int k = 0; k < KB; k++) {
        for (int r = 0; r < ROWS; r++) a[k][r] = 0x3c003c00u + (uint32_t)(k + r);
        for (int c = 0; c < 64; c++) b[k][c] = (uint16_t)(0x3c00 + ((k + c) & 63));
    }
    __m512 acc[ROWS][2];
    for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (long it = 0; it < iters; it++)
        for (int k = 0; k < KB; k++) {
            __m512bh b0 = (__m512bh)_mm512_load_si512(b[k]), b1 = (__m512bh)_mm512_load_si512(b[k] + 32);
            for (int r = 0; r < ROWS; r++) {
                __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[k][r]);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
            }
        }
    *ops = 2.0 * KB * ROWS * 64;
    __m512 s = _mm512_setzero_ps();
    for (int r = 0; r < ROWS; r++) s = _mm512_add_ps(s, _mm512_add_ps(acc[r][0], acc[r][1]));
    return _mm512_reduce_add_ps(s);
}

/* Each VPDPBUSD does 64 u8 x s8 products into 16 i32 lanes (quads). */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static double int8_avx512(long iters, double *ops)
{
    static uint32_t a[KB][ROWS];
    static int8_t b[KB][128] __attribute__((aligned(64)));
    for (int k = 0; k < KB; k++) {
        for (int r = 0; r < ROWS; r++) a[k][r] = 0x01020304u * (uint32_t)((k + r) % 5 + 1);
        for (int c = 0; c < 128; c++) b[k][c] = (int8_t)((k * 3 + c) % 13 - 6);
    }
    __m512i acc[ROWS][2];
    for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (long it = 0; it < iters; it++)
        for (int k = 0; k < KB; k++) {
            __m512i b0 = _mm512_load_si512(b[k]), b1 = _mm512_load_si512(b[k] + 64);
            for (int r = 0; r < ROWS; r++) {
                __m512i av = _mm512_set1_epi32((int)a[k][r]);
                acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
                acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
            }
        }
    *ops = 2.0 * KB * ROWS * 128;
    __m512i s = _mm512_setzero_si512();
    for (int r = 0; r < ROWS; r++) s = _mm512_add_epi32(s, _mm512_add_epi32(acc[r][0], acc[r][1]));
    return (double)_mm512_reduce_add_epi32(s);
}

double sd_calib_kernel_x86(calib_kind k, long iters, double *ops)
{
    switch (k) {
    case CALIB_F32: return f32_avx512(iters, ops);
    case CALIB_BF16: return bf16_avx512(iters, ops);
    default: return int8_avx512(iters, ops);
    }
}

#else

int sd_calib_x86_supported(calib_kind k) { (void)k; return 0; }
double sd_calib_kernel_x86(calib_kind k, long iters, double *ops) { (void)k; (void)iters; *ops = 0; return -1; }

#endif
