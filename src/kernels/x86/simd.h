/* 256-bit primitives shared by the x86 kernel bodies. The includer defines
 * SD_VNNI (1: AVX512-VNNI on ymm, 0: plain AVX2) before including this, and
 * compiles with the matching target flags (see the Makefile). Zen 4 runs
 * 512-bit operations as two 256-bit halves, so 256-bit bodies lose nothing
 * there and serve both levels from one source. */
#ifndef SD_X86_SIMD_H
#define SD_X86_SIMD_H

#include <immintrin.h>
#include <stdint.h>

#include "tensor/formats.h"

#ifndef SD_VNNI
#error "define SD_VNNI before including kernels/x86/simd.h"
#endif

/* acc + sum over groups of 4 of u8(u) * s8(s). u must be <= 128 for the AVX2
 * path, whose 16-bit pair sums would otherwise saturate. */
static inline __m256i dot_us(__m256i acc, __m256i u, __m256i s)
{
#if SD_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    __m256i p = _mm256_maddubs_epi16(u, s);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#endif
}

/* Signed times signed: move a's sign onto b (neither is -128 in practice;
 * abs(-128) reads as unsigned 128, still right). */
static inline __m256i dot_ss(__m256i acc, __m256i a, __m256i b)
{
    return dot_us(acc, _mm256_abs_epi8(a), _mm256_sign_epi8(b, a));
}

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float f16(uint16_t h) { return _cvtsh_ss(h); }

/* 16 packed nibbles -> 32 bytes: low nibbles first, then high nibbles
 * (the legacy 32-block layout). */
static inline __m256i nibbles32(const uint8_t *qs)
{
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
}

/* 32 bits -> 32 bytes, byte j = 0x10 if bit j is set (Q5's fifth bit). */
static inline __m256i bits32_to_bytes(uint32_t h)
{
    __m256i v = _mm256_set1_epi32((int)h);
    const __m256i sh = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                         0x0101010101010101, 0x0000000000000000);
    v = _mm256_shuffle_epi8(v, sh);   /* byte j holds byte j/8 of h */
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

static inline __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

#endif
