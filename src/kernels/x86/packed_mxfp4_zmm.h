/* AVX-512 kernel over 16-row packed MXFP4 (kernels/pack.h), the format of
 * gpt-oss's experts; included by packed_zmm.h after its helpers. A tile is
 * 16 rows x 32 columns: the rows' E8M0 scale bytes (16 bytes), then four
 * chunks of 64 bytes; chunk j's low nibbles are columns 4j.. and its high
 * nibbles 16 + 4j.. of every row (the block's own nibble order, as Q4_0).
 * Each nibble is an E2M1 code, looked up as 2 * value + 12 (0..24, unsigned
 * for vpdpbusd, the table NVFP4 uses); 12 * sum(x) of the block comes off
 * the integer start, and the scale is taken at half its value so that the
 * doubling cancels (tensor/fp4.c's mxfp4_dot computes the same sums).
 *
 * The halved scale is a power of two, 2^(e - 128), so a block's integer
 * sum s (|s| <= 12 * 128 * 32 < 2^16, exact as a float f) is scaled by
 * adding e - 128 to f's exponent field, an integer add instead of a float
 * multiply. With several tokens the kernel is bound by the port that runs
 * vpdpbusd (per token and tile eight of them, the conversion and the
 * multiply-add; on CPUs with one 512-bit FMA unit, such as this VM's Ice
 * Lake, every float operation goes there too), and the add runs on
 * another: 8 tokens took 184-196 us against 215-221 with the multiply
 * (one thread, 2 x 768 x 2048 weights in L2, loaded machine, best runs).
 * acc + (f * 2^(e - 128)) * dx rounds once, as the multiply's
 * acc + f * (2^(e - 128) * dx) did wherever that product is a normal float
 * (so every real weight gives the same bits as before). The add is exact
 * while f * 2^(e - 128) is a normal float: lanes with f = 0 are masked off,
 * and a tile with any code outside 2..240 (scales below 2^-126 or above
 * 2^112, which no real weights have) goes through vscalefps instead. */
#define PK_MXFP4_TILE (16 + 4 * 64)

/* A tile's 16 E8M0 codes as 32-bit lanes. */
static inline __m512i pk_e8m0_codes(const char *codes)
{
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)codes));
}

/* Whether every code of c lies in 2..240, where the exponent add is exact:
 * f's exponent field is 127..142 (1 <= |f| < 2^16), that plus e - 128 must
 * be 1..254. */
static inline int pk_e8m0_add_ok(__m512i c)
{
    return _mm512_cmple_epu32_mask(_mm512_sub_epi32(c, _mm512_set1_epi32(2)), _mm512_set1_epi32(238)) == 0xffff;
}

static inline void pk_unpack_mxfp4(const char *t, __m512i *u)
{
    const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int j = 0; j < 4; j++) {
        __m512i v = _mm512_loadu_si512(t + 16 + 64 * j);
        u[j] = _mm512_shuffle_epi8(lut, _mm512_and_si512(v, m4));
        u[4 + j] = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
    }
}

/* Token t's 16 integer sums of block b, as floats f, into acc[t]:
 * SCALED(f, i, dx) is f times the halved scales times the token's scale
 * dx, plus acc[t] (i: the integer sums). */
#define PK_MXFP4_TOKENS(NT, SCALED)                                                                \
    _Pragma("GCC unroll 8")                                                                        \
    for (int t = 0; t < NT; t++) {                                                                 \
        const int8_t *q = ((const blk_q8_0 *)(x + (size_t)t * xs_row))[b].qs;                      \
        const int32_t *hs = xs + 2 * (t * mstride + b);                                            \
        __m512i i0 = _mm512_set1_epi32(-12 * (hs[0] + hs[1])), i1 = _mm512_setzero_si512();        \
        for (int k = 0; k < 8; k += 2) {                                                           \
            i0 = _mm512_dpbusd_epi32(i0, u[k], pk_quad(q, k));                                     \
            if (NT == 1) i1 = _mm512_dpbusd_epi32(i1, u[k + 1], pk_quad(q, k + 1));                \
            else i0 = _mm512_dpbusd_epi32(i0, u[k + 1], pk_quad(q, k + 1));                        \
        }                                                                                          \
        if (NT == 1) i0 = _mm512_add_epi32(i0, i1);                                                \
        acc[t] = SCALED(_mm512_cvtepi32_ps(i0), i0, _mm512_set1_ps(xd[t * mstride + b]));          \
    }

/* The exponent add on the nonzero lanes (sh: (e - 128) << 23), then dx. */
#define PK_MXFP4_ADD(f, i, dx)                                                                     \
    _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_mask_add_epi32(_mm512_castps_si512(f), _mm512_test_epi32_mask(i, i), \
                                                              _mm512_castps_si512(f), sh)),        \
                    dx, acc[t])
/* f * dx first, then the halved scales (ex: e - 128 as floats): finite
 * where f * 2^(e - 128) would not be, and rounded once more where the
 * result is below the normal floats, not where dx * 2^(e - 128) is. */
#define PK_MXFP4_SCALEF(f, i, dx) _mm512_add_ps(acc[t], _mm512_scalef_ps(_mm512_mul_ps(f, dx), ex))

/* As PK_GROUP_FN, with the E8M0 scales. */
#define PK_MXFP4_GROUP_FN(NT)                                                                      \
    static inline void packed_mxfp4_g##NT(int64_t nb, const char *wg, const char *x, size_t xs_row, \
                                          const float *xd, const int32_t *xs, int64_t mstride,     \
                                          float *out, size_t ldo, int accum)                       \
    {                                                                                              \
        __m512 acc[NT];                                                                            \
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();                                 \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const char *tl = wg + b * PK_MXFP4_TILE;                                               \
            for (int o = 0; o < PK_MXFP4_TILE; o += 64)                                            \
                _mm_prefetch(tl + PK_LEGACY_AHEAD(PK_MXFP4_TILE) * PK_MXFP4_TILE + o, _MM_HINT_T0); \
            __m512i u[8];                                                                          \
            pk_unpack_mxfp4(tl, u);                                                                \
            __m512i c = pk_e8m0_codes(tl), e = _mm512_sub_epi32(c, _mm512_set1_epi32(128));        \
            if (__builtin_expect(pk_e8m0_add_ok(c), 1)) {                                          \
                __m512i sh = _mm512_slli_epi32(e, 23);                                             \
                PK_MXFP4_TOKENS(NT, PK_MXFP4_ADD)                                                  \
            } else {                                                                               \
                __m512 ex = _mm512_cvtepi32_ps(e);                                                 \
                PK_MXFP4_TOKENS(NT, PK_MXFP4_SCALEF)                                               \
            }                                                                                      \
        }                                                                                          \
        pk_store(out, ldo, acc, NT, accum);                                                        \
    }

PK_EACH_TILE(PK_MXFP4_GROUP_FN)
PK_FNS(packed_mxfp4, PK_MXFP4_TILE, 32, sizeof(blk_q8_0), 1)
