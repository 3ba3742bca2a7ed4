/* Attention over a block of cached positions (see sd_attn_score_fn in
 * kernels/dispatch.h): F16 and F32 caches, 256-bit bodies shared by the AVX2
 * and AVX-512 builds. A call scores many positions for all the query heads of
 * a KV group, and accumulates V rows into all of those heads per loaded row,
 * so a 4096-position context costs a few calls per head instead of 4096. */
#include <math.h>

#include "kernels/x86/simd.h"

/* Rows of one KV head lie a whole cache row apart (all KV heads of a
 * position are adjacent), which the hardware prefetchers follow poorly
 * across pages: fetch the row `ahead` positions on, each line it spans. */
#define ATTN_PF_AHEAD 32
static inline void prefetch_row(const char *r, size_t bytes)
{
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(r + o, _MM_HINT_T0);
    _mm_prefetch(r + bytes - 1, _MM_HINT_T0);
}

static inline __m256 ld8_f16(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256 ld8_f32(const void *p) { return _mm256_loadu_ps((const float *)p); }

/* Eight vectors to the vector of their eight sums. */
static inline __m256 sum8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6, __m256 a7)
{
    __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
    __m256 t2 = _mm256_hadd_ps(a4, a5), t3 = _mm256_hadd_ps(a6, a7);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);   /* per 128-bit half: a0..a3 | a4..a7 */
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* Eight positions against one query head per pass over the block; the block
 * (8 rows) stays in L1 for the other heads of the group. */
#define ATTN_SCORE1(NAME, LD, ESZ)                                                                                  \
    static void NAME(int d, const void *vk, size_t stride, int n, const float *q, int nq, float scale, float *out,  \
                     size_t ldo)                                                                                    \
    {                                                                                                               \
        const char *k = vk;                                                                                         \
        const __m256 vs = _mm256_set1_ps(scale);                                                                    \
        int p = 0;                                                                                                  \
        for (; p + 8 <= n; p += 8) {                                                                                \
            const char *r0 = k + (size_t)p * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;      \
            const char *r4 = r3 + stride, *r5 = r4 + stride, *r6 = r5 + stride, *r7 = r6 + stride;                 \
            if (p + ATTN_PF_AHEAD + 8 <= n)                                                                         \
                for (int kk = 0; kk < 8; kk++) prefetch_row(r0 + (size_t)(ATTN_PF_AHEAD + kk) * stride, (size_t)d * (ESZ));  \
            for (int g = 0; g < nq; g++) {                                                                          \
                const float *qg = q + (size_t)g * d;                                                                \
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;     \
                for (int i = 0; i < d; i += 8) {                                                                    \
                    __m256 qv = _mm256_loadu_ps(qg + i);                                                            \
                    size_t o = (size_t)i * (ESZ);                                                                   \
                    a0 = _mm256_fmadd_ps(LD(r0 + o), qv, a0);                                                       \
                    a1 = _mm256_fmadd_ps(LD(r1 + o), qv, a1);                                                       \
                    a2 = _mm256_fmadd_ps(LD(r2 + o), qv, a2);                                                       \
                    a3 = _mm256_fmadd_ps(LD(r3 + o), qv, a3);                                                       \
                    a4 = _mm256_fmadd_ps(LD(r4 + o), qv, a4);                                                       \
                    a5 = _mm256_fmadd_ps(LD(r5 + o), qv, a5);                                                       \
                    a6 = _mm256_fmadd_ps(LD(r6 + o), qv, a6);                                                       \
                    a7 = _mm256_fmadd_ps(LD(r7 + o), qv, a7);                                                       \
                }                                                                                                   \
                _mm256_storeu_ps(out + (size_t)g * ldo + p,                                                         \
                                 _mm256_mul_ps(sum8(a0, a1, a2, a3, a4, a5, a6, a7), vs));                          \
            }                                                                                                       \
        }                                                                                                           \
        for (; p < n; p++) {                                                                                        \
            const char *r = k + (size_t)p * stride;                                                                 \
            for (int g = 0; g < nq; g++) {                                                                          \
                const float *qg = q + (size_t)g * d;                                                                \
                __m256 a = _mm256_setzero_ps();                                                                     \
                for (int i = 0; i < d; i += 8) a = _mm256_fmadd_ps(LD(r + (size_t)i * (ESZ)), _mm256_loadu_ps(qg + i), a); \
                out[(size_t)g * ldo + p] = hsum_ps(a) * scale;                                                      \
            }                                                                                                       \
        }                                                                                                           \
    }

/* Four query heads at once: each loaded slice of a key row is widened once
 * and serves the four (q from L1 as memory operands), PB positions per pass
 * (4 with the 32 registers of AVX-512VL, else 2); the 4 x PB sums are
 * reduced eight at a time. */
#if SD_VNNI
#define ATTN_PB 4
#else
#define ATTN_PB 2
#endif
#define ATTN_SCORE4(NAME, LD, ESZ)                                                                                  \
    static void NAME(int d, const void *vk, size_t stride, int n, const float *q, float scale, float *out,          \
                     size_t ldo)                                                                                    \
    {                                                                                                               \
        const char *k = vk;                                                                                         \
        const __m256 vs = _mm256_set1_ps(scale);                                                                    \
        const float *q0 = q, *q1 = q + d, *q2 = q + 2 * (size_t)d, *q3 = q + 3 * (size_t)d;                        \
        int p = 0;                                                                                                  \
        for (; p + ATTN_PB <= n; p += ATTN_PB) {                                                                    \
            const char *r = k + (size_t)p * stride;                                                                 \
            if (p % 8 == 0 && p + ATTN_PF_AHEAD + 8 <= n)                                                           \
                for (int kk = 0; kk < 8; kk++) prefetch_row(r + (size_t)(ATTN_PF_AHEAD + kk) * stride, (size_t)d * (ESZ)); \
            __m256 acc[4][ATTN_PB];                                                                                 \
            for (int g = 0; g < 4; g++)                                                                             \
                for (int j = 0; j < ATTN_PB; j++) acc[g][j] = _mm256_setzero_ps();                                  \
            for (int i = 0; i < d; i += 8) {                                                                        \
                for (int j = 0; j < ATTN_PB; j++) {                                                                 \
                    __m256 kv = LD(r + (size_t)j * stride + (size_t)i * (ESZ));                                     \
                    acc[0][j] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q0 + i), acc[0][j]);                            \
                    acc[1][j] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q1 + i), acc[1][j]);                            \
                    acc[2][j] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q2 + i), acc[2][j]);                            \
                    acc[3][j] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q3 + i), acc[3][j]);                            \
                }                                                                                                   \
            }                                                                                                       \
            if (ATTN_PB == 4) {                                                                                     \
                for (int g = 0; g < 4; g += 2) {                                                                    \
                    __m256 s8 = _mm256_mul_ps(sum8(acc[g][0], acc[g][1 % ATTN_PB], acc[g][2 % ATTN_PB],             \
                                                   acc[g][3 % ATTN_PB], acc[g + 1][0], acc[g + 1][1 % ATTN_PB],     \
                                                   acc[g + 1][2 % ATTN_PB], acc[g + 1][3 % ATTN_PB]), vs);          \
                    _mm_storeu_ps(out + (size_t)g * ldo + p, _mm256_castps256_ps128(s8));                           \
                    _mm_storeu_ps(out + (size_t)(g + 1) * ldo + p, _mm256_extractf128_ps(s8, 1));                   \
                }                                                                                                   \
            } else {                                                                                                \
                __m256 s8 = _mm256_mul_ps(sum8(acc[0][0], acc[0][1 % ATTN_PB], acc[1][0], acc[1][1 % ATTN_PB],      \
                                               acc[2][0], acc[2][1 % ATTN_PB], acc[3][0], acc[3][1 % ATTN_PB]), vs); \
                __m128 lo = _mm256_castps256_ps128(s8), hi = _mm256_extractf128_ps(s8, 1);                          \
                _mm_storel_pi((__m64 *)(out + p), lo);                                                              \
                _mm_storeh_pi((__m64 *)(out + ldo + p), lo);                                                        \
                _mm_storel_pi((__m64 *)(out + 2 * ldo + p), hi);                                                    \
                _mm_storeh_pi((__m64 *)(out + 3 * ldo + p), hi);                                                    \
            }                                                                                                       \
        }                                                                                                           \
        for (; p < n; p++) {                                                                                        \
            const char *r = k + (size_t)p * stride;                                                                 \
            for (int g = 0; g < 4; g++) {                                                                           \
                const float *qg = q + (size_t)g * d;                                                                \
                __m256 a = _mm256_setzero_ps();                                                                     \
                for (int i = 0; i < d; i += 8) a = _mm256_fmadd_ps(LD(r + (size_t)i * (ESZ)), _mm256_loadu_ps(qg + i), a); \
                out[(size_t)g * ldo + p] = hsum_ps(a) * scale;                                                      \
            }                                                                                                       \
        }                                                                                                           \
    }

#define ATTN_SCORE(NAME, ONE, FOUR)                                                                                 \
    static void NAME(int d, const void *k, size_t stride, int n, const float *q, int nq, float scale, float *out,   \
                     size_t ldo)                                                                                    \
    {                                                                                                               \
        int g = 0;                                                                                                  \
        for (; g + 4 <= nq; g += 4) FOUR(d, k, stride, n, q + (size_t)g * d, scale, out + (size_t)g * ldo, ldo);    \
        if (g < nq) ONE(d, k, stride, n, q + (size_t)g * d, nq - g, scale, out + (size_t)g * ldo, ldo);             \
    }

ATTN_SCORE1(score1_f16, ld8_f16, 2)
ATTN_SCORE1(score1_f32, ld8_f32, 4)
ATTN_SCORE4(score4_f16, ld8_f16, 2)
ATTN_SCORE4(score4_f32, ld8_f32, 4)
ATTN_SCORE(attn_score_f16, score1_f16, score4_f16)
ATTN_SCORE(attn_score_f32, score1_f32, score4_f32)

/* o[g][i0 .. i0 + 8W) += sum over p < n of w[g][p] * V[p][i0 ..] for GN heads:
 * the accumulators stay in registers over the positions, each loaded row
 * slice serves all GN heads. GN and W are constants after inlining. */
#define ATTN_ACCUM_TILE(NAME, LD, ESZ)                                                                              \
    static inline __attribute__((always_inline)) void NAME(int GN, int W, int d, const char *v, size_t stride,    \
                                                           int n, const float *w, size_t ldw, float *o)            \
    {                                                                                                               \
        __m256 acc[4][2];                                                                                           \
        for (int g = 0; g < GN; g++)                                                                                \
            for (int k = 0; k < W; k++) acc[g][k] = _mm256_loadu_ps(o + (size_t)g * d + 8 * k);                     \
        for (int p = 0; p < n; p++) {                                                                               \
            const char *r = v + (size_t)p * stride;                                                                 \
            __m256 x[2];                                                                                            \
            for (int k = 0; k < W; k++) x[k] = LD(r + (size_t)(8 * k) * (ESZ));                                     \
            for (int g = 0; g < GN; g++) {                                                                          \
                __m256 a = _mm256_broadcast_ss(w + (size_t)g * ldw + p);                                            \
                for (int k = 0; k < W; k++) acc[g][k] = _mm256_fmadd_ps(a, x[k], acc[g][k]);                        \
            }                                                                                                       \
        }                                                                                                           \
        for (int g = 0; g < GN; g++)                                                                                \
            for (int k = 0; k < W; k++) _mm256_storeu_ps(o + (size_t)g * d + 8 * k, acc[g][k]);                     \
    }

/* Positions in blocks that stay in L1 while the head slices sweep them. */
#define ATTN_ACCUM(NAME, TILE, ESZ)                                                                                 \
    static void NAME(int d, const void *vv, size_t stride, int n, const float *w, size_t ldw, int nq, float *o)    \
    {                                                                                                               \
        const char *v = vv;                                                                                         \
        for (int p0 = 0; p0 < n; p0 += 64) {                                                                        \
            int pn = n - p0 < 64 ? n - p0 : 64;                                                                     \
            const char *vb = v + (size_t)p0 * stride;                                                               \
            for (int g0 = 0; g0 < nq; g0 += 4) {                                                                    \
                const float *wg = w + (size_t)g0 * ldw + p0;                                                        \
                float *og = o + (size_t)g0 * d;                                                                     \
                int gn = nq - g0;                                                                                   \
                for (int i = 0; i < d; i += 16) {                                                                   \
                    const char *vi = vb + (size_t)i * (ESZ);                                                        \
                    int two = i + 16 <= d;                                                                          \
                    if (g0 == 0) { /* the next block, spread over this one's passes */                              \
                        int np = (d + 15) / 16, ip = i / 16, e = n - p0 - 64 < 64 ? n - p0 - 64 : 64;                 \
                        for (int k = 64 + e * ip / np; k < 64 + e * (ip + 1) / np; k++)                              \
                            prefetch_row(vb + (size_t)k * stride, (size_t)d * (ESZ));                                \
                    }                                                                                               \
                    if (gn >= 4) { if (two) TILE(4, 2, d, vi, stride, pn, wg, ldw, og + i);                        \
                                   else TILE(4, 1, d, vi, stride, pn, wg, ldw, og + i); }                          \
                    else if (gn == 3) { if (two) TILE(3, 2, d, vi, stride, pn, wg, ldw, og + i);                   \
                                        else TILE(3, 1, d, vi, stride, pn, wg, ldw, og + i); }                     \
                    else if (gn == 2) { if (two) TILE(2, 2, d, vi, stride, pn, wg, ldw, og + i);                   \
                                        else TILE(2, 1, d, vi, stride, pn, wg, ldw, og + i); }                     \
                    else { if (two) TILE(1, 2, d, vi, stride, pn, wg, ldw, og + i);                                \
                           else TILE(1, 1, d, vi, stride, pn, wg, ldw, og + i); }                                  \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
    }

ATTN_ACCUM_TILE(accum_tile_f16, ld8_f16, 2)
ATTN_ACCUM_TILE(accum_tile_f32, ld8_f32, 4)
ATTN_ACCUM(attn_accum_f16, accum_tile_f16, 2)
ATTN_ACCUM(attn_accum_f32, accum_tile_f32, 4)

/* exp on 8 lanes: 2^n * e^r with |r| <= ln2 / 2 and a degree-6 polynomial
 * (about 1 ulp); inputs below -87 give ~1e-38 instead of 0. */
static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(_mm256_set1_ps(-87.0f), x), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static float exp_sum_vec(float *x, int64_t n, float *mx)
{
    __m256 m8 = _mm256_set1_ps(x[0]);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + i));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float m = _mm_cvtss_f32(m4);
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    *mx = m;
    __m256 vm = _mm256_set1_ps(m), s8 = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        s8 = _mm256_add_ps(s8, e);
    }
    float s = hsum_ps(s8);
    for (; i < n; i++) { x[i] = expf(x[i] - m); s += x[i]; }
    return s;
}

/* The FFN gate uses the same exp: 8192 expf calls per token and layer were
 * ~5 % of a decoded token, serial between two matrix products. */
static void swiglu_vec(float *g, const float *u, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), x)));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, d), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void register_attn(sd_kernel_table *t)
{
    t->attn_score[SD_TYPE_F16] = attn_score_f16;
    t->attn_score[SD_TYPE_F32] = attn_score_f32;
    t->attn_accum[SD_TYPE_F16] = attn_accum_f16;
    t->attn_accum[SD_TYPE_F32] = attn_accum_f32;
    t->exp_sum = exp_sum_vec;
    t->swiglu = swiglu_vec;
}
