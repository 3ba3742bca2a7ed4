/* AVX-512 kernels (F, BW, VL, DQ, VNNI, BF16): the shared 256-bit bodies with
 * vpdpbusd for the int8 dots, plus BF16 pairs through vdpbf16ps. */
#define SD_VNNI 1
#include "kernels/dispatch.h"
#include "kernels/x86/act_body.h"
#include "kernels/x86/dot_legacy_body.h"
#include "kernels/x86/dot_kquant_body.h"
#include "kernels/x86/dot_float_body.h"
#include "kernels/x86/gemm_body.h"

/* 32 BF16 pairs per instruction, accumulated in F32. */
static float dot_bf16_dp(int64_t n, const void *vw, const void *vx)
{
    const uint16_t *w = vw, *x = vx;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + i), (__m512bh)_mm512_loadu_si512(x + i));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(w + i + 32), (__m512bh)_mm512_loadu_si512(x + i + 32));
    }
    for (; i + 32 <= n; i += 32)
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + i), (__m512bh)_mm512_loadu_si512(x + i));
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; i < n; i++) s += sd_bf16_to_f32(w[i]) * sd_bf16_to_f32(x[i]);
    return s;
}

void sd_kernels_register_avx512(sd_kernel_table *t)
{
    t->isa = "avx512";
    register_act(t);
    register_deq(t);
    register_dot_legacy(t);
    register_dot_kquant(t);
    register_dot_float(t);
    t->vec_dot[SD_TYPE_BF16] = dot_bf16_dp;
    register_gemm(t);
}
