/* Tile kernels for batched prefill (filled in below). */
#include "kernels/x86/simd.h"

static void register_gemm(sd_kernel_table *t) { (void)t; }
