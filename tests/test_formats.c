/* The weight formats (src/tensor): exact dequantization against the
 * reference vectors, encoders no worse than the reference encoder, dot
 * products against dequantize-then-dot in double, names, half conversions,
 * fallbacks, the NVFP4 second-level scale. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>

#include "common.h"
#include "gguf/gguf.h"
#include "showdown.h"
#include "tensor/scale.h"
#include "tensor/types.h"

/* ---- the .qv reference vectors (reference/quant/README.md) ---- */
typedef struct {
    uint32_t type, nr, npr, bpr;
    const float *src, *deq;
    const uint8_t *enc;
    void *buf;
} qv;

static void qv_load(const char *file, qv *v)
{
    char rel[128], path[512];
    snprintf(rel, sizeof rel, "reference/quant/%s", file);
    size_t len = 0;
    /* formats the shared folder lacks are in the repo (tests/data/quant/README.md) */
    if (!strcmp(file, "iq4_nl.qv")) snprintf(path, sizeof path, "tests/data/quant/%s", file);
    else shared_path(path, sizeof path, rel);
    v->buf = read_all(path, &len);
    cr_assert(v->buf, "cannot read %s", path);
    const uint8_t *b = v->buf;
    cr_assert(len >= 20 && memcmp(b, "SDQV", 4) == 0, "%s: not a format vector file", path);
    memcpy(&v->type, b + 4, 4); memcpy(&v->nr, b + 8, 4);
    memcpy(&v->npr, b + 12, 4); memcpy(&v->bpr, b + 16, 4);
    size_t nv = (size_t)v->nr * v->npr;
    cr_assert_eq(len, 20 + 8 * nv + (size_t)v->nr * v->bpr, "%s: size", path);
    v->src = (const float *)(b + 20);
    v->enc = b + 20 + 4 * nv;
    v->deq = (const float *)(v->enc + (size_t)v->nr * v->bpr);
}

static const char *const qv_files[] = {
    "f16.qv", "bf16.qv", "q8_0.qv", "q4_0.qv", "q4_1.qv", "q5_0.qv", "q5_1.qv",
    "q2_k.qv", "q3_k.qv", "q4_k.qv", "q5_k.qv", "q6_k.qv", "mxfp4.qv", "nvfp4.qv", "iq4_nl.qv",
};
#define N_QV (sizeof qv_files / sizeof qv_files[0])

static double sse(const float *a, const float *b, int64_t n, float scale)
{
    double e = 0;
    for (int64_t i = 0; i < n; i++) { double d = (double)a[i] * scale - b[i]; e += d * d; }
    return e;
}

Test(formats, dequant_matches_reference_bit_for_bit)
{
    for (size_t f = 0; f < N_QV; f++) {
        qv v;
        qv_load(qv_files[f], &v);
        const sd_type_traits *tr = sd_type_get(v.type);
        cr_assert(tr && tr->to_float, "%s: type %u missing", qv_files[f], v.type);
        cr_assert_eq(sd_row_bytes(v.type, v.npr), v.bpr, "%s: row bytes", qv_files[f]);
        float *out = malloc(sizeof(float) * v.npr);
        for (uint32_t r = 0; r < v.nr; r++) {
            tr->to_float(v.enc + (size_t)r * v.bpr, out, v.npr);
            for (uint32_t j = 0; j < v.npr; j++) {
                uint32_t a, b;
                memcpy(&a, &out[j], 4); memcpy(&b, &v.deq[(size_t)r * v.npr + j], 4);
                cr_assert_eq(a, b, "%s row %u value %u: %a, reference %a", qv_files[f], r, j,
                             out[j], v.deq[(size_t)r * v.npr + j]);
            }
        }
        free(out); free(v.buf);
    }
}

/* Squared error of our encoder on every row, against the reference
 * encoder's; the ratios are logged (run with --verbose to see them). */
Test(formats, encoders_no_worse_than_reference_on_every_row)
{
    for (size_t f = 0; f < N_QV; f++) {
        qv v;
        qv_load(qv_files[f], &v);
        const sd_type_traits *tr = sd_type_get(v.type);
        uint8_t *enc = malloc(v.bpr);
        float *out = malloc(sizeof(float) * v.npr);
        char line[256];
        int n = snprintf(line, sizeof line, "%-9s ours/reference:", qv_files[f]);
        for (uint32_t r = 0; r < v.nr; r++) {
            const float *src = v.src + (size_t)r * v.npr;
            tr->from_float(src, enc, v.npr);
            tr->to_float(enc, out, v.npr);
            double ours = sse(out, src, v.npr, 1.0f);
            double ref = sse(v.deq + (size_t)r * v.npr, src, v.npr, 1.0f);
            cr_assert(ours <= ref, "%s row %u: error %.6g above the reference's %.6g",
                      qv_files[f], r, ours, ref);
            n += snprintf(line + n, sizeof line - (size_t)n, " %.3f", ref > 0 ? ours / ref : 0.0);
        }
        cr_log_info("%s", line);
        free(enc); free(out); free(v.buf);
    }
}

/* IQ4_NL's encoder is the reference's own search (it is what llama-quantize
 * writes for the K-quant mixes' rows of 576 or 640), so its bytes must be
 * the reference's, block for block. */
Test(formats, iq4_nl_encoder_writes_the_reference_bytes)
{
    qv v;
    qv_load("iq4_nl.qv", &v);
    cr_assert_eq(v.type, SD_TYPE_IQ4_NL);
    const sd_type_traits *tr = sd_type_get(v.type);
    uint8_t *enc = malloc(v.bpr);
    for (uint32_t r = 0; r < v.nr; r++) {
        tr->from_float(v.src + (size_t)r * v.npr, enc, v.npr);
        for (uint32_t b = 0; b < v.bpr / 18; b++)
            cr_assert_arr_eq(enc + 18 * b, v.enc + (size_t)r * v.bpr + 18 * b, 18, "row %u block %u differs", r, b);
    }
    free(enc); free(v.buf);
}

/* Each row quantized as its own tensor, with NVIDIA's per-tensor scale:
 * better than the reference everywhere, and by orders of magnitude on the
 * small-magnitude row 5 (sigma 1e-4), which the reference zeroes. */
Test(formats, nvfp4_tensor_scale_beats_reference)
{
    qv v;
    qv_load("nvfp4.qv", &v);
    cr_assert_eq(v.type, SD_TYPE_NVFP4);
    uint8_t *enc = malloc(v.bpr);
    float *out = malloc(sizeof(float) * v.npr);
    for (uint32_t r = 0; r < v.nr; r++) {
        const float *src = v.src + (size_t)r * v.npr;
        float g = sd_quantize_tensor(SD_TYPE_NVFP4, src, enc, 1, v.npr);
        cr_assert(g > 0 && isfinite(g), "row %u: scale %g", r, g);
        sd_type_get(SD_TYPE_NVFP4)->to_float(enc, out, v.npr);
        double ours = sse(out, src, v.npr, g);
        double ref = sse(v.deq + (size_t)r * v.npr, src, v.npr, 1.0f);
        cr_log_info("nvfp4 row %u: scale %.4g error ours %.4g reference %.4g", r, g, ours, ref);
        cr_assert(ours <= ref, "row %u: %.6g > %.6g", r, ours, ref);
        if (r == 2) cr_assert_eq(g, 1.0f, "an all-zero tensor keeps scale 1");
        if (r == 5) cr_assert(ours < 0.01 * ref, "row 5: %.4g not far below %.4g", ours, ref);
    }
    free(enc); free(out); free(v.buf);
}

/* ---- random data ---- */
static uint64_t rng_state = 88172645463325252ull;
static float rnd_normal(void)
{
    double u[2];
    for (int k = 0; k < 2; k++) {
        rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
        u[k] = ((rng_state >> 11) + 0.5) / 9007199254740992.0;
    }
    return (float)(sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

static const int weight_types[] = {
    SD_TYPE_F32, SD_TYPE_F16, SD_TYPE_BF16, SD_TYPE_Q8_0, SD_TYPE_Q8_1, SD_TYPE_Q4_0,
    SD_TYPE_Q4_1, SD_TYPE_Q5_0, SD_TYPE_Q5_1, SD_TYPE_Q2_K, SD_TYPE_Q3_K, SD_TYPE_Q4_K,
    SD_TYPE_Q5_K, SD_TYPE_Q6_K, SD_TYPE_Q8_K, SD_TYPE_MXFP4, SD_TYPE_NVFP4,
};
#define N_WT (sizeof weight_types / sizeof weight_types[0])

/* Quantize then dequantize Gaussian data: the relative RMS error stays under
 * what each bit width allows (measured values are about half these bounds). */
Test(formats, round_trip_error_within_bit_budget)
{
    const int n = 4096;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *z = malloc(sizeof(float) * n);
    void *q = malloc(sd_row_bytes(SD_TYPE_F32, n));
    void *q2 = malloc(sd_row_bytes(SD_TYPE_F32, n));
    for (int i = 0; i < n; i++) x[i] = 0.05f * rnd_normal();
    for (size_t t = 0; t < N_WT; t++) {
        const sd_type_traits *tr = sd_type_get((uint32_t)weight_types[t]);
        double bpw = sd_type_bpw((uint32_t)weight_types[t]);
        tr->from_float(x, q, n);
        tr->to_float(q, y, n);
        double e = sse(y, x, n, 1.0f), s = sse(x, x, n, 0.0f);
        double rel = sqrt(e / s);
        /* a uniform b-bit grid over +-3 sigma gives about 6/(2^b * sqrt(12)) */
        double bound = bpw >= 16 ? 5e-3 : 3.5 / pow(2.0, floor(bpw)) ;
        cr_log_info("%-5s %.4f bpw: relative RMS error %.5f (bound %.5f)", tr->name, bpw, rel, bound);
        cr_assert(rel < bound, "%s: relative error %.5f above %.5f", tr->name, rel, bound);
        /* encoding what was decoded loses nothing more for the plain float formats */
        if (!tr->is_quantized) {
            tr->from_float(y, q2, n);
            tr->to_float(q2, z, n);
            cr_assert_eq(memcmp(y, z, sizeof(float) * n), 0, "%s: not idempotent", tr->name);
        }
    }
    free(x); free(y); free(z); free(q); free(q2);
}

/* vec_dot(weights, activations converted to vec_dot_type) equals the dot of
 * the two dequantized rows, computed in double, to float accuracy. */
Test(formats, vec_dot_matches_dequantized_dot)
{
    const int lens[] = { 256, 512, 768, 1024, 4096, 11008 };
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int n = lens[li];
        float *w = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * n);
        float *wd = malloc(sizeof(float) * n), *xd = malloc(sizeof(float) * n);
        void *wq = malloc(4 * (size_t)n), *xq = malloc(4 * (size_t)n + 64);
        for (int i = 0; i < n; i++) { w[i] = 0.02f * rnd_normal(); x[i] = rnd_normal() + 0.3f; }
        for (size_t t = 0; t < N_WT; t++) {
            const sd_type_traits *tr = sd_type_get((uint32_t)weight_types[t]);
            const sd_type_traits *vt = sd_type_get((uint32_t)tr->vec_dot_type);
            cr_assert(vt && tr->vec_dot, "%s: no dot product", tr->name);
            if (n % tr->block || n % vt->block) continue;
            tr->from_float(w, wq, n);
            vt->from_float(x, xq, n);
            tr->to_float(wq, wd, n);
            vt->to_float(xq, xd, n);
            double ref = 0, mag = 0;
            for (int i = 0; i < n; i++) { ref += (double)wd[i] * xd[i]; mag += fabs((double)wd[i] * xd[i]); }
            /* Q4_1/Q5_1 take the offset term m*d_x*sum(q) from Q8_1's F16 s, as
             * ggml does: allow an F16 ulp of each block's m*s (m at byte 2). */
            double slack = 0;
            if (tr->vec_dot_type == SD_TYPE_Q8_1)
                for (int b = 0; b < n / 32; b++) {
                    uint16_t m, s;
                    memcpy(&m, (const char *)wq + (size_t)b * (size_t)tr->block_bytes + 2, 2);
                    memcpy(&s, (const char *)xq + (size_t)b * (size_t)vt->block_bytes + 2, 2);
                    slack += fabs((double)sd_f16_to_f32(m) * sd_f16_to_f32(s)) * 0x1p-10;
                }
            double got = tr->vec_dot(n, wq, xq);
            cr_assert(fabs(got - ref) <= 1e-6 * mag + 1e-7 * fabs(ref) + slack,
                      "%s x %s n=%d: %.9g vs %.9g (sum |w x| %.6g)", tr->name, vt->name, n, got, ref, mag);
        }
        free(w); free(x); free(wd); free(xd); free(wq); free(xq);
    }
}

/* The activation conversion itself stays close to the activations. */
Test(formats, activation_types_track_input)
{
    const int n = 1024;
    float x[1024], y[1024];
    uint8_t q[4 * 1024 + 64];
    for (int i = 0; i < n; i++) x[i] = rnd_normal();
    const int act[] = { SD_TYPE_Q8_0, SD_TYPE_Q8_1, SD_TYPE_Q8_K };
    for (int a = 0; a < 3; a++) {
        const sd_type_traits *tr = sd_type_get((uint32_t)act[a]);
        tr->from_float(x, q, n);
        tr->to_float(q, y, n);
        for (int i = 0; i < n; i++) cr_assert(fabsf(y[i] - x[i]) <= 0.01f * 4.5f, "%s [%d]", tr->name, i);
    }
    /* Q8_K's sums of 16 match its values */
    sd_type_get(SD_TYPE_Q8_K)->from_float(x, q, 256);
    int16_t bs[16];
    memcpy(bs, q + 4 + 256, sizeof bs);
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += (int8_t)q[4 + 16 * g + j];
        cr_assert_eq(s, bs[g]);
    }
}

Test(formats, names_ids_and_sizes)
{
    cr_assert_eq(sd_type_from_name("q4_k"), SD_TYPE_Q4_K);
    cr_assert_eq(sd_type_from_name("Q4_K"), SD_TYPE_Q4_K);
    cr_assert_eq(sd_type_from_name("bf16"), SD_TYPE_BF16);
    cr_assert_eq(sd_type_from_name("NvFp4"), SD_TYPE_NVFP4);
    cr_assert_eq(sd_type_from_name("mxfp4"), 39);
    cr_assert_eq(sd_type_from_name("q4_2"), -1);
    cr_assert_eq(sd_type_from_name(""), -1);
    cr_assert_eq(sd_type_from_name(NULL), -1);
    cr_assert_null(sd_type_get(4));
    cr_assert_null(sd_type_get(99));
    cr_assert_null(sd_type_get(UINT32_MAX));
    cr_assert_str_eq(sd_type_name(99), "type 99");
    cr_assert_str_eq(sd_type_name(SD_TYPE_Q6_K), "Q6_K");
    for (size_t t = 0; t < N_WT; t++) {
        const sd_type_traits *tr = sd_type_get((uint32_t)weight_types[t]);
        cr_assert_not_null(tr);
        cr_assert_eq(sd_type_from_name(tr->name), weight_types[t], "%s", tr->name);
    }
    /* block, bytes per block (GGUF's), and what follows from them */
    static const struct { int type, block, bytes; double bpw; } sizes[] = {
        { SD_TYPE_F32, 1, 4, 32 }, { SD_TYPE_F16, 1, 2, 16 }, { SD_TYPE_BF16, 1, 2, 16 },
        { SD_TYPE_Q8_0, 32, 34, 8.5 }, { SD_TYPE_Q8_1, 32, 36, 9 }, { SD_TYPE_Q4_0, 32, 18, 4.5 },
        { SD_TYPE_Q4_1, 32, 20, 5 }, { SD_TYPE_Q5_0, 32, 22, 5.5 }, { SD_TYPE_Q5_1, 32, 24, 6 },
        { SD_TYPE_Q2_K, 256, 84, 2.625 }, { SD_TYPE_Q3_K, 256, 110, 3.4375 },
        { SD_TYPE_Q4_K, 256, 144, 4.5 }, { SD_TYPE_Q5_K, 256, 176, 5.5 },
        { SD_TYPE_Q6_K, 256, 210, 6.5625 }, { SD_TYPE_Q8_K, 256, 292, 9.125 },
        { SD_TYPE_MXFP4, 32, 17, 4.25 }, { SD_TYPE_NVFP4, 64, 36, 4.5 }, { SD_TYPE_IQ4_NL, 32, 18, 4.5 },
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const sd_type_traits *tr = sd_type_get((uint32_t)sizes[i].type);
        cr_assert_eq(tr->block, sizes[i].block, "%s", tr->name);
        cr_assert_eq(tr->block_bytes, sizes[i].bytes, "%s", tr->name);
        cr_assert_float_eq(sd_type_bpw((uint32_t)sizes[i].type), sizes[i].bpw, 1e-12, "%s", tr->name);
    }
    cr_assert_eq(sd_row_bytes(SD_TYPE_Q4_0, 512), 288);
    cr_assert_eq(sd_row_bytes(SD_TYPE_Q4_K, 4096), 16 * 144);
    cr_assert_eq(sd_row_bytes(SD_TYPE_Q4_K, 4000), 0);
    cr_assert_eq(sd_row_bytes(SD_TYPE_F16, 7), 14);
    cr_assert_eq(sd_row_bytes(99, 256), 0);
    cr_assert_float_eq(sd_type_bpw(99), 0.0, 0);
}

static float f_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

Test(formats, half_and_bfloat_conversions)
{
    /* every half converts to float and back unchanged (NaNs stay NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sd_f16_to_f32((uint16_t)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) { cr_assert(isnan(f)); cr_assert(isnan(sd_f16_to_f32(sd_f32_to_f16(f)))); continue; }
        cr_assert_eq(sd_f32_to_f16(f), h, "half 0x%04x -> %a -> 0x%04x", h, f, sd_f32_to_f16(f));
    }
    cr_assert_eq(sd_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(sd_f32_to_f16(65519.99f), 0x7bff);
    cr_assert_eq(sd_f32_to_f16(65520.0f), 0x7c00);           /* the tie rounds to infinity */
    cr_assert_eq(sd_f32_to_f16(-1e9f), 0xfc00);
    cr_assert_eq(sd_f32_to_f16(f_of(0x33000000)), 0x0000);   /* 2^-25: tie to even zero */
    cr_assert_eq(sd_f32_to_f16(f_of(0x33000001)), 0x0001);
    cr_assert_eq(sd_f32_to_f16(f_of(0x33c00000)), 0x0002);   /* 1.5 * 2^-24: tie to even 2 */
    cr_assert_eq(sd_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);    /* tie to even */
    cr_assert_eq(sd_f32_to_f16(1.0f + 0x1.8p-10f), 0x3c02);  /* 1.5 ulp: up to even */
    cr_assert_eq(sd_f32_to_f16(-0.0f), 0x8000);
    cr_assert_eq(sd_f32_to_f16(0x1.ffcp-15f), 0x0400);       /* just below 2^-14, rounds up to the normal */
    cr_assert_float_eq(sd_f16_to_f32(0x0001), 0x1p-24f, 0);
    cr_assert_float_eq(sd_f16_to_f32(0x3555), 0x1.554p-2f, 0);
    /* bfloat16 */
    cr_assert_eq(sd_f32_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(sd_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);    /* tie to even */
    cr_assert_eq(sd_f32_to_bf16(1.0f + 0x1.8p-7f), 0x3f82);
    cr_assert_eq(sd_f32_to_bf16(f_of(0x7f7fffff)), 0x7f80);  /* overflows to infinity */
    uint16_t nan = sd_f32_to_bf16(f_of(0x7f800001));         /* a signalling NaN stays a NaN */
    cr_assert(isnan(sd_bf16_to_f32(nan)) && (nan & 0x40));
    cr_assert_float_eq(sd_bf16_to_f32(0xc000), -2.0f, 0);
}

Test(formats, fallback_for_rows_that_do_not_fit)
{
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q4_K, 4096), SD_TYPE_Q4_K);
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q4_K, 320), SD_TYPE_Q5_0);
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q5_K, 320), SD_TYPE_Q5_1);
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q6_K, 96), SD_TYPE_Q8_0);
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q2_K, 96), SD_TYPE_IQ4_NL);   /* llama.cpp's choice */
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q3_K, 96), SD_TYPE_IQ4_NL);
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q3_K, 100), SD_TYPE_F16);
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q4_K, 100), SD_TYPE_F16);
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q4_0, 100), SD_TYPE_F16);
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q8_0, 48), SD_TYPE_F16);
    cr_assert_eq(sd_type_fallback(SD_TYPE_NVFP4, 96), SD_TYPE_MXFP4);
    cr_assert_eq(sd_type_fallback(SD_TYPE_NVFP4, 48), SD_TYPE_F16);
    cr_assert_eq(sd_type_fallback(SD_TYPE_BF16, 7), SD_TYPE_BF16);
    cr_assert_eq(sd_type_fallback(99, 256), -1);
    cr_assert_eq(sd_type_fallback(SD_TYPE_Q4_0, 0), -1);
}

Test(formats, quantize_tensor_rows_and_scale)
{
    const int rows = 3, n = 512;
    float x[3 * 512];
    for (int i = 0; i < rows * n; i++) x[i] = 0.01f * rnd_normal();
    uint8_t a[3 * 512 * 4], b[512 * 4];
    /* formats without a tensor scale: row by row what from_float writes */
    cr_assert_eq(sd_quantize_tensor(SD_TYPE_Q4_K, x, a, rows, n), 1.0f);
    size_t rb = sd_row_bytes(SD_TYPE_Q4_K, n);
    for (int r = 0; r < rows; r++) {
        sd_type_get(SD_TYPE_Q4_K)->from_float(x + r * n, b, n);
        cr_assert_eq(memcmp(a + r * rb, b, rb), 0, "row %d", r);
    }
    /* NVFP4: the largest magnitude maps to 448 * 6, or the power of two above */
    float amax = 0;
    for (int i = 0; i < rows * n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float g = sd_quantize_tensor(SD_TYPE_NVFP4, x, a, rows, n);
    int ex;
    cr_assert(g == amax / 2688.0f || (frexpf(g, &ex) == 0.5f && g >= amax / 2688.0f && g < amax / 1344.0f),
              "scale %a for amax %a", g, amax);
    float y[3 * 512];
    sd_type_get(SD_TYPE_NVFP4)->to_float(a, y, rows * n);
    for (int i = 0; i < rows * n; i++) cr_assert(fabsf(y[i] * g - x[i]) <= 0.3f * fabsf(x[i]) + amax / 16, "[%d] %g vs %g", i, y[i] * g, x[i]);
    /* bad arguments */
    cr_assert_eq(sd_quantize_tensor(SD_TYPE_Q4_K, x, a, 1, 100), 0.0f);
    cr_assert_eq(sd_quantize_tensor(99, x, a, 1, 256), 0.0f);
}

/* A minimal GGUF with one f32 tensor and, optionally, its scale key. */
static size_t put(uint8_t *p, const void *v, size_t n) { memcpy(p, v, n); return n; }
static size_t put_str(uint8_t *p, const char *s)
{
    uint64_t n = strlen(s);
    memcpy(p, &n, 8); memcpy(p + 8, s, n);
    return 8 + n;
}
static size_t tiny_gguf(uint8_t *buf, const char *key, float value)
{
    size_t o = 0;
    uint32_t ver = 3, u;
    uint64_t nt = 1, nkv = key ? 1 : 0, ne = 32, off = 0;
    o += put(buf + o, "GGUF", 4); o += put(buf + o, &ver, 4);
    o += put(buf + o, &nt, 8); o += put(buf + o, &nkv, 8);
    if (key) { o += put_str(buf + o, key); u = GGUF_FLOAT32; o += put(buf + o, &u, 4); o += put(buf + o, &value, 4); }
    o += put_str(buf + o, "blk.0.ffn_up.weight");
    u = 1; o += put(buf + o, &u, 4); o += put(buf + o, &ne, 8);
    u = SD_TYPE_F32; o += put(buf + o, &u, 4); o += put(buf + o, &off, 8);
    while (o % 32) buf[o++] = 0;
    memset(buf + o, 0, 128);
    return o + 128;
}

Test(formats, tensor_scale_read_from_metadata)
{
    uint8_t buf[1024];
    char err[SD_ERR_LEN];
    gguf_file *f = NULL;
    size_t len = tiny_gguf(buf, SD_TENSOR_SCALE_PREFIX "blk.0.ffn_up.weight", 0.125f);
    cr_assert_eq(gguf_parse(buf, len, "scaled", &f, err), 0, "%s", err);
    cr_assert_float_eq(sd_tensor_scale(f, gguf_find_tensor(f, "blk.0.ffn_up.weight")), 0.125f, 0);
    gguf_close(f);
    len = tiny_gguf(buf, SD_TENSOR_SCALE_PREFIX "blk.1.ffn_up.weight", 0.125f);  /* another tensor's */
    cr_assert_eq(gguf_parse(buf, len, "other", &f, err), 0, "%s", err);
    cr_assert_float_eq(sd_tensor_scale(f, gguf_find_tensor(f, "blk.0.ffn_up.weight")), 1.0f, 0);
    gguf_close(f);
    len = tiny_gguf(buf, SD_TENSOR_SCALE_PREFIX "blk.0.ffn_up.weight", -3.0f);   /* unusable */
    cr_assert_eq(gguf_parse(buf, len, "negative", &f, err), 0, "%s", err);
    cr_assert_float_eq(sd_tensor_scale(f, gguf_find_tensor(f, "blk.0.ffn_up.weight")), 1.0f, 0);
    gguf_close(f);
    len = tiny_gguf(buf, NULL, 0);
    cr_assert_eq(gguf_parse(buf, len, "plain", &f, err), 0, "%s", err);
    cr_assert_float_eq(sd_tensor_scale(f, gguf_find_tensor(f, "blk.0.ffn_up.weight")), 1.0f, 0);
    gguf_close(f);
}
