/* F32, F16 and BF16 dot products in plain ARMv8 NEON. Halves are widened to
 * float (FCVTL, no FP16 arithmetic needed): a product of two halves is exact
 * in float, so only the float accumulation differs from the generic kernel. */
#include <arm_neon.h>
#include <string.h>

#include "kernels/arm/neon_kernels.h"

static inline float h2f(uint16_t h) { __fp16 f; memcpy(&f, &h, 2); return (float)f; }
static inline float b2f(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }

/* Four accumulators hide the FMA latency. */
static float f32_vdot(int64_t n, const void *w, const void *x)
{
    const float *a = w, *b = x;
    float32x4_t acc[4] = { vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0) };
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++)
            acc[k] = vfmaq_f32(acc[k], vld1q_f32(a + i + 4 * k), vld1q_f32(b + i + 4 * k));
    for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], vld1q_f32(a + i), vld1q_f32(b + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static float f16_vdot(int64_t n, const void *w, const void *x)
{
    const uint16_t *a = w, *b = x;
    float32x4_t acc[4] = { vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0) };
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 2; k++) {
            float16x8_t va = vreinterpretq_f16_u16(vld1q_u16(a + i + 8 * k));
            float16x8_t vb = vreinterpretq_f16_u16(vld1q_u16(b + i + 8 * k));
            acc[2 * k] = vfmaq_f32(acc[2 * k], vcvt_f32_f16(vget_low_f16(va)), vcvt_f32_f16(vget_low_f16(vb)));
            acc[2 * k + 1] = vfmaq_f32(acc[2 * k + 1], vcvt_high_f32_f16(va), vcvt_high_f32_f16(vb));
        }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++) s += h2f(a[i]) * h2f(b[i]);
    return s;
}

/* BF16 is the top half of a float: widening by a 16-bit shift is exact. */
static float bf16_vdot(int64_t n, const void *w, const void *x)
{
    const uint16_t *a = w, *b = x;
    float32x4_t acc[4] = { vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0) };
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 2; k++) {
            uint16x8_t va = vld1q_u16(a + i + 8 * k), vb = vld1q_u16(b + i + 8 * k);
            float32x4_t al = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(va), 16));
            float32x4_t bl = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(vb), 16));
            float32x4_t ah = vreinterpretq_f32_u32(vshll_high_n_u16(va, 16));
            float32x4_t bh = vreinterpretq_f32_u32(vshll_high_n_u16(vb, 16));
            acc[2 * k] = vfmaq_f32(acc[2 * k], al, bl);
            acc[2 * k + 1] = vfmaq_f32(acc[2 * k + 1], ah, bh);
        }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++) s += b2f(a[i]) * b2f(b[i]);
    return s;
}

void sd_kernels_register_neon_float(sd_kernel_table *t)
{
    t->vec_dot[SD_TYPE_F32] = f32_vdot;
    t->vec_dot[SD_TYPE_F16] = f16_vdot;
    t->vec_dot[SD_TYPE_BF16] = bf16_vdot;
}
