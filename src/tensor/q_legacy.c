/* The legacy block formats (blocks of 32, one or two FP16 factors):
 * Q8_0, Q8_1 (activations only), Q4_0, Q4_1, Q5_0, Q5_1.
 *
 * Encoders: every stored factor is rounded to FP16 before the integers are
 * chosen, and each integer is the nearest level for the factor actually
 * stored, so for the reference encoder's own factor we are never worse. On
 * top of that a few other factors (least-squares refits, the largest value
 * on the other end of the range) compete by squared error after the FP16
 * rounding; a handful of vectorised passes, not a sweep. Q5_0 keeps the
 * reference's factor (see q5_0_from_float). */
#include "tensor/formats.h"

/* ---- encoder searches shared by the 4- and 5-bit formats ----
 * Each starts from the reference encoder's factor and tries a handful of
 * others (a least-squares refit of the current levels, the largest value on
 * the other end of the range), keeping whichever has the least squared
 * error after the FP16 rounding: never worse than the reference, and a few
 * passes over the block rather than a sweep, so it stays fast. */

/* Sum of 32 squares in a fixed order; written as 8 lanes so that the
 * compiler can vectorise the loops that feed it. */
static inline float sum32(const float *e2)
{
    float acc[8];
    for (int j = 0; j < 8; j++) acc[j] = e2[j] + e2[j + 8] + e2[j + 16] + e2[j + 24];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* The nearest integer to v within lo..hi, as a float: clamping first then
 * rounding (ties to even, by the 1.5*2^23 trick as sd_nearest) gives the
 * same result for integer bounds, and stays in float so it vectorises. */
static inline float round_clamp(float v, float lo, float hi)
{
    v = v < lo ? lo : v > hi ? hi : v;
    return (v + 12582912.0f) - 12582912.0f;
}

/* Squared error of block x (n = 32) with stored factor d (levels lo..hi),
 * the levels in q. */
static float sym_eval(const float *x, int n, float d, int lo, int hi, int8_t *q)
{
    float e2[QK32], id = d != 0 ? 1.0f / d : 0;
    for (int i = 0; i < QK32; i++) {
        float l = round_clamp(x[i] * id, (float)lo, (float)hi);
        q[i] = (int8_t)l;
        float e = x[i] - d * l;
        e2[i] = e * e;
    }
    (void)n;
    return sum32(e2);
}

/* Replaces (best, d, q) by the candidate factor c if it encodes x better. */
static void sym_try(const float *x, int n, float c, int lo, int hi, float *best, float *d, int8_t *q)
{
    int8_t tq[QK32];
    c = sd_f16_round(c);
    if (c == *d) return;
    float e = sym_eval(x, n, c, lo, hi, tq);
    if (e < *best) { *best = e; *d = c; memcpy(q, tq, (size_t)n); }
}

/* The least-squares factor for levels q (0 if they are all zero). */
static float sym_refit(const float *x, int n, const int8_t *q)
{
    float xq[QK32], qq[QK32];
    for (int i = 0; i < QK32; i++) { xq[i] = x[i] * (float)q[i]; qq[i] = (float)(q[i] * q[i]); }
    float sqq = sum32(qq);
    (void)n;
    return sqq > 0 ? sum32(xq) / sqq : 0;
}

/* x ~ d*q with q in lo..hi (lo = -hi-1). Returns the FP16 factor, levels in q;
 * search 0: the reference's factor only (the largest magnitude exact). */
static float sym_search(const float *x, int n, int lo, int hi, int search, int8_t *q)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax == 0) { memset(q, 0, (size_t)n); return 0; }
    float d = sd_f16_round(max / (float)lo);              /* the reference's choice */
    float best = sym_eval(x, n, d, lo, hi, q);
    if (!search) return d;
    sym_try(x, n, max / (float)hi, lo, hi, &best, &d, q);  /* the largest on the top level */
    sym_try(x, n, sym_refit(x, n, q), lo, hi, &best, &d, q);
    return d;
}

/* The smallest positive gap between the distinct values of x (n <= 32),
 * 0 when they are all equal. */
static float grid_step(const float *x, int n)
{
    float v[QK32];
    memcpy(v, x, (size_t)n * sizeof *v);
    for (int i = 1; i < n; i++) {   /* insertion sort: 32 values */
        float t = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > t) { v[j + 1] = v[j]; j--; }
        v[j + 1] = t;
    }
    float g = 0;
    for (int i = 1; i < n; i++) {
        float d = v[i] - v[i - 1];
        if (d > 0 && (g == 0 || d < g)) g = d;
    }
    return g;
}

static float asym_eval(const float *x, int n, float d, float m, int nmax, uint8_t *q)
{
    float e2[QK32], id = d != 0 ? 1.0f / d : 0;
    for (int i = 0; i < QK32; i++) {
        float l = round_clamp((x[i] - m) * id, 0, (float)nmax);
        q[i] = (uint8_t)l;
        float e = x[i] - (d * l + m);
        e2[i] = e * e;
    }
    (void)n;
    return sum32(e2);
}

/* x ~ d*q + m with q in 0..nmax; stores FP16-rounded d and m. */
static void asym_search(const float *x, int n, int nmax, float *dout, float *mout, uint8_t *q)
{
    float lmin[8], lmax[8];   /* in 8 lanes, so that it vectorises */
    for (int j = 0; j < 8; j++) { lmin[j] = lmax[j] = x[j]; }
    for (int i = 8; i < QK32; i++) {
        lmin[i % 8] = x[i] < lmin[i % 8] ? x[i] : lmin[i % 8];
        lmax[i % 8] = x[i] > lmax[i % 8] ? x[i] : lmax[i % 8];
    }
    float min = lmin[0], max = lmax[0];
    for (int j = 1; j < 8; j++) { min = lmin[j] < min ? lmin[j] : min; max = lmax[j] > max ? lmax[j] : max; }
    float best_d = sd_f16_round((max - min) / (float)nmax), best_m = sd_f16_round(min);
    float best = asym_eval(x, n, best_d, best_m, nmax, q);  /* the reference's choice */
    uint8_t tq[QK32];
    /* A block decoded from a coarser format (a Q4_1 file requantized to
     * Q5_1) sits on a grid: min + k * step, step the smallest gap between
     * its distinct values. When that grid fits the levels it is exact. */
    float step = grid_step(x, n);
    if (step > 0 && (max - min) / step <= (float)nmax + 0.5f) {
        float d = sd_f16_round(step);
        float err = asym_eval(x, n, d, best_m, nmax, tq);
        if (err < best) { best = err; best_d = d; memcpy(q, tq, (size_t)n); }
    }
    /* least-squares refits of (d, m) to the current levels, re-rounded */
    float sx = sum32(x);
    for (int it = 0; it < 2 && max > min; it++) {
        float lf[QK32], ll[QK32], xl[QK32];
        for (int i = 0; i < QK32; i++) { lf[i] = (float)q[i]; ll[i] = lf[i] * lf[i]; xl[i] = x[i] * lf[i]; }
        float sl = sum32(lf), sll = sum32(ll), sxl = sum32(xl);
        float D = (float)n * sll - sl * sl;
        if (!(D > 0)) break;
        float d = sd_f16_round(((float)n * sxl - sx * sl) / D);
        float m = sd_f16_round((sll * sx - sl * sxl) / D);
        float err = asym_eval(x, n, d, m, nmax, tq);
        if (!(err < best)) break;
        best = err; best_d = d; best_m = m; memcpy(q, tq, (size_t)n);
    }
    *dout = best_d; *mout = best_m;
}

/* ---- Q8_0 ---- */
static void q8_0_to_float(const void *src, float *dst, int64_t n)
{
    const blk_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK32; i++) {
        float d = sd_f16_to_f32(b[i].d);
        for (int j = 0; j < QK32; j++) dst[i * QK32 + j] = d * (float)b[i].qs[j];
    }
}

/* Also the activation encoder of many dot products, so it stays one pass. */
static void q8_0_from_float(const float *src, void *dst, int64_t n)
{
    blk_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        const float *x = src + i * QK32;
        float amax = 0;
        for (int j = 0; j < QK32; j++) amax = fmaxf(amax, fabsf(x[j]));
        b[i].d = sd_f32_to_f16(amax / 127.0f);
        float d = sd_f16_to_f32(b[i].d), id = d != 0 ? 1.0f / d : 0;
        for (int j = 0; j < QK32; j++) {
            int l = sd_nearest(x[j] * id);
            b[i].qs[j] = (int8_t)(l > 127 ? 127 : l < -127 ? -127 : l);
        }
    }
}

/* The activation encoder: ggml's rule (its x86 quantize_row_q8_0), which
 * the reference logits come from: d = amax/127 stored as F16, quants rounded
 * (to nearest even) from x * (127/amax), not from x / F16(d) as above. The
 * weight encoder keeps the rounded scale, which fits the values better. */
void sd_q8_0_quantize_act(const float *src, void *dst, int64_t n)
{
    blk_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        const float *x = src + i * QK32;
        float amax = 0;
        for (int j = 0; j < QK32; j++) amax = fmaxf(amax, fabsf(x[j]));
        b[i].d = sd_f32_to_f16(amax / 127.0f);
        float id = amax != 0 ? 127.0f / amax : 0;
        for (int j = 0; j < QK32; j++) {
            int l = sd_nearest(x[j] * id);
            b[i].qs[j] = (int8_t)(l > 127 ? 127 : l < -127 ? -127 : l);
        }
    }
}

static float q8_0_dot(int64_t n, const void *w, const void *x)
{
    const blk_q8_0 *a = w, *b = x;
    double sum = 0;
    for (int64_t i = 0; i < n / QK32; i++) {
        int s = 0;
        for (int j = 0; j < QK32; j++) s += a[i].qs[j] * b[i].qs[j];
        sum += (double)(sd_f16_to_f32(a[i].d) * sd_f16_to_f32(b[i].d)) * s;
    }
    return (float)sum;
}

/* ---- Q8_1: activations for the formats with an offset ---- */
static void q8_1_to_float(const void *src, float *dst, int64_t n)
{
    const blk_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK32; i++) {
        float d = sd_f16_to_f32(b[i].d);
        for (int j = 0; j < QK32; j++) dst[i * QK32 + j] = d * (float)b[i].qs[j];
    }
}

/* ggml's activation rule (its x86 quantize_row_q8_1): d = amax/127 stored
 * as F16, quants rounded (to nearest even) from x * (127/amax), and s = F16 of
 * the unrounded d times the sum of the quants; the Q4_1/Q5_1 dots take the
 * offset term from s, so a matching encoder and dot give the reference's
 * numbers rather than the exact float ones. */
static void q8_1_from_float(const float *src, void *dst, int64_t n)
{
    blk_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        const float *x = src + i * QK32;
        float amax = 0;
        for (int j = 0; j < QK32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0;
        b[i].d = sd_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < QK32; j++) {
            int l = sd_nearest(x[j] * id);
            l = l > 127 ? 127 : l < -127 ? -127 : l;
            b[i].qs[j] = (int8_t)l;
            sum += l;
        }
        b[i].s = sd_f32_to_f16(d * (float)sum);
    }
}

static float q8_1_dot(int64_t n, const void *w, const void *x)
{
    const blk_q8_1 *a = w, *b = x;
    double sum = 0;
    for (int64_t i = 0; i < n / QK32; i++) {
        int s = 0;
        for (int j = 0; j < QK32; j++) s += a[i].qs[j] * b[i].qs[j];
        sum += (double)(sd_f16_to_f32(a[i].d) * sd_f16_to_f32(b[i].d)) * s;
    }
    return (float)sum;
}

/* ---- Q4_0 ---- */
static void q4_0_to_float(const void *src, float *dst, int64_t n)
{
    const blk_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK32; i++) {
        float d = sd_f16_to_f32(b[i].d);
        float *y = dst + i * QK32;
        for (int j = 0; j < 16; j++) {
            y[j]      = d * (float)((b[i].qs[j] & 0x0f) - 8);
            y[j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

static void q4_0_from_float(const float *src, void *dst, int64_t n)
{
    blk_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        int8_t q[QK32];
        b[i].d = sd_f32_to_f16(sym_search(src + i * QK32, QK32, -8, 7, 1, q));
        for (int j = 0; j < 16; j++)
            b[i].qs[j] = (uint8_t)((q[j] + 8) | ((q[j + 16] + 8) << 4));
    }
}

static float q4_0_dot(int64_t n, const void *w, const void *x)
{
    const blk_q4_0 *a = w;
    const blk_q8_0 *b = x;
    double sum = 0;
    for (int64_t i = 0; i < n / QK32; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += ((a[i].qs[j] & 0x0f) - 8) * b[i].qs[j] + ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + 16];
        sum += (double)(sd_f16_to_f32(a[i].d) * sd_f16_to_f32(b[i].d)) * s;
    }
    return (float)sum;
}

/* ---- Q4_1 ---- */
static void q4_1_to_float(const void *src, float *dst, int64_t n)
{
    const blk_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK32; i++) {
        float d = sd_f16_to_f32(b[i].d), m = sd_f16_to_f32(b[i].m);
        float *y = dst + i * QK32;
        for (int j = 0; j < 16; j++) {
            y[j]      = (float)(b[i].qs[j] & 0x0f) * d + m;
            y[j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

static void q4_1_from_float(const float *src, void *dst, int64_t n)
{
    blk_q4_1 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        uint8_t q[QK32];
        float d, m;
        asym_search(src + i * QK32, QK32, 15, &d, &m, q);
        b[i].d = sd_f32_to_f16(d); b[i].m = sd_f32_to_f16(m);
        for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)(q[j] | (q[j + 16] << 4));
    }
}

/* sum(w*x) = d_w*d_x*sum(q*qx) + m_w*d_x*sum(qx), the last term taken as
 * m_w * s with Q8_1's F16 `s` (d_x*sum(qx)), as ggml does: the reference
 * logits carry that rounding, so every kernel here does too. */
static float q4_1_dot(int64_t n, const void *w, const void *x)
{
    const blk_q4_1 *a = w;
    const blk_q8_1 *b = x;
    double sum = 0;
    for (int64_t i = 0; i < n / QK32; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += (a[i].qs[j] & 0x0f) * b[i].qs[j] + (a[i].qs[j] >> 4) * b[i].qs[j + 16];
        sum += (double)(sd_f16_to_f32(a[i].d) * sd_f16_to_f32(b[i].d)) * s +
               (double)(sd_f16_to_f32(a[i].m) * sd_f16_to_f32(b[i].s));
    }
    return (float)sum;
}

/* ---- Q5_0 / Q5_1: the fifth bit of value j is bit j of the 32-bit qh ---- */
static uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}
static void store_qh(uint8_t qh[4], uint32_t h)
{
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}
/* The 32 unsigned 5-bit levels of a block. */
static void q5_levels(const uint8_t qs[16], const uint8_t qh[4], int *q)
{
    uint32_t h = load_qh(qh);
    for (int j = 0; j < 16; j++) {
        q[j]      = (qs[j] & 0x0f) | (int)((h >> j) & 1) << 4;
        q[j + 16] = (qs[j] >> 4)   | (int)((h >> (j + 16)) & 1) << 4;
    }
}
static void q5_pack(const int *q, uint8_t qs[16], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
        h |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    store_qh(qh, h);
}

static void q5_0_to_float(const void *src, float *dst, int64_t n)
{
    const blk_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK32; i++) {
        int q[QK32];
        q5_levels(b[i].qs, b[i].qh, q);
        float d = sd_f16_to_f32(b[i].d);
        for (int j = 0; j < QK32; j++) dst[i * QK32 + j] = d * (float)(q[j] - 16);
    }
}

/* The reference's factor, no search: with 32 levels, trading the largest
 * magnitude's exactness for less squared error cost KL divergence on real
 * models. SmolLM2's Q3_K_M (60 Q5_0 matrices requantized from Q4_1) went
 * from 0.0845 to 0.0773 mean KLD (tinystories) and 0.327 to 0.310 (Genesis),
 * where the search's files were worse than llama-quantize's (0.0822, 0.326);
 * docs/BENCHMARKS.md "Our quantizer against llama-quantize". */
static void q5_0_from_float(const float *src, void *dst, int64_t n)
{
    blk_q5_0 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        int8_t q[QK32];
        int u[QK32];
        b[i].d = sd_f32_to_f16(sym_search(src + i * QK32, QK32, -16, 15, 0, q));
        for (int j = 0; j < QK32; j++) u[j] = q[j] + 16;
        q5_pack(u, b[i].qs, b[i].qh);
    }
}

static float q5_0_dot(int64_t n, const void *w, const void *x)
{
    const blk_q5_0 *a = w;
    const blk_q8_0 *b = x;
    double sum = 0;
    for (int64_t i = 0; i < n / QK32; i++) {
        int q[QK32], s = 0;
        q5_levels(a[i].qs, a[i].qh, q);
        for (int j = 0; j < QK32; j++) s += (q[j] - 16) * b[i].qs[j];
        sum += (double)(sd_f16_to_f32(a[i].d) * sd_f16_to_f32(b[i].d)) * s;
    }
    return (float)sum;
}

static void q5_1_to_float(const void *src, float *dst, int64_t n)
{
    const blk_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK32; i++) {
        int q[QK32];
        q5_levels(b[i].qs, b[i].qh, q);
        float d = sd_f16_to_f32(b[i].d), m = sd_f16_to_f32(b[i].m);
        for (int j = 0; j < QK32; j++) dst[i * QK32 + j] = (float)q[j] * d + m;
    }
}

static void q5_1_from_float(const float *src, void *dst, int64_t n)
{
    blk_q5_1 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        uint8_t q[QK32];
        int u[QK32];
        float d, m;
        asym_search(src + i * QK32, QK32, 31, &d, &m, q);
        b[i].d = sd_f32_to_f16(d); b[i].m = sd_f32_to_f16(m);
        for (int j = 0; j < QK32; j++) u[j] = q[j];
        q5_pack(u, b[i].qs, b[i].qh);
    }
}

static float q5_1_dot(int64_t n, const void *w, const void *x)
{
    const blk_q5_1 *a = w;
    const blk_q8_1 *b = x;
    double sum = 0;
    for (int64_t i = 0; i < n / QK32; i++) {
        int q[QK32], s = 0;
        q5_levels(a[i].qs, a[i].qh, q);
        for (int j = 0; j < QK32; j++) s += q[j] * b[i].qs[j];
        sum += (double)(sd_f16_to_f32(a[i].d) * sd_f16_to_f32(b[i].d)) * s +
               (double)(sd_f16_to_f32(a[i].m) * sd_f16_to_f32(b[i].s));   /* offset term as in q4_1_dot */
    }
    return (float)sum;
}

const sd_type_traits sd_traits_q8_0 = { "Q8_0", QK32, sizeof(blk_q8_0), q8_0_to_float, q8_0_from_float, SD_TYPE_Q8_0, q8_0_dot, 1 };
const sd_type_traits sd_traits_q8_1 = { "Q8_1", QK32, sizeof(blk_q8_1), q8_1_to_float, q8_1_from_float, SD_TYPE_Q8_1, q8_1_dot, 1 };
const sd_type_traits sd_traits_q4_0 = { "Q4_0", QK32, sizeof(blk_q4_0), q4_0_to_float, q4_0_from_float, SD_TYPE_Q8_0, q4_0_dot, 1 };
const sd_type_traits sd_traits_q4_1 = { "Q4_1", QK32, sizeof(blk_q4_1), q4_1_to_float, q4_1_from_float, SD_TYPE_Q8_1, q4_1_dot, 1 };
const sd_type_traits sd_traits_q5_0 = { "Q5_0", QK32, sizeof(blk_q5_0), q5_0_to_float, q5_0_from_float, SD_TYPE_Q8_0, q5_0_dot, 1 };
const sd_type_traits sd_traits_q5_1 = { "Q5_1", QK32, sizeof(blk_q5_1), q5_1_to_float, q5_1_from_float, SD_TYPE_Q8_1, q5_1_dot, 1 };
