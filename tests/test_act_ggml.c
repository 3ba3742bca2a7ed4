/* The 8-bit activation encoders round exactly as the reference engine (ggml)
 * does, so that quantized products, and so real models' logits, agree with
 * ../shared/reference. The rules below are written from ggml's definitions
 * (x86 quantize_row_q8_0 / quantize_row_q8_1, quantize_row_q8_K_ref):
 *   Q8_0: d = amax/127 (float), stored F16(d); q = round_even(x * (127/amax))
 *   Q8_1: as Q8_0, and s = F16(d * sum(q)) with the unrounded d
 * (Q8_K's quants follow the same x * 127/amax rule; its scale stays
 * amax/127, where ggml's 1/(127/amax) can be one ulp apart: not tested.) */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "tensor/formats.h"
#include "tensor/types.h"

#define NV 1024   /* 32 blocks */

static int round_even(float v) { return (int)nearbyintf(v); }   /* default mode: to nearest, ties to even */

static void ggml_q8_0(const float *x, blk_q8_0 *y, int nb)
{
    for (int i = 0; i < nb; i++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * i + j]));
        float d = amax / 127.f, id = amax != 0.0f ? 127.f / amax : 0.0f;
        y[i].d = sd_f32_to_f16(d);
        for (int j = 0; j < 32; j++) y[i].qs[j] = (int8_t)round_even(x[32 * i + j] * id);
    }
}

static void ggml_q8_1(const float *x, blk_q8_1 *y, int nb)
{
    for (int i = 0; i < nb; i++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * i + j]));
        float d = amax / 127.f, id = amax != 0.0f ? 127.f / amax : 0.0f;
        y[i].d = sd_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < 32; j++) { y[i].qs[j] = (int8_t)round_even(x[32 * i + j] * id); sum += y[i].qs[j]; }
        y[i].s = sd_f32_to_f16(d * (float)sum);
    }
}

/* Fixed vectors that separate the rules: ties at .5 after scaling, scales
 * where x/F16(d) and x*(127/amax) round apart, a zero block, negative and
 * positive extremes, tiny and large magnitudes. */
static void fill(float *x)
{
    uint64_t r = 0x2545f4914f6cdd1dULL;
    for (int i = 0; i < NV; i++) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        float u = (float)((r >> 40) * (1.0 / 8388608.0)) - 1.0f;   /* [-1, 1) */
        float scale = (i / 32) % 4 == 0 ? 1e-3f : (i / 32) % 4 == 1 ? 3.7f : (i / 32) % 4 == 2 ? 250.0f : 0.071f;
        x[i] = u * scale;
    }
    for (int j = 0; j < 32; j++) x[64 + j] = 0;                     /* block 2: all zero */
    for (int j = 0; j < 32; j++) x[96 + j] = (float)(j - 16) * 0.5f; /* block 3: amax 8, many ties */
    x[96 + 31] = -8.0f;
    for (int j = 0; j < 32; j++) x[128 + j] = 127.0f * (float)j / 31.0f - 40.5f;
    x[160] = -1.0f; x[161] = 1.0f;                                  /* equal magnitudes of both signs */
}

static void check_q8_0(const char *who, sd_from_float_fn f, const float *x)
{
    blk_q8_0 want[NV / 32], got[NV / 32];
    ggml_q8_0(x, want, NV / 32);
    f(x, got, NV);
    for (int i = 0; i < NV / 32; i++) {
        cr_expect_eq(got[i].d, want[i].d, "%s Q8_0 block %d: d %04x, ggml %04x", who, i, got[i].d, want[i].d);
        for (int j = 0; j < 32; j++)
            cr_expect_eq(got[i].qs[j], want[i].qs[j], "%s Q8_0 block %d [%d]: %d, ggml %d (x %a)", who, i, j,
                         got[i].qs[j], want[i].qs[j], x[32 * i + j]);
    }
}

Test(act_ggml, q8_0_generic_and_dispatched_match_ggml_bit_for_bit)
{
    float x[NV];
    fill(x);
    check_q8_0("generic", sd_q8_0_quantize_act, x);
    check_q8_0(sd_kernels()->isa, sd_kernel_quantize_act(SD_TYPE_Q8_0), x);
}

/* The same vectors differ under the old rule (quants from x / F16(d)), so
 * the test above can tell the two apart. */
Test(act_ggml, vectors_separate_the_rules)
{
    float x[NV];
    fill(x);
    blk_q8_0 want[NV / 32];
    ggml_q8_0(x, want, NV / 32);
    int differ = 0;
    for (int i = 0; i < NV / 32; i++) {
        float d = sd_f16_to_f32(want[i].d), id = d != 0 ? 1.0f / d : 0;
        for (int j = 0; j < 32; j++) differ += round_even(x[32 * i + j] * id) != want[i].qs[j];
    }
    cr_assert_gt(differ, 0, "no value rounds differently under x / F16(d)");
}

Test(act_ggml, q8_1_match_ggml_bit_for_bit)
{
    float x[NV];
    fill(x);
    blk_q8_1 want[NV / 32], got[NV / 32];
    ggml_q8_1(x, want, NV / 32);
    const sd_from_float_fn fs[2] = { sd_type_get(SD_TYPE_Q8_1)->from_float, sd_kernel_quantize_act(SD_TYPE_Q8_1) };
    for (int k = 0; k < 2; k++) {
        fs[k](x, got, NV);
        cr_expect_eq(memcmp(got, want, sizeof want), 0, "%s Q8_1 differs from ggml's rule",
                     k ? sd_kernels()->isa : "generic");
    }
}
