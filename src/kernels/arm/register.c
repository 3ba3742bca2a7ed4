/* NEON entry point: the float kernels always, the quantized ones with or
 * without vdotq_s32 depending on what this CPU reports. */
#include "kernels/arm/neon_kernels.h"

#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)   /* older kernel headers lack the name */
#endif
#endif

int sd_neon_has_dotprod(void)
{
#if defined(__APPLE__)
    return 1;                       /* every Apple Silicon core has it */
#elif defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__ARM_FEATURE_DOTPROD)
    return 1;                       /* no run-time probe here: trust the build */
#else
    return 0;
#endif
}

void sd_kernels_register_neon(sd_kernel_table *t)
{
    t->isa = "neon";
    sd_kernels_register_neon_float(t);
    if (sd_neon_has_dotprod()) sd_kernels_register_neon_dot(t);
    else sd_kernels_register_neon_plain(t);
}
