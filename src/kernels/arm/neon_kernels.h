/* Internal to src/kernels/arm: the two builds of the NEON kernels. The
 * quantized kernels are compiled twice from the same bodies (quant_body.h,
 * kquant_body.h): once with the dot-product extension (quant_neon.c) and once
 * for plain ARMv8 NEON (quant_asimd.c); register.c picks one at start-up. */
#ifndef SD_KERNELS_ARM_NEON_H
#define SD_KERNELS_ARM_NEON_H

#include "kernels/dispatch.h"

void sd_kernels_register_neon_dot(sd_kernel_table *t);    /* needs FEAT_DotProd */
void sd_kernels_register_neon_plain(sd_kernel_table *t);  /* any ARMv8 CPU */
void sd_kernels_register_neon_float(sd_kernel_table *t);  /* F32, F16, BF16 */
int sd_neon_has_dotprod(void);

#endif
