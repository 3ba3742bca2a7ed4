/* Gated GELU (tanh form) through a table of every F16 input; see geglu.h. */
#include <math.h>
#include <pthread.h>

#include "kernels/geglu.h"
#include "tensor/types.h"

static uint16_t table[1 << 16];   /* F16 bits of x -> F16 bits of GELU(x) */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static float gelu(float x)
{
    const float k = 0.79788456080286535588f, a = 0.044715f;   /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * x * (1.0f + a * x * x)));
}

static void build(void)
{
    for (uint32_t h = 0; h < (1u << 16); h++) table[h] = sd_f32_to_f16(gelu(sd_f16_to_f32((uint16_t)h)));
}

const uint16_t *sd_geglu_table(void)
{
    pthread_once(&once, build);
    return table;
}

void sd_geglu(float *g, const float *u, int64_t n)
{
    pthread_once(&once, build);
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        /* beyond +-10 GELU is 0 or x to float precision (and F16 would saturate) */
        float y = x <= -10.0f ? 0.0f : x >= 10.0f ? x : sd_f16_to_f32(table[sd_f32_to_f16(x)]);
        g[i] = y * u[i];
    }
}
