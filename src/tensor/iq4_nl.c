/* IQ4_NL: blocks of 32, one FP16 factor d and a 4-bit index per value into a
 * fixed non-uniform table of 16 int8 levels (denser near zero, where most
 * weights lie): x = d * kvalues[q]. Value j sits in the low nibble of qs[j],
 * value j+16 in its high nibble, as in Q4_0. llama.cpp stores the K-quant
 * mixes' Q2_K/Q3_K matrices in it when their rows do not fit 256 (rows of
 * 576, 640 in small models), so those mixes need it to match the reference.
 *
 * The encoder is the reference quantizer's plain path as llama-quantize runs
 * it (quantize_iq4_nl without an importance matrix): per block, the factor
 * that puts the largest magnitude on the end level, refit by weighted least
 * squares, then 15 neighbouring factors tried, weights x^2. */
#include "tensor/formats.h"

static const int8_t kvalues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* The index of the level nearest to x (ties to the lower one's upper
 * neighbour, as the reference's bisection decides). */
static inline int nearest_level(float x)
{
    if (x <= kvalues[0]) return 0;
    if (x >= kvalues[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (x < kvalues[mid]) hi = mid; else lo = mid;
    }
    return x - kvalues[hi - 1] < kvalues[hi] - x ? hi - 1 : hi;
}

static void iq4_nl_to_float(const void *src, float *dst, int64_t n)
{
    const blk_iq4_nl *b = src;
    for (int64_t i = 0; i < n / QK32; i++) {
        float d = sd_f16_to_f32(b[i].d);
        for (int j = 0; j < 16; j++) {
            dst[i * QK32 + j]      = d * kvalues[b[i].qs[j] & 0x0f];
            dst[i * QK32 + j + 16] = d * kvalues[b[i].qs[j] >> 4];
        }
    }
}

/* Weighted sums of one block for the factor 1/id: sum w*q*x and sum w*q*q. */
static inline void block_sums(const float *x, const float *w, float id, float *sqx, float *sq2)
{
    float a = 0, b = 0;
    for (int j = 0; j < QK32; j++) {
        float q = kvalues[nearest_level(id * x[j])];
        a += w[j] * q * x[j];
        b += w[j] * q * q;
    }
    *sqx = a;
    *sq2 = b;
}

static void encode_block(const float *x, blk_iq4_nl *b)
{
    float w[QK32], amax = 0, max = 0;
    for (int j = 0; j < QK32; j++) {
        w[j] = x[j] * x[j];
        float ax = fabsf(x[j]);
        if (ax > amax) { amax = ax; max = x[j]; }
    }
    /* a zero block: d = 0 and every index on level 8 (value 1), the
     * nearest to zero, as the reference writes it */
    memset(b->qs, 0x88, sizeof b->qs);
    b->d = 0;
    if (amax < 1e-15f) return;   /* the reference's GROUP_MAX_EPS */
    const int ntry = 7;
    float d = -max / kvalues[0], sqx, sq2;
    block_sums(x, w, 1 / d, &sqx, &sq2);
    d = sqx / sq2;
    float best = d * sqx;
    for (int t = -ntry; t <= ntry; t++) {
        block_sums(x, w, (float)(t + kvalues[0]) / max, &sqx, &sq2);
        if (sq2 > 0 && sqx * sqx > best * sq2) { d = sqx / sq2; best = d * sqx; }
    }
    b->d = sd_f32_to_f16(d);
    float id = d != 0 ? 1 / d : 0;
    uint8_t L[QK32];
    for (int j = 0; j < QK32; j++) L[j] = (uint8_t)nearest_level(id * x[j]);
    for (int j = 0; j < 16; j++) b->qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
}

static void iq4_nl_from_float(const float *src, void *dst, int64_t n)
{
    blk_iq4_nl *b = dst;
    for (int64_t i = 0; i < n / QK32; i++) encode_block(src + i * QK32, &b[i]);
}

static float iq4_nl_dot(int64_t n, const void *w, const void *x)
{
    const blk_iq4_nl *a = w;
    const blk_q8_0 *b = x;
    double sum = 0;
    for (int64_t i = 0; i < n / QK32; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += kvalues[a[i].qs[j] & 0x0f] * b[i].qs[j] + kvalues[a[i].qs[j] >> 4] * b[i].qs[j + 16];
        sum += (double)sd_f16_to_f32(a[i].d) * (double)sd_f16_to_f32(b[i].d) * s;
    }
    return (float)sum;
}

const sd_type_traits sd_traits_iq4_nl = { "IQ4_NL", QK32, sizeof(blk_iq4_nl), iq4_nl_to_float, iq4_nl_from_float, SD_TYPE_Q8_0, iq4_nl_dot, 1 };
