/* AVX-512 kernels (F, BW, VL, DQ, VNNI): the shared 256-bit bodies with
 * vpdpbusd for the int8 dots, plus BF16 pairs through vdpbf16ps where the
 * CPU has AVX512-BF16 (Cooper Lake, Sapphire Rapids on; Ice Lake has not). */
#define SD_VNNI 1
#include "kernels/dispatch.h"
#include "kernels/x86/act_body.h"
#include "kernels/x86/dot_legacy_body.h"
#include "kernels/x86/dot_kquant_body.h"
#include "kernels/x86/dot_float_body.h"
#include "kernels/x86/gemm_body.h"
#include "kernels/x86/gemm_float_body.h"
#include "kernels/x86/attn_body.h"
#include "kernels/x86/packed_zmm.h"

/* 32 BF16 pairs per instruction, accumulated in F32. */
__attribute__((target("avx512bf16"))) static float dot_bf16_dp(int64_t n, const void *vw, const void *vx)
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

/* Q4_0 with two blocks per zmm: unsigned nibbles against the activations,
 * minus 8 * their sum (a second vpdpbusd), no sign juggling. */
static float dot_q4_0_zmm(int64_t n, const void *vw, const void *vx)
{
    const blk_q4_0 *w = vw;
    const blk_q8_0 *x = vx;
    const __m512i m4 = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t nb = n / QK32, i = 0;
    for (; i + 4 <= nb; i += 4) {
        for (int h = 0; h < 2; h++) {
            const blk_q4_0 *a = &w[i + 2 * h];
            const blk_q8_0 *b = &x[i + 2 * h];
            __m256i q2 = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)a[1].qs), _mm_loadu_si128((const __m128i *)a[0].qs));
            __m512i qq = _mm512_inserti64x4(_mm512_castsi256_si512(q2), _mm256_srli_epi16(q2, 4), 1);
            qq = _mm512_and_si512(_mm512_shuffle_i64x2(qq, qq, _MM_SHUFFLE(3, 1, 2, 0)), m4);   /* lo0 hi0 lo1 hi1 */
            __m512i xx = _mm512_inserti64x4(_mm512_castsi256_si512(load256(b[0].qs)), load256(b[1].qs), 1);
            __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qq, xx),
                                         _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, xx));
            __m512 sc = _mm512_insertf32x8(_mm512_set1_ps(f16(a[0].d) * f16(b[0].d)),
                                           _mm256_set1_ps(f16(a[1].d) * f16(b[1].d)), 1);
            if (h == 0) acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc0);
            else acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc1);
        }
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    if (i < nb) s += dot_q4_0(n - i * QK32, w + i, x + i);
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
    if (__builtin_cpu_supports("avx512bf16")) t->vec_dot[SD_TYPE_BF16] = dot_bf16_dp;
    t->vec_dot[SD_TYPE_Q4_0] = dot_q4_0_zmm;
    register_gemm(t);
    register_gemm_float(t);
    register_attn(t);
    register_packed(t);
}
