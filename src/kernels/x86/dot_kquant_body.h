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

#if SD_VNNI && defined(__AVX512F__)   /* the AVX-512 table only (-march=native defines it for both) */
/* ---- 512-bit super-block kernels (the AVX-512 table) ----
 * Per 64 values: maddubs gives 16-bit pair sums, vpdpwssd multiplies them by
 * the sub-block scale (spread over the 16-bit lanes by one pshufb of the
 * broadcast scale bytes) and adds into int32: the sub-block scaling costs one
 * instruction. d * x.d and dmin * x.d come from one vcvtph2ps. */

/* [f16 a, f16 b] (adjacent) times xd: a * xd in every lane of the zmm, b * xd in *bd. */
static inline __m512 dd_zmm(const uint16_t *ab, float xd, __m256 *bd)
{
    uint32_t u;
    memcpy(&u, ab, 4);
    __m128 f = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)u)), _mm_set1_ps(xd));
    *bd = _mm256_broadcastss_ps(_mm_movehdup_ps(f));
    return _mm512_broadcastss_ps(f);
}

/* Q4_K / Q5_K: the 12 scale bytes to [sc0..7, mn0..7] as 16 bytes (the
 * 6-bit unpacking on 32-bit words, four sub-blocks at a time). */
static inline __m128i sm6_vec(const uint8_t s[12])
{
    uint32_t u[3];
    memcpy(u, s, 12);
    const uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
    uint32_t sc_lo = u[0] & k6, mn_lo = u[1] & k6;
    uint32_t sc_hi = (u[2] & k4) | ((u[0] >> 6) & k2) << 4;
    uint32_t mn_hi = ((u[2] >> 4) & k4) | ((u[1] >> 6) & k2) << 4;
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)mn_lo, (int)mn_hi);
}

/* 16-bit lanes of the low 256 bits = byte a of each 128-bit lane, high 256 bits = byte b. */
static inline __m512i pick2(int a, int b)
{
    long long la = (long long)((0x8000ULL | (unsigned)a) * 0x0001000100010001ULL);
    long long lb = (long long)((0x8000ULL | (unsigned)b) * 0x0001000100010001ULL);
    return _mm512_set_epi64(lb, lb, lb, lb, la, la, la, la);
}

/* Mins: sum_k mn[k] * (bsums[2k] + bsums[2k+1]) as 8 int32, mn at bytes 8..15. */
static inline __m256i kmins(__m128i scmn, const int16_t *bsums)
{
    const __m256i pick = _mm256_setr_epi8(8, -1, 8, -1, 9, -1, 9, -1, 10, -1, 10, -1, 11, -1, 11, -1,
                                          12, -1, 12, -1, 13, -1, 13, -1, 14, -1, 14, -1, 15, -1, 15, -1);
    __m256i mn16 = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(scmn), pick);
    return _mm256_madd_epi16(mn16, load256(bsums));
}

/* Nibbles of 32 bytes against 64 activations: [low nibbles, high nibbles]. */
static inline __m512i nib64(const uint8_t *q)
{
    __m256i v = load256(q);
    return _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1),
                            _mm512_set1_epi8(0x0f));
}

/* One Q4_K / Q5_K super-block (qh NULL for Q4_K). 64 weight bytes: low
 * nibbles are sub-blocks 4h and 4h+2 (activations 128h + 0 and + 64), high
 * nibbles 4h+1 and 4h+3 (+ 32 and + 96). Q5's fifth bit of sub-block k is
 * bit k of qh[l]: a 64-bit rotate by 4 - k brings it to bit 4 of every byte. */
static inline void q45_zmm(const uint16_t *dd, const uint8_t *scales, const uint8_t *q, const uint8_t *qh,
                           const blk_q8_k *xb, __m512 *acc, __m256 *accm)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), b4 = _mm512_set1_epi8(0x10);
    __m128i scmn = sm6_vec(scales);
    __m512i sc = _mm512_broadcast_i32x4(scmn);
    const int8_t *xq = xb->qs;
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    __m512i hb = qh ? _mm512_broadcast_i64x4(load256(qh)) : _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) {
        __m512i v = _mm512_loadu_si512(q + 64 * h), lo, hi;
        if (qh) {
            const __m512i rl = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4), rh = _mm512_set_epi64(1, 1, 1, 1, 3, 3, 3, 3);
            __m512i rot = _mm512_set1_epi64(h ? 60 : 0);   /* 4 more sub-blocks: rotate by 4 less */
            __m512i fl = _mm512_and_si512(_mm512_rolv_epi64(hb, _mm512_add_epi64(rl, rot)), b4);
            __m512i fh = _mm512_and_si512(_mm512_rolv_epi64(hb, _mm512_add_epi64(rh, rot)), b4);
            /* low nibble from the weights, bit 4 from the rotated qh */
            lo = _mm512_ternarylogic_epi32(m4, v, fl, 0xca);
            hi = _mm512_ternarylogic_epi32(m4, _mm512_srli_epi16(v, 4), fh, 0xca);
        } else {
            lo = _mm512_and_si512(v, m4);
            hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        const int8_t *xh = xq + 128 * h;
        __m512i xl = _mm512_inserti64x4(_mm512_castsi256_si512(load256(xh)), load256(xh + 64), 1);
        __m512i xu = _mm512_inserti64x4(_mm512_castsi256_si512(load256(xh + 32)), load256(xh + 96), 1);
        s0 = _mm512_dpwssd_epi32(s0, _mm512_maddubs_epi16(lo, xl), _mm512_shuffle_epi8(sc, h ? pick2(4, 6) : pick2(0, 2)));
        s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(hi, xu), _mm512_shuffle_epi8(sc, h ? pick2(5, 7) : pick2(1, 3)));
    }
    __m256 dm;
    __m512 d = dd_zmm(dd, xb->d, &dm);
    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), d, *acc);
    *accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(kmins(scmn, xb->bsums)), dm, *accm);
}

static float dot_q4_k_zmm(int64_t n, const void *vw, const void *vx)
{
    const blk_q4_k *w = vw;
    const blk_q8_k *x = vx;
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QKK; i++) q45_zmm(&w[i].d, w[i].scales, w[i].qs, NULL, &x[i], &acc, &accm);
    return _mm512_reduce_add_ps(acc) - hsum_ps(accm);
}

static float dot_q5_k_zmm(int64_t n, const void *vw, const void *vx)
{
    const blk_q5_k *w = vw;
    const blk_q8_k *x = vx;
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QKK; i++) q45_zmm(&w[i].d, w[i].scales, w[i].qs, w[i].qh, &x[i], &acc, &accm);
    return _mm512_reduce_add_ps(acc) - hsum_ps(accm);
}

/* 16-bit lanes of 128-bit lane L = word 4c + L of a 16-word vector (vpermw):
 * the scale of sub-block 4c + L, for the c-th 64 values. */
static inline __m512i widx(int c)
{
    const unsigned long long r = 0x0001000100010001ULL;
    long long l0 = (long long)((unsigned)(4 * c) * r), l1 = (long long)((unsigned)(4 * c + 1) * r);
    long long l2 = (long long)((unsigned)(4 * c + 2) * r), l3 = (long long)((unsigned)(4 * c + 3) * r);
    return _mm512_set_epi64(l3, l3, l2, l2, l1, l1, l0, l0);
}

/* 64 levels against 64 activations, pair sums times the per-16 scale words. */
static inline __m512i sdot64(__m512i acc, __m512i lv, const int8_t *xq, __m512i sc16, int c)
{
    return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(lv, _mm512_loadu_si512(xq)),
                               _mm512_permutexvar_epi16(widx(c), sc16));
}

/* The same without an accumulator (vpmaddwd: no zeroed register to copy). */
static inline __m512i sprod64(__m512i lv, const int8_t *xq, __m512i sc16, int c)
{
    return _mm512_madd_epi16(_mm512_maddubs_epi16(lv, _mm512_loadu_si512(xq)), _mm512_permutexvar_epi16(widx(c), sc16));
}

#if defined(__GFNI__)
/* gf2p8affineqb moves and masks bits inside each byte in one instruction,
 * with a matrix per 64-bit lane: GFB(o, i) sends input bit i to output bit o.
 * GFNI is not among this table's target flags, so only a -march build for a
 * CPU with it takes these paths; the shift-and-mask fallbacks cost 1-2 more
 * ops per 64 values (Q3_K/Q2_K ~7% slower on Zen 4, Q6_K the same). */
#define GFB(o, i) ((1ULL << (i)) << (8 * (7 - (o))))
#define GF(x, m) _mm512_gf2p8affine_epi64_epi8(x, m, 0)
#endif

/* Q6_K: level + 32 in 0..63 per byte. 64 ql bytes of half h: low nibbles are
 * values 128h + 0..63 (groups 0, 1: the two 256-bit halves), high nibbles
 * 128h + 64..127 (groups 2, 3); group g's top bits are bits 2g of qh[32h + l],
 * broadcast to both halves and moved to bits 4-5. The -32 offset,
 * -32 * sum(sc * bsums), seeds the accumulator. */
static float dot_q6_k_zmm(int64_t n, const void *vw, const void *vx)
{
    const blk_q6_k *w = vw;
    const blk_q8_k *x = vx;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
#if defined(__GFNI__)
    const __m512i glo = _mm512_set_epi64(GFB(4, 2) | GFB(5, 3), GFB(4, 2) | GFB(5, 3), GFB(4, 2) | GFB(5, 3),
                                         GFB(4, 2) | GFB(5, 3), GFB(4, 0) | GFB(5, 1), GFB(4, 0) | GFB(5, 1),
                                         GFB(4, 0) | GFB(5, 1), GFB(4, 0) | GFB(5, 1));
    const __m512i ghi = _mm512_set_epi64(GFB(4, 6) | GFB(5, 7), GFB(4, 6) | GFB(5, 7), GFB(4, 6) | GFB(5, 7),
                                         GFB(4, 6) | GFB(5, 7), GFB(4, 4) | GFB(5, 5), GFB(4, 4) | GFB(5, 5),
                                         GFB(4, 4) | GFB(5, 5), GFB(4, 4) | GFB(5, 5));
#define Q6_HB(qh, lo) (lo ? GF(qh, glo) : GF(qh, ghi))
#else
    const __m512i m30 = _mm512_set1_epi8(0x30);
    const __m512i shl = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4), shr = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
#define Q6_HB(qh, lo) _mm512_and_si512(lo ? _mm512_sllv_epi64(qh, shl) : _mm512_srlv_epi64(qh, shr), m30)
#endif
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QKK; i++) {
        const int8_t *xq = x[i].qs;
        __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[i].scales));
        __m512i sc16 = _mm512_castsi256_si512(sc);   /* vpermw reads words 0..15 only */
        __m512i s0 = _mm512_zextsi256_si512(_mm256_madd_epi16(load256(x[i].bsums), _mm256_mullo_epi16(sc, _mm256_set1_epi16(-32))));
        __m512i s1 = _mm512_setzero_si512();   /* set by h = 0 */
        for (int h = 0; h < 2; h++) {
            __m512i ql = _mm512_loadu_si512(w[i].ql + 64 * h);
            __m512i qh = _mm512_broadcast_i64x4(load256(w[i].qh + 32 * h));
            /* (A & m4) | B: the nibble under the top bits */
            __m512i lo = _mm512_ternarylogic_epi32(ql, Q6_HB(qh, 1), m4, 0xec);
            __m512i hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), Q6_HB(qh, 0), m4, 0xec);
            s0 = sdot64(s0, lo, xq + 128 * h, sc16, 2 * h);
            s1 = h ? sdot64(s1, hi, xq + 128 * h + 64, sc16, 2 * h + 1) : sprod64(hi, xq + 64, sc16, 1);
        }
#undef Q6_HB
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_set1_ps(f16(w[i].d) * x[i].d), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* Q3_K's 16 scales (6-bit, stored + 32) as signed 16-bit words. */
static inline __m256i q3_scales(const uint8_t s[12])
{
    uint64_t a;
    uint32_t b;
    memcpy(&a, s, 8);
    memcpy(&b, s + 8, 4);
    /* words: [a0, a1, a0 >> 4, a1 >> 4] low nibbles; [b, b >> 2, b >> 4, b >> 6] top bits to 4-5 */
    __m128i lo = _mm_srlv_epi32(_mm_set1_epi64x((long long)a), _mm_setr_epi32(0, 0, 4, 4));
    __m128i hi = _mm_slli_epi32(_mm_srlv_epi32(_mm_set1_epi32((int)b), _mm_setr_epi32(0, 2, 4, 6)), 4);
    __m128i u = _mm_ternarylogic_epi32(lo, _mm_and_si128(hi, _mm_set1_epi8(0x30)), _mm_set1_epi8(0x0f), 0xec);
    return _mm256_sub_epi16(_mm256_cvtepu8_epi16(u), _mm256_set1_epi16(32));
}

/* Q3_K: level + 4 in 0..7, offset -4 * sum(sc * bsums). Activations 64m..
 * (h = m / 2) are groups j = 2(m % 2) (low 256 bits) and j + 1 (high) of
 * half h: low bits 2j of qs[32h + l], third bit 4h + j of hmask[l]. */
static float dot_q3_k_zmm(int64_t n, const void *vw, const void *vx)
{
    const blk_q3_k *w = vw;
    const blk_q8_k *x = vx;
#if defined(__GFNI__)
    /* Per half h, one byte holds everything its four chunks need: low-256
     * lanes (j = 0, 2) take qs bits 0-1, 4-5, high-256 lanes (j = 1, 3) bits
     * 2-3, 6-7; the third bit of (h, j) goes to the slot of group j ^ 1,
     * bit 2(j ^ 1) + h, which that lane never takes from qs. One gf per
     * chunk then gathers its 3 bits. */
#define HM(h, j) GFB(2 * ((j) ^ 1) + (h), 4 * (h) + (j))
    const __m512i hmp = _mm512_set1_epi64((long long)(HM(0, 0) | HM(0, 1) | HM(0, 2) | HM(0, 3) |
                                                      HM(1, 0) | HM(1, 1) | HM(1, 2) | HM(1, 3)));
    const __m512i csel = _mm512_set_epi64(0xccccccccccccccccLL, 0xccccccccccccccccLL, 0xccccccccccccccccLL,
                                          0xccccccccccccccccLL, 0x3333333333333333LL, 0x3333333333333333LL,
                                          0x3333333333333333LL, 0x3333333333333333LL);
#define LV(h, j) (GFB(0, 2 * (j)) | GFB(1, 2 * (j) + 1) | GFB(2, 2 * ((j) ^ 1) + (h)))
#define LV4(h, j) (long long)LV(h, (j) + 1), (long long)LV(h, (j) + 1), (long long)LV(h, (j) + 1), \
                  (long long)LV(h, (j) + 1), (long long)LV(h, j), (long long)LV(h, j), (long long)LV(h, j), (long long)LV(h, j)
    const __m512i g0 = _mm512_set_epi64(LV4(0, 0)), g1 = _mm512_set_epi64(LV4(0, 2));
    const __m512i g2 = _mm512_set_epi64(LV4(1, 0)), g3 = _mm512_set_epi64(LV4(1, 2));
#undef LV4
#undef LV
#undef HM
#else
    const __m512i three = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    const __m512i sh0 = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0), sh1 = _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4);
    /* rotate bit 4h + j of hmask to bit 2 */
    const __m512i r0 = _mm512_set_epi64(1, 1, 1, 1, 2, 2, 2, 2), r1 = _mm512_set_epi64(63, 63, 63, 63, 0, 0, 0, 0);
    const __m512i r2 = _mm512_set_epi64(61, 61, 61, 61, 62, 62, 62, 62), r3 = _mm512_set_epi64(59, 59, 59, 59, 60, 60, 60, 60);
#define Q3_L(q, sh, r) _mm512_ternarylogic_epi32(_mm512_srlv_epi64(q, sh), _mm512_and_si512(_mm512_rolv_epi64(hm, r), four), three, 0xec)
#endif
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QKK; i++) {
        const int8_t *xq = x[i].qs;
        __m256i sc = q3_scales(w[i].scales);
        __m512i sc16 = _mm512_castsi256_si512(sc);
        __m512i s0 = _mm512_zextsi256_si512(_mm256_madd_epi16(load256(x[i].bsums), _mm256_mullo_epi16(sc, _mm256_set1_epi16(-4))));
        __m512i s1;
        __m512i hm = _mm512_broadcast_i64x4(load256(w[i].hmask));
        __m512i q0 = _mm512_broadcast_i64x4(load256(w[i].qs)), q1 = _mm512_broadcast_i64x4(load256(w[i].qs + 32));
#if defined(__GFNI__)
        hm = GF(hm, hmp);
        q0 = _mm512_ternarylogic_epi32(q0, hm, csel, 0xe4);   /* (q & c) | (hm & ~c) */
        q1 = _mm512_ternarylogic_epi32(q1, hm, csel, 0xe4);
        s0 = sdot64(s0, GF(q0, g0), xq, sc16, 0);
        s1 = sprod64(GF(q0, g1), xq + 64, sc16, 1);
        s0 = sdot64(s0, GF(q1, g2), xq + 128, sc16, 2);
        s1 = sdot64(s1, GF(q1, g3), xq + 192, sc16, 3);
#else
        s0 = sdot64(s0, Q3_L(q0, sh0, r0), xq, sc16, 0);
        s1 = sprod64(Q3_L(q0, sh1, r1), xq + 64, sc16, 1);
        s0 = sdot64(s0, Q3_L(q1, sh0, r2), xq + 128, sc16, 2);
        s1 = sdot64(s1, Q3_L(q1, sh1, r3), xq + 192, sc16, 3);
#endif
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_set1_ps(f16(w[i].d) * x[i].d), acc);
    }
#undef Q3_L
    return _mm512_reduce_add_ps(acc);
}

/* Q2_K: activations 64m.. are levels 32h.. (h = m/2) at bits 4(m%2) (first
 * 32) and 4(m%2) + 2 (next 32): both halves of the broadcast 32 bytes, each
 * with its own shift (or gf matrix). Each 128-bit lane is one sub-block,
 * 4m + L; its scale word comes from one vpermw of the 16 zero-extended scale
 * bytes, whose high nibbles are the mins. */
static float dot_q2_k_zmm(int64_t n, const void *vw, const void *vx)
{
    const blk_q2_k *w = vw;
    const blk_q8_k *x = vx;
#if defined(__GFNI__)
#define L2(s) (long long)(GFB(0, s) | GFB(1, (s) + 1))
    const __m512i g0 = _mm512_set_epi64(L2(2), L2(2), L2(2), L2(2), L2(0), L2(0), L2(0), L2(0));
    const __m512i g1 = _mm512_set_epi64(L2(6), L2(6), L2(6), L2(6), L2(4), L2(4), L2(4), L2(4));
#undef L2
#define Q2_L(q, g) GF(q, g)
#else
    const __m512i three = _mm512_set1_epi8(3);
    const __m512i g0 = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0), g1 = _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4);
#define Q2_L(q, sh) _mm512_and_si512(_mm512_srlv_epi64(q, sh), three)
#endif
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QKK; i++) {
        __m256i sb = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)w[i].scales));
        __m512i sc16 = _mm512_castsi256_si512(_mm256_and_si256(sb, _mm256_set1_epi16(0x0f)));
        __m256i mprod = _mm256_madd_epi16(_mm256_srli_epi16(sb, 4), load256(x[i].bsums));
        __m512i q0 = _mm512_broadcast_i64x4(load256(w[i].qs)), q1 = _mm512_broadcast_i64x4(load256(w[i].qs + 32));
        const int8_t *xq = x[i].qs;
        __m512i s0 = sprod64(Q2_L(q0, g0), xq, sc16, 0);
        __m512i s1 = sprod64(Q2_L(q0, g1), xq + 64, sc16, 1);
        s0 = sdot64(s0, Q2_L(q1, g0), xq + 128, sc16, 2);
        s1 = sdot64(s1, Q2_L(q1, g1), xq + 192, sc16, 3);
        __m256 dm;
        __m512 d = dd_zmm(&w[i].d, x[i].d, &dm);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), d, acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mprod), dm, accm);
    }
#undef Q2_L
    return _mm512_reduce_add_ps(acc) - hsum_ps(accm);
}
#if defined(__GFNI__)
#undef GF
#undef GFB
#endif
#endif

static void register_dot_kquant(sd_kernel_table *t)
{
    t->vec_dot[SD_TYPE_Q2_K] = dot_q2_k;
    t->vec_dot[SD_TYPE_Q3_K] = dot_q3_k;
    t->vec_dot[SD_TYPE_Q4_K] = dot_q4_k;
    t->vec_dot[SD_TYPE_Q5_K] = dot_q5_k;
    t->vec_dot[SD_TYPE_Q6_K] = dot_q6_k;
#if SD_VNNI && defined(__AVX512F__)
    t->vec_dot[SD_TYPE_Q2_K] = dot_q2_k_zmm;
    t->vec_dot[SD_TYPE_Q3_K] = dot_q3_k_zmm;
    t->vec_dot[SD_TYPE_Q4_K] = dot_q4_k_zmm;
    t->vec_dot[SD_TYPE_Q5_K] = dot_q5_k_zmm;
    t->vec_dot[SD_TYPE_Q6_K] = dot_q6_k_zmm;
#endif
}
