/* F16 x F16 and BF16 x BF16 dot products (activations already rounded to the
 * weight's format by the activation encoder), widened to F32 and fused. */
#include "kernels/x86/simd.h"

static float dot_f16(int64_t n, const void *vw, const void *vx)
{
    const uint16_t *w = vw, *x = vx;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8 * k))),
                                     _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8 * k))), acc[k]);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) s += f16(w[i]) * f16(x[i]);
    return s;
}

static inline __m256 bf16x8(const uint16_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

static float dot_bf16_widen(int64_t n, const void *vw, const void *vx)
{
    const uint16_t *w = vw, *x = vx;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) acc[k] = _mm256_fmadd_ps(bf16x8(w + i + 8 * k), bf16x8(x + i + 8 * k), acc[k]);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) s += sd_bf16_to_f32(w[i]) * sd_bf16_to_f32(x[i]);
    return s;
}

static void register_dot_float(sd_kernel_table *t)
{
    t->vec_dot[SD_TYPE_F16] = dot_f16;
    t->vec_dot[SD_TYPE_BF16] = dot_bf16_widen;
}
