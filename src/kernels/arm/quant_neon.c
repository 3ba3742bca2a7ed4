/* Quantized NEON kernels built with the dot-product extension (the Makefile
 * compiles *_neon.c with -march=armv8.2-a+dotprod+fp16). */
#define SD_NEON_DOT 1
#include "kernels/arm/quant_body.h"
#include "kernels/arm/kquant_body.h"

void sd_kernels_register_neon_dot(sd_kernel_table *t)
{
    fill_quant(t);
    fill_kquant(t);
}
