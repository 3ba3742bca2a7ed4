/* ISA kernels: chosen once at start-up from cpuid, tested against the generic
 * kernels in the traits table (tensor/types.c). */
#ifndef SD_DISPATCH_H
#define SD_DISPATCH_H

#include "tensor/types.h"

/* A tile of a matrix product: out[t * ldo + r] = dot(weight row r, activation
 * row t) for r < nr, t < nt. Weight rows lie w_stride bytes apart, activation
 * rows (already in vec_dot_type) x_stride bytes apart. Any nr, nt >= 1: the
 * kernel cuts them into its register tiles, so each loaded weight block is
 * reused across several tokens (the prefill path). */
typedef void (*sd_gemm_fn)(int64_t n, const void *w, size_t w_stride, int nr,
                           const void *x, size_t x_stride, int nt, float *out, size_t ldo);

/* A product over weights repacked at load time (kernels/pack.h): the ng
 * groups of SD_PACK_ROWS rows from group gfirst of the packed matrix wp
 * (n_groups groups, n columns), against nt activation rows x (in the
 * weight's vec_dot_type, x_stride bytes apart) whose per-block scales and
 * integer sums were prepared by sd_pack_prep_act (xd, xs: nb = n / 32
 * entries per token). out[t * ldo + r] for r < 16 * ng. nt = 1 is decode. */
typedef void (*sd_packed_fn)(int64_t n, const void *wp, int64_t n_groups, int64_t gfirst, int ng, const void *x,
                             size_t x_stride, const float *xd, const int32_t *xs, int nt, float *out, size_t ldo);

/* Attention over n cached positions of one KV head, whose rows (head_dim d
 * values each, in the cache's format) lie `stride` bytes apart, for nq query
 * heads at once (grouped-query attention):
 *   score: out[g * ldo + p] = scale * dot(q + g * d, K[p]); q is F32, already
 *          rounded to the cache's precision by the caller;
 *   accum: o[g * d + i] += sum over p of w[g * ldw + p] * V[p][i].
 * One call covers a block of positions, so the cost is the bytes, not the
 * calls. Both need d % 8 == 0. */
typedef void (*sd_attn_score_fn)(int d, const void *k, size_t stride, int n, const float *q, int nq, float scale,
                                 float *out, size_t ldo);
typedef void (*sd_attn_accum_fn)(int d, const void *v, size_t stride, int n, const float *w, size_t ldw, int nq,
                                 float *o);
/* *mx = max of x[0..n), then x[i] = exp(x[i] - *mx); returns the sum. n >= 1. */
typedef float (*sd_exp_sum_fn)(float *x, int64_t n, float *mx);
/* The SwiGLU gate: g[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i]. */
typedef void (*sd_swiglu_fn)(float *g, const float *u, int64_t n);

/* What an ISA file may accelerate. NULL entries keep the generic kernel. */
typedef struct {
    const char *isa;                                  /* "avx512", "avx2", "neon", "generic" */
    sd_vec_dot_fn vec_dot[SD_TYPE_COUNT];             /* by weight type */
    sd_from_float_fn quantize_act[SD_TYPE_COUNT];     /* by activation type (Q8_0, Q8_K, F16 ...) */
    sd_gemm_fn gemm[SD_TYPE_COUNT];                   /* by weight type; optional */
    sd_packed_fn packed[SD_TYPE_COUNT];               /* by weight type; set: such weights get repacked */
    sd_to_float_fn to_float[SD_TYPE_COUNT];           /* dequantize (KV cache rows, embeddings) */
    sd_attn_score_fn attn_score[SD_TYPE_COUNT];       /* by KV cache type; optional */
    sd_attn_accum_fn attn_accum[SD_TYPE_COUNT];       /* by KV cache type; optional */
    sd_exp_sum_fn exp_sum;                            /* never NULL */
    sd_swiglu_fn swiglu;                              /* never NULL */
} sd_kernel_table;

/* Each ISA file fills the rows it has; called only when the CPU supports it. */
void sd_kernels_register_avx2(sd_kernel_table *t);
void sd_kernels_register_avx512(sd_kernel_table *t);
void sd_kernels_register_neon(sd_kernel_table *t);

/* The table in use (initialized on first call; SHOWDOWN_ISA=generic|avx2|avx512|neon
 * forces a lower level, for tests and side-by-side benchmarks). */
const sd_kernel_table *sd_kernels(void);
sd_vec_dot_fn sd_kernel_vec_dot(uint32_t type);
sd_from_float_fn sd_kernel_quantize_act(uint32_t type);
sd_gemm_fn sd_kernel_gemm(uint32_t type);
sd_packed_fn sd_kernel_packed(uint32_t type);
sd_to_float_fn sd_kernel_to_float(uint32_t type);
sd_attn_score_fn sd_kernel_attn_score(uint32_t type);   /* NULL: score with vec_dot */
sd_attn_accum_fn sd_kernel_attn_accum(uint32_t type);   /* NULL: widen rows with to_float */
sd_exp_sum_fn sd_kernel_exp_sum(void);
sd_swiglu_fn sd_kernel_swiglu(void);

#endif
