/* Dot products of the 32-block formats (and the FP4 formats) against Q8_0 /
 * Q8_1 activations: one ymm of int8 products per block, scaled in float. */
#include "kernels/x86/simd.h"

/* Two blocks per step into two accumulators (plain variables, so they stay
 * in registers): the block loop is otherwise latency-bound on the FMA. */
#define LEGACY_DOT(name, WBLK, XBLK, BLOCK_EXPR)                                   \
    static inline __m256 name##_blk(const WBLK *a, const XBLK *b, __m256 acc)      \
    {                                                                              \
        BLOCK_EXPR;                                                                \
        return acc;                                                                \
    }                                                                              \
    static float name(int64_t n, const void *vw, const void *vx)                   \
    {                                                                              \
        const WBLK *w = vw;                                                        \
        const XBLK *x = vx;                                                        \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();            \
        int64_t nb = n / QK32, i = 0;                                              \
        for (; i + 2 <= nb; i += 2) {                                              \
            acc0 = name##_blk(&w[i], &x[i], acc0);                                 \
            acc1 = name##_blk(&w[i + 1], &x[i + 1], acc1);                         \
        }                                                                          \
        if (i < nb) acc0 = name##_blk(&w[i], &x[i], acc0);                         \
        return hsum_ps(_mm256_add_ps(acc0, acc1));                                 \
    }

static inline __m256 fmadd_i(__m256i p, float s, __m256 acc)
{
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(s), acc);
}

LEGACY_DOT(dot_q8_0, blk_q8_0, blk_q8_0,
    acc = fmadd_i(dot_ss(_mm256_setzero_si256(), load256(a->qs), load256(b->qs)), f16(a->d) * f16(b->d), acc))

LEGACY_DOT(dot_q4_0, blk_q4_0, blk_q8_0,
    __m256i q = _mm256_sub_epi8(nibbles32(a->qs), _mm256_set1_epi8(8));
    acc = fmadd_i(dot_ss(_mm256_setzero_si256(), q, load256(b->qs)), f16(a->d) * f16(b->d), acc))

/* sum(w*x) = d_w*d_x*sum(q*qx) + m_w*d_x*sum(qx), sum(qx) counted exactly. */
LEGACY_DOT(dot_q4_1, blk_q4_1, blk_q8_1,
    __m256i xq = load256(b->qs);
    float dx = f16(b->d);
    __m256i p = dot_us(_mm256_setzero_si256(), nibbles32(a->qs), xq);
    __m256i s = dot_us(_mm256_setzero_si256(), _mm256_set1_epi8(1), xq);
    acc = fmadd_i(p, f16(a->d) * dx, acc);
    acc = fmadd_i(s, f16(a->m) * dx, acc))

static inline __m256i q5_levels(const uint8_t *qs, const uint8_t *qh)
{
    uint32_t h;
    memcpy(&h, qh, 4);
    return _mm256_or_si256(nibbles32(qs), bits32_to_bytes(h));
}

LEGACY_DOT(dot_q5_0, blk_q5_0, blk_q8_0,
    __m256i q = _mm256_sub_epi8(q5_levels(a->qs, a->qh), _mm256_set1_epi8(16));
    acc = fmadd_i(dot_ss(_mm256_setzero_si256(), q, load256(b->qs)), f16(a->d) * f16(b->d), acc))

LEGACY_DOT(dot_q5_1, blk_q5_1, blk_q8_1,
    __m256i xq = load256(b->qs);
    float dx = f16(b->d);
    __m256i p = dot_us(_mm256_setzero_si256(), q5_levels(a->qs, a->qh), xq);
    __m256i s = dot_us(_mm256_setzero_si256(), _mm256_set1_epi8(1), xq);
    acc = fmadd_i(p, f16(a->d) * dx, acc);
    acc = fmadd_i(s, f16(a->m) * dx, acc))

/* ---- FP4: E2M1 codes looked up as doubled integers (0, +-1 .. +-12) ---- */
static inline __m256i e2m1_lut(void)
{
    return _mm256_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
                            0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
}

/* E8M0 scale, halved (the table holds doubled values): 2^(e-128). */
static inline float e8m0_half(uint8_t e)
{
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

LEGACY_DOT(dot_mxfp4, blk_mxfp4, blk_q8_0,
    __m256i v = _mm256_shuffle_epi8(e2m1_lut(), nibbles32(a->qs));
    acc = fmadd_i(dot_ss(_mm256_setzero_si256(), v, load256(b->qs)), e8m0_half(a->e) * f16(b->d), acc))

/* Unsigned E4M3, halved; 0x7f and above are NaN. Filled at registration. */
static float ue4m3_half_tab[256];

static void init_ue4m3(void)
{
    for (int c = 0; c < 256; c++) {
        int e = (c >> 3) & 0x0f, m = c & 7;
        float v = e == 0 ? (float)m * (1.0f / 512.0f) : ldexpf(1.0f + (float)m / 8.0f, e - 7);
        ue4m3_half_tab[c] = c >= 0x7f ? NAN : 0.5f * v;
    }
}

/* NVFP4: 64 values = 4 sub-blocks of 16 against two Q8_0 blocks. Sub-blocks
 * 2k and 2k+1 fill one ymm: [lo nibbles, hi nibbles] of each 8 bytes. */
static float dot_nvfp4(int64_t n, const void *vw, const void *vx)
{
    const blk_nvfp4 *w = vw;
    const blk_q8_0 *x = vx;
    const __m256i lut = e2m1_lut(), m4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QKNV; i++) {
        for (int h = 0; h < 2; h++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(w[i].qs + 16 * h));
            __m128i lo = _mm_and_si128(v, _mm256_castsi256_si128(m4));
            __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm256_castsi256_si128(m4));
            __m256i c = _mm256_set_m128i(_mm_unpackhi_epi64(lo, hi), _mm_unpacklo_epi64(lo, hi));
            __m256i q = _mm256_shuffle_epi8(lut, c);
            const blk_q8_0 *b = &x[2 * i + h];
            __m256i p = dot_ss(_mm256_setzero_si256(), q, load256(b->qs));
            float dx = f16(b->d);
            __m256 s = _mm256_set_m128(_mm_set1_ps(ue4m3_half_tab[w[i].d[2 * h + 1]] * dx),
                                       _mm_set1_ps(ue4m3_half_tab[w[i].d[2 * h]] * dx));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc);
        }
    }
    return hsum_ps(acc);
}

static void register_dot_legacy(sd_kernel_table *t)
{
    init_ue4m3();
    t->vec_dot[SD_TYPE_Q8_0] = dot_q8_0;
    t->vec_dot[SD_TYPE_Q4_0] = dot_q4_0;
    t->vec_dot[SD_TYPE_Q4_1] = dot_q4_1;
    t->vec_dot[SD_TYPE_Q5_0] = dot_q5_0;
    t->vec_dot[SD_TYPE_Q5_1] = dot_q5_1;
    t->vec_dot[SD_TYPE_MXFP4] = dot_mxfp4;
    t->vec_dot[SD_TYPE_NVFP4] = dot_nvfp4;
}
