/* Activation encoders (Q8_0, Q8_1, Q8_K, F16, BF16), byte-for-byte equal to
 * the generic ones in src/tensor: same float operations, same rounding (the
 * default MXCSR rounds to nearest even, as sd_nearest does). The 8-bit ones
 * follow ggml's rule (quants from x * 127/amax), as the reference does. */
#include "kernels/x86/simd.h"

static inline float amax_ps(__m256 m)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 floats times id, rounded, clamped to +-127, packed into 32 int8; returns their sum. */
static inline int pack32(const float *x, __m256 id, int8_t *dst)
{
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    __m256i i[4];
    for (int k = 0; k < 4; k++) {
        i[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id));
        i[k] = _mm256_min_epi32(_mm256_max_epi32(i[k], lo), hi);
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)dst, p);
    return hsum_epi32(s);
}

static inline __m256 absmax32(const float *x, int n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < n; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    return m;
}

static void act_q8_0(const float *src, void *dst, int64_t n)
{
    blk_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        const float *x = src + i * QK32;
        float amax = amax_ps(absmax32(x, QK32));
        b[i].d = _cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT);
        pack32(x, _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0), b[i].qs);
    }
}

static void act_q8_1(const float *src, void *dst, int64_t n)
{
    blk_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        const float *x = src + i * QK32;
        float amax = amax_ps(absmax32(x, QK32));
        float d = amax / 127.0f;
        b[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        int sum = pack32(x, _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0), b[i].qs);
        b[i].s = _cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

static void act_q8_k(const float *src, void *dst, int64_t n)
{
    blk_q8_k *b = dst;
    for (int64_t i = 0; i < n / QKK; i++) {
        const float *x = src + i * QKK;
        float amax = amax_ps(absmax32(x, QKK));
        b[i].d = amax / 127.0f;   /* ggml: 1/(127/amax), one ulp apart at most; kept for the GPU's sake */
        __m256 vid = _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0);
        for (int k = 0; k < QKK / 32; k++) pack32(x + 32 * k, vid, b[i].qs + 32 * k);
        for (int g = 0; g < 16; g++) {
            /* 16 bytes summed: widen to 16-bit and add pairs */
            __m128i q = _mm_loadu_si128((const __m128i *)(b[i].qs + 16 * g));
            __m256i w = _mm256_madd_epi16(_mm256_cvtepi8_epi16(q), _mm256_set1_epi16(1));
            b[i].bsums[g] = (int16_t)hsum_epi32(w);
        }
    }
}

static void act_f16(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) d[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

/* Round to nearest even on the bits, NaN kept quiet (as sd_f32_to_bf16). */
static void act_bf16(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    int64_t i = 0;
    const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int k = 0; k < 2; k++) {
            __m256i u = _mm256_loadu_si256((const __m256i *)(src + i + 8 * k));
            __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
            __m256i rn = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
            __m256i qn = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
            __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
            r[k] = _mm256_blendv_epi8(rn, qn, nan);
        }
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
        _mm256_storeu_si256((__m256i *)(d + i), p);
    }
    for (; i < n; i++) d[i] = sd_f32_to_bf16(src[i]);
}

static void register_act(sd_kernel_table *t)
{
    t->quantize_act[SD_TYPE_Q8_0] = act_q8_0;
    t->quantize_act[SD_TYPE_Q8_1] = act_q8_1;
    t->quantize_act[SD_TYPE_Q8_K] = act_q8_k;
    t->quantize_act[SD_TYPE_F16] = act_f16;
    t->quantize_act[SD_TYPE_BF16] = act_bf16;
}

/* ---- the way back: F16 and Q8_0 rows to F32 (KV cache reads) ---- */
static void deq_f16(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(s[i]);
}

static void deq_q8_0(const void *src, float *dst, int64_t n)
{
    const blk_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK32; i++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(b[i].d));
        for (int k = 0; k < 4; k++) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(b[i].qs + 8 * k));
            _mm256_storeu_ps(dst + 32 * i + 8 * k, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
        }
    }
}

static void register_deq(sd_kernel_table *t)
{
    t->to_float[SD_TYPE_F16] = deq_f16;
    t->to_float[SD_TYPE_Q8_0] = deq_q8_0;
}
