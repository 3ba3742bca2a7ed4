/* AVX-512 kernel over 16-row packed MXFP4 (kernels/pack.h), the format of
 * gpt-oss's experts; included by packed_zmm.h after its helpers. A tile is
 * 16 rows x 32 columns: the rows' E8M0 scale bytes (16 bytes), then four
 * chunks of 64 bytes; chunk j's low nibbles are columns 4j.. and its high
 * nibbles 16 + 4j.. of every row (the block's own nibble order, as Q4_0).
 * Each nibble is an E2M1 code, looked up as 2 * value + 12 (0..24, unsigned
 * for vpdpbusd, the table NVFP4 uses); 12 * sum(x) of the block comes off
 * the integer start, and the scale is taken at half its value so that the
 * doubling cancels (tensor/fp4.c's mxfp4_dot computes the same sums). */
#define PK_MXFP4_TILE (16 + 4 * 64)

/* Sixteen E8M0 codes as floats at half their value, 2^(e - 128): the bits
 * (e - 1) << 23, and for e < 2 the subnormals 0x00200000 << e. */
static inline __m512 pk_e8m0_half(const char *codes)
{
    __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)codes));
    __m512i v = _mm512_slli_epi32(_mm512_sub_epi32(c, _mm512_set1_epi32(1)), 23);
    __m512i sub = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), c);
    return _mm512_castsi512_ps(_mm512_mask_mov_epi32(v, _mm512_cmplt_epu32_mask(c, _mm512_set1_epi32(2)), sub));
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
            __m512i u[8];                                                                          \
            pk_unpack_mxfp4(tl, u);                                                                \
            __m512 ws = pk_e8m0_half(tl);                                                          \
            _Pragma("GCC unroll 8")                                                                \
            for (int t = 0; t < NT; t++) {                                                         \
                const int8_t *q = ((const blk_q8_0 *)(x + (size_t)t * xs_row))[b].qs;              \
                const int32_t *hs = xs + 2 * (t * mstride + b);                                    \
                __m512i i0 = _mm512_set1_epi32(-12 * (hs[0] + hs[1])), i1 = _mm512_setzero_si512(); \
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

PK_MXFP4_GROUP_FN(1)
PK_MXFP4_GROUP_FN(2)
PK_MXFP4_GROUP_FN(4)
PK_MXFP4_GROUP_FN(8)
PK_MXFP4_GROUP_FN(3)
PK_MXFP4_GROUP_FN(5)
PK_MXFP4_GROUP_FN(6)
PK_MXFP4_GROUP_FN(7)
PK_FNS(packed_mxfp4, PK_MXFP4_TILE, 32, sizeof(blk_q8_0), 1)
