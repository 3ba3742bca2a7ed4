/* Gated GELU (tanh form); see geglu.h. */
#include <math.h>

#include "kernels/geglu.h"

void sd_geglu(float *g, const float *u, int64_t n)
{
    const float k = 0.79788456080286535588f, a = 0.044715f;   /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(k * x * (1.0f + a * x * x))) * u[i];
    }
}
