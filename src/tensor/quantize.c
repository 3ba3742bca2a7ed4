/* Whole-tensor quantization (with the second-level scale where a format has
 * one), the fallback when rows do not fit a format's blocks, bits per weight. */
#include "tensor/formats.h"

/* NVFP4 per NVIDIA: the tensor's largest magnitude lands on the largest
 * E4M3 block scale (448) times the largest E2M1 value (6), so the block
 * scales use their whole range (and its precision) whatever the tensor's
 * magnitude. Without it a tensor of small weights has only subnormal block
 * scales, or zeros. The power of two just above amax/2688 keeps that
 * property and lines the scale grid up with the plain E4M3 one; whichever of
 * the two encodes this tensor with less error is kept. */
static float nvfp4_tensor_scale(const float *src, int64_t n)
{
    float amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(src[i]));
    float g = amax / (448.0f * 6.0f);
    return isnormal(g) ? g : 1.0f;
}

static double nvfp4_error(const float *src, int64_t nrows, int64_t n, size_t rb, uint8_t *dst, float g)
{
    double err = 0;
    float y[QKNV];
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * n;
        uint8_t *q = dst + (size_t)r * rb;
        sd_quantize_nvfp4_scaled(x, q, n, g);
        for (int64_t b = 0; b < n / QKNV; b++) {
            sd_traits_nvfp4.to_float(q + b * (int64_t)sizeof(blk_nvfp4), y, QKNV);
            for (int j = 0; j < QKNV; j++) {
                double e = (double)y[j] * g - x[b * QKNV + j];
                err += e * e;
            }
        }
    }
    return err;
}

static float nvfp4_quantize(const float *src, uint8_t *dst, int64_t nrows, int64_t n, size_t rb)
{
    float g0 = nvfp4_tensor_scale(src, nrows * n);
    int ex;
    frexpf(g0, &ex);
    float g1 = ldexpf(1.0f, g0 == ldexpf(0.5f, ex) ? ex - 1 : ex);  /* power of two >= g0 */
    if (g0 == 1.0f || !isnormal(g1)) { nvfp4_error(src, nrows, n, rb, dst, g0); return g0; }
    double e0 = nvfp4_error(src, nrows, n, rb, dst, g0);
    double e1 = nvfp4_error(src, nrows, n, rb, dst, g1);
    if (e1 < e0) return g1;
    nvfp4_error(src, nrows, n, rb, dst, g0);   /* re-encode with the winner */
    return g0;
}

float sd_quantize_tensor(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row)
{
    const sd_type_traits *tr = sd_type_get(type);
    size_t rb = sd_row_bytes(type, n_per_row);
    if (!tr || !tr->from_float || nrows < 0 || n_per_row <= 0 || rb == 0) return 0;
    uint8_t *out = dst;
    if (type == SD_TYPE_NVFP4) return nvfp4_quantize(src, out, nrows, n_per_row, rb);
    for (int64_t r = 0; r < nrows; r++)
        tr->from_float(src + r * n_per_row, out + (size_t)r * rb, n_per_row);
    return 1.0f;
}

/* Next format to try when a row does not fit; 0 (F32) means "F16". The
 * K-quant steps are llama.cpp's (llama_tensor_get_type). */
static const uint8_t fallback_next[SD_TYPE_COUNT] = {
    [SD_TYPE_Q2_K] = SD_TYPE_IQ4_NL, [SD_TYPE_Q3_K] = SD_TYPE_IQ4_NL,
    [SD_TYPE_Q4_K] = SD_TYPE_Q5_0, [SD_TYPE_Q5_K] = SD_TYPE_Q5_1,
    [SD_TYPE_Q6_K] = SD_TYPE_Q8_0, [SD_TYPE_Q8_K] = SD_TYPE_Q8_0,
    [SD_TYPE_NVFP4] = SD_TYPE_MXFP4,
};

int sd_type_fallback(int type, int64_t n_per_row)
{
    if (type < 0 || !sd_type_get((uint32_t)type) || n_per_row <= 0) return -1;
    while (n_per_row % sd_type_get((uint32_t)type)->block != 0) {
        int next = fallback_next[type];
        type = next ? next : SD_TYPE_F16;
    }
    return type;
}

double sd_type_bpw(uint32_t type)
{
    const sd_type_traits *tr = sd_type_get(type);
    return tr ? 8.0 * tr->block_bytes / tr->block : 0;
}
