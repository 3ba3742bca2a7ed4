/* Tile kernels for batched prefill with F16 and BF16 weights. */
#include "kernels/x86/simd.h"

static void register_gemm_float(sd_kernel_table *t)
{
    (void)t;
}
