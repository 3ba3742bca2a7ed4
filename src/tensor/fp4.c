/* The 4-bit float formats: every value is an E2M1 code (sign, 2-bit
 * exponent, 1-bit mantissa: 0, 0.5, 1, 1.5, 2, 3, 4, 6) times a block scale.
 *   MXFP4 (OCP microscaling): blocks of 32, one E8M0 scale (a power of two);
 *         value j in the low nibble of qs[j], value j+16 in its high nibble.
 *   NVFP4 (NVIDIA): blocks of 64 = four sub-blocks of 16, each with an
 *         unsigned E4M3 scale d[s]; in sub-block s, value j (< 8) is the low
 *         nibble of qs[8s + j], value j+8 its high nibble. NVIDIA's format
 *         adds an FP32 scale per tensor (see sd_quantize_tensor).
 * Both tables below hold twice the E2M1 values so they are integers; the
 * scales are halved to match, as the ecosystem's dequantizers do. */
#include "tensor/formats.h"

static const int8_t e2m1x2[16] = { 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12 };

/* E8M0: 2^(e-127); halved, 2^(e-128), written out for the two subnormal
 * results so that no pow() or ldexp() rounding can creep in. */
static float e8m0_half(uint8_t e)
{
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Unsigned E4M3 (bias 7, subnormals, 0x7f NaN), halved. Codes grow with
 * their value, which the encoder's search relies on. */
static float ue4m3_half(uint8_t b)
{
    int e = (b >> 3) & 0x0f, m = b & 7;
    if (b >= 0x7f) return NAN;
    float v = e == 0 ? (float)m * (1.0f / 512.0f) : ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return 0.5f * v;
}

/* Squared error of n (<= 32) values x against codes with half-scale d;
 * codes in q. The nearest code (ties away from zero at the thresholds), without
 * branches or table lookups so that it vectorises: c counts the decision
 * thresholds at or below |v|, and its magnitude 0,1,2,3,4,6,8,12 is
 * c + (c-4 if c > 4) + (2 if c > 6). */
static inline uint8_t e2m1x2_code(float v, float *mag)
{
    float a = fabsf(v);
    float c = (a >= 0.5f ? 1.0f : 0.0f) + (a >= 1.5f ? 1.0f : 0.0f) + (a >= 2.5f ? 1.0f : 0.0f)
            + (a >= 3.5f ? 1.0f : 0.0f) + (a >= 5.0f ? 1.0f : 0.0f) + (a >= 7.0f ? 1.0f : 0.0f)
            + (a >= 10.0f ? 1.0f : 0.0f);
    float m = c + (c > 4 ? c - 4 : 0) + (c > 6 ? 2 : 0);
    int neg = v < 0 && c > 0;
    *mag = neg ? -m : m;
    return (uint8_t)((int)c | (neg ? 8 : 0));
}

static float fp4_eval(const float *x, int n, float d, uint8_t *q)
{
    float e2[32], m;
    /* a power-of-two d (MXFP4) divides exactly as a product with 1/d when
     * that is finite; otherwise divide (1/d overflows for the tiniest) */
    float inv = d > 0 ? 1.0f / d : 0;
    int exact = isfinite(inv) && inv * d == 1.0f;
    if (!(d > 0)) {
        for (int i = 0; i < n; i++) { q[i] = 0; e2[i] = x[i] * x[i]; }
    } else if (exact) {
        for (int i = 0; i < n; i++) {
            q[i] = e2m1x2_code(x[i] * inv, &m);
            float e = m * d - x[i];
            e2[i] = e * e;
        }
    } else {
        for (int i = 0; i < n; i++) {
            q[i] = e2m1x2_code(x[i] / d, &m);
            float e = m * d - x[i];
            e2[i] = e * e;
        }
    }
    float err = 0;
    for (int i = 0; i < n; i++) err += e2[i];
    return err;
}

/* ---- MXFP4 ---- */
static void mxfp4_to_float(const void *src, float *dst, int64_t n)
{
    const blk_mxfp4 *b = src;
    for (int64_t i = 0; i < n / QK32; i++) {
        float d = e8m0_half(b[i].e);
        for (int j = 0; j < 16; j++) {
            dst[i * QK32 + j]      = (float)e2m1x2[b[i].qs[j] & 0x0f] * d;
            dst[i * QK32 + j + 16] = (float)e2m1x2[b[i].qs[j] >> 4] * d;
        }
    }
}

/* The reference picks the exponent putting the block maximum in [4, 8)
 * (floor(log2 amax) - 2); we also try the two neighbours, since with a top
 * value of 6 the one above often rounds better. */
static void mxfp4_from_float(const float *src, void *dst, int64_t n)
{
    blk_mxfp4 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) {
        const float *x = src + i * QK32;
        float amax = 0;
        for (int j = 0; j < QK32; j++) amax = fmaxf(amax, fabsf(x[j]));
        uint8_t q[QK32], tq[QK32];
        int e0 = 0;
        if (amax > 0) {
            int ex;
            frexpf(amax, &ex);               /* amax = f * 2^ex, f in [0.5, 1) */
            e0 = ex - 1 - 2 + 127;
            e0 = e0 < 0 ? 0 : e0 > 254 ? 254 : e0;
        }
        int best_e = e0;
        float best = fp4_eval(x, QK32, e8m0_half((uint8_t)e0), q);
        for (int e = e0 - 1; e <= e0 + 1; e += 2) {
            if (e < 0 || e > 254) continue;
            float err = fp4_eval(x, QK32, e8m0_half((uint8_t)e), tq);
            if (err < best) { best = err; best_e = e; memcpy(q, tq, QK32); }
        }
        b[i].e = (uint8_t)best_e;
        for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
    }
}

static float mxfp4_dot(int64_t n, const void *w, const void *x)
{
    const blk_mxfp4 *a = w;
    const blk_q8_0 *b = x;
    double sum = 0;
    for (int64_t i = 0; i < n / QK32; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += e2m1x2[a[i].qs[j] & 0x0f] * b[i].qs[j] + e2m1x2[a[i].qs[j] >> 4] * b[i].qs[j + 16];
        sum += (double)e8m0_half(a[i].e) * (double)sd_f16_to_f32(b[i].d) * s;
    }
    return (float)sum;
}

/* ---- NVFP4 ---- */
static void nvfp4_to_float(const void *src, float *dst, int64_t n)
{
    const blk_nvfp4 *b = src;
    for (int64_t i = 0; i < n / QKNV; i++)
        for (int s = 0; s < 4; s++) {
            float d = ue4m3_half(b[i].d[s]);
            float *y = dst + i * QKNV + 16 * s;
            for (int j = 0; j < 8; j++) {
                y[j]     = (float)e2m1x2[b[i].qs[8 * s + j] & 0x0f] * d;
                y[j + 8] = (float)e2m1x2[b[i].qs[8 * s + j] >> 4] * d;
            }
        }
}

/* The scale code nearest to half-scale h: a binary search over the 127
 * finite codes, which are sorted by value. */
static int ue4m3_nearest(float h)
{
    int lo = 0, hi = 126;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ue4m3_half((uint8_t)mid) < h) lo = mid + 1; else hi = mid;
    }
    if (lo > 0 && h - ue4m3_half((uint8_t)(lo - 1)) <= ue4m3_half((uint8_t)lo) - h) lo--;
    return lo;
}

/* One sub-block of 16 already divided by the tensor scale: the block scale
 * that maps the maximum onto 6 is the start; the codes two either side of it
 * are tried too (a smaller scale may clip one value but round the rest
 * better). */
static uint8_t nvfp4_sub(const float *x, uint8_t *q)
{
    float amax = 0;
    for (int j = 0; j < 16; j++) amax = fmaxf(amax, fabsf(x[j]));
    int c0 = ue4m3_nearest(amax / 12.0f);
    uint8_t tq[16];
    int best_c = c0;
    float best = fp4_eval(x, 16, ue4m3_half((uint8_t)c0), q);
    for (int c = c0 - 2; c <= c0 + 2; c++) {
        if (c == c0 || c < 0 || c > 126) continue;
        float err = fp4_eval(x, 16, ue4m3_half((uint8_t)c), tq);
        if (err < best) { best = err; best_c = c; memcpy(q, tq, 16); }
    }
    return (uint8_t)best_c;
}

void sd_quantize_nvfp4_scaled(const float *src, void *dst, int64_t n, float scale)
{
    blk_nvfp4 *b = dst;
    float inv = scale > 0 ? 1.0f / scale : 1.0f;
    for (int64_t i = 0; i < n / QKNV; i++)
        for (int s = 0; s < 4; s++) {
            float x[16];
            uint8_t q[16];
            for (int j = 0; j < 16; j++) x[j] = src[i * QKNV + 16 * s + j] * inv;
            b[i].d[s] = nvfp4_sub(x, q);
            for (int j = 0; j < 8; j++) b[i].qs[8 * s + j] = (uint8_t)(q[j] | q[j + 8] << 4);
        }
}

/* Without a tensor scale (what the format's row encoder does on its own). */
static void nvfp4_from_float(const float *src, void *dst, int64_t n)
{
    sd_quantize_nvfp4_scaled(src, dst, n, 1.0f);
}

/* Weights in 16s, activations Q8_0 in 32s: sub-blocks 2k and 2k+1 of a
 * block share Q8_0 block k (of the two that cover the 64 values). */
static float nvfp4_dot(int64_t n, const void *w, const void *x)
{
    const blk_nvfp4 *a = w;
    const blk_q8_0 *b = x;
    double sum = 0;
    for (int64_t i = 0; i < n / QKNV; i++)
        for (int s = 0; s < 4; s++) {
            const blk_q8_0 *xb = &b[2 * i + s / 2];
            const int8_t *xq = xb->qs + 16 * (s % 2);
            int acc = 0;
            for (int j = 0; j < 8; j++)
                acc += e2m1x2[a[i].qs[8 * s + j] & 0x0f] * xq[j] + e2m1x2[a[i].qs[8 * s + j] >> 4] * xq[j + 8];
            sum += (double)ue4m3_half(a[i].d[s]) * (double)sd_f16_to_f32(xb->d) * acc;
        }
    return (float)sum;
}

const sd_type_traits sd_traits_mxfp4 = { "MXFP4", QK32, sizeof(blk_mxfp4), mxfp4_to_float, mxfp4_from_float, SD_TYPE_Q8_0, mxfp4_dot, 1 };
const sd_type_traits sd_traits_nvfp4 = { "NVFP4", QKNV, sizeof(blk_nvfp4), nvfp4_to_float, nvfp4_from_float, SD_TYPE_Q8_0, nvfp4_dot, 1 };
