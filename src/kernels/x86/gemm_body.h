/* Tile kernels for batched prefill. Eight weight rows and a chunk of the
 * inner dimension are first unpacked into a panel in which one ymm holds four
 * consecutive levels of each of the eight rows, as unsigned bytes, with a
 * float scale and offset per row and 32-value group:
 *     sum(w * x) over a group = scale_r * dx * sum(u * q) + offset_r * dx * sum(q)
 * Then each group costs, per token, eight u8 x s8 dots against broadcast
 * activation bytes (all eight rows at once) and three float operations. The
 * panel (4 KiB) stays in L1 while every token of the batch passes over it,
 * so the unpacking is paid once per row, not once per row and token. */
#include "kernels/x86/simd.h"

#define PANEL_ROWS 8
#define CHUNK_GROUPS 16           /* 512 values of the inner dimension per panel */
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
    __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), load256(b->qs)), _mm256_set1_epi16(1));
    *dx = f16(b->d); *dxs = *dx * (float)hsum_epi32(s);
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
#define TOKEN_BLOCK 64
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
#endif

/* ---- K-quants with 16-value sub-blocks (Q2_K, Q3_K, Q6_K): the same panel
 * with a scale and an offset per half group, two int accumulators per token. */
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

/* Activations for them: Q8_K, with the two 16-value sums of the group. */
static inline const int8_t *xg16_q8_k(const char *row, int g, float *dx, float *xs0, float *xs1)
{
    const blk_q8_k *b = (const blk_q8_k *)row + g / 8;
    int k = 2 * (g % 8);
    *dx = b->d; *xs0 = b->d * (float)b->bsums[k]; *xs1 = b->d * (float)b->bsums[k + 1];
    return b->qs + 32 * (g % 8);
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

#define GEMM16_FN(name, GRP)                                                                   \
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
                        xq[ix] = xg16_q8_k((const char *)x + (size_t)(tb + t) * xs, g0 + gi, &xd[ix], \
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

GEMM16_FN(gemm_q2_k, grp16_q2_k)
GEMM16_FN(gemm_q3_k, grp16_q3_k)
GEMM16_FN(gemm_q6_k, grp16_q6_k)

static void register_gemm(sd_kernel_table *t)
{
    t->gemm[SD_TYPE_Q4_0] = gemm_q4_0;
    t->gemm[SD_TYPE_Q5_0] = gemm_q5_0;
    t->gemm[SD_TYPE_Q4_1] = gemm_q4_1;
    t->gemm[SD_TYPE_Q5_1] = gemm_q5_1;
    t->gemm[SD_TYPE_MXFP4] = gemm_mxfp4;
    t->gemm[SD_TYPE_Q4_K] = gemm_q4_k;
    t->gemm[SD_TYPE_Q5_K] = gemm_q5_k;
    t->gemm[SD_TYPE_Q2_K] = gemm_q2_k;
    t->gemm[SD_TYPE_Q3_K] = gemm_q3_k;
    t->gemm[SD_TYPE_Q6_K] = gemm_q6_k;
#if SD_VNNI
    t->gemm[SD_TYPE_Q8_0] = gemm_q8_0;
#endif
}
