/* Every ISA kernel against the generic kernel of the traits table, on random
 * inputs of awkward sizes, for every ISA level this CPU has. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "kernels/dispatch.h"
#include "tensor/types.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static float frand(void)   /* uniform in [-1, 1) */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

/* The ISA tables this CPU can run, each built on a zeroed table so that a
 * NULL row means "not accelerated here". */
static int isa_tables(sd_kernel_table *out)
{
    int n = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        memset(&out[n], 0, sizeof out[n]);
        sd_kernels_register_avx2(&out[n]);
        out[n++].isa = "avx2";
    }
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) {
        memset(&out[n], 0, sizeof out[n]);
        sd_kernels_register_avx512(&out[n]);
        out[n++].isa = "avx512";
    }
#elif defined(__aarch64__)
    memset(&out[n], 0, sizeof out[n]);
    sd_kernels_register_neon(&out[n]);
    out[n++].isa = "neon";
#endif
    return n;
}

/* Random row of n values; some blocks scaled up or zeroed to reach the
 * encoders' edge cases. */
static void fill(float *x, int64_t n, float big)
{
    for (int64_t i = 0; i < n; i++) x[i] = frand();
    for (int64_t i = 0; i + 32 <= n; i += 96) for (int j = 0; j < 32; j++) x[i + j] *= big;
    if (n >= 64) memset(x + 32, 0, 32 * sizeof *x);
}

static const uint32_t types[] = {SD_TYPE_F16, SD_TYPE_BF16, SD_TYPE_Q8_0, SD_TYPE_Q4_0, SD_TYPE_Q4_1,
                                 SD_TYPE_Q5_0, SD_TYPE_Q5_1, SD_TYPE_Q2_K, SD_TYPE_Q3_K, SD_TYPE_Q4_K,
                                 SD_TYPE_Q5_K, SD_TYPE_Q6_K, SD_TYPE_MXFP4, SD_TYPE_NVFP4,
                                 SD_TYPE_IQ4_NL};

/* Element counts: one block, odd block counts, and for the plain formats
 * lengths that leave a tail after every vector width. */
static int64_t sizes_for(const sd_type_traits *tr, int64_t *out)
{
    if (tr->block == 1) {
        static const int64_t s[] = {1, 7, 31, 33, 100, 257, 2048};
        memcpy(out, s, sizeof s);
        return 7;
    }
    static const int64_t b[] = {1, 3, 7, 33};
    for (int i = 0; i < 4; i++) out[i] = b[i] * tr->block;
    return 4;
}

Test(kernels, activation_encoders_match_generic_bytes)
{
    sd_kernel_table tabs[4];
    int nt = isa_tables(tabs);
    static const uint32_t acts[] = {SD_TYPE_Q8_0, SD_TYPE_Q8_1, SD_TYPE_Q8_K, SD_TYPE_F16, SD_TYPE_BF16};
    for (int k = 0; k < nt; k++)
        for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
            sd_from_float_fn f = tabs[k].quantize_act[acts[a]];
            if (!f) continue;
            const sd_type_traits *tr = sd_type_get(acts[a]);
            int64_t sz[8], ns = sizes_for(tr, sz);
            for (int64_t s = 0; s < ns; s++) {
                int64_t n = sz[s] < tr->block ? tr->block : sz[s] - sz[s] % tr->block;
                float *x = malloc((size_t)n * sizeof *x);
                fill(x, n, 300.0f);
                size_t rb = sd_row_bytes(acts[a], n);
                char *ref = malloc(rb), *got = malloc(rb);
                /* Q8_0's activation encoder is not its weight encoder (ggml's rounding) */
                (acts[a] == SD_TYPE_Q8_0 ? sd_q8_0_quantize_act : tr->from_float)(x, ref, n);
                f(x, got, n);
                cr_expect(memcmp(ref, got, rb) == 0, "%s: %s encoder differs at n=%lld", tabs[k].isa, tr->name,
                          (long long)n);
                free(x); free(ref); free(got);
            }
        }
}

/* |fast - generic| within float rounding of the sum of |products|. */
static void check_dot(const char *isa, uint32_t type, sd_vec_dot_fn fast, int64_t n)
{
    const sd_type_traits *tr = sd_type_get(type), *xt = sd_type_get((uint32_t)tr->vec_dot_type);
    float *w = malloc((size_t)n * sizeof *w), *x = malloc((size_t)n * sizeof *x);
    float *wd = malloc((size_t)n * sizeof *wd), *xd = malloc((size_t)n * sizeof *xd);
    fill(w, n, 8.0f);
    fill(x, n, 20.0f);
    char *wq = malloc(sd_row_bytes(type, n)), *xq = malloc(sd_row_bytes((uint32_t)tr->vec_dot_type, n));
    tr->from_float(w, wq, n);
    xt->from_float(x, xq, n);
    tr->to_float(wq, wd, n);
    xt->to_float(xq, xd, n);
    double mag = 0;
    for (int64_t i = 0; i < n; i++) mag += fabs((double)wd[i] * xd[i]);
    float ref = tr->vec_dot(n, wq, xq), got = fast(n, wq, xq);
    cr_expect(fabs((double)ref - got) <= 2e-6 * mag + 1e-30, "%s %s n=%lld: generic %.9g fast %.9g (scale %.3g)", isa,
              tr->name, (long long)n, ref, got, mag);
    free(w); free(x); free(wd); free(xd); free(wq); free(xq);
}

Test(kernels, vec_dot_matches_generic)
{
    sd_kernel_table tabs[4];
    int nt = isa_tables(tabs);
    for (int k = 0; k < nt; k++)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            sd_vec_dot_fn f = tabs[k].vec_dot[types[i]];
            if (!f) continue;
            int64_t sz[8], ns = sizes_for(sd_type_get(types[i]), sz);
            for (int64_t s = 0; s < ns; s++) check_dot(tabs[k].isa, types[i], f, sz[s]);
        }
}

/* The tile kernels against vec_dot, for tile shapes that leave remainders. */
Test(kernels, gemm_matches_vec_dot)
{
    sd_kernel_table tabs[4];
    int ntab = isa_tables(tabs);
    static const int rows[] = {1, 3, 8, 13, 37}, toks[] = {1, 2, 5, 9};
    for (int k = 0; k < ntab; k++)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            sd_gemm_fn g = tabs[k].gemm[types[i]];
            if (!g) continue;
            const sd_type_traits *tr = sd_type_get(types[i]), *xt = sd_type_get((uint32_t)tr->vec_dot_type);
            int64_t n = tr->block == 1 ? 96 : 768;   /* 24 groups of 32: crosses a 16-group panel chunk */
            size_t wr = sd_row_bytes(types[i], n), xr = sd_row_bytes((uint32_t)tr->vec_dot_type, n);
            char *wq = malloc(37 * wr), *xq = malloc(9 * xr);
            float *tmp = malloc((size_t)n * sizeof *tmp), *out = malloc(9 * 37 * sizeof *out);
            for (int r = 0; r < 37; r++) { fill(tmp, n, 4.0f); tr->from_float(tmp, wq + r * wr, n); }
            for (int t = 0; t < 9; t++) { fill(tmp, n, 9.0f); xt->from_float(tmp, xq + t * xr, n); }
            for (size_t a = 0; a < sizeof rows / sizeof rows[0]; a++)
                for (size_t b = 0; b < sizeof toks / sizeof toks[0]; b++) {
                    int nr = rows[a], nt = toks[b];
                    for (int z = 0; z < 9 * 37; z++) out[z] = NAN;
                    g(n, wq, wr, nr, xq, xr, nt, out, 37);
                    for (int t = 0; t < nt; t++)
                        for (int r = 0; r < nr; r++) {
                            float ref = tr->vec_dot(n, wq + r * wr, xq + t * xr), got = out[t * 37 + r];
                            cr_expect(fabsf(ref - got) <= 1e-4f * (fabsf(ref) + 1.0f), "%s %s gemm %dx%d [%d,%d]: %.7g vs %.7g",
                                      tabs[k].isa, tr->name, nr, nt, r, t, ref, got);
                        }
                }
            free(wq); free(xq); free(tmp); free(out);
        }
}

Test(kernels, isa_names_the_level_in_use)
{
    const char *isa = sd_kernel_isa();
    cr_assert(isa && (!strcmp(isa, "generic") || !strcmp(isa, "avx2") || !strcmp(isa, "avx512") ||
                      !strcmp(isa, "neon")), "isa %s", isa ? isa : "(null)");
    const char *forced = getenv("SHOWDOWN_ISA");
    if (forced && !strcmp(forced, "generic")) cr_expect_str_eq(isa, "generic");
    for (uint32_t t = 0; t < SD_TYPE_COUNT; t++)
        if (sd_type_get(t)) cr_expect(sd_kernel_vec_dot(t) != NULL, "type %u has no dot", t);
}

Test(kernels, dequantizers_match_generic)
{
    sd_kernel_table tabs[4];
    int nt = isa_tables(tabs);
    static const uint32_t ts[] = {SD_TYPE_F16, SD_TYPE_Q8_0};
    for (int k = 0; k < nt; k++)
        for (size_t i = 0; i < 2; i++) {
            sd_to_float_fn f = tabs[k].to_float[ts[i]];
            if (!f) continue;
            const sd_type_traits *tr = sd_type_get(ts[i]);
            int64_t n = tr->block == 1 ? 77 : 96;
            float *x = malloc((size_t)n * sizeof *x), *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
            char *q = malloc(sd_row_bytes(ts[i], n));
            fill(x, n, 50.0f);
            tr->from_float(x, q, n);
            tr->to_float(q, a, n);
            f(q, b, n);
            cr_expect(memcmp(a, b, (size_t)n * sizeof *a) == 0, "%s %s dequantizer differs", tabs[k].isa, tr->name);
            free(x); free(a); free(b); free(q);
        }
}

/* A Q8_0 KV cache stays near the reference engine's F32-cache logits. */
#include "eval/logits_file.h"
#include "common.h"
Test(kernels, q8_0_kv_cache_stays_close)
{
    char mp[512], rp[512], err[SD_ERR_LEN];
    sd_logits_file rf;
    cr_assert_eq(sd_logits_file_read(shared_path(rp, sizeof rp, "reference/tiny-f32.ref"), &rf, err), 0, "%s", err);
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(mp, sizeof mp, "models/tiny-f32.gguf"), &m, err), 0, "%s", err);
    sd_session_params p = {256, 2, SD_KV_Q8_0};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &p, &s, err), 0, "%s", err);
    int n = (int)(rf.n_prompt + rf.n_gen), nv = (int)rf.n_vocab;
    float *rows = malloc((size_t)n * nv * sizeof *rows);
    cr_assert_eq(sd_session_eval(s, rf.prompt, 3, rows, err), 0, "%s", err);   /* a batch, then one by one */
    for (int i = 3; i < n; i++)
        cr_assert_eq(sd_session_eval(s, &rf.prompt[i], 1, rows + (size_t)i * nv, err), 0, "%s", err);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double e = sd_rel_l2(rows + (size_t)i * nv, rf.logits + (size_t)i * nv, nv);
        worst = e > worst ? e : worst;
    }
    cr_expect_leq(worst, 2e-2, "q8_0 kv: worst relative L2 %.3e", worst);
    cr_log_info("q8_0 KV cache: worst relative L2 %.2e", worst);
    free(rows);
    sd_session_free(s);
    sd_model_free(m);
    sd_logits_file_free(&rf);
}

/* The vectorized SwiGLU gate against the formula, over the range a gate sees
 * and the extremes where exp over- or underflows. */
Test(kernels, swiglu_matches_formula)
{
    sd_kernel_table tabs[4];
    int nt = isa_tables(tabs);
    enum { N = 1003 };
    float g[N], u[N], out[N];
    for (int i = 0; i < N; i++) { g[i] = 12.0f * frand(); u[i] = frand(); }
    g[0] = -200.0f; g[1] = 200.0f; g[2] = 0.0f; g[3] = -87.5f; g[4] = 88.5f;
    for (int k = 0; k < nt; k++) {
        if (!tabs[k].swiglu) continue;
        memcpy(out, g, sizeof g);
        tabs[k].swiglu(out, u, N);
        for (int i = 0; i < N; i++) {
            float ref = (float)((double)g[i] / (1.0 + exp(-(double)g[i])) * u[i]);
            cr_expect(fabsf(out[i] - ref) <= 2e-6f * fabsf(ref) + 1e-30f, "%s swiglu(%g, %g): %.9g vs %.9g", tabs[k].isa,
                      g[i], u[i], out[i], ref);
        }
    }
}
