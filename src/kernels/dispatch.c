/* Picks the kernels for this CPU once, at start-up: the generic rows of the
 * traits table, overlaid by each ISA level the CPU has, lowest first, so a
 * level fills only what it does better. SHOWDOWN_ISA caps the level. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "kernels/dispatch.h"

static sd_kernel_table table;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Levels in order; an ISA is used when the CPU has it and the cap allows it. */
enum { LV_GENERIC, LV_AVX2, LV_AVX512, LV_NEON };

static int cap_level(void)
{
    const char *e = getenv("SHOWDOWN_ISA");
    if (!e || !*e) return 99;
    if (!strcmp(e, "generic")) return LV_GENERIC;
    if (!strcmp(e, "avx2")) return LV_AVX2;
    if (!strcmp(e, "avx512")) return LV_AVX512;
    if (!strcmp(e, "neon")) return LV_NEON;
    return 99;   /* unknown names change nothing rather than fail */
}

/* The portable exp-and-sum of a softmax. */
static float exp_sum_generic(float *x, int64_t n, float *mx)
{
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) { x[i] = expf(x[i] - m); sum += x[i]; }
    *mx = m;
    return (float)sum;
}

static void swiglu_generic(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void init(void)
{
    int cap = cap_level();
    table.isa = "generic";
    table.exp_sum = exp_sum_generic;
    table.swiglu = swiglu_generic;
    for (int t = 0; t < SD_TYPE_COUNT; t++) {
        const sd_type_traits *tr = sd_type_get((uint32_t)t);
        if (!tr) continue;
        table.vec_dot[t] = tr->vec_dot;
        table.quantize_act[t] = tr->from_float;
        table.to_float[t] = tr->to_float;
    }
    table.quantize_act[SD_TYPE_Q8_0] = sd_q8_0_quantize_act;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");  /* F16C comes with every AVX2 CPU; clang 14 cannot ask for it */
    if (cap >= LV_AVX2 && avx2) { sd_kernels_register_avx2(&table); table.isa = "avx2"; }
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512vnni");   /* BF16 only for its own dot (Ice Lake has none) */
    if (cap >= LV_AVX512 && avx512) { sd_kernels_register_avx512(&table); table.isa = "avx512"; }
#elif defined(__aarch64__)
    if (cap >= LV_NEON) { sd_kernels_register_neon(&table); table.isa = "neon"; }
#else
    (void)cap;
#endif
}

const sd_kernel_table *sd_kernels(void)
{
    pthread_once(&once, init);
    return &table;
}

sd_vec_dot_fn sd_kernel_vec_dot(uint32_t type)
{
    return type < SD_TYPE_COUNT ? sd_kernels()->vec_dot[type] : NULL;
}

sd_from_float_fn sd_kernel_quantize_act(uint32_t type)
{
    return type < SD_TYPE_COUNT ? sd_kernels()->quantize_act[type] : NULL;
}

sd_gemm_fn sd_kernel_gemm(uint32_t type)
{
    return type < SD_TYPE_COUNT ? sd_kernels()->gemm[type] : NULL;
}

sd_packed_fn sd_kernel_packed(uint32_t type)
{
    return type < SD_TYPE_COUNT ? sd_kernels()->packed[type] : NULL;
}

sd_to_float_fn sd_kernel_to_float(uint32_t type)
{
    return type < SD_TYPE_COUNT ? sd_kernels()->to_float[type] : NULL;
}

sd_attn_score_fn sd_kernel_attn_score(uint32_t type)
{
    return type < SD_TYPE_COUNT ? sd_kernels()->attn_score[type] : NULL;
}

sd_attn_accum_fn sd_kernel_attn_accum(uint32_t type)
{
    return type < SD_TYPE_COUNT ? sd_kernels()->attn_accum[type] : NULL;
}

sd_exp_sum_fn sd_kernel_exp_sum(void) { return sd_kernels()->exp_sum; }
sd_swiglu_fn sd_kernel_swiglu(void) { return sd_kernels()->swiglu; }

const char *sd_kernel_isa(void) { return sd_kernels()->isa; }
