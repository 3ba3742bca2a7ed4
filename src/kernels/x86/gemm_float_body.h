/* Tile kernels for batched prefill with F16 and BF16 weights.
 *
 * A panel of 2 * VL weight rows (VL = floats per vector: 16 with AVX-512, 8
 * with AVX2) over a chunk of the inner dimension is transposed once, so that
 * one vector holds the same column of every row. A tile of those rows times
 * up to TMAX tokens then lives in accumulators: per column, two aligned panel
 * loads and, per token, one broadcast activation into two fused multiply-adds.
 * The panel stays in cache while every token of the block passes over it, so
 * the transpose (and the widening to F32) is paid once per row, not per token.
 * Fewer than a handful of tokens skip the panel: each weight vector is read
 * once for all of them, row by row.
 *
 * BF16 on AVX-512 keeps the pairs: the panel holds (w[2k], w[2k+1]) per row
 * in each 32-bit lane and vdpbf16ps takes a broadcast activation pair. F16
 * (and BF16 on AVX2) is widened to an F32 panel and fused with F32
 * activations. Products of two halves are exact in F32 either way, as in the
 * generic dots; only the order of the sums differs. */
#include "kernels/x86/simd.h"

/* 512-bit only in the AVX-512 file: the AVX2 file sees __AVX512F__ too under
 * -march=native, but its table must run on AVX2-only CPUs. */
#if SD_VNNI && defined(__AVX512F__) && defined(__AVX512BF16__)
#define GF_512 1
#else
#define GF_512 0
#endif

#if GF_512
#define GF_VL 16
#define GF_TMAX 12                 /* 24 accumulators + 2 panel vectors of 32 */
typedef __m512 gf_v;
#define gf_zero() _mm512_setzero_ps()
#define gf_load(p) _mm512_load_ps(p)
#define gf_fma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define gf_set1(s) _mm512_set1_ps(s)
#else
#define GF_VL 8
#define GF_TMAX 6                  /* 12 accumulators + 2 panel vectors + 1 broadcast of 16 */
typedef __m256 gf_v;
#define gf_zero() _mm256_setzero_ps()
#define gf_load(p) _mm256_load_ps(p)
#define gf_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define gf_set1(s) _mm256_set1_ps(s)
#endif

#define GF_ROWS (2 * GF_VL)        /* rows per panel */
#define GF_KC (2048 / GF_VL)       /* F32 columns per chunk: a 16 KiB panel */
#define GF_TB 64                   /* tokens whose activations are staged at once */
#define GF_FEW 5                   /* fewer tokens than this skip the panel */
#define GF_INLINE static inline __attribute__((always_inline))

/* Adds (first: stores) two vectors of one token's results for pr rows. */
GF_INLINE void gf_put(float *o, int pr, gf_v a0, gf_v a1, int first)
{
    if (pr == GF_ROWS) {
#if GF_512
        if (!first) { a0 = _mm512_add_ps(a0, _mm512_loadu_ps(o)); a1 = _mm512_add_ps(a1, _mm512_loadu_ps(o + 16)); }
        _mm512_storeu_ps(o, a0);
        _mm512_storeu_ps(o + 16, a1);
#else
        if (!first) { a0 = _mm256_add_ps(a0, _mm256_loadu_ps(o)); a1 = _mm256_add_ps(a1, _mm256_loadu_ps(o + 8)); }
        _mm256_storeu_ps(o, a0);
        _mm256_storeu_ps(o + 8, a1);
#endif
        return;
    }
#if GF_512
    __mmask16 m0 = pr >= 16 ? 0xffff : (__mmask16)((1u << pr) - 1);
    __mmask16 m1 = pr <= 16 ? 0 : (__mmask16)((1u << (pr - 16)) - 1);
    if (!first) { a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(m0, o)); a1 = _mm512_add_ps(a1, _mm512_maskz_loadu_ps(m1, o + 16)); }
    _mm512_mask_storeu_ps(o, m0, a0);
    _mm512_mask_storeu_ps(o + 16, m1, a1);
#else
    float tmp[GF_ROWS];
    _mm256_storeu_ps(tmp, a0);
    _mm256_storeu_ps(tmp + 8, a1);
    for (int r = 0; r < pr; r++) o[r] = first ? tmp[r] : o[r] + tmp[r];
#endif
}

/* ---- transposes: v[i] holds element j of row i -> v[j] holds row i at lane i ---- */
#if GF_512
static inline void gf_transpose16(__m512i v[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {   /* u[4i + j]: element j of each 128-bit lane, rows 4i..4i+3 */
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int j = 0; j < 4; j++) {   /* gather lane L of the four row groups: element 4L + j */
        __m512i a = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), b = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
        __m512i c = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88), d = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
        v[j] = _mm512_shuffle_i32x4(a, c, 0x88);
        v[8 + j] = _mm512_shuffle_i32x4(a, c, 0xdd);
        v[4 + j] = _mm512_shuffle_i32x4(b, d, 0x88);
        v[12 + j] = _mm512_shuffle_i32x4(b, d, 0xdd);
    }
}
#else
static inline void gf_transpose8(__m256 v[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        v[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}
#endif

/* The next panel's weight rows, prefetched to L2 a line or two per column
 * step while the current panel's tiles run, so the pack (a burst over 32
 * rows) does not wait on DRAM: 5-10% with weights that are not cached. */
typedef struct {
    const char *p;                 /* row being fetched */
    size_t ws;
    int off, len, left;            /* byte in the row, bytes per row, lines left */
} gf_pf;

/* Rows r0.. (a panel's worth, up to nr) over columns k0..k0+kc; r0 < 0: none. */
static inline gf_pf gf_pf_at(const char *w, size_t ws, int nr, int r0, int64_t k0, int kc)
{
    gf_pf q = {0};
    if (r0 < 0 || kc <= 0) return q;
    int pr = nr - r0 < GF_ROWS ? nr - r0 : GF_ROWS;
    q.p = w + (size_t)r0 * ws + (size_t)k0 * 2;
    q.ws = ws;
    q.len = (2 * kc + 63) / 64 * 64 + 64;   /* one line more: rows need not be aligned */
    q.left = pr * (q.len / 64);
    return q;
}

GF_INLINE void gf_pf_step(gf_pf *q)
{
    if (q->left <= 0) return;
    _mm_prefetch(q->p + q->off, _MM_HINT_T1);
    q->left--;
    if ((q->off += 64) >= q->len) { q->off = 0; q->p += q->ws; }
}

/* ---- F32 panels (F16 everywhere, BF16 without AVX-512) ---- */
typedef enum { GF_F16, GF_BF16 } gf_fmt;

/* VL halves from p, all present (full) or the first `cnt` (zeros after). */
GF_INLINE gf_v gf_widen(gf_fmt f, const uint16_t *p, int cnt)
{
#if GF_512
    __m256i h = cnt >= 16 ? _mm256_loadu_si256((const __m256i *)p)
                          : _mm256_maskz_loadu_epi16((__mmask16)((1u << cnt) - 1), p);
    if (f == GF_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
#else
    uint16_t tmp[8] = {0};
    if (cnt < 8) { memcpy(tmp, p, (size_t)cnt * 2); p = tmp; }
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (f == GF_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
#endif
}

/* Panel: pan[k * GF_ROWS + r] = row r, column k0 + k, for k < kc (zero-padded
 * to a multiple of VL), rows past pr zero. */
static void gf_pack(gf_fmt f, const char *w, size_t ws, int pr, int64_t k0, int kc, float *pan)
{
    for (int h = 0; h < 2; h++)
        for (int kb = 0; kb < kc; kb += GF_VL) {
            int cnt = kc - kb < GF_VL ? kc - kb : GF_VL;
#if GF_512
            __m512i v[16];
            for (int i = 0; i < 16; i++) {
                int r = 16 * h + i;
                v[i] = r < pr ? _mm512_castps_si512(gf_widen(f, (const uint16_t *)(w + (size_t)r * ws) + k0 + kb, cnt))
                              : _mm512_setzero_si512();
            }
            gf_transpose16(v);
            for (int j = 0; j < 16; j++) _mm512_store_si512(pan + (kb + j) * GF_ROWS + 16 * h, v[j]);
#else
            __m256 v[8];
            for (int i = 0; i < 8; i++) {
                int r = 8 * h + i;
                v[i] = r < pr ? gf_widen(f, (const uint16_t *)(w + (size_t)r * ws) + k0 + kb, cnt) : _mm256_setzero_ps();
            }
            gf_transpose8(v);
            for (int j = 0; j < 8; j++) _mm256_store_ps(pan + (kb + j) * GF_ROWS + 8 * h, v[j]);
#endif
        }
}

/* Activations of one token, columns k0..k0+kc, widened to F32. */
static void gf_stage(gf_fmt f, const uint16_t *x, int kc, float *dst)
{
    for (int k = 0; k < kc; k += GF_VL) {
        int cnt = kc - k < GF_VL ? kc - k : GF_VL;
#if GF_512
        _mm512_store_ps(dst + k, gf_widen(f, x + k, cnt));
#else
        _mm256_store_ps(dst + k, gf_widen(f, x + k, cnt));
#endif
    }
}

/* One tile: GF_ROWS rows x T tokens over kc columns. */
GF_INLINE void gf_tile(const float *pan, int kc, const float *xb, int T, float *out, size_t ldo, int pr, int first,
                       gf_pf *pf)
{
    gf_v acc[2 * GF_TMAX];
#pragma GCC unroll 32
    for (int i = 0; i < 2 * T; i++) acc[i] = gf_zero();
    for (int k = 0; k < kc; k++) {
        gf_v w0 = gf_load(pan + k * GF_ROWS), w1 = gf_load(pan + k * GF_ROWS + GF_VL);
        gf_pf_step(pf);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            gf_v b = gf_set1(xb[t * GF_KC + k]);
            acc[2 * t] = gf_fma(w0, b, acc[2 * t]);
            acc[2 * t + 1] = gf_fma(w1, b, acc[2 * t + 1]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) gf_put(out + (size_t)t * ldo, pr, acc[2 * t], acc[2 * t + 1], first);
}

static void gf_tile_any(const float *pan, int kc, const float *xb, int T, float *out, size_t ldo, int pr, int first,
                        gf_pf *pf)
{
    switch (T) {
#if GF_512
    case 12: gf_tile(pan, kc, xb, 12, out, ldo, pr, first, pf); break;
    case 11: gf_tile(pan, kc, xb, 11, out, ldo, pr, first, pf); break;
    case 10: gf_tile(pan, kc, xb, 10, out, ldo, pr, first, pf); break;
    case 9: gf_tile(pan, kc, xb, 9, out, ldo, pr, first, pf); break;
    case 8: gf_tile(pan, kc, xb, 8, out, ldo, pr, first, pf); break;
    case 7: gf_tile(pan, kc, xb, 7, out, ldo, pr, first, pf); break;
#endif
    case 6: gf_tile(pan, kc, xb, 6, out, ldo, pr, first, pf); break;
    case 5: gf_tile(pan, kc, xb, 5, out, ldo, pr, first, pf); break;
    case 4: gf_tile(pan, kc, xb, 4, out, ldo, pr, first, pf); break;
    case 3: gf_tile(pan, kc, xb, 3, out, ldo, pr, first, pf); break;
    case 2: gf_tile(pan, kc, xb, 2, out, ldo, pr, first, pf); break;
    default: gf_tile(pan, kc, xb, 1, out, ldo, pr, first, pf); break;
    }
}

/* A few tokens: a panel costs more than it saves, and the product is bound
 * by reading the weights, so each weight vector is widened once and used
 * by up to four tokens, row by row. */
GF_INLINE void gf_few_rows(gf_fmt f, int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int T,
                           float *out, size_t ldo)
{
    for (int r = 0; r < nr; r++) {
        const uint16_t *wr = (const uint16_t *)((const char *)w + (size_t)r * ws);
        gf_v acc[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = gf_zero();
        for (int64_t k = 0; k < n; k += GF_VL) {
            int cnt = n - k < GF_VL ? (int)(n - k) : GF_VL;
            gf_v wv = gf_widen(f, wr + k, cnt);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++)
                acc[t] = gf_fma(wv, gf_widen(f, (const uint16_t *)((const char *)x + (size_t)t * xs) + k, cnt), acc[t]);
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
#if GF_512
            out[(size_t)t * ldo + r] = _mm512_reduce_add_ps(acc[t]);
#else
            out[(size_t)t * ldo + r] = hsum_ps(acc[t]);
#endif
    }
}

static void gf_few(gf_fmt f, int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nt,
                   float *out, size_t ldo)
{
    for (int t0 = 0; t0 < nt; t0 += 4) {
        const void *xt = (const char *)x + (size_t)t0 * xs;
        float *o = out + (size_t)t0 * ldo;
        switch (nt - t0 < 4 ? nt - t0 : 4) {
        case 4: gf_few_rows(f, n, w, ws, nr, xt, xs, 4, o, ldo); break;
        case 3: gf_few_rows(f, n, w, ws, nr, xt, xs, 3, o, ldo); break;
        case 2: gf_few_rows(f, n, w, ws, nr, xt, xs, 2, o, ldo); break;
        default: gf_few_rows(f, n, w, ws, nr, xt, xs, 1, o, ldo); break;
        }
    }
}

/* Loops: token blocks (activations widened once per chunk), chunks of the
 * inner dimension, panels of rows (packed once per block), then tiles of
 * tokens cut evenly (64 tokens: 11,11,11,11,10,10 rather than 12 x 5 + 4). */
static void gf_gemm(gf_fmt f, int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nt,
                    float *out, size_t ldo)
{
    if (nt < GF_FEW) {
        gf_few(f, n, w, ws, nr, x, xs, nt, out, ldo);
        return;
    }
    _Alignas(64) float pan[GF_KC * GF_ROWS];
    _Alignas(64) float xb[GF_TB * GF_KC];
    for (int tb = 0; tb < nt; tb += GF_TB) {
        int nb = nt - tb < GF_TB ? nt - tb : GF_TB;
        int ntile = (nb + GF_TMAX - 1) / GF_TMAX;
        for (int64_t k0 = 0; k0 < n; k0 += GF_KC) {
            int kc = n - k0 < GF_KC ? (int)(n - k0) : GF_KC;
            for (int t = 0; t < nb; t++)
                gf_stage(f, (const uint16_t *)((const char *)x + (size_t)(tb + t) * xs) + k0, kc, xb + t * GF_KC);
            for (int r0 = 0; r0 < nr; r0 += GF_ROWS) {
                int pr = nr - r0 < GF_ROWS ? nr - r0 : GF_ROWS;
                gf_pack(f, (const char *)w + (size_t)r0 * ws, ws, pr, k0, kc, pan);
                int64_t k1 = k0 + GF_KC;
                gf_pf pf = r0 + GF_ROWS < nr ? gf_pf_at(w, ws, nr, r0 + GF_ROWS, k0, kc)
                         : gf_pf_at(w, ws, nr, k1 < n ? 0 : -1, k1, n - k1 < GF_KC ? (int)(n - k1) : GF_KC);
                for (int i = 0, t0 = 0; i < ntile; i++) {
                    int T = nb / ntile + (i < nb % ntile);
                    gf_tile_any(pan, kc, xb + t0 * GF_KC, T, out + (size_t)(tb + t0) * ldo + r0, ldo, pr, k0 == 0, &pf);
                    t0 += T;
                }
            }
        }
    }
}

static void gemm_f16(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nt, float *out,
                     size_t ldo)
{
    gf_gemm(GF_F16, n, w, ws, nr, x, xs, nt, out, ldo);
}

#if GF_512
/* ---- BF16 pairs with vdpbf16ps: the panel holds 32-bit pairs, activation
 * pairs are broadcast straight from their rows; an odd last column is added
 * in scalar. Panels over whole rows (up to 2048 columns) read each weight row
 * in one sequential run: ~15% faster than 512-column chunks with uncached
 * weights. ---- */
#define GB_KC 2048                 /* BF16 columns per chunk: a 128 KiB panel (L2) */
#define GB_FEW 3                   /* fewer tokens than this skip the panel */

static void gb_pack(const char *w, size_t ws, int pr, int64_t k0, int kc, __m512i *pan)
{
    for (int h = 0; h < 2; h++)
        for (int kb = 0; kb < kc; kb += 32) {
            int cnt = kc - kb;
            __m512i v[16];
            for (int i = 0; i < 16; i++) {
                int r = 16 * h + i;
                const uint16_t *p = (const uint16_t *)(w + (size_t)r * ws) + k0 + kb;
                v[i] = r >= pr ? _mm512_setzero_si512()
                     : cnt >= 32 ? _mm512_loadu_si512(p)
                                 : _mm512_maskz_loadu_epi16((__mmask32)((1u << cnt) - 1), p);
            }
            gf_transpose16(v);
            for (int j = 0; j < 16; j++) _mm512_store_si512(pan + (kb / 2 + j) * 2 + h, v[j]);
        }
}

GF_INLINE void gb_tile(const __m512i *pan, int np, const char *xb, size_t xs, int T, float *out, size_t ldo, int pr,
                       int first, gf_pf *pf)
{
    __m512 acc[2 * GF_TMAX];
#pragma GCC unroll 32
    for (int i = 0; i < 2 * T; i++) acc[i] = _mm512_setzero_ps();
    for (int k = 0; k < np; k++) {
        __m512bh w0 = (__m512bh)pan[2 * k], w1 = (__m512bh)pan[2 * k + 1];
        gf_pf_step(pf);
        gf_pf_step(pf);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            uint32_t pair;
            memcpy(&pair, xb + t * xs + 4 * k, 4);
            __m512bh b = (__m512bh)_mm512_set1_epi32((int)pair);
            acc[2 * t] = _mm512_dpbf16_ps(acc[2 * t], w0, b);
            acc[2 * t + 1] = _mm512_dpbf16_ps(acc[2 * t + 1], w1, b);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) gf_put(out + (size_t)t * ldo, pr, acc[2 * t], acc[2 * t + 1], first);
}

static void gb_tile_any(const __m512i *pan, int np, const char *xb, size_t xs, int T, float *out, size_t ldo, int pr,
                        int first, gf_pf *pf)
{
    switch (T) {
    case 12: gb_tile(pan, np, xb, xs, 12, out, ldo, pr, first, pf); break;
    case 11: gb_tile(pan, np, xb, xs, 11, out, ldo, pr, first, pf); break;
    case 10: gb_tile(pan, np, xb, xs, 10, out, ldo, pr, first, pf); break;
    case 9: gb_tile(pan, np, xb, xs, 9, out, ldo, pr, first, pf); break;
    case 8: gb_tile(pan, np, xb, xs, 8, out, ldo, pr, first, pf); break;
    case 7: gb_tile(pan, np, xb, xs, 7, out, ldo, pr, first, pf); break;
    case 6: gb_tile(pan, np, xb, xs, 6, out, ldo, pr, first, pf); break;
    case 5: gb_tile(pan, np, xb, xs, 5, out, ldo, pr, first, pf); break;
    case 4: gb_tile(pan, np, xb, xs, 4, out, ldo, pr, first, pf); break;
    case 3: gb_tile(pan, np, xb, xs, 3, out, ldo, pr, first, pf); break;
    case 2: gb_tile(pan, np, xb, xs, 2, out, ldo, pr, first, pf); break;
    default: gb_tile(pan, np, xb, xs, 1, out, ldo, pr, first, pf); break;
    }
}

/* A few tokens, as gf_few: 32 pairs per step, zeros past the end (an odd
 * last column meets a zero on both sides). */
GF_INLINE void gb_few_rows(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int T, float *out,
                           size_t ldo)
{
    const uint16_t *xt[4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) xt[t] = (const uint16_t *)((const char *)x + (size_t)t * xs);
    for (int r = 0; r < nr; r++) {
        const uint16_t *wr = (const uint16_t *)((const char *)w + (size_t)r * ws);
        __m512 acc[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        int64_t k = 0;
        for (; k + 32 <= n; k += 32) {
            __m512bh wv = (__m512bh)_mm512_loadu_si512(wr + k);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[t] = _mm512_dpbf16_ps(acc[t], wv, (__m512bh)_mm512_loadu_si512(xt[t] + k));
        }
        if (k < n) {
            __mmask32 m = (__mmask32)((1u << (n - k)) - 1);
            __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, wr + k);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++)
                acc[t] = _mm512_dpbf16_ps(acc[t], wv, (__m512bh)_mm512_maskz_loadu_epi16(m, xt[t] + k));
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) out[(size_t)t * ldo + r] = _mm512_reduce_add_ps(acc[t]);
    }
}

/* Loops: token blocks, panels of rows, chunks of the row (packed once per
 * block), tiles of tokens cut evenly. */
static void gemm_bf16(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nt, float *out,
                      size_t ldo)
{
    if (nt < GB_FEW) {
        for (int t0 = 0; t0 < nt; t0 += 4) {
            const void *xt = (const char *)x + (size_t)t0 * xs;
            float *o = out + (size_t)t0 * ldo;
            switch (nt - t0 < 4 ? nt - t0 : 4) {
            case 4: gb_few_rows(n, w, ws, nr, xt, xs, 4, o, ldo); break;
            case 3: gb_few_rows(n, w, ws, nr, xt, xs, 3, o, ldo); break;
            case 2: gb_few_rows(n, w, ws, nr, xt, xs, 2, o, ldo); break;
            default: gb_few_rows(n, w, ws, nr, xt, xs, 1, o, ldo); break;
            }
        }
        return;
    }
    _Alignas(64) __m512i pan[GB_KC / 2 * 2];
    int64_t ne = n & ~(int64_t)1;   /* whole pairs */
    for (int tb = 0; tb < nt; tb += GF_TB) {
        int nb = nt - tb < GF_TB ? nt - tb : GF_TB;
        int ntile = (nb + GF_TMAX - 1) / GF_TMAX;
        for (int r0 = 0; r0 < nr; r0 += GF_ROWS) {
            int pr = nr - r0 < GF_ROWS ? nr - r0 : GF_ROWS;
            for (int64_t k0 = 0; k0 < ne || k0 == 0; k0 += GB_KC) {
                int kc = ne - k0 < GB_KC ? (int)(ne - k0) : GB_KC;
                gb_pack((const char *)w + (size_t)r0 * ws, ws, pr, k0, kc, pan);
                int64_t k1 = k0 + GB_KC;
                gf_pf pf = k1 < ne ? gf_pf_at(w, ws, nr, r0, k1, ne - k1 < GB_KC ? (int)(ne - k1) : GB_KC)
                         : gf_pf_at(w, ws, nr, r0 + GF_ROWS < nr ? r0 + GF_ROWS : -1, 0, ne < GB_KC ? (int)ne : GB_KC);
                for (int i = 0, t0 = 0; i < ntile; i++) {
                    int T = nb / ntile + (i < nb % ntile);
                    gb_tile_any(pan, kc / 2, (const char *)x + (size_t)(tb + t0) * xs + (size_t)k0 * 2, xs, T,
                                out + (size_t)(tb + t0) * ldo + r0, ldo, pr, k0 == 0, &pf);
                    t0 += T;
                }
            }
        }
    }
    if (ne < n)
        for (int t = 0; t < nt; t++) {
            float xl = sd_bf16_to_f32(((const uint16_t *)((const char *)x + (size_t)t * xs))[ne]);
            for (int r = 0; r < nr; r++)
                out[(size_t)t * ldo + r] += sd_bf16_to_f32(((const uint16_t *)((const char *)w + (size_t)r * ws))[ne]) * xl;
        }
}
#else
static void gemm_bf16(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nt, float *out,
                      size_t ldo)
{
    gf_gemm(GF_BF16, n, w, ws, nr, x, xs, nt, out, ldo);
}
#endif

static void register_gemm_float(sd_kernel_table *t)
{
    t->gemm[SD_TYPE_F16] = gemm_f16;
    t->gemm[SD_TYPE_BF16] = gemm_bf16;
}
