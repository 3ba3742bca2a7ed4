/* AVX2 + FMA + F16C kernels: the shared 256-bit bodies with u8 x s8 dots
 * done by maddubs/madd (no VNNI). */
#define SD_VNNI 0
#include "kernels/dispatch.h"
#include "kernels/x86/act_body.h"
#include "kernels/x86/dot_legacy_body.h"
#include "kernels/x86/dot_kquant_body.h"
#include "kernels/x86/dot_float_body.h"
#include "kernels/x86/gemm_body.h"
#include "kernels/x86/gemm_float_body.h"
#include "kernels/x86/attn_body.h"

void sd_kernels_register_avx2(sd_kernel_table *t)
{
    register_act(t);
    register_deq(t);
    register_dot_legacy(t);
    register_dot_kquant(t);
    register_dot_float(t);
    register_gemm(t);
    register_gemm_float(t);
    register_attn(t);
}
