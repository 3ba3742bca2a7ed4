/* AVX-512 kernels over the 16-row packed Q4_0 / Q8_0 / NVFP4 / Q4_K layout
 * (kernels/pack.h). Per Q4_0/Q8_0 tile (16 rows x 32 columns) the quants
 * become eight zmm u[k] of unsigned bytes, u[k] holding columns 4k..4k+3
 * of all 16 rows, so
 *     sum over the block = scale_r * dx * (sum_k u[k] . xquad[k] - OFF * sum(xq))
 * is eight vpdpbusd against broadcast activation quads, one integer
 * subtract, and one multiply-add per token for all 16 rows. A tile of up
 * to 8 tokens shares the unpacked u[k]: decode is the one-token case. */
#include "kernels/pack.h"


/* Q4_0: chunk j's low nibbles are columns 4j.., its high nibbles 16 + 4j..
 * (the block's own nibble order), i.e. quads j and 4 + j; levels 0..15
 * stand for q - 8. */
#define PK_Q4_0_TILE (32 + 4 * 64)
static inline void pk_unpack_q4_0(const char *t, __m512i *u)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int j = 0; j < 4; j++) {
        __m512i v = _mm512_loadu_si512(t + 32 + 64 * j);
        u[j] = _mm512_and_si512(v, m4);
        u[4 + j] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
}

/* Q8_0: signed quants made unsigned by +128 (a sign-bit flip). */
#define PK_Q8_0_TILE (32 + 8 * 64)
static inline void pk_unpack_q8_0(const char *t, __m512i *u)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int j = 0; j < 8; j++) u[j] = _mm512_xor_si512(_mm512_loadu_si512(t + 32 + 64 * j), flip);
}

static inline __m512i pk_quad(const int8_t *qs, int k)
{
    int32_t v;
    memcpy(&v, qs + 4 * k, 4);
    return _mm512_set1_epi32(v);
}

/* A group's 16 sums for nt tokens into out (t * ldo apart); with accum,
 * added to what is there (the second and later panels). */
static inline void pk_store(float *out, size_t ldo, const __m512 *acc, int nt, int accum)
{
    for (int t = 0; t < nt; t++) {
        float *o = out + (size_t)t * ldo;
        _mm512_storeu_ps(o, accum ? _mm512_add_ps(acc[t], _mm512_loadu_ps(o)) : acc[t]);
    }
}

/* name##_gNT as a tile of A tokens then one of B = NT - A, for kernels
 * whose accumulators fill the registers at 4 tokens (Q4_K, Q6_K). */
#define PK_SPLIT_FN(name, NT, A, B)                                                                \
    static inline void name##_g##NT(int64_t nb, const char *wg, const char *x, size_t xs_row,      \
                                    const float *xd, const int32_t *xs, int64_t mstride, float *out, \
                                    size_t ldo, int accum)                                         \
    {                                                                                              \
        name##_g##A(nb, wg, x, xs_row, xd, xs, mstride, out, ldo, accum);                          \
        name##_g##B(nb, wg, x + (size_t)(A) * xs_row, xs_row, xd ? xd + (A) * mstride : NULL,      \
                    xs ? xs + 2 * (A) * mstride : NULL, mstride, out + (size_t)(A) * ldo, ldo, accum); \
    }

/* The tiles of a kernel whose GROUP_FN(NT) is instantiated for NT = 1..4:
 * 5..8 tokens as a tile of 4 and one of the rest. */
#define PK_SPLIT_TILES(name, GROUP_FN)                                                             \
    GROUP_FN(1) GROUP_FN(2) GROUP_FN(4) GROUP_FN(3)                                                \
    PK_SPLIT_FN(name, 5, 4, 1) PK_SPLIT_FN(name, 6, 4, 2) PK_SPLIT_FN(name, 7, 4, 3)               \
    PK_SPLIT_FN(name, 8, 4, 4)

/* Every tile size 1..8 of a kernel whose GROUP_FN(NT) takes any NT. */
#define PK_EACH_TILE(GROUP_FN)                                                                     \
    GROUP_FN(1) GROUP_FN(2) GROUP_FN(4) GROUP_FN(8) GROUP_FN(3) GROUP_FN(5) GROUP_FN(6) GROUP_FN(7)

/* One group of 16 rows against NT tokens (compile-time, so the accumulators
 * stay in registers), over nb blocks; the activation metadata of token t is
 * at xd[t * mstride], xs[2 * t * mstride] (two half sums per block). The integer sum starts at -OFF * sum(xq), folding
 * the offset in. Decode (NT = 1) splits a token's eight dots into two chains
 * so that it is not bound by vpdpbusd's latency; tiles of several tokens
 * have independent chains enough. */
/* Each tile prefetches the one about 4 KiB on (Q4_0: 15 tiles, Q8_0: 8). A
 * tile of several tokens is ~50 operations per 288 bytes, so the loads of
 * the next tiles issue late and the hardware prefetchers fall behind: one
 * thread streamed a 16384 x 4096 Q4_0 matrix at 4 tokens in 2.0-2.5 ms so
 * against 5.2-5.9 without, and at 1 token in 2.3-2.9 against 3.7-4.2 (a
 * loaded machine, alternating builds; 8 to 16 tiles measured alike). */
#define PK_LEGACY_AHEAD_BYTES 4096
#define PK_LEGACY_AHEAD(TILE) ((PK_LEGACY_AHEAD_BYTES + (TILE) - 1) / (TILE))
#define PK_GROUP_FN(name, UNPACK, TILE, OFF, NT)                                                   \
    static inline void name##_g##NT(int64_t nb, const char *wg, const char *x, size_t xs_row,      \
                                    const float *xd, const int32_t *xs, int64_t mstride, float *out, \
                                    size_t ldo, int accum)                                         \
    {                                                                                              \
        __m512 acc[NT];                                                                            \
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();                                 \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const char *tl = wg + b * (TILE);                                                      \
            for (int o = 0; o < (TILE); o += 64)                                                   \
                _mm_prefetch(tl + PK_LEGACY_AHEAD(TILE) * (TILE) + o, _MM_HINT_T0);                \
            __m512i u[8];                                                                          \
            UNPACK(tl, u);                                                                         \
            __m512 ws = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)tl));                  \
            _Pragma("GCC unroll 8")                                                                \
            for (int t = 0; t < NT; t++) {                                                         \
                const int8_t *q = ((const blk_q8_0 *)(x + (size_t)t * xs_row))[b].qs;              \
                const int32_t *hs = xs + 2 * (t * mstride + b);                                    \
                __m512i i0 = _mm512_set1_epi32(-(OFF) * (hs[0] + hs[1])), i1 = _mm512_setzero_si512(); \
                for (int k = 0; k < 8; k += 2) {                                                   \
                    i0 = _mm512_dpbusd_epi32(i0, u[k], pk_quad(q, k));                             \
                    if (NT == 1) i1 = _mm512_dpbusd_epi32(i1, u[k + 1], pk_quad(q, k + 1));        \
                    else i0 = _mm512_dpbusd_epi32(i0, u[k + 1], pk_quad(q, k + 1));                \
                }                                                                                  \
                if (NT == 1) i0 = _mm512_add_epi32(i0, i1);                                        \
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0),                                   \
                                         _mm512_mul_ps(ws, _mm512_set1_ps(xd[t * mstride + b])), acc[t]); \
            }                                                                                      \
        }                                                                                          \
        pk_store(out, ldo, acc, NT, accum);                                                        \
    }

/* Q4_1: a tile is the 16 rows' d, their m, then 4 chunks as Q4_0's (levels
 * 0..15 as stored). Against Q8_1 activations (d, s = d * sum(q), quants)
 * read in place, no metadata: per row and block d * dx * sum_k u[k] .
 * xquad[k] + m * s, as the generic dot. */
#define PK_Q4_1_TILE (64 + 4 * 64)
#define PK_Q4_1_GROUP_FN(NT)                                                                       \
    static inline void packed_q4_1_g##NT(int64_t nb, const char *wg, const char *x, size_t xs_row, \
                                         const float *xd, const int32_t *xs, int64_t mstride,      \
                                         float *out, size_t ldo, int accum)                        \
    {                                                                                              \
        (void)xd; (void)xs; (void)mstride;                                                         \
        __m512 acc[NT];                                                                            \
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();                                 \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const char *tl = wg + b * PK_Q4_1_TILE;                                                \
            for (int o = 0; o < PK_Q4_1_TILE; o += 64)                                             \
                _mm_prefetch(tl + PK_LEGACY_AHEAD(PK_Q4_1_TILE) * PK_Q4_1_TILE + o, _MM_HINT_T0);  \
            __m512i u[8];                                                                          \
            pk_unpack_q4_0(tl + 32, u);                                                            \
            __m512 ws = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)tl));                  \
            __m512 ms = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(tl + 32)));           \
            _Pragma("GCC unroll 8")                                                                \
            for (int t = 0; t < NT; t++) {                                                         \
                const blk_q8_1 *xb = (const blk_q8_1 *)(x + (size_t)t * xs_row) + b;               \
                const int8_t *q = xb->qs;                                                          \
                __m512i i0 = _mm512_setzero_si512(), i1 = _mm512_setzero_si512();                  \
                for (int k = 0; k < 8; k += 2) {                                                   \
                    i0 = _mm512_dpbusd_epi32(i0, u[k], pk_quad(q, k));                             \
                    if (NT == 1) i1 = _mm512_dpbusd_epi32(i1, u[k + 1], pk_quad(q, k + 1));        \
                    else i0 = _mm512_dpbusd_epi32(i0, u[k + 1], pk_quad(q, k + 1));                \
                }                                                                                  \
                if (NT == 1) i0 = _mm512_add_epi32(i0, i1);                                        \
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0), _mm512_mul_ps(ws, _mm512_set1_ps(f16(xb->d))), \
                                         acc[t]);                                                  \
                acc[t] = _mm512_fmadd_ps(ms, _mm512_set1_ps(f16(xb->s)), acc[t]);                  \
            }                                                                                      \
        }                                                                                          \
        pk_store(out, ldo, acc, NT, accum);                                                        \
    }

/* NVFP4: a tile is 16 rows x 64 columns (one block per row): the rows' four
 * UE4M3 sub-block scales (sub-block-major, 64 bytes), then 8 chunks as
 * above. Sub-block s is chunks 2s and 2s + 1: their low nibbles are values
 * 0-3 and 4-7, their high nibbles 8-11 and 12-15. Levels come from a table
 * as 2 * value + 12 (unsigned for vpdpbusd); 12 * sum(x) of the sub-block's
 * 16 activations comes off the integer start, and the scale is taken at
 * half its value, so the doubling cancels. */
#define PK_NVFP4_TILE (64 + 8 * 64)

/* Sixteen UE4M3 codes as floats at half their value: code << 20 is, as
 * float bits, the value with its exponent off by a constant, exact for
 * normal codes; subnormal ones come out 2^-8 + m 2^-11 that way, and
 * 2 * that - 2^-7 = m 2^-10 is their half. 0x7f is NaN. */
static inline __m512 pk_ue4m3_half(const char *codes)
{
    __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)codes));
    __m512 v = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_slli_epi32(c, 20), _mm512_set1_epi32(119 << 23)));
    v = _mm512_mask_fmsub_ps(v, _mm512_testn_epi32_mask(c, _mm512_set1_epi32(0x78)), _mm512_set1_ps(2.0f),
                             _mm512_set1_ps(0x1p-7f));
    return _mm512_mask_mov_ps(v, _mm512_cmpge_epu32_mask(c, _mm512_set1_epi32(0x7f)), _mm512_set1_ps(NAN));
}

#define PK_NVFP4_GROUP_FN(NT)                                                                      \
    static inline void packed_nvfp4_g##NT(int64_t nb, const char *wg, const char *x, size_t xs_row, \
                                          const float *xd, const int32_t *xs, int64_t mstride,     \
                                          float *out, size_t ldo, int accum)                       \
    {                                                                                              \
        const __m512i lut = _mm512_broadcast_i32x4(                                                \
            _mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));             \
        const __m512i m4 = _mm512_set1_epi8(0x0f);                                                 \
        __m512 acc[NT];                                                                            \
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();                                 \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const char *tl = wg + b * PK_NVFP4_TILE;                                               \
            for (int s = 0; s < 4; s++) {                                                          \
                __m512 sc = pk_ue4m3_half(tl + 16 * s);                                            \
                __m512i v0 = _mm512_loadu_si512(tl + 64 + 128 * s), v1 = _mm512_loadu_si512(tl + 128 + 128 * s); \
                __m512i u0 = _mm512_shuffle_epi8(lut, _mm512_and_si512(v0, m4));                   \
                __m512i u1 = _mm512_shuffle_epi8(lut, _mm512_and_si512(v1, m4));                   \
                __m512i u2 = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4)); \
                __m512i u3 = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4)); \
                int64_t b32 = 2 * b + s / 2;                                                       \
                _Pragma("GCC unroll 8")                                                            \
                for (int t = 0; t < NT; t++) {                                                     \
                    const int8_t *q = ((const blk_q8_0 *)(x + (size_t)t * xs_row))[b32].qs + 16 * (s & 1); \
                    __m512i i0 = _mm512_set1_epi32(-12 * xs[2 * (t * mstride + b32) + (s & 1)]);    \
                    __m512i i1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u2, pk_quad(q, 2));     \
                    i0 = _mm512_dpbusd_epi32(i0, u0, pk_quad(q, 0));                               \
                    i1 = _mm512_dpbusd_epi32(i1, u3, pk_quad(q, 3));                               \
                    i0 = _mm512_dpbusd_epi32(i0, u1, pk_quad(q, 1));                               \
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(i0, i1)),         \
                                             _mm512_mul_ps(sc, _mm512_set1_ps(xd[t * mstride + b32])), acc[t]); \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        pk_store(out, ldo, acc, NT, accum);                                                        \
    }

/* Q4_K: a tile is 16 rows x 256 columns (one super-block per row): the
 * rows' d (32 bytes), dmin (32 bytes), their 12 scale bytes in 6 pairs
 * (pair m of row r at 64 + 32m + 2r), then 32 chunks as above: chunk 8j + c
 * holds qs bytes 32j + 4c.. of every row, whose low nibbles are values
 * 64j + 4c.. (sub-block 2j) and high nibbles 64j + 32 + 4c.. (sub-block
 * 2j + 1). The scale bytes are re-encoded at packing (kernels/pack.c,
 * q4_k_recode): byte i < 8 is the scale s_i with the top two bits of the
 * min m_i above it, bytes 8 + j the low nibbles of m_j and m_{j+4}.
 * Activations are Q8_K: the sub-block sums for the mins come from its
 * bsums, no metadata beside them. Per sub-block k of 16 rows the integer
 * dot is eight vpdpbusd, times the rows' 6-bit scale (vpmulld); w = d sc q
 * - dmin mn, so a tile adds d dx sum_k sc_k dot_k - dmin dx sum_k mn_k
 * xsum_k to each row, the mins' sum four vpdpwssd over (m_2u, m_2u+1)
 * pairs against (xsum_2u, xsum_2u+1). */
#define PK_Q4_K_TILE (16 * 144)
/* Each tile prefetches the one 4 tiles on (~9 KiB; a prefetch past the end
 * of the weights does not fault): one thread streamed a 151 MB matrix at
 * 33-36 GB/s so, against 19-21 without (2 or 8 tiles: 29-33). The hardware
 * prefetchers alone fall behind: a tile is ~330 instructions per 2304
 * bytes (~350 before the scale re-encoding), so the loads of the next
 * tiles issue late. */
#define PK_Q4_K_AHEAD 4

/* Pair m of the 16 rows' scale bytes: row r's bytes 2m and 2m + 1 in the
 * low and high halves of lane r. */
static inline __m512i pk_q4_k_pair(const char *tl, int m)
{
    return _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(tl + 64 + 32 * m)));
}

/* A token's (xsum_2u, xsum_2u+1) pairs of 16-bit sums, u = 0..3, at
 * xp[0], xp[1], xp[4], xp[5] (xsum_k = bsums 2k + 2k+1, |xsum| <= 4096). */
static inline void pk_q4_k_xsums(const blk_q8_k *x, int32_t *xp)
{
    __m256i s = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), _mm256_set1_epi16(1));
    _mm256_storeu_si256((__m256i *)xp, _mm256_packs_epi32(s, s));
}

/* Up to 4 tokens per call: a tile's 8 unpacked chunks, each token's two
 * sub-block sums and its running total stay in registers (8 tokens spill;
 * _g8 is two calls of _g4). */
#define PK_Q4_K_GROUP_FN(NT)                                                                       \
    static inline void packed_q4_k_g##NT(int64_t nb, const char *wg, const char *x, size_t xs_row, \
                                         const float *xd, const int32_t *xs, int64_t mstride,      \
                                         float *out, size_t ldo, int accum)                        \
    {                                                                                              \
        (void)xd; (void)xs; (void)mstride;                                                         \
        const __m512i m4 = _mm512_set1_epi8(0x0f), m63 = _mm512_set1_epi32(63);                    \
        const __m512i mlo = _mm512_set1_epi32(0x000f000f), mtop = _mm512_set1_epi32(0x00300030);   \
        __m512 acc[NT];                                                                            \
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();                                 \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const char *tl = wg + b * PK_Q4_K_TILE;                                                \
            for (int o = 0; o < PK_Q4_K_TILE; o += 64)                                             \
                _mm_prefetch(tl + PK_Q4_K_AHEAD * PK_Q4_K_TILE + o, _MM_HINT_T0);                  \
            __m512i v[4], mp[4];                                                                   \
            for (int u = 0; u < 4; u++) v[u] = pk_q4_k_pair(tl, u);                                \
            __m512i w0 = pk_q4_k_pair(tl, 4), w1 = pk_q4_k_pair(tl, 5);                            \
            mp[0] = _mm512_ternarylogic_epi32(_mm512_and_si512(w0, mlo), _mm512_srli_epi32(v[0], 2), mtop, 0xf8); \
            mp[1] = _mm512_ternarylogic_epi32(_mm512_and_si512(w1, mlo), _mm512_srli_epi32(v[1], 2), mtop, 0xf8); \
            mp[2] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi32(w0, 4), mlo),     \
                                              _mm512_srli_epi32(v[2], 2), mtop, 0xf8);             \
            mp[3] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi32(w1, 4), mlo),     \
                                              _mm512_srli_epi32(v[3], 2), mtop, 0xf8);             \
            __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)tl));                   \
            __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(tl + 32)));         \
            const blk_q8_k *xb[NT];                                                                \
            __m512i tot[NT];                                                                       \
            for (int t = 0; t < NT; t++) {                                                         \
                xb[t] = (const blk_q8_k *)(x + (size_t)t * xs_row) + b;                            \
                int32_t xp[8];                                                                     \
                pk_q4_k_xsums(xb[t], xp);                                                          \
                __m512i mn = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mp[0], _mm512_set1_epi32(xp[0])); \
                mn = _mm512_dpwssd_epi32(mn, mp[1], _mm512_set1_epi32(xp[1]));                     \
                mn = _mm512_dpwssd_epi32(mn, mp[2], _mm512_set1_epi32(xp[4]));                     \
                mn = _mm512_dpwssd_epi32(mn, mp[3], _mm512_set1_epi32(xp[5]));                     \
                acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mn), _mm512_mul_ps(dmin, _mm512_set1_ps(xb[t]->d)), \
                                          acc[t]);                                                 \
                tot[t] = _mm512_setzero_si512();                                                   \
            }                                                                                      \
            const char *qt = tl + 256;                                                             \
            _Pragma("GCC unroll 4")                                                                \
            for (int j = 0; j < 4; j++) {                                                          \
                __m512i lo[NT], hi[NT];                                                            \
                for (int t = 0; t < NT; t++) lo[t] = hi[t] = _mm512_setzero_si512();               \
                _Pragma("GCC unroll 2")                                                            \
                for (int h = 0; h < 2; h++) {                                                      \
                    __m512i u[8];                                                                  \
                    for (int c = 0; c < 4; c++) {                                                  \
                        __m512i q4 = _mm512_loadu_si512(qt + 64 * (8 * j + 4 * h + c));            \
                        u[c] = _mm512_and_si512(q4, m4);                                           \
                        u[4 + c] = _mm512_and_si512(_mm512_srli_epi16(q4, 4), m4);                 \
                    }                                                                              \
                    _Pragma("GCC unroll 4")                                                        \
                    for (int t = 0; t < NT; t++) {                                                 \
                        const int8_t *q = xb[t]->qs + 64 * j + 16 * h;                             \
                        for (int c = 0; c < 4; c++) {                                              \
                            lo[t] = _mm512_dpbusd_epi32(lo[t], u[c], pk_quad(q, c));               \
                            hi[t] = _mm512_dpbusd_epi32(hi[t], u[4 + c], pk_quad(q + 32, c));      \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                __m512i s0 = _mm512_and_si512(v[j], m63), s1 = _mm512_and_si512(_mm512_srli_epi32(v[j], 16), m63); \
                for (int t = 0; t < NT; t++)                                                       \
                    tot[t] = _mm512_add_epi32(tot[t], _mm512_add_epi32(_mm512_mullo_epi32(lo[t], s0), \
                                                                       _mm512_mullo_epi32(hi[t], s1))); \
            }                                                                                      \
            for (int t = 0; t < NT; t++)                                                           \
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot[t]),                               \
                                         _mm512_mul_ps(d, _mm512_set1_ps(xb[t]->d)), acc[t]);      \
        }                                                                                          \
        pk_store(out, ldo, acc, NT, accum);                                                        \
    }

PK_SPLIT_TILES(packed_q4_k, PK_Q4_K_GROUP_FN)

/* Q6_K: a tile is 16 rows x 256 columns (one super-block per row): the
 * rows' 16 scale bytes (byte j of row r at 16j + r), d's low bytes (256 +
 * r) and high bytes (272 + r), then 48 chunks as above: chunks 0-31 the ql
 * bytes, 32-47 the qh bytes. Within half n of the super-block, ql bytes
 * 64n + l and 64n + 32 + l (l < 32) and qh byte 32n + l hold values
 * 128n + l, + 32, + 64 and + 96, levels 0..63 standing for q - 32, as
 * packing re-encodes them (kernels/pack.c, q6_k_recode): the first three
 * in the three bytes' low 6 bits, the fourth in their top 2 bits.
 * Per sub-block of 16 values and row the integer dot starts at -32 times
 * the activations' bsum; it is scaled by the row's scale in float, and the
 * super-block's sum by d * dx. */
#define PK_Q6_K_TILE (16 * 210)
#define PK_Q6_K_AHEAD 2

static inline __m512 pk_q6_k_d(const char *tl)
{
    __m128i lo = _mm_loadu_si128((const __m128i *)(tl + 256)), hi = _mm_loadu_si128((const __m128i *)(tl + 272));
    return _mm512_cvtph_ps(_mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi)));
}

static inline __m512 pk_q6_k_scale(const char *tl, int j)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(tl + 16 * j))));
}

/* Up to 4 tokens per call (their 16 integer sums stay in registers); _g8
 * is two calls of _g4. */
#define PK_Q6_K_GROUP_FN(NT)                                                                       \
    static inline void packed_q6_k_g##NT(int64_t nb, const char *wg, const char *x, size_t xs_row, \
                                         const float *xd, const int32_t *xs, int64_t mstride,      \
                                         float *out, size_t ldo, int accum)                        \
    {                                                                                              \
        (void)xd; (void)xs; (void)mstride;                                                         \
        const __m512i m63 = _mm512_set1_epi8(0x3f), m3 = _mm512_set1_epi8(0x03), m4 = _mm512_set1_epi8(0x0f); \
        __m512 acc[NT];                                                                            \
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();                                 \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const char *tl = wg + b * PK_Q6_K_TILE, *qt = tl + 288;                                \
            for (int o = 0; o < PK_Q6_K_TILE; o += 64)                                             \
                _mm_prefetch(tl + PK_Q6_K_AHEAD * PK_Q6_K_TILE + o, _MM_HINT_T0);                  \
            const blk_q8_k *xb[NT];                                                                \
            __m512 sum[NT];                                                                        \
            for (int t = 0; t < NT; t++) {                                                         \
                xb[t] = (const blk_q8_k *)(x + (size_t)t * xs_row) + b;                            \
                sum[t] = _mm512_setzero_ps();                                                      \
            }                                                                                      \
            _Pragma("GCC unroll 2")                                                                \
            for (int n = 0; n < 2; n++)                                                            \
                _Pragma("GCC unroll 2")                                                            \
                for (int g = 0; g < 2; g++) {                                                      \
                    /* sub-blocks 8n + g + 2k of value offsets 128n + 32k + 16g */                 \
                    __m512i is[NT][4];                                                             \
                    for (int t = 0; t < NT; t++)                                                   \
                        for (int k = 0; k < 4; k++)                                                \
                            is[t][k] = _mm512_set1_epi32(-32 * xb[t]->bsums[8 * n + g + 2 * k]);   \
                    _Pragma("GCC unroll 4")                                                        \
                    for (int c = 4 * g; c < 4 * g + 4; c++) {                                      \
                        __m512i l1 = _mm512_loadu_si512(qt + 64 * (16 * n + c));                   \
                        __m512i l2 = _mm512_loadu_si512(qt + 64 * (16 * n + 8 + c));               \
                        __m512i h = _mm512_loadu_si512(qt + 64 * (32 + 8 * n + c));                \
                        __m512i u[4];                                                              \
                        u[0] = _mm512_and_si512(l1, m63);                                          \
                        u[1] = _mm512_and_si512(l2, m63);                                          \
                        u[2] = _mm512_and_si512(h, m63);                                           \
                        /* top bits: l1's to bits 0-1, l2's to 2-3, h's to 4-5 (bit selects) */   \
                        /* (0xe4: the third operand selects the first, else the second; the    \
                         * destination is the first, a temporary, so no mask is copied) */         \
                        __m512i t3 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l1, 6), _mm512_srli_epi16(l2, 4), m3, 0xe4); \
                        t3 = _mm512_ternarylogic_epi32(t3, _mm512_srli_epi16(h, 2), m4, 0xe4);     \
                        u[3] = _mm512_and_si512(t3, m63);                                          \
                        _Pragma("GCC unroll 4")                                                    \
                        for (int t = 0; t < NT; t++) {                                             \
                            const int8_t *q = xb[t]->qs + 128 * n;                                 \
                            for (int k = 0; k < 4; k++)                                            \
                                is[t][k] = _mm512_dpbusd_epi32(is[t][k], u[k], pk_quad(q + 32 * k, c)); \
                        }                                                                          \
                    }                                                                              \
                    for (int k = 0; k < 4; k++) {                                                  \
                        __m512 sc = pk_q6_k_scale(tl, 8 * n + g + 2 * k);                          \
                        for (int t = 0; t < NT; t++)                                               \
                            sum[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t][k]), sc, sum[t]);    \
                    }                                                                              \
                }                                                                                  \
            __m512 d = pk_q6_k_d(tl);                                                              \
            for (int t = 0; t < NT; t++)                                                           \
                acc[t] = _mm512_fmadd_ps(sum[t], _mm512_mul_ps(d, _mm512_set1_ps(xb[t]->d)), acc[t]); \
        }                                                                                          \
        pk_store(out, ldo, acc, NT, accum);                                                        \
    }

PK_SPLIT_TILES(packed_q6_k, PK_Q6_K_GROUP_FN)

/* Panel by panel; within a panel, groups in chunks of about 128 KiB
 * (L2-resident while every token tile of the batch passes over them),
 * tokens in tiles of 8, then one tile of the 1-7 left, so a weight tile is
 * unpacked once per 8 tokens and once more at most (a mixture's experts get
 * a few tokens each, rarely a multiple of 8; 7 left over took three passes,
 * 4 + 2 + 1, when tiles were powers of two). BV: columns per block; XB:
 * activation bytes per block; META: whether the kernel reads the Q8_0 metadata (xd,
 * xs; NULL otherwise). The group functions name##_g1 .. _g8 come first. */
#define PK_CHUNK_BYTES (128 << 10)
#define PK_FNS(name, TILE, BV, XB, META)                                                           \
    static void name(int64_t n, const void *wp, int64_t n_groups, int64_t gfirst, int ng, const void *x, \
                     size_t x_stride, const float *xd, const int32_t *xs, int nt, float *out, size_t ldo) \
    {                                                                                              \
        int64_t nb = n / (BV), m = n / 32, pb = sd_pack_panel_blocks(BV), k = (BV) / 32;            \
        for (int64_t p0 = 0; p0 < nb; p0 += pb) {                                                  \
            int64_t pw = nb - p0 < pb ? nb - p0 : pb;                                              \
            size_t gbytes = (size_t)pw * (TILE);                                                   \
            const char *wpan = (const char *)wp + sd_pack_tile_offset(n_groups, nb, pb, gfirst, p0) * (TILE); \
            int gc = (int)(PK_CHUNK_BYTES / gbytes);                                               \
            gc = nt == 1 || gc < 1 ? (nt == 1 ? ng : 1) : gc;                                      \
            for (int g0 = 0; g0 < ng; g0 += gc) {                                                  \
                int g1 = g0 + gc < ng ? g0 + gc : ng;                                              \
                for (int t0 = 0; t0 < nt;) {                                                       \
                    int tt = nt - t0 >= 8 ? 8 : nt - t0;                                           \
                    const char *xt = (const char *)x + (size_t)t0 * x_stride + (size_t)p0 * (XB);   \
                    const float *dt = META ? xd + (size_t)t0 * m + p0 * k : NULL;                  \
                    const int32_t *st = META ? xs + 2 * ((size_t)t0 * m + p0 * k) : NULL;          \
                    for (int g = g0; g < g1; g++) {                                                \
                        const char *wg = wpan + (size_t)g * gbytes;                                \
                        float *o = out + (size_t)t0 * ldo + (size_t)g * SD_PACK_ROWS;              \
                        int ac = p0 > 0;                                                           \
                        switch (tt) {                                                              \
                        case 8: name##_g8(pw, wg, xt, x_stride, dt, st, m, o, ldo, ac); break;     \
                        case 7: name##_g7(pw, wg, xt, x_stride, dt, st, m, o, ldo, ac); break;     \
                        case 6: name##_g6(pw, wg, xt, x_stride, dt, st, m, o, ldo, ac); break;     \
                        case 5: name##_g5(pw, wg, xt, x_stride, dt, st, m, o, ldo, ac); break;     \
                        case 4: name##_g4(pw, wg, xt, x_stride, dt, st, m, o, ldo, ac); break;     \
                        case 3: name##_g3(pw, wg, xt, x_stride, dt, st, m, o, ldo, ac); break;     \
                        case 2: name##_g2(pw, wg, xt, x_stride, dt, st, m, o, ldo, ac); break;     \
                        default: name##_g1(pw, wg, xt, x_stride, dt, st, m, o, ldo, ac); break;    \
                        }                                                                          \
                    }                                                                              \
                    t0 += tt;                                                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

#define PK_LEGACY_FNS(name, UNPACK, TILE, OFF)                                                     \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 1)                                                        \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 2)                                                        \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 4)                                                        \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 8)                                                        \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 3)                                                        \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 5)                                                        \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 6)                                                        \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 7)                                                        \
    PK_FNS(name, TILE, 32, sizeof(blk_q8_0), 1)

PK_LEGACY_FNS(packed_q4_0, pk_unpack_q4_0, PK_Q4_0_TILE, 8)
PK_LEGACY_FNS(packed_q8_0, pk_unpack_q8_0, PK_Q8_0_TILE, 128)
PK_EACH_TILE(PK_NVFP4_GROUP_FN)
PK_FNS(packed_nvfp4, PK_NVFP4_TILE, QKNV, 2 * sizeof(blk_q8_0), 1)
PK_FNS(packed_q4_k, PK_Q4_K_TILE, QKK, sizeof(blk_q8_k), 0)
PK_EACH_TILE(PK_Q4_1_GROUP_FN)
PK_FNS(packed_q4_1, PK_Q4_1_TILE, 32, sizeof(blk_q8_1), 0)
PK_FNS(packed_q6_k, PK_Q6_K_TILE, QKK, sizeof(blk_q8_k), 0)
#include "kernels/x86/packed_mxfp4_zmm.h"

static void register_packed(sd_kernel_table *t)
{
    t->packed[SD_TYPE_Q4_0] = packed_q4_0;
    t->packed[SD_TYPE_Q8_0] = packed_q8_0;
    t->packed[SD_TYPE_NVFP4] = packed_nvfp4;
    t->packed[SD_TYPE_Q4_K] = packed_q4_k;
    t->packed[SD_TYPE_Q4_1] = packed_q4_1;
    t->packed[SD_TYPE_Q6_K] = packed_q6_k;
    t->packed[SD_TYPE_MXFP4] = packed_mxfp4;
}
