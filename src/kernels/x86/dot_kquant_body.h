/* K-quant dot products against Q8_K. The levels are made unsigned (the
 * signed formats get an offset) so that each 32 values are one u8 x s8 dot;
 * sub-block scales multiply int32 lanes; the offsets and mins come from the
 * activation's bsums. One float FMA per 256 values. */
#include "kernels/x86/simd.h"

/* Eight int32 lanes: lanes 0-3 times s0, lanes 4-7 times s1 (two sub-blocks of 16). */
static inline __m256i scale2(__m256i p, int s0, int s1)
{
    return _mm256_mullo_epi32(p, _mm256_set_m128i(_mm_set1_epi32(s1), _mm_set1_epi32(s0)));
}

static inline __m256i m4b(void) { return _mm256_set1_epi8(0x0f); }

/* Q4_K / Q5_K share the 6-bit scale packing. */
static inline void sm6(const uint8_t s[12], int k, int *sc, int *mn)
{
    if (k < 4) { *sc = s[k] & 63; *mn = s[k + 4] & 63; }
    else {
        *sc = (s[k + 4] & 0x0f) | (s[k - 4] >> 6) << 4;
        *mn = (s[k + 4] >> 4) | (s[k] >> 6) << 4;
    }
}

static float dot_q4_k(int64_t n, const void *vw, const void *vx)
{
    const blk_q4_k *w = vw;
    const blk_q8_k *x = vx;
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        int sc[8], mn[8], msum = 0;
        for (int k = 0; k < 8; k++) {
            sm6(w[i].scales, k, &sc[k], &mn[k]);
            msum += mn[k] * (x[i].bsums[2 * k] + x[i].bsums[2 * k + 1]);
        }
        __m256i s = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i q = load256(w[i].qs + 32 * j);
            __m256i lo = _mm256_and_si256(q, m4b()), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4b());
            __m256i p0 = dot_us(_mm256_setzero_si256(), lo, load256(x[i].qs + 64 * j));
            __m256i p1 = dot_us(_mm256_setzero_si256(), hi, load256(x[i].qs + 64 * j + 32));
            s = _mm256_add_epi32(s, _mm256_mullo_epi32(p0, _mm256_set1_epi32(sc[2 * j])));
            s = _mm256_add_epi32(s, _mm256_mullo_epi32(p1, _mm256_set1_epi32(sc[2 * j + 1])));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16(w[i].d) * x[i].d), acc);
        mins += f16(w[i].dmin) * x[i].d * (float)msum;
    }
    return hsum_ps(acc) - mins;
}

static float dot_q5_k(int64_t n, const void *vw, const void *vx)
{
    const blk_q5_k *w = vw;
    const blk_q8_k *x = vx;
    const __m256i one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        int sc[8], mn[8], msum = 0;
        for (int k = 0; k < 8; k++) {
            sm6(w[i].scales, k, &sc[k], &mn[k]);
            msum += mn[k] * (x[i].bsums[2 * k] + x[i].bsums[2 * k + 1]);
        }
        __m256i h = load256(w[i].qh);
        __m256i s = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i q = load256(w[i].qs + 32 * j);
            __m256i lo = _mm256_and_si256(q, m4b()), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4b());
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(h, one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 1), one), 4));
            h = _mm256_srli_epi16(h, 2);
            __m256i p0 = dot_us(_mm256_setzero_si256(), lo, load256(x[i].qs + 64 * j));
            __m256i p1 = dot_us(_mm256_setzero_si256(), hi, load256(x[i].qs + 64 * j + 32));
            s = _mm256_add_epi32(s, _mm256_mullo_epi32(p0, _mm256_set1_epi32(sc[2 * j])));
            s = _mm256_add_epi32(s, _mm256_mullo_epi32(p1, _mm256_set1_epi32(sc[2 * j + 1])));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16(w[i].d) * x[i].d), acc);
        mins += f16(w[i].dmin) * x[i].d * (float)msum;
    }
    return hsum_ps(acc) - mins;
}

/* Q6_K: levels + 32 in 0..63; the offset is 32 * sum(sc * bsum). */
static float dot_q6_k(int64_t n, const void *vw, const void *vx)
{
    const blk_q6_k *w = vw;
    const blk_q8_k *x = vx;
    const __m256i three = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QKK; i++) {
        const int8_t *sc = w[i].scales;
        int off = 0;
        for (int k = 0; k < 16; k++) off += sc[k] * x[i].bsums[k];
        __m256i s = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i l0 = load256(w[i].ql + 64 * h), l1 = load256(w[i].ql + 64 * h + 32);
            __m256i qh = load256(w[i].qh + 32 * h);
            __m256i lows[4] = {_mm256_and_si256(l0, m4b()), _mm256_and_si256(l1, m4b()),
                               _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4b()),
                               _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4b())};
            for (int g = 0; g < 4; g++) {
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), three);
                __m256i q = _mm256_or_si256(lows[g], _mm256_slli_epi16(hb, 4));
                __m256i p = dot_us(_mm256_setzero_si256(), q, load256(x[i].qs + 128 * h + 32 * g));
                int k = 8 * h + 2 * g;
                s = _mm256_add_epi32(s, scale2(p, sc[k], sc[k + 1]));
            }
        }
        s = _mm256_sub_epi32(s, _mm256_setr_epi32(32 * off, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16(w[i].d) * x[i].d), acc);
    }
    return hsum_ps(acc);
}

/* Q2_K: levels 0..3 at bits 2j of qs[32h + l]; scale low nibble, min high
 * nibble. Per 32 values: 16-bit pair sums (maddubs), then one madd against
 * the two sub-block scales, which a byte shuffle spreads over the 16-bit lanes
 * (low 128 bits: scale k, high: scale k + 1). The mins use the bsums in one
 * madd. */
static float dot_q2_k(int64_t n, const void *vw, const void *vx)
{
    const blk_q2_k *w = vw;
    const blk_q8_k *x = vx;
    const __m256i three = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        __m128i sb = _mm_loadu_si128((const __m128i *)w[i].scales);
        __m128i sc = _mm_and_si128(sb, _mm_set1_epi8(0x0f)), mn = _mm_and_si128(_mm_srli_epi16(sb, 4), _mm_set1_epi8(0x0f));
        __m256i mprod = _mm256_madd_epi16(_mm256_cvtepu8_epi16(mn), load256(x[i].bsums));
        int msum = hsum_epi32(mprod);
        __m256i sc2 = _mm256_broadcastsi128_si256(sc);
        __m256i s = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q = load256(w[i].qs + 32 * h);
            for (int j = 0; j < 4; j++) {
                int k = 8 * h + 2 * j;
                __m256i l = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), three);
                __m256i p = _mm256_maddubs_epi16(l, load256(x[i].qs + 128 * h + 32 * j));
                /* bytes k (low half) and k+1 (high half) into every 16-bit lane, high byte zero */
                long long lo = (long long)((0x8000ULL | (unsigned)k) * 0x0001000100010001ULL);
                long long hi = (long long)((0x8000ULL | (unsigned)(k + 1)) * 0x0001000100010001ULL);
                const __m256i pick = _mm256_set_epi64x(hi, hi, lo, lo);
                s = _mm256_add_epi32(s, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc2, pick)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16(w[i].d) * x[i].d), acc);
        mins += f16(w[i].dmin) * x[i].d * (float)msum;
    }
    return hsum_ps(acc) - mins;
}

/* Q3_K: levels + 4 in 0..7 (third bit from hmask); offset 4 * sum(sc * bsum). */
static float dot_q3_k(int64_t n, const void *vw, const void *vx)
{
    const blk_q3_k *w = vw;
    const blk_q8_k *x = vx;
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QKK; i++) {
        const uint8_t *b = w[i].scales;
        int sc[16], off = 0;
        for (int k = 0; k < 16; k++) {
            int lo = k < 8 ? b[k] & 0x0f : b[k - 8] >> 4;
            int hi = (b[8 + k % 4] >> (2 * (k / 4))) & 3;
            sc[k] = (lo | hi << 4) - 32;
            off += sc[k] * x[i].bsums[k];
        }
        __m256i hm = load256(w[i].hmask);
        __m256i s = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q = load256(w[i].qs + 32 * h);
            for (int j = 0; j < 4; j++) {
                __m256i l = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), three);
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), one);
                l = _mm256_or_si256(l, _mm256_slli_epi16(hb, 2));
                __m256i p = dot_us(_mm256_setzero_si256(), l, load256(x[i].qs + 128 * h + 32 * j));
                int k = 8 * h + 2 * j;
                s = _mm256_add_epi32(s, scale2(p, sc[k], sc[k + 1]));
            }
        }
        s = _mm256_sub_epi32(s, _mm256_setr_epi32(4 * off, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16(w[i].d) * x[i].d), acc);
    }
    return hsum_ps(acc);
}

static void register_dot_kquant(sd_kernel_table *t)
{
    t->vec_dot[SD_TYPE_Q2_K] = dot_q2_k;
    t->vec_dot[SD_TYPE_Q3_K] = dot_q3_k;
    t->vec_dot[SD_TYPE_Q4_K] = dot_q4_k;
    t->vec_dot[SD_TYPE_Q5_K] = dot_q5_k;
    t->vec_dot[SD_TYPE_Q6_K] = dot_q6_k;
}
