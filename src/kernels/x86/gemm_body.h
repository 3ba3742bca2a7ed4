/* Tile kernels for batched prefill. A few weight rows and a chunk of the
 * inner dimension are first unpacked into a panel in which one vector holds
 * four consecutive levels of each of the rows, as unsigned bytes, with a
 * float scale and offset per row and 32-value group:
 *     sum(w * x) over a group = scale_r * dx * sum(u * q) + offset_r * dx * sum(q)
 * Then each group costs, per token, eight u8 x s8 dots against broadcast
 * activation bytes (all rows at once) and a few float operations. The panel
 * stays in L1 while every token of the batch passes over it, so the unpacking
 * is paid once per row, not once per row and token. The AVX2 build uses
 * 8-row ymm panels; the AVX-512 build 16-row zmm panels (vpdpbusd on zmm has
 * twice the multiply-adds per instruction at the same rate on Zen 4). */
#include "kernels/x86/simd.h"

#define CHUNK_GROUPS 16           /* 512 values of the inner dimension per panel */
#define TOKEN_BLOCK 64

/* ---- per weight format: the 32 unsigned levels, scale and offset of one group ---- */
static inline __m256i grp_q4_0(const char *row, int g, float *sc, float *off)
{
    const blk_q4_0 *b = (const blk_q4_0 *)row + g;
    *sc = f16(b->d); *off = -8.0f * *sc;
    return nibbles32(b->qs);
}

static inline __m256i grp_q8_0(const char *row, int g, float *sc, float *off)
{
    const blk_q8_0 *b = (const blk_q8_0 *)row + g;
    *sc = f16(b->d); *off = -128.0f * *sc;
    return _mm256_xor_si256(load256(b->qs), _mm256_set1_epi8((char)0x80));   /* q + 128 */
}

static inline __m256i grp_q5_0(const char *row, int g, float *sc, float *off)
{
    const blk_q5_0 *b = (const blk_q5_0 *)row + g;
    *sc = f16(b->d); *off = -16.0f * *sc;
    return q5_levels(b->qs, b->qh);
}

static inline __m256i grp_q4_1(const char *row, int g, float *sc, float *off)
{
    const blk_q4_1 *b = (const blk_q4_1 *)row + g;
    *sc = f16(b->d); *off = f16(b->m);
    return nibbles32(b->qs);
}

static inline __m256i grp_q5_1(const char *row, int g, float *sc, float *off)
{
    const blk_q5_1 *b = (const blk_q5_1 *)row + g;
    *sc = f16(b->d); *off = f16(b->m);
    return q5_levels(b->qs, b->qh);
}

static inline __m256i grp_mxfp4(const char *row, int g, float *sc, float *off)
{
    const blk_mxfp4 *b = (const blk_mxfp4 *)row + g;
    *sc = e8m0_half(b->e); *off = -12.0f * *sc;   /* doubled E2M1 values + 12: 0..24 */
    return _mm256_add_epi8(_mm256_shuffle_epi8(e2m1_lut(), nibbles32(b->qs)), _mm256_set1_epi8(12));
}

/* IQ4_NL levels + 127: 0..240, too large for maddubs pairs (VNNI only). */
static inline __m256i grp_iq4_nl(const char *row, int g, float *sc, float *off)
{
    const blk_iq4_nl *b = (const blk_iq4_nl *)row + g;
    *sc = f16(b->d); *off = -127.0f * *sc;
    return _mm256_add_epi8(_mm256_shuffle_epi8(iq4nl_lut(), nibbles32(b->qs)), _mm256_set1_epi8(127));
}

/* Q4_K: group g is sub-block g % 8 of super-block g / 8. */
static inline __m256i grp_q4_k(const char *row, int g, float *sc, float *off)
{
    const blk_q4_k *b = (const blk_q4_k *)row + g / 8;
    int k = g % 8, s, m;
    sm6(b->scales, k, &s, &m);
    *sc = f16(b->d) * (float)s; *off = -f16(b->dmin) * (float)m;
    __m256i q = load256(b->qs + 32 * (k / 2));
    return _mm256_and_si256(k % 2 ? _mm256_srli_epi16(q, 4) : q, m4b());
}

static inline __m256i grp_q5_k(const char *row, int g, float *sc, float *off)
{
    const blk_q5_k *b = (const blk_q5_k *)row + g / 8;
    int k = g % 8, s, m;
    sm6(b->scales, k, &s, &m);
    *sc = f16(b->d) * (float)s; *off = -f16(b->dmin) * (float)m;
    __m256i q = load256(b->qs + 32 * (k / 2));
    __m256i lo = _mm256_and_si256(k % 2 ? _mm256_srli_epi16(q, 4) : q, m4b());
    __m256i h = _mm256_and_si256(_mm256_srli_epi16(load256(b->qh), k), _mm256_set1_epi8(1));
    return _mm256_or_si256(lo, _mm256_slli_epi16(h, 4));
}

/* Group g = values 32g..32g+31 of the row: super-block g / 8, sub-blocks
 * 2(g % 8) and 2(g % 8) + 1; within the block, h = (g % 8) / 4 and j = g % 4. */
static inline __m256i grp16_q2_k(const char *row, int g, float *sc, float *off)
{
    const blk_q2_k *b = (const blk_q2_k *)row + g / 8;
    int k = 2 * (g % 8), h = (g % 8) / 4, j = g % 4;
    float d = f16(b->d), dm = f16(b->dmin);
    for (int e = 0; e < 2; e++) { sc[e] = d * (float)(b->scales[k + e] & 0x0f); off[e] = -dm * (float)(b->scales[k + e] >> 4); }
    return _mm256_and_si256(_mm256_srli_epi16(load256(b->qs + 32 * h), 2 * j), _mm256_set1_epi8(3));
}

static inline __m256i grp16_q3_k(const char *row, int g, float *sc, float *off)
{
    const blk_q3_k *b = (const blk_q3_k *)row + g / 8;
    int k = 2 * (g % 8), h = (g % 8) / 4, j = g % 4;
    float d = f16(b->d);
    for (int e = 0; e < 2; e++) {
        int kk = k + e;
        int lo = kk < 8 ? b->scales[kk] & 0x0f : b->scales[kk - 8] >> 4;
        int hi = (b->scales[8 + kk % 4] >> (2 * (kk / 4))) & 3;
        sc[e] = d * (float)((lo | hi << 4) - 32);
        off[e] = -4.0f * sc[e];
    }
    __m256i l = _mm256_and_si256(_mm256_srli_epi16(load256(b->qs + 32 * h), 2 * j), _mm256_set1_epi8(3));
    __m256i hb = _mm256_and_si256(_mm256_srli_epi16(load256(b->hmask), 4 * h + j), _mm256_set1_epi8(1));
    return _mm256_or_si256(l, _mm256_slli_epi16(hb, 2));
}

static inline __m256i grp16_q6_k(const char *row, int g, float *sc, float *off)
{
    const blk_q6_k *b = (const blk_q6_k *)row + g / 8;
    int k = 2 * (g % 8), h = (g % 8) / 4, j = g % 4;
    float d = f16(b->d);
    for (int e = 0; e < 2; e++) { sc[e] = d * (float)b->scales[k + e]; off[e] = -32.0f * sc[e]; }
    __m256i l = load256(b->ql + 64 * h + 32 * (j & 1));
    l = _mm256_and_si256(j >= 2 ? _mm256_srli_epi16(l, 4) : l, m4b());
    __m256i hb = _mm256_and_si256(_mm256_srli_epi16(load256(b->qh + 32 * h), 2 * j), _mm256_set1_epi8(3));
    return _mm256_or_si256(l, _mm256_slli_epi16(hb, 4));
}

/* NVFP4: group g is half g % 2 of block g / 2 (sub-blocks 2h, 2h + 1), laid
 * out as dot_nvfp4 does; doubled E2M1 values + 12: 0..24. */
static inline __m256i grp16_nvfp4(const char *row, int g, float *sc, float *off)
{
    const blk_nvfp4 *b = (const blk_nvfp4 *)row + g / 2;
    int h = g % 2;
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m128i v = _mm_loadu_si128((const __m128i *)(b->qs + 16 * h));
    __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
    __m256i c = _mm256_set_m128i(_mm_unpackhi_epi64(lo, hi), _mm_unpacklo_epi64(lo, hi));
    for (int e = 0; e < 2; e++) { sc[e] = ue4m3_half_tab[b->d[2 * h + e]]; off[e] = -12.0f * sc[e]; }
    return _mm256_add_epi8(_mm256_shuffle_epi8(e2m1_lut(), c), _mm256_set1_epi8(12));
}

/* The avx2 file sees __AVX512F__ too under -march=native, so SD_VNNI picks. */
#if !(SD_VNNI && defined(__AVX512F__))
/* ---- AVX2: 8-row ymm panels, 4-token tiles ---- */
#define PANEL_ROWS 8
#define TILE_TOKENS 4

typedef struct {
    uint8_t u[CHUNK_GROUPS][8][PANEL_ROWS * 4];   /* [group][quad][row * 4 + byte] */
    float scale[CHUNK_GROUPS][PANEL_ROWS], offset[CHUNK_GROUPS][PANEL_ROWS];
} panel;

/* Stores the 32 levels of row r, group gi, into the panel. */
static inline void panel_put(panel *p, int gi, int r, __m256i lv)
{
    uint32_t q[8];
    _mm256_storeu_si256((__m256i *)q, lv);
    for (int k = 0; k < 8; k++) memcpy(&p->u[gi][k][4 * r], &q[k], 4);
}

/* ---- per activation format: group g of a row: its int8 values, dx, dx * sum(q) ---- */
static inline const int8_t *xg_q8_0(const char *row, int g, float *dx, float *dxs)
{
    const blk_q8_0 *b = (const blk_q8_0 *)row + g;
    __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), load256(b->qs)), _mm256_set1_epi16(1));
    *dx = f16(b->d); *dxs = *dx * (float)hsum_epi32(s);
    return b->qs;
}

static inline const int8_t *xg_q8_1(const char *row, int g, float *dx, float *dxs)
{
    const blk_q8_1 *b = (const blk_q8_1 *)row + g;
    *dx = f16(b->d); *dxs = f16(b->s);   /* the stored F16 sum, as ggml uses it */
    return b->qs;
}

static inline const int8_t *xg_q8_k(const char *row, int g, float *dx, float *dxs)
{
    const blk_q8_k *b = (const blk_q8_k *)row + g / 8;
    int k = g % 8;
    *dx = b->d; *dxs = b->d * (float)(b->bsums[2 * k] + b->bsums[2 * k + 1]);
    return b->qs + 32 * k;
}

/* One tile: NT tokens (compile-time) over the panel's ng groups, added to acc. */
#define TILE_FN(NT)                                                                            \
    static inline void tile_##NT(const panel *p, int ng, const int8_t *const *xq, const float *xd, \
                                 const float *xs, __m256 *acc)                                  \
    {                                                                                          \
        for (int gi = 0; gi < ng; gi++) {                                                      \
            __m256i ai[NT];                                                                    \
            for (int t = 0; t < NT; t++) ai[t] = _mm256_setzero_si256();                       \
            for (int k = 0; k < 8; k++) {                                                      \
                __m256i wv = load256(p->u[gi][k]);                                             \
                for (int t = 0; t < NT; t++) {                                                 \
                    int32_t v;                                                                 \
                    memcpy(&v, xq[t * CHUNK_GROUPS + gi] + 4 * k, 4);                          \
                    ai[t] = dot_us(ai[t], wv, _mm256_set1_epi32(v));                           \
                }                                                                              \
            }                                                                                  \
            __m256 sc = _mm256_loadu_ps(p->scale[gi]), of = _mm256_loadu_ps(p->offset[gi]);     \
            for (int t = 0; t < NT; t++) {                                                     \
                int ix = t * CHUNK_GROUPS + gi;                                                \
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ai[t]),                            \
                                         _mm256_mul_ps(sc, _mm256_set1_ps(xd[ix])), acc[t]);   \
                acc[t] = _mm256_fmadd_ps(of, _mm256_set1_ps(xs[ix]), acc[t]);                  \
            }                                                                                  \
        }                                                                                      \
    }
TILE_FN(1)
TILE_FN(2)
TILE_FN(3)
TILE_FN(4)

/* Adds (or stores, first chunk) the eight rows of token t's result. */
static inline void tile_out(float *o, int nr, __m256 v, int first)
{
    float tmp[8];
    if (nr == PANEL_ROWS) {
        if (!first) v = _mm256_add_ps(v, _mm256_loadu_ps(o));
        _mm256_storeu_ps(o, v);
        return;
    }
    _mm256_storeu_ps(tmp, v);
    for (int r = 0; r < nr; r++) o[r] = first ? tmp[r] : o[r] + tmp[r];
}

/* Loops: token blocks of up to 64 (their activation groups' metadata for one
 * chunk of the inner dimension is computed once), chunks of 16 groups, then
 * panels of 8 rows (packed once per token block), then tiles of 4 tokens. */
#define GEMM_FN(name, GRP, XG)                                                                 \
    static void name(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs,     \
                     int nt, float *out, size_t ldo)                                           \
    {                                                                                          \
        panel p;                                                                               \
        const int8_t *xq[TOKEN_BLOCK * CHUNK_GROUPS];                                          \
        float xd[TOKEN_BLOCK * CHUNK_GROUPS], xsum[TOKEN_BLOCK * CHUNK_GROUPS];                \
        int G = (int)(n / 32);                                                                 \
        for (int tb = 0; tb < nt; tb += TOKEN_BLOCK) {                                         \
            int nb = nt - tb < TOKEN_BLOCK ? nt - tb : TOKEN_BLOCK;                            \
            for (int g0 = 0; g0 < G; g0 += CHUNK_GROUPS) {                                     \
                int ng = G - g0 < CHUNK_GROUPS ? G - g0 : CHUNK_GROUPS;                        \
                for (int t = 0; t < nb; t++)                                                   \
                    for (int gi = 0; gi < ng; gi++) {                                          \
                        int ix = t * CHUNK_GROUPS + gi;                                        \
                        xq[ix] = XG((const char *)x + (size_t)(tb + t) * xs, g0 + gi, &xd[ix], &xsum[ix]); \
                    }                                                                          \
                for (int r0 = 0; r0 < nr; r0 += PANEL_ROWS) {                                  \
                    int pr = nr - r0 < PANEL_ROWS ? nr - r0 : PANEL_ROWS;                      \
                    memset(&p, 0, sizeof p);                                                   \
                    for (int r = 0; r < pr; r++) {                                             \
                        const char *row = (const char *)w + (size_t)(r0 + r) * ws;             \
                        for (int gi = 0; gi < ng; gi++)                                        \
                            panel_put(&p, gi, r, GRP(row, g0 + gi, &p.scale[gi][r], &p.offset[gi][r])); \
                    }                                                                          \
                    for (int t0 = 0; t0 < nb; t0 += TILE_TOKENS) {                             \
                        int tt = nb - t0 < TILE_TOKENS ? nb - t0 : TILE_TOKENS;                \
                        int m = t0 * CHUNK_GROUPS;                                             \
                        __m256 acc[TILE_TOKENS];                                               \
                        for (int t = 0; t < TILE_TOKENS; t++) acc[t] = _mm256_setzero_ps();    \
                        switch (tt) {                                                          \
                        case 4: tile_4(&p, ng, xq + m, xd + m, xsum + m, acc); break;          \
                        case 3: tile_3(&p, ng, xq + m, xd + m, xsum + m, acc); break;          \
                        case 2: tile_2(&p, ng, xq + m, xd + m, xsum + m, acc); break;          \
                        default: tile_1(&p, ng, xq + m, xd + m, xsum + m, acc); break;         \
                        }                                                                      \
                        for (int t = 0; t < tt; t++)                                           \
                            tile_out(out + (size_t)(tb + t0 + t) * ldo + r0, pr, acc[t], g0 == 0); \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

GEMM_FN(gemm_q4_0, grp_q4_0, xg_q8_0)
GEMM_FN(gemm_q5_0, grp_q5_0, xg_q8_0)
GEMM_FN(gemm_q4_1, grp_q4_1, xg_q8_1)
GEMM_FN(gemm_q5_1, grp_q5_1, xg_q8_1)
GEMM_FN(gemm_mxfp4, grp_mxfp4, xg_q8_0)
GEMM_FN(gemm_q4_k, grp_q4_k, xg_q8_k)
GEMM_FN(gemm_q5_k, grp_q5_k, xg_q8_k)
#if SD_VNNI
GEMM_FN(gemm_q8_0, grp_q8_0, xg_q8_0)   /* levels up to 255: needs vpdpbusd, not maddubs */
GEMM_FN(gemm_iq4_nl, grp_iq4_nl, xg_q8_0)
#endif

/* The 16-value family (Q2_K, Q3_K, Q6_K, NVFP4): the same panel with a
 * scale and an offset per half group, two int accumulators per token. */
typedef struct {
    uint8_t u[CHUNK_GROUPS][8][PANEL_ROWS * 4];
    float scale[CHUNK_GROUPS][2][PANEL_ROWS], offset[CHUNK_GROUPS][2][PANEL_ROWS];
} panel16;

static inline void panel16_put(panel16 *p, int gi, int r, __m256i lv)
{
    uint32_t q[8];
    _mm256_storeu_si256((__m256i *)q, lv);
    for (int k = 0; k < 8; k++) memcpy(&p->u[gi][k][4 * r], &q[k], 4);
}

/* Activations for them: Q8_K, with the two 16-value sums of the group. */
static inline const int8_t *xg16_q8_k(const char *row, int g, float *dx, float *xs0, float *xs1)
{
    const blk_q8_k *b = (const blk_q8_k *)row + g / 8;
    int k = 2 * (g % 8);
    *dx = b->d; *xs0 = b->d * (float)b->bsums[k]; *xs1 = b->d * (float)b->bsums[k + 1];
    return b->qs + 32 * (g % 8);
}

/* Q8_0 (for NVFP4): dx per group and the sums of its two halves. */
static inline const int8_t *xg16_q8_0(const char *row, int g, float *dx, float *xs0, float *xs1)
{
    const blk_q8_0 *b = (const blk_q8_0 *)row + g;
    __m256i s = _mm256_sad_epu8(_mm256_xor_si256(load256(b->qs), _mm256_set1_epi8((char)0x80)), _mm256_setzero_si256());
    __m128i lo = _mm256_castsi256_si128(s), hi = _mm256_extracti128_si256(s, 1);
    *dx = f16(b->d);
    *xs0 = *dx * (float)(_mm_cvtsi128_si32(lo) + _mm_extract_epi32(lo, 2) - 2048);
    *xs1 = *dx * (float)(_mm_cvtsi128_si32(hi) + _mm_extract_epi32(hi, 2) - 2048);
    return b->qs;
}

#define TILE16_FN(NT)                                                                          \
    static inline void tile16_##NT(const panel16 *p, int ng, const int8_t *const *xq, const float *xd, \
                                   const float *xs, __m256 *acc)                                \
    {                                                                                          \
        for (int gi = 0; gi < ng; gi++) {                                                      \
            __m256i a0[NT], a1[NT];                                                            \
            for (int t = 0; t < NT; t++) a0[t] = a1[t] = _mm256_setzero_si256();               \
            for (int k = 0; k < 8; k++) {                                                      \
                __m256i wv = load256(p->u[gi][k]);                                             \
                for (int t = 0; t < NT; t++) {                                                 \
                    int32_t v;                                                                 \
                    memcpy(&v, xq[t * CHUNK_GROUPS + gi] + 4 * k, 4);                          \
                    if (k < 4) a0[t] = dot_us(a0[t], wv, _mm256_set1_epi32(v));                \
                    else a1[t] = dot_us(a1[t], wv, _mm256_set1_epi32(v));                      \
                }                                                                              \
            }                                                                                  \
            __m256 s0 = _mm256_loadu_ps(p->scale[gi][0]), s1 = _mm256_loadu_ps(p->scale[gi][1]); \
            __m256 o0 = _mm256_loadu_ps(p->offset[gi][0]), o1 = _mm256_loadu_ps(p->offset[gi][1]); \
            for (int t = 0; t < NT; t++) {                                                     \
                int ix = t * CHUNK_GROUPS + gi;                                                \
                __m256 dx = _mm256_set1_ps(xd[ix]);                                            \
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a0[t]), _mm256_mul_ps(s0, dx), acc[t]); \
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a1[t]), _mm256_mul_ps(s1, dx), acc[t]); \
                acc[t] = _mm256_fmadd_ps(o0, _mm256_set1_ps(xs[2 * ix]), acc[t]);              \
                acc[t] = _mm256_fmadd_ps(o1, _mm256_set1_ps(xs[2 * ix + 1]), acc[t]);          \
            }                                                                                  \
        }                                                                                      \
    }
TILE16_FN(1)
TILE16_FN(2)
TILE16_FN(3)
TILE16_FN(4)

#define GEMM16_FN(name, GRP, XG)                                                               \
    static void name(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs,     \
                     int nt, float *out, size_t ldo)                                           \
    {                                                                                          \
        panel16 p;                                                                             \
        const int8_t *xq[TOKEN_BLOCK * CHUNK_GROUPS];                                          \
        float xd[TOKEN_BLOCK * CHUNK_GROUPS], xsum[2 * TOKEN_BLOCK * CHUNK_GROUPS];            \
        int G = (int)(n / 32);                                                                 \
        for (int tb = 0; tb < nt; tb += TOKEN_BLOCK) {                                         \
            int nb = nt - tb < TOKEN_BLOCK ? nt - tb : TOKEN_BLOCK;                            \
            for (int g0 = 0; g0 < G; g0 += CHUNK_GROUPS) {                                     \
                int ng = G - g0 < CHUNK_GROUPS ? G - g0 : CHUNK_GROUPS;                        \
                for (int t = 0; t < nb; t++)                                                   \
                    for (int gi = 0; gi < ng; gi++) {                                          \
                        int ix = t * CHUNK_GROUPS + gi;                                        \
                        xq[ix] = XG((const char *)x + (size_t)(tb + t) * xs, g0 + gi, &xd[ix], \
                                           &xsum[2 * ix], &xsum[2 * ix + 1]);                  \
                    }                                                                          \
                for (int r0 = 0; r0 < nr; r0 += PANEL_ROWS) {                                  \
                    int pr = nr - r0 < PANEL_ROWS ? nr - r0 : PANEL_ROWS;                      \
                    memset(&p, 0, sizeof p);                                                   \
                    for (int r = 0; r < pr; r++) {                                             \
                        const char *row = (const char *)w + (size_t)(r0 + r) * ws;             \
                        for (int gi = 0; gi < ng; gi++) {                                      \
                            float sc[2], off[2];                                               \
                            panel16_put(&p, gi, r, GRP(row, g0 + gi, sc, off));                \
                            for (int e = 0; e < 2; e++) { p.scale[gi][e][r] = sc[e]; p.offset[gi][e][r] = off[e]; } \
                        }                                                                      \
                    }                                                                          \
                    for (int t0 = 0; t0 < nb; t0 += TILE_TOKENS) {                             \
                        int tt = nb - t0 < TILE_TOKENS ? nb - t0 : TILE_TOKENS;                \
                        int m = t0 * CHUNK_GROUPS;                                             \
                        __m256 acc[TILE_TOKENS];                                               \
                        for (int t = 0; t < TILE_TOKENS; t++) acc[t] = _mm256_setzero_ps();    \
                        switch (tt) {                                                          \
                        case 4: tile16_4(&p, ng, xq + m, xd + m, xsum + 2 * m, acc); break;    \
                        case 3: tile16_3(&p, ng, xq + m, xd + m, xsum + 2 * m, acc); break;    \
                        case 2: tile16_2(&p, ng, xq + m, xd + m, xsum + 2 * m, acc); break;    \
                        default: tile16_1(&p, ng, xq + m, xd + m, xsum + 2 * m, acc); break;   \
                        }                                                                      \
                        for (int t = 0; t < tt; t++)                                           \
                            tile_out(out + (size_t)(tb + t0 + t) * ldo + r0, pr, acc[t], g0 == 0); \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

GEMM16_FN(gemm_q2_k, grp16_q2_k, xg16_q8_k)
GEMM16_FN(gemm_q3_k, grp16_q3_k, xg16_q8_k)
GEMM16_FN(gemm_q6_k, grp16_q6_k, xg16_q8_k)
GEMM16_FN(gemm_nvfp4, grp16_nvfp4, xg16_q8_0)

#else
/* ---- AVX-512: 16-row zmm panels, 8-token tiles ----
 * One zmm holds four levels of 16 rows; vpdpbusd multiplies it by a
 * broadcast activation quad. 8 tokens x (int + float accumulators) fit the 32
 * registers with room to spare and keep 8 independent vpdpbusd chains per
 * group, enough to cover its latency. Offsets that are a whole multiple
 * of the scale (Q4_0: -8 d ...) are folded into the int accumulator as
 * -c * sum(q), which saves a float op per group and token and is exact. */
#define ZROWS 16
#define ZTILE 8

typedef struct {
    uint8_t u[CHUNK_GROUPS][8][ZROWS * 4];            /* [group][quad][row * 4 + byte] */
    float sc[CHUNK_GROUPS][2][ZROWS], of[CHUNK_GROUPS][2][ZROWS];   /* [.][half][row] */
} zpanel;

/* Activations of one token block and chunk, index t * CHUNK_GROUPS + gi: the
 * int8 values copied side by side, so a tile reaches every token's quads at
 * fixed offsets from one pointer (no pointer per token to keep in registers). */
typedef struct {
    _Alignas(64) int8_t q[TOKEN_BLOCK * CHUNK_GROUPS][32];
    float d[TOKEN_BLOCK * CHUNK_GROUPS];
    float s[2 * TOKEN_BLOCK * CHUNK_GROUPS];      /* float offset mode: sum(q) per half (times dx if per group) */
    int32_t i[2 * TOKEN_BLOCK * CHUNK_GROUPS];    /* int offset mode: -c * sum(q) per half */
} zmeta;

/* Rows 8h..8h+7 of group gi: an 8 x 8 transpose of dwords (level quads). */
static inline void zpanel_put8(zpanel *p, int gi, int h, const __m256i *L)
{
    __m256i a[8], b[8];
    for (int i = 0; i < 4; i++) {
        a[2 * i] = _mm256_unpacklo_epi32(L[2 * i], L[2 * i + 1]);       /* quads 0 1 | 4 5 of two rows */
        a[2 * i + 1] = _mm256_unpackhi_epi32(L[2 * i], L[2 * i + 1]);   /* quads 2 3 | 6 7 */
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            b[4 * i + 2 * j] = _mm256_unpacklo_epi64(a[4 * i + j], a[4 * i + j + 2]);       /* quads 2j | 2j + 4 */
            b[4 * i + 2 * j + 1] = _mm256_unpackhi_epi64(a[4 * i + j], a[4 * i + j + 2]); /* quads 2j + 1 | 2j + 5 */
        }
    /* b[k] (k < 4) holds quads k | k + 4 of rows 0-3, b[4 + k] those of rows 4-7 */
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_si256((__m256i *)(p->u[gi][k] + 32 * h), _mm256_permute2x128_si256(b[k], b[4 + k], 0x20));
        _mm256_storeu_si256((__m256i *)(p->u[gi][k + 4] + 32 * h), _mm256_permute2x128_si256(b[k], b[4 + k], 0x31));
    }
}

/* Activation groups: int8 values, dx and the sums of the two 16-value halves. */
static inline void half_sums(const int8_t *q, int32_t *s)
{
    __m256i v = _mm256_sad_epu8(_mm256_xor_si256(load256(q), _mm256_set1_epi8((char)0x80)), _mm256_setzero_si256());
    __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    s[0] = _mm_cvtsi128_si32(lo) + _mm_extract_epi32(lo, 2) - 2048;   /* (q + 128) summed, less 16 * 128 */
    s[1] = _mm_cvtsi128_si32(hi) + _mm_extract_epi32(hi, 2) - 2048;
}

/* fs: the offset term's activation factor, d * sum(q) (Q8_1: its stored F16 s) */
static inline const int8_t *zx_q8_0(const char *row, int g, float *dx, int32_t *s, float *fs)
{
    const blk_q8_0 *b = (const blk_q8_0 *)row + g;
    *dx = f16(b->d);
    half_sums(b->qs, s);
    *fs = *dx * (float)(s[0] + s[1]);
    return b->qs;
}

static inline const int8_t *zx_q8_1(const char *row, int g, float *dx, int32_t *s, float *fs)
{
    const blk_q8_1 *b = (const blk_q8_1 *)row + g;
    *dx = f16(b->d);
    half_sums(b->qs, s);
    *fs = f16(b->s);
    return b->qs;
}

static inline const int8_t *zx_q8_k(const char *row, int g, float *dx, int32_t *s, float *fs)
{
    const blk_q8_k *b = (const blk_q8_k *)row + g / 8;
    int k = g % 8;
    *dx = b->d; s[0] = b->bsums[2 * k]; s[1] = b->bsums[2 * k + 1];
    *fs = b->d * (float)(s[0] + s[1]);
    return b->qs + 32 * k;
}

/* Adds (or stores, first chunk) dx * v to the nr <= 16 rows of one token's result. */
static inline void ztile_out(float *o, int nr, __m512 v, __m512 dx, int first)
{
    __mmask16 k = (__mmask16)((1u << nr) - 1);
    v = first ? _mm512_mul_ps(v, dx) : _mm512_fmadd_ps(v, dx, _mm512_maskz_loadu_ps(k, o));
    _mm512_mask_storeu_ps(o, k, v);
}

/* NT tokens from t0 over the panel's groups g_lo..g_hi-1, added to out. NS:
 * scales per group (1, or 2 for the 16-value family); IOFF: offset folded
 * into the int accumulators; SBDX: the groups are one 256-value superblock
 * with one dx (Q8_K), applied once at the end instead of once per group.
 * All compile-time after inlining. */
static inline __attribute__((always_inline)) void ztile(const zpanel *p, int g_lo, int g_hi, const zmeta *m, int t0,
                                                        int NT, int NS, int IOFF, int SBDX, float *o, size_t ldo,
                                                        int pr, int first)
{
    __m512 acc[ZTILE];
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (int gi = g_lo; gi < g_hi; gi++) {
        __m512 gs[ZTILE];
#pragma GCC unroll 2
        for (int e = 0; e < NS; e++) {
            __m512i ai[ZTILE];
            for (int t = 0; t < NT; t++)
                ai[t] = IOFF ? _mm512_set1_epi32(m->i[2 * ((t0 + t) * CHUNK_GROUPS + gi) + e]) : _mm512_setzero_si512();
#ifndef __SANITIZE_ADDRESS__   /* instrumented, GCC cannot honour it and says so */
#pragma GCC unroll 8
#endif
            for (int kk = 0; kk < 8 / NS; kk++) {
                int k = e * (8 / NS) + kk;
                __m512i wv = _mm512_loadu_si512(p->u[gi][k]);
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++) {
                    int32_t v;
                    memcpy(&v, &m->q[(t0 + t) * CHUNK_GROUPS + gi][4 * k], 4);
                    ai[t] = _mm512_dpbusd_epi32(ai[t], wv, _mm512_set1_epi32(v));
                }
            }
            __m512 sc = _mm512_loadu_ps(p->sc[gi][e]);
            for (int t = 0; t < NT; t++) {
                int ix = (t0 + t) * CHUNK_GROUPS + gi;
                __m512 f = _mm512_cvtepi32_ps(ai[t]);
                if (SBDX) acc[t] = _mm512_fmadd_ps(f, sc, acc[t]);
                else if (NS == 1) acc[t] = _mm512_fmadd_ps(f, _mm512_mul_ps(sc, _mm512_set1_ps(m->d[ix])), acc[t]);
                else gs[t] = e == 0 ? _mm512_mul_ps(f, sc) : _mm512_fmadd_ps(f, sc, gs[t]);
            }
            if (!IOFF) {
                __m512 of = _mm512_loadu_ps(p->of[gi][e]);
                for (int t = 0; t < NT; t++) {
                    __m512 xs = _mm512_set1_ps(m->s[2 * ((t0 + t) * CHUNK_GROUPS + gi) + e]);
                    if (SBDX || NS == 1) acc[t] = _mm512_fmadd_ps(of, xs, acc[t]);
                    else gs[t] = _mm512_fmadd_ps(of, xs, gs[t]);
                }
            }
        }
        if (!SBDX && NS == 2)
            for (int t = 0; t < NT; t++)
                acc[t] = _mm512_fmadd_ps(gs[t], _mm512_set1_ps(m->d[(t0 + t) * CHUNK_GROUPS + gi]), acc[t]);
    }
    for (int t = 0; t < NT; t++)
        ztile_out(o + (size_t)t * ldo, pr, acc[t],
                  SBDX ? _mm512_set1_ps(m->d[(t0 + t) * CHUNK_GROUPS + g_lo]) : _mm512_set1_ps(1.0f), first);
}

/* ---- panel scales and offsets, one row at a time: [gi][half][rr] ----
 * The K-quants decode each superblock's scales once, not once per group. */
static inline void zpanel_zero_row(zpanel *p, int ng, int rr)
{
    for (int gi = 0; gi < ng; gi++)
        for (int e = 0; e < 2; e++) p->sc[gi][e][rr] = p->of[gi][e][rr] = 0;
}

/* The plain formats: from the group functions (their levels unused); OF:
 * whether the offsets are needed (not when folded into the int sums). */
#define ZSCALES_FROM_GRP(name, GRP, NS, OF)                                                    \
    static inline void name(const char *row, int g0, int ng, zpanel *p, int rr)               \
    {                                                                                          \
        for (int gi = 0; gi < ng; gi++) {                                                      \
            float sc[2], of[2];                                                                \
            (void)GRP(row, g0 + gi, sc, of);                                                   \
            for (int e = 0; e < NS; e++) {                                                     \
                p->sc[gi][e][rr] = sc[e];                                                      \
                if (OF) p->of[gi][e][rr] = of[e];                                              \
            }                                                                                  \
        }                                                                                      \
    }
ZSCALES_FROM_GRP(zsc_q4_0, grp_q4_0, 1, 0)
ZSCALES_FROM_GRP(zsc_q5_0, grp_q5_0, 1, 0)
ZSCALES_FROM_GRP(zsc_q8_0, grp_q8_0, 1, 0)
ZSCALES_FROM_GRP(zsc_mxfp4, grp_mxfp4, 1, 0)
ZSCALES_FROM_GRP(zsc_iq4_nl, grp_iq4_nl, 1, 0)
ZSCALES_FROM_GRP(zsc_q4_1, grp_q4_1, 1, 1)
ZSCALES_FROM_GRP(zsc_q5_1, grp_q5_1, 1, 1)
ZSCALES_FROM_GRP(zsc_nvfp4, grp16_nvfp4, 2, 0)

/* The K-quants decode a superblock's scales with a few vector operations
 * (scalar decoding per group cost as much as the tile's dots for 8 tokens)
 * and scatter them into the panel: sixteen (half) groups of row rr. */
static inline void zput16(float (*dst)[2][ZROWS], int rr, __m512 v)
{
    float t[16];
    _mm512_storeu_ps(t, v);
    for (int k = 0; k < 16; k++) dst[k / 2][k % 2][rr] = t[k];
}

/* Q4_K / Q5_K (same d, dmin, scales[12] head): bytes 0-7 the 6-bit scales,
 * 8-15 the mins, as in the reference decoding. */
static inline void zsc_kq6(const uint8_t *s12, float d, float dmin, zpanel *p, int gi, int rr)
{
    uint32_t a[3], u[4];
    memcpy(a, s12, 12);
    u[0] = a[0] & 0x3f3f3f3f;
    u[1] = (a[2] & 0x0f0f0f0f) | ((a[0] >> 6) & 0x03030303) << 4;
    u[2] = a[1] & 0x3f3f3f3f;
    u[3] = ((a[2] >> 4) & 0x0f0f0f0f) | ((a[1] >> 6) & 0x03030303) << 4;
    __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)u)));
    float t[16];
    _mm512_storeu_ps(t, _mm512_mul_ps(v, _mm512_insertf32x8(_mm512_set1_ps(d), _mm256_set1_ps(dmin), 1)));
    for (int k = 0; k < 8; k++) { p->sc[gi + k][0][rr] = t[k]; p->of[gi + k][0][rr] = t[8 + k]; }
}

static inline void zsc_q4_k(const char *row, int g0, int ng, zpanel *p, int rr)
{
    for (int gi = 0; gi < ng; gi += 8) {
        const blk_q4_k *b = (const blk_q4_k *)row + (g0 + gi) / 8;
        zsc_kq6(b->scales, f16(b->d), -f16(b->dmin), p, gi, rr);
    }
}

static inline void zsc_q5_k(const char *row, int g0, int ng, zpanel *p, int rr)
{
    for (int gi = 0; gi < ng; gi += 8) {
        const blk_q5_k *b = (const blk_q5_k *)row + (g0 + gi) / 8;
        zsc_kq6(b->scales, f16(b->d), -f16(b->dmin), p, gi, rr);
    }
}

static inline void zsc_q2_k(const char *row, int g0, int ng, zpanel *p, int rr)
{
    for (int gi = 0; gi < ng; gi += 8) {
        const blk_q2_k *b = (const blk_q2_k *)row + (g0 + gi) / 8;
        __m128i v = _mm_loadu_si128((const __m128i *)b->scales), m4 = _mm_set1_epi8(0x0f);
        __m512 s = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(v, m4)));
        __m512 m = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), m4)));
        zput16(p->sc + gi, rr, _mm512_mul_ps(s, _mm512_set1_ps(f16(b->d))));
        zput16(p->of + gi, rr, _mm512_mul_ps(m, _mm512_set1_ps(-f16(b->dmin))));
    }
}

/* Q3_K and Q6_K: offsets folded into the int accumulators, scales only.
 * Q3_K: low 4 bits from scales[0..7] (low nibbles, then high), top 2 bits
 * from scales[8..11], shifted by 2 (k / 4); minus 32. */
static inline void zsc_q3_k(const char *row, int g0, int ng, zpanel *p, int rr)
{
    for (int gi = 0; gi < ng; gi += 8) {
        const blk_q3_k *b = (const blk_q3_k *)row + (g0 + gi) / 8;
        const __m128i m4 = _mm_set1_epi8(0x0f);
        __m128i l8 = _mm_loadl_epi64((const __m128i *)b->scales);
        __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(l8, m4), _mm_and_si128(_mm_srli_epi16(l8, 4), m4));
        uint32_t h;
        memcpy(&h, b->scales + 8, 4);
        __m128i hi = _mm_srlv_epi32(_mm_set1_epi32((int)h), _mm_setr_epi32(0, 2, 4, 6));
        hi = _mm_and_si128(hi, _mm_set1_epi8(3));
        __m128i q = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
        zput16(p->sc + gi, rr, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_set1_ps(f16(b->d))));
    }
}

static inline void zsc_q6_k(const char *row, int g0, int ng, zpanel *p, int rr)
{
    for (int gi = 0; gi < ng; gi += 8) {
        const blk_q6_k *b = (const blk_q6_k *)row + (g0 + gi) / 8;
        __m128i q = _mm_loadu_si128((const __m128i *)b->scales);
        zput16(p->sc + gi, rr, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_set1_ps(f16(b->d))));
    }
}

/* Loops: token blocks of up to 64 (their activation metadata for one chunk
 * of the inner dimension is computed once), chunks of 16 groups, panels of
 * 16 rows (packed once per token block), tiles of 8 tokens (then 4, 2, 1)
 * over the chunk, or over each superblock of it for Q8_K activations.
 * C: the offset as a multiple of the scale (0: a float offset of its own). */
#define ZTILE_RUN(NT)                                                                          \
    for (; nb - t0 >= NT; t0 += NT)                                                            \
        for (int g8 = 0; g8 < ng; g8 += SBDX ? 8 : ng)                                         \
            ztile(&p, g8, SBDX ? g8 + 8 : ng, &m, t0, NT, NS, C != 0, SBDX,                    \
                  out + (size_t)(tb + t0) * ldo + r0, ldo, pr, g0 == 0 && g8 == 0);
#define ZGEMM_FN(name, GRP, SCALES, XG, NS_, C_, SBDX_)                                        \
    static void name(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs,     \
                     int nt, float *out, size_t ldo)                                           \
    {                                                                                          \
        enum { NS = NS_, C = C_, SBDX = SBDX_ };                                               \
        zpanel p;                                                                              \
        zmeta m;                                                                               \
        int G = (int)(n / 32);                                                                 \
        for (int tb = 0; tb < nt; tb += TOKEN_BLOCK) {                                         \
            int nb = nt - tb < TOKEN_BLOCK ? nt - tb : TOKEN_BLOCK;                            \
            for (int g0 = 0; g0 < G; g0 += CHUNK_GROUPS) {                                     \
                int ng = G - g0 < CHUNK_GROUPS ? G - g0 : CHUNK_GROUPS;                        \
                for (int t = 0; t < nb; t++)                                                   \
                    for (int gi = 0; gi < ng; gi++) {                                          \
                        int ix = t * CHUNK_GROUPS + gi;                                        \
                        int32_t s[2];                                                          \
                        float d, fs;                                                           \
                        const int8_t *q = XG((const char *)x + (size_t)(tb + t) * xs, g0 + gi, &d, s, &fs); \
                        _mm256_store_si256((__m256i *)m.q[ix], load256(q));                   \
                        m.d[ix] = d;                                                           \
                        if (NS == 1) { s[0] += s[1]; s[1] = 0; }                               \
                        for (int e = 0; e < 2; e++) {                                          \
                            m.i[2 * ix + e] = -C * s[e];                                       \
                            m.s[2 * ix + e] = SBDX || NS == 2 ? (float)s[e] : e == 0 ? fs : 0; \
                        }                                                                      \
                    }                                                                          \
                for (int r0 = 0; r0 < nr; r0 += ZROWS) {                                       \
                    int pr = nr - r0 < ZROWS ? nr - r0 : ZROWS;                                \
                    for (int rr = 0; rr < ZROWS; rr++)                                         \
                        if (rr < pr) SCALES((const char *)w + (size_t)(r0 + rr) * ws, g0, ng, &p, rr); \
                        else zpanel_zero_row(&p, ng, rr);                                      \
                    for (int gi = 0; gi < ng; gi++)                                            \
                        for (int h = 0; h < 2; h++) {                                          \
                            __m256i L[8];                                                      \
                            for (int r = 0; r < 8; r++) {                                      \
                                int rr = 8 * h + r;                                            \
                                float sc[2], of[2];   /* unused here: the compiler drops them */ \
                                L[r] = rr < pr ? GRP((const char *)w + (size_t)(r0 + rr) * ws, g0 + gi, sc, of) \
                                               : _mm256_setzero_si256();                       \
                            }                                                                  \
                            zpanel_put8(&p, gi, h, L);                                         \
                        }                                                                      \
                    int t0 = 0;                                                                \
                    ZTILE_RUN(ZTILE)                                                           \
                    ZTILE_RUN(4)                                                               \
                    ZTILE_RUN(2)                                                               \
                    ZTILE_RUN(1)                                                               \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

ZGEMM_FN(gemm_q4_0, grp_q4_0, zsc_q4_0, zx_q8_0, 1, 8, 0)
ZGEMM_FN(gemm_q5_0, grp_q5_0, zsc_q5_0, zx_q8_0, 1, 16, 0)
ZGEMM_FN(gemm_q8_0, grp_q8_0, zsc_q8_0, zx_q8_0, 1, 128, 0)
ZGEMM_FN(gemm_mxfp4, grp_mxfp4, zsc_mxfp4, zx_q8_0, 1, 12, 0)
ZGEMM_FN(gemm_iq4_nl, grp_iq4_nl, zsc_iq4_nl, zx_q8_0, 1, 127, 0)
ZGEMM_FN(gemm_q4_1, grp_q4_1, zsc_q4_1, zx_q8_1, 1, 0, 0)
ZGEMM_FN(gemm_q5_1, grp_q5_1, zsc_q5_1, zx_q8_1, 1, 0, 0)
ZGEMM_FN(gemm_q4_k, grp_q4_k, zsc_q4_k, zx_q8_k, 1, 0, 1)
ZGEMM_FN(gemm_q5_k, grp_q5_k, zsc_q5_k, zx_q8_k, 1, 0, 1)
ZGEMM_FN(gemm_q2_k, grp16_q2_k, zsc_q2_k, zx_q8_k, 2, 0, 1)
ZGEMM_FN(gemm_q3_k, grp16_q3_k, zsc_q3_k, zx_q8_k, 2, 4, 1)
ZGEMM_FN(gemm_q6_k, grp16_q6_k, zsc_q6_k, zx_q8_k, 2, 32, 1)
ZGEMM_FN(gemm_nvfp4, grp16_nvfp4, zsc_nvfp4, zx_q8_0, 2, 12, 0)
#endif

static void register_gemm(sd_kernel_table *t)
{
    t->gemm[SD_TYPE_Q4_0] = gemm_q4_0;
    t->gemm[SD_TYPE_Q5_0] = gemm_q5_0;
    t->gemm[SD_TYPE_Q4_1] = gemm_q4_1;
    t->gemm[SD_TYPE_Q5_1] = gemm_q5_1;
    t->gemm[SD_TYPE_MXFP4] = gemm_mxfp4;
    t->gemm[SD_TYPE_NVFP4] = gemm_nvfp4;
    t->gemm[SD_TYPE_Q4_K] = gemm_q4_k;
    t->gemm[SD_TYPE_Q5_K] = gemm_q5_k;
    t->gemm[SD_TYPE_Q2_K] = gemm_q2_k;
    t->gemm[SD_TYPE_Q3_K] = gemm_q3_k;
    t->gemm[SD_TYPE_Q6_K] = gemm_q6_k;
#if SD_VNNI
    t->gemm[SD_TYPE_Q8_0] = gemm_q8_0;
    t->gemm[SD_TYPE_IQ4_NL] = gemm_iq4_nl;
#endif
}
