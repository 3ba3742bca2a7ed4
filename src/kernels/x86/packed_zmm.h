/* AVX-512 kernels over the 16-row packed Q4_0 / Q8_0 layout (kernels/pack.h).
 * Per tile (16 rows x 32 columns) the quants become eight zmm u[k] of
 * unsigned bytes, u[k] holding columns 4k..4k+3 of all 16 rows, so
 *     sum over the block = scale_r * dx * (sum_k u[k] . xquad[k] - OFF * sum(xq))
 * is eight vpdpbusd against broadcast activation quads, one integer
 * subtract, and one multiply-add per token for all 16 rows. A tile of up to
 * up to 8 tokens shares the unpacked u[k]: decode is the one-token case. */
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

/* One group of 16 rows against NT tokens (compile-time, so the accumulators
 * stay in registers), over nb blocks; the activation metadata of token t is
 * at xd/xs[t * mstride]. The integer sum starts at -OFF * sum(xq), folding
 * the offset in. Decode (NT = 1) splits a token's eight dots into two chains
 * so that it is not bound by vpdpbusd's latency; tiles of several tokens
 * have independent chains enough. With accum the results add to out (the
 * second and later panels). */
#define PK_GROUP_FN(name, UNPACK, TILE, OFF, NT)                                                   \
    static inline void name##_g##NT(int64_t nb, const char *wg, const char *x, size_t xs_row,      \
                                    const float *xd, const int32_t *xs, int64_t mstride, float *out, \
                                    size_t ldo, int accum)                                         \
    {                                                                                              \
        __m512 acc[NT];                                                                            \
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();                                 \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const char *tl = wg + b * (TILE);                                                      \
            __m512i u[8];                                                                          \
            UNPACK(tl, u);                                                                         \
            __m512 ws = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)tl));                  \
            _Pragma("GCC unroll 8")                                                                \
            for (int t = 0; t < NT; t++) {                                                         \
                const int8_t *q = ((const blk_q8_0 *)(x + (size_t)t * xs_row))[b].qs;              \
                __m512i i0 = _mm512_set1_epi32(-(OFF) * xs[t * mstride + b]), i1 = _mm512_setzero_si512(); \
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
        for (int t = 0; t < NT; t++) {                                                             \
            float *o = out + (size_t)t * ldo;                                                      \
            _mm512_storeu_ps(o, accum ? _mm512_add_ps(acc[t], _mm512_loadu_ps(o)) : acc[t]);       \
        }                                                                                          \
    }

/* Panel by panel; within a panel, groups in chunks of about 128 KiB
 * (L2-resident while every token tile of the batch passes over them),
 * tokens in tiles of 8, 4, 2, 1. */
#define PK_CHUNK_BYTES (128 << 10)
#define PK_FNS(name, UNPACK, TILE, OFF)                                                            \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 1)                                                        \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 2)                                                        \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 4)                                                        \
    PK_GROUP_FN(name, UNPACK, TILE, OFF, 8)                                                        \
    static void name(int64_t n, const void *wp, int64_t n_groups, int64_t gfirst, int ng, const void *x, \
                     size_t x_stride, const float *xd, const int32_t *xs, int nt, float *out, size_t ldo) \
    {                                                                                              \
        int64_t nb = n / 32;                                                                       \
        for (int64_t p0 = 0; p0 < nb; p0 += SD_PACK_PANEL_BLOCKS) {                                \
            int64_t pb = nb - p0 < SD_PACK_PANEL_BLOCKS ? nb - p0 : SD_PACK_PANEL_BLOCKS;          \
            size_t gbytes = (size_t)pb * (TILE);                                                   \
            const char *wpan = (const char *)wp + sd_pack_tile_offset(n_groups, nb, gfirst, p0) * (TILE); \
            int gc = (int)(PK_CHUNK_BYTES / gbytes);                                               \
            gc = nt == 1 || gc < 1 ? (nt == 1 ? ng : 1) : gc;                                      \
            for (int g0 = 0; g0 < ng; g0 += gc) {                                                  \
                int g1 = g0 + gc < ng ? g0 + gc : ng;                                              \
                for (int t0 = 0; t0 < nt;) {                                                       \
                    int left = nt - t0, tt = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;   \
                    const char *xt = (const char *)x + (size_t)t0 * x_stride + p0 * sizeof(blk_q8_0); \
                    const float *dt = xd + (size_t)t0 * nb + p0;                                   \
                    const int32_t *st = xs + (size_t)t0 * nb + p0;                                 \
                    for (int g = g0; g < g1; g++) {                                                \
                        const char *wg = wpan + (size_t)g * gbytes;                                \
                        float *o = out + (size_t)t0 * ldo + (size_t)g * SD_PACK_ROWS;              \
                        int ac = p0 > 0;                                                           \
                        switch (tt) {                                                              \
                        case 8: name##_g8(pb, wg, xt, x_stride, dt, st, nb, o, ldo, ac); break;    \
                        case 4: name##_g4(pb, wg, xt, x_stride, dt, st, nb, o, ldo, ac); break;    \
                        case 2: name##_g2(pb, wg, xt, x_stride, dt, st, nb, o, ldo, ac); break;    \
                        default: name##_g1(pb, wg, xt, x_stride, dt, st, nb, o, ldo, ac); break;   \
                        }                                                                          \
                    }                                                                              \
                    t0 += tt;                                                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

PK_FNS(packed_q4_0, pk_unpack_q4_0, PK_Q4_0_TILE, 8)
PK_FNS(packed_q8_0, pk_unpack_q8_0, PK_Q8_0_TILE, 128)

static void register_packed(sd_kernel_table *t)
{
    t->packed[SD_TYPE_Q4_0] = packed_q4_0;
    t->packed[SD_TYPE_Q8_0] = packed_q8_0;
}
