/* Portable blocked kernels (the compiler vectorizes the inner loops for the
 * build's target) and the dispatch to the x86 intrinsics where the CPU has them. */
#include <stdint.h>
#include <string.h>

#include "measure/calib_kernels.h"

#define KB 128   /* panel depth: B is KB x 16 values, fits L1 */
#define ROWS 6
#define COLS 16

static double f32_generic(long iters, double *ops)
{
    static float a[KB][ROWS], b[KB][COLS];
    for (int k = 0; k < KB; k++) {
        for (int r = 0; r < ROWS; r++) a[k][r] = 1e-3f * (float)(k + r);
        for (int c = 0; c < COLS; c++) b[k][c] = 1e-3f * (float)(k - c);
    }
    float acc[ROWS][COLS] = {{0}};
    for (long it = 0; it < iters; it++)
        for (int k = 0; k < KB; k++)
            for (int r = 0; r < ROWS; r++)
                for (int c = 0; c < COLS; c++) acc[r][c] += a[k][r] * b[k][c];
    *ops = 2.0 * KB * ROWS * COLS;
    double s = 0;
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) s += acc[r][c];
    return s;
}

/* bf16 without hardware support: widen to f32 (what a generic bf16 kernel does). */
static double bf16_generic(long iters, double *ops)
{
    static uint16_t a[KB][ROWS], b[KB][COLS];
    for (int k = 0; k < KB; k++) {
        for (int r = 0; r < ROWS; r++) a[k][r] = (uint16_t)(0x3c00 + k + r);
        for (int c = 0; c < COLS; c++) b[k][c] = (uint16_t)(0x3c00 + k + c);
    }
    float acc[ROWS][COLS] = {{0}};
    for (long it = 0; it < iters; it++)
        for (int k = 0; k < KB; k++)
            for (int r = 0; r < ROWS; r++) {
                uint32_t ua = (uint32_t)a[k][r] << 16;
                float fa;
                memcpy(&fa, &ua, 4);
                for (int c = 0; c < COLS; c++) {
                    uint32_t ub = (uint32_t)b[k][c] << 16;
                    float fb;
                    memcpy(&fb, &ub, 4);
                    acc[r][c] += fa * fb;
                }
            }
    *ops = 2.0 * KB * ROWS * COLS;
    double s = 0;
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) s += acc[r][c];
    return s;
}

static double int8_generic(long iters, double *ops)
{
    static int8_t a[KB][ROWS], b[KB][COLS];
    for (int k = 0; k < KB; k++) {
        for (int r = 0; r < ROWS; r++) a[k][r] = (int8_t)((k + r) % 17 - 8);
        for (int c = 0; c < COLS; c++) b[k][c] = (int8_t)((k * 3 + c) % 13 - 6);
    }
    int32_t acc[ROWS][COLS] = {{0}};
    for (long it = 0; it < iters; it++)
        for (int k = 0; k < KB; k++)
            for (int r = 0; r < ROWS; r++)
                for (int c = 0; c < COLS; c++) acc[r][c] += (int32_t)a[k][r] * b[k][c];
    *ops = 2.0 * KB * ROWS * COLS;
    double s = 0;
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) s += acc[r][c];
    return s;
}

double sd_calib_kernel(calib_kind k, long iters, double *ops)
{
    if (sd_calib_x86_supported(k)) return sd_calib_kernel_x86(k, iters, ops);
    switch (k) {
    case CALIB_F32: return f32_generic(iters, ops);
    case CALIB_BF16: return bf16_generic(iters, ops);
    default: return int8_generic(iters, ops);
    }
}

const char *sd_calib_kernel_isa(calib_kind k)
{
    if (!sd_calib_x86_supported(k)) return "generic";
    return k == CALIB_F32 ? "avx512" : k == CALIB_BF16 ? "avx512-bf16" : "avx512-vnni";
}
