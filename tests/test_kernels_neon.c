/* The NEON kernels against the generic ones in the traits table, on random
 * rows of awkward lengths (odd block counts, misaligned weights, outliers,
 * zero blocks), for both builds: with vdotq_s32 and plain NEON. Only on
 * aarch64 (scripts/test-neon.sh runs it under qemu); elsewhere empty. */
#if defined(__aarch64__)
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/arm/neon_kernels.h"
#include "tensor/types.h"

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rnd_unit(void) { return (float)rnd() / 4294967296.0f * 2.0f - 1.0f; }

/* Mostly small values, a few outliers, now and then a whole zero stretch. */
static void fill_random(float *x, int64_t n)
{
    int zero_from = rnd() % 4 == 0 ? (int)(rnd() % (uint32_t)n) : -1;
    for (int64_t i = 0; i < n; i++) {
        float v = rnd_unit() + rnd_unit() + rnd_unit();
        if (rnd() % 97 == 0) v *= 40.0f;
        x[i] = (zero_from >= 0 && i >= zero_from && i < zero_from + 40) ? 0.0f : v;
    }
}

/* Builds one row of `type` and its activations, then checks the NEON dot
 * against the generic one: equal to within 1e-5 of sum |w_i * x_i|. */
static void check_dot(const sd_kernel_table *t, int type, int iters)
{
    const sd_type_traits *tw = sd_type_get((uint32_t)type);
    const sd_type_traits *tx = sd_type_get((uint32_t)tw->vec_dot_type);
    cr_assert_not_null(t->vec_dot[type], "%s: no NEON kernel", tw->name);
    for (int it = 0; it < iters; it++) {
        rng_state = 0x9e3779b97f4a7c15ull ^ ((uint64_t)type << 32) ^ (uint64_t)it;
        int64_t blocks = 1 + rnd() % (tw->block >= 256 ? 9 : 70);
        int64_t n = blocks * tw->block;
        /* a multiple of both blocks (NVFP4 64 against Q8_0 32) */
        if (n % tx->block) n += tx->block - n % tx->block;
        float *w = malloc((size_t)n * 4), *x = malloc((size_t)n * 4);
        float *wd = malloc((size_t)n * 4), *xd = malloc((size_t)n * 4);
        fill_random(w, n);
        fill_random(x, n);
        size_t wb = sd_row_bytes((uint32_t)type, n), xb = sd_row_bytes((uint32_t)tw->vec_dot_type, n);
        uint8_t *wq = malloc(wb + 1), *xq = malloc(xb);
        uint8_t *wq_odd = wq + 1;                /* GGUF tensors need not be aligned */
        tw->from_float(w, wq_odd, n);
        tx->from_float(x, xq, n);
        tw->to_float(wq_odd, wd, n);
        tx->to_float(xq, xd, n);
        double scale = 0;
        for (int64_t i = 0; i < n; i++) scale += fabs((double)wd[i] * xd[i]);
        float ref = tw->vec_dot(n, wq_odd, xq);
        float got = t->vec_dot[type](n, wq_odd, xq);
        cr_assert(fabs((double)got - ref) <= 1e-5 * scale + 1e-30,
                  "%s n=%lld iter %d: neon %.9g generic %.9g (scale %.3g)",
                  tw->name, (long long)n, it, got, ref, scale);
        free(w); free(x); free(wd); free(xd); free(wq); free(xq);
    }
}

/* The activation encoders must be bit-equal to the generic from_float. */
static void check_quantize(const sd_kernel_table *t, int type)
{
    const sd_type_traits *tr = sd_type_get((uint32_t)type);
    cr_assert_not_null(t->quantize_act[type], "%s: no NEON encoder", tr->name);
    for (int it = 0; it < 20; it++) {
        rng_state = 0x51ed2701ull + (uint64_t)it * 7919u + (uint64_t)type;
        int64_t n = tr->block * (int64_t)(1 + rnd() % 12);
        float *x = malloc((size_t)n * 4);
        fill_random(x, n);
        if (it == 0) memset(x, 0, (size_t)n * 4);   /* all-zero blocks: scale 0 */
        if (it == 1) for (int64_t i = 0; i < n; i++) x[i] *= 1e-6f;  /* FP16 subnormal scales */
        size_t nb = sd_row_bytes((uint32_t)type, n);
        uint8_t *a = malloc(nb), *b = malloc(nb);
        memset(a, 0, nb); memset(b, 0, nb);
        tr->from_float(x, a, n);
        t->quantize_act[type](x, b, n);
        cr_assert(memcmp(a, b, nb) == 0, "%s n=%lld iter %d: encodings differ", tr->name, (long long)n, it);
        free(x); free(a); free(b);
    }
}

static const int dot_types[] = {
    SD_TYPE_Q8_0, SD_TYPE_Q4_0, SD_TYPE_MXFP4, SD_TYPE_NVFP4, SD_TYPE_IQ4_NL,
    SD_TYPE_Q2_K, SD_TYPE_Q3_K, SD_TYPE_Q4_K, SD_TYPE_Q5_K, SD_TYPE_Q6_K,
};

static void check_all(void (*reg)(sd_kernel_table *))
{
    sd_kernel_table t;
    memset(&t, 0, sizeof t);
    reg(&t);
    for (size_t k = 0; k < sizeof dot_types / sizeof *dot_types; k++)
        check_dot(&t, dot_types[k], 12);
    check_quantize(&t, SD_TYPE_Q8_0);
    check_quantize(&t, SD_TYPE_Q8_K);
}

Test(kernels_neon, quantized_plain)
{
    check_all(sd_kernels_register_neon_plain);
}

Test(kernels_neon, quantized_dotprod)
{
    if (!sd_neon_has_dotprod()) cr_skip_test("this CPU has no dot-product extension");
    check_all(sd_kernels_register_neon_dot);
}

Test(kernels_neon, float_formats)
{
    sd_kernel_table t;
    memset(&t, 0, sizeof t);
    sd_kernels_register_neon_float(&t);
    check_dot(&t, SD_TYPE_F32, 30);
    check_dot(&t, SD_TYPE_F16, 30);
    check_dot(&t, SD_TYPE_BF16, 30);
}

/* The entry point dispatch.c calls fills every row the two builds have. */
Test(kernels_neon, register_fills_rows)
{
    sd_kernel_table t;
    memset(&t, 0, sizeof t);
    sd_kernels_register_neon(&t);
    cr_assert_str_eq(t.isa, "neon");
    for (size_t k = 0; k < sizeof dot_types / sizeof *dot_types; k++)
        cr_assert_not_null(t.vec_dot[dot_types[k]]);
    cr_assert_not_null(t.vec_dot[SD_TYPE_F16]);
    cr_assert_not_null(t.quantize_act[SD_TYPE_Q8_0]);
    cr_assert_not_null(t.quantize_act[SD_TYPE_Q8_K]);
}
#else
typedef int sd_kernels_neon_tests_need_aarch64;   /* keeps the unit non-empty */
#endif
