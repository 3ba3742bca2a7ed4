/* Gated GELU for Gemma's FFN. */
#ifndef SD_KERNELS_GEGLU_H
#define SD_KERNELS_GEGLU_H

#include <stdint.h>

/* g[i] = GELU(g[i]) * u[i], GELU in its tanh form
 *   0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2)))
 * as the reference engine computes it (its CPU path looks the value up in a
 * table of F16 inputs and outputs; this computes it in float). */
void sd_geglu(float *g, const float *u, int64_t n);

#endif
