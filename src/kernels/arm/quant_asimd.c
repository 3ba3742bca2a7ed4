/* Quantized NEON kernels for ARMv8 cores without the dot-product extension
 * (Cortex-A53/A72, Raspberry Pi 4): built at the baseline target so the
 * compiler cannot slip an sdot into them. */
#define SD_NEON_DOT 0
#include "kernels/arm/quant_body.h"
#include "kernels/arm/kquant_body.h"

void sd_kernels_register_neon_plain(sd_kernel_table *t)
{
    fill_quant(t);
    fill_kquant(t);
}
