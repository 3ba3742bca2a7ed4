/* Half-precision scalars (IEEE binary16, bfloat16) and the three plain float
 * formats F32, F16, BF16: conversion rows and their dot products. */
#include <string.h>

#include "tensor/formats.h"

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float sd_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)                       /* inf / NaN: keep the payload */
        return bits_f32(sign | 0x7f800000 | (man << 13));
    if (exp == 0) {                        /* zero or subnormal: man * 2^-24, exact */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t sd_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffff;
    if (a > 0x7f800000)                    /* NaN: quiet, keep top payload bits */
        return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000)                   /* >= 65520 rounds to infinity */
        return (uint16_t)(sign | 0x7c00);
    if (a >= 0x38800000) {                 /* normal half: rebias, round to nearest even */
        uint32_t r = a - 0x38000000;
        r += 0xfff + ((r >> 13) & 1);
        return (uint16_t)(sign | (r >> 13));
    }
    if (a <= 0x33000000)                   /* <= 2^-25: zero (the tie goes to even 0) */
        return sign;
    /* subnormal half: count units of 2^-24, round to nearest even */
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;              /* 14..24 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

float sd_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t sd_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000)     /* NaN: truncate and force quiet */
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---- F32 ---- */
static void f32_to_float(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
static void f32_from_float(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

/* Eight independent partial sums: short dependency chains, and the compiler
 * may vectorize them; the blocks are folded in double. */
static float f32_dot(int64_t n, const void *w, const void *x)
{
    const float *a = w, *b = x;
    double sum = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float acc[8];
        for (int k = 0; k < 8; k++) acc[k] = a[i + k] * b[i + k];
        sum += (double)((acc[0] + acc[4]) + (acc[1] + acc[5])) + (double)((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }
    for (; i < n; i++) sum += (double)a[i] * b[i];
    return (float)sum;
}

/* ---- F16 ---- */
static void f16_to_float(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = sd_f16_to_f32(s[i]);
}
static void f16_from_float(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = sd_f32_to_f16(src[i]);
}
/* Both sides F16: each product of two halves is exact in float. */
static float f16_dot(int64_t n, const void *w, const void *x)
{
    const uint16_t *a = w, *b = x;
    double sum = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float acc = 0;
        for (int k = 0; k < 8; k++) acc += sd_f16_to_f32(a[i + k]) * sd_f16_to_f32(b[i + k]);
        sum += acc;
    }
    for (; i < n; i++) sum += (double)sd_f16_to_f32(a[i]) * sd_f16_to_f32(b[i]);
    return (float)sum;
}

/* ---- BF16 ---- */
static void bf16_to_float(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = sd_bf16_to_f32(s[i]);
}
static void bf16_from_float(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = sd_f32_to_bf16(src[i]);
}
static float bf16_dot(int64_t n, const void *w, const void *x)
{
    const uint16_t *a = w, *b = x;
    double sum = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float acc = 0;
        for (int k = 0; k < 8; k++) acc += sd_bf16_to_f32(a[i + k]) * sd_bf16_to_f32(b[i + k]);
        sum += acc;
    }
    for (; i < n; i++) sum += (double)sd_bf16_to_f32(a[i]) * sd_bf16_to_f32(b[i]);
    return (float)sum;
}

const sd_type_traits sd_traits_f32  = { "F32",  1, 4, f32_to_float,  f32_from_float,  SD_TYPE_F32,  f32_dot,  0 };
const sd_type_traits sd_traits_f16  = { "F16",  1, 2, f16_to_float,  f16_from_float,  SD_TYPE_F16,  f16_dot,  0 };
const sd_type_traits sd_traits_bf16 = { "BF16", 1, 2, bf16_to_float, bf16_from_float, SD_TYPE_BF16, bf16_dot, 0 };
