/* Body of the legacy and FP4 NEON kernels and of the activation encoders,
 * included by quant_neon.c (SD_NEON_DOT 1) and quant_asimd.c (SD_NEON_DOT 0).
 * Everything is static: each including file gets its own copy.
 * Integer sums are exact; per-block float results are accumulated in float
 * vectors (the generic kernels use double, so results agree to ~1e-6). */
#ifndef SD_NEON_DOT
#error "define SD_NEON_DOT before including quant_body.h"
#endif
#include <arm_neon.h>
#include <string.h>

#include "kernels/arm/neon_kernels.h"
#include "tensor/formats.h"

/* Adds the products of 16 int8 pairs into acc. Lane positions differ between
 * the two versions, so callers only ever reduce whole accumulators. */
static inline int32x4_t dot_s8(int32x4_t acc, int8x16_t a, int8x16_t b)
{
#if SD_NEON_DOT
    return vdotq_s32(acc, a, b);
#else
    int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));   /* |p| <= 2^14 */
    int16x8_t hi = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

/* FP16 scale to float: a hardware conversion, bit-equal to sd_f16_to_f32. */
static inline float h2f(uint16_t h)
{
    __fp16 f;
    memcpy(&f, &h, 2);
    return (float)f;
}

/* ---- activation encoders (bit-equal to the generic from_float) ---- */

static inline float absmax_f32(const float *x, int n)
{
    float32x4_t m = vdupq_n_f32(0);
    for (int j = 0; j < n; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + j)));
    return vmaxvq_f32(m);
}

/* 16 floats times id, rounded to nearest even, clamped to +-127. */
static inline int8x16_t round16(const float *x, float id)
{
    int32x4_t q[4];
    for (int k = 0; k < 4; k++) {
        q[k] = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4 * k), id));
        q[k] = vmaxq_s32(vminq_s32(q[k], vdupq_n_s32(127)), vdupq_n_s32(-127));
    }
    int16x8_t a = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
    int16x8_t b = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
    return vcombine_s8(vmovn_s16(a), vmovn_s16(b));
}

static void q8_0_quantize(const float *src, void *dst, int64_t n)
{
    blk_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        const float *x = src + i * QK32;
        float amax = absmax_f32(x, QK32);
        __fp16 dh = (__fp16)(amax / 127.0f);   /* RNE, as sd_f32_to_f16 */
        memcpy(&b[i].d, &dh, 2);
        float id = amax != 0 ? 127.0f / amax : 0;   /* ggml's rule, as sd_q8_0_quantize_act */
        vst1q_s8(b[i].qs, round16(x, id));
        vst1q_s8(b[i].qs + 16, round16(x + 16, id));
    }
}

static void q8_k_quantize(const float *src, void *dst, int64_t n)
{
    blk_q8_k *b = dst;
    for (int64_t i = 0; i < n / QKK; i++) {
        const float *x = src + i * QKK;
        float amax = absmax_f32(x, QKK);
        b[i].d = amax / 127.0f;
        float id = amax != 0 ? 127.0f / amax : 0;
        for (int g = 0; g < 16; g++) {
            int8x16_t q = round16(x + 16 * g, id);
            vst1q_s8(b[i].qs + 16 * g, q);
            b[i].bsums[g] = (int16_t)vaddlvq_s8(q);
        }
    }
}

/* ---- weights against Q8_0 activations ---- */

static float q8_0_vdot(int64_t n, const void *w, const void *x)
{
    const blk_q8_0 *a = w, *b = x;
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t i = 0; i < n / QK32; i++) {
        int32x4_t p = dot_s8(vdupq_n_s32(0), vld1q_s8(a[i].qs), vld1q_s8(b[i].qs));
        p = dot_s8(p, vld1q_s8(a[i].qs + 16), vld1q_s8(b[i].qs + 16));
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), h2f(a[i].d) * h2f(b[i].d));
    }
    return vaddvq_f32(acc);
}

static float q4_0_vdot(int64_t n, const void *w, const void *x)
{
    const blk_q4_0 *a = w;
    const blk_q8_0 *b = x;
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    const int8x16_t s8 = vdupq_n_s8(8);
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t i = 0; i < n / QK32; i++) {
        uint8x16_t q = vld1q_u8(a[i].qs);
        int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), s8);
        int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), s8);
        int32x4_t p = dot_s8(vdupq_n_s32(0), lo, vld1q_s8(b[i].qs));
        p = dot_s8(p, hi, vld1q_s8(b[i].qs + 16));
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), h2f(a[i].d) * h2f(b[i].d));
    }
    return vaddvq_f32(acc);
}

/* Twice the E2M1 values (integers), as in tensor/fp4.c. */
static const int8_t e2m1x2_tbl[16] = { 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12 };

/* Half of 2^(e-127), exact (the subnormal results written out). */
static inline float e8m0_half_f(uint8_t e)
{
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float mxfp4_vdot(int64_t n, const void *w, const void *x)
{
    const blk_mxfp4 *a = w;
    const blk_q8_0 *b = x;
    const int8x16_t tbl = vld1q_s8(e2m1x2_tbl);
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t i = 0; i < n / QK32; i++) {
        uint8x16_t q = vld1q_u8(a[i].qs);
        int8x16_t lo = vqtbl1q_s8(tbl, vandq_u8(q, m4));
        int8x16_t hi = vqtbl1q_s8(tbl, vshrq_n_u8(q, 4));
        int32x4_t p = dot_s8(vdupq_n_s32(0), lo, vld1q_s8(b[i].qs));
        p = dot_s8(p, hi, vld1q_s8(b[i].qs + 16));
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), e8m0_half_f(a[i].e) * h2f(b[i].d));
    }
    return vaddvq_f32(acc);
}

/* IQ4_NL: the 16 int8 levels of tensor/iq4_nl.c looked up by index. */
static const int8_t iq4nl_tbl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static float iq4_nl_vdot(int64_t n, const void *w, const void *x)
{
    const blk_iq4_nl *a = w;
    const blk_q8_0 *b = x;
    const int8x16_t tbl = vld1q_s8(iq4nl_tbl);
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t i = 0; i < n / QK32; i++) {
        uint8x16_t q = vld1q_u8(a[i].qs);
        int8x16_t lo = vqtbl1q_s8(tbl, vandq_u8(q, m4));
        int8x16_t hi = vqtbl1q_s8(tbl, vshrq_n_u8(q, 4));
        int32x4_t p = dot_s8(vdupq_n_s32(0), lo, vld1q_s8(b[i].qs));
        p = dot_s8(p, hi, vld1q_s8(b[i].qs + 16));
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), h2f(a[i].d) * h2f(b[i].d));
    }
    return vaddvq_f32(acc);
}

/* Half of an unsigned E4M3 scale (bias 7, subnormals, 0x7f and up NaN),
 * built from its bits: normal codes are (1 + m/8) * 2^(e-7). */
static inline float ue4m3_half_f(uint8_t c)
{
    if (c >= 0x7f) return NAN;
    uint32_t e = c >> 3, m = c & 7;
    if (e == 0) return (float)m * (1.0f / 1024.0f);
    uint32_t bits = (e + 119) << 23 | m << 20;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Each 16 bytes of qs hold sub-blocks 2h and 2h+1: their low nibbles are
 * values 0..7 of each, their high nibbles values 8..15. The four sub-block
 * sums go into one vector and meet their four scales in one multiply. */
static float nvfp4_vdot(int64_t n, const void *w, const void *x)
{
    const blk_nvfp4 *a = w;
    const blk_q8_0 *b = x;
    const int8x16_t tbl = vld1q_s8(e2m1x2_tbl);
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t i = 0; i < n / QKNV; i++) {
        int32x4_t p[4];
        for (int h = 0; h < 2; h++) {
            uint8x16_t q = vld1q_u8(a[i].qs + 16 * h);
            int8x16_t lo = vqtbl1q_s8(tbl, vandq_u8(q, m4));
            int8x16_t hi = vqtbl1q_s8(tbl, vshrq_n_u8(q, 4));
            int8x16_t s0 = vcombine_s8(vget_low_s8(lo), vget_low_s8(hi));
            int8x16_t s1 = vcombine_s8(vget_high_s8(lo), vget_high_s8(hi));
            const blk_q8_0 *xb = &b[2 * i + h];
            p[2 * h]     = dot_s8(vdupq_n_s32(0), s0, vld1q_s8(xb->qs));
            p[2 * h + 1] = dot_s8(vdupq_n_s32(0), s1, vld1q_s8(xb->qs + 16));
        }
        int32x4_t s = vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
        float dx0 = h2f(b[2 * i].d), dx1 = h2f(b[2 * i + 1].d);
        float sc[4] = { ue4m3_half_f(a[i].d[0]) * dx0, ue4m3_half_f(a[i].d[1]) * dx0,
                        ue4m3_half_f(a[i].d[2]) * dx1, ue4m3_half_f(a[i].d[3]) * dx1 };
        acc = vmlaq_f32(acc, vcvtq_f32_s32(s), vld1q_f32(sc));
    }
    return vaddvq_f32(acc);
}

static void fill_quant(sd_kernel_table *t)
{
    t->quantize_act[SD_TYPE_Q8_0] = q8_0_quantize;
    t->quantize_act[SD_TYPE_Q8_K] = q8_k_quantize;
    t->vec_dot[SD_TYPE_Q8_0] = q8_0_vdot;
    t->vec_dot[SD_TYPE_Q4_0] = q4_0_vdot;
    t->vec_dot[SD_TYPE_MXFP4] = mxfp4_vdot;
    t->vec_dot[SD_TYPE_IQ4_NL] = iq4_nl_vdot;
    t->vec_dot[SD_TYPE_NVFP4] = nvfp4_vdot;
}
