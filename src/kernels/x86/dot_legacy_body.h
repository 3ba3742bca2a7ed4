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

/* sum(w*x) = d_w*d_x*sum(q*qx) + m_w*s, s = F16(d_x*sum(qx)) stored by the
 * Q8_1 encoder, as ggml (and the generic q4_1_dot) compute it. */
static inline __m256 add_lane0(__m256 acc, float v)
{
    return _mm256_add_ps(acc, _mm256_setr_ps(v, 0, 0, 0, 0, 0, 0, 0));
}

LEGACY_DOT(dot_q4_1, blk_q4_1, blk_q8_1,
    __m256i p = dot_us(_mm256_setzero_si256(), nibbles32(a->qs), load256(b->qs));
    acc = fmadd_i(p, f16(a->d) * f16(b->d), acc);
    acc = add_lane0(acc, f16(a->m) * f16(b->s)))

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
    __m256i p = dot_us(_mm256_setzero_si256(), q5_levels(a->qs, a->qh), load256(b->qs));
    acc = fmadd_i(p, f16(a->d) * f16(b->d), acc);
    acc = add_lane0(acc, f16(a->m) * f16(b->s)))

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

/* IQ4_NL: the 16 int8 levels of tensor/iq4_nl.c looked up by index. */
static inline __m256i iq4nl_lut(void)
{
    return _mm256_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
                            -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
}

LEGACY_DOT(dot_iq4_nl, blk_iq4_nl, blk_q8_0,
    __m256i v = _mm256_shuffle_epi8(iq4nl_lut(), nibbles32(a->qs));
    acc = fmadd_i(dot_ss(_mm256_setzero_si256(), v, load256(b->qs)), f16(a->d) * f16(b->d), acc))

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

#if SD_VNNI && defined(__AVX512F__)   /* the AVX-512 table only (-march=native defines it for both) */
/* NVFP4, four blocks per step. The sixteen scales of four blocks (times the
 * activation scales) are built once as one zmm: UE4M3 code << 20 is, as float
 * bits, the value with its exponent off by a constant, so an integer add
 * converts the normal codes; a permute hands each block its four. Per
 * block one zmm is 64 values, each 128-bit lane a sub-block: the codes of 8
 * bytes in lane order (low nibbles, high nibbles). The levels get +12 so they
 * are unsigned, and 12 * sum(x) comes off with a second vpdpbusd. */
static float dot_nvfp4_zmm(int64_t n, const void *vw, const void *vx)
{
    const blk_nvfp4 *w = vw;
    const blk_q8_0 *x = vx;
    const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
    const __m512i m4 = _mm512_set1_epi8(0x0f), twelve = _mm512_set1_epi8(12);
    const __m512i spread = _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0), nibsh = _mm512_set_epi64(4, 0, 4, 0, 4, 0, 4, 0);
    const __m512i dsp = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i quad = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t nb = n / QKNV, i = 0;
    for (; i + 4 <= nb; i += 4) {
        const blk_nvfp4 *a = w + i;
        const blk_q8_0 *b = x + 2 * i;
        uint32_t c[4];
        for (int k = 0; k < 4; k++) memcpy(&c[k], a[k].d, 4);
        __m512i ci = _mm512_cvtepu8_epi32(_mm_setr_epi32((int)c[0], (int)c[1], (int)c[2], (int)c[3]));
        /* Normal codes (e > 0): exponent rebased, exact. Subnormal codes give
         * 2^-8 + m * 2^-11 that way, so 2 * (that - 2^-8) = m * 2^-10. */
        __m512 sv = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_slli_epi32(ci, 20), _mm512_set1_epi32(119 << 23)));
        sv = _mm512_mask_fmsub_ps(sv, _mm512_testn_epi32_mask(ci, _mm512_set1_epi32(0x78)), _mm512_set1_ps(2.0f),
                                  _mm512_set1_ps(0x1p-7f));
        sv = _mm512_mask_mov_ps(sv, _mm512_cmpge_epu32_mask(ci, _mm512_set1_epi32(0x7f)), _mm512_set1_ps(NAN));
        __m128i dh = _mm_setr_epi16((short)b[0].d, (short)b[1].d, (short)b[2].d, (short)b[3].d,
                                    (short)b[4].d, (short)b[5].d, (short)b[6].d, (short)b[7].d);
        __m512 sd = _mm512_mul_ps(sv, _mm512_permutexvar_ps(dsp, _mm512_castps256_ps512(_mm256_cvtph_ps(dh))));
        for (int k = 0; k < 4; k++) {
            __m512i z = _mm512_permutexvar_epi64(spread, _mm512_castsi256_si512(load256(a[k].qs)));
            __m512i wu = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srlv_epi64(z, nibsh), m4));
            __m512i xx = _mm512_inserti64x4(_mm512_castsi256_si512(load256(b[2 * k].qs)), load256(b[2 * k + 1].qs), 1);
            __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wu, xx),
                                         _mm512_dpbusd_epi32(_mm512_setzero_si512(), twelve, xx));
            __m512 sk = _mm512_permutexvar_ps(_mm512_add_epi32(quad, _mm512_set1_epi32(4 * k)), sd);
            if (k % 2) acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sk, acc1);
            else acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sk, acc0);
        }
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    if (i < nb) s += dot_nvfp4(n - i * QKNV, w + i, x + 2 * i);
    return s;
}
#endif

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
    t->vec_dot[SD_TYPE_IQ4_NL] = dot_iq4_nl;
#if SD_VNNI && defined(__AVX512F__)
    t->vec_dot[SD_TYPE_NVFP4] = dot_nvfp4_zmm;
#endif
}
