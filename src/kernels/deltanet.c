/* Gated DeltaNet steps (kernels/deltanet.h). The sums run in LANES
 * independent partial sums folded in a fixed order, so the compiler turns
 * each into vector lanes without reassociating (the result does not depend
 * on the ISA's width), and the clamp is written as comparisons it can turn
 * into vector min/max. */
#include <math.h>
#include <stddef.h>

#include "kernels/deltanet.h"

#define LANES 16

void sd_conv_step(float *state, const float *w, float *x, int n, int d_conv)
{
    int m = d_conv - 1;
    for (int c = 0; c < n; c++) {
        float *s = state + (size_t)c * m, in = x[c];
        const float *wc = w + (size_t)c * d_conv;
        float acc = 0.0f;
        for (int j = 0; j < m; j++) acc += s[j] * wc[j];
        acc += in * wc[m];
        for (int j = 0; j + 1 < m; j++) s[j] = s[j + 1];
        if (m > 0) s[m - 1] = in;
        x[c] = acc;
    }
}

static float fold(const float *acc)
{
    float s = 0.0f;
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

static float dot(const float *a, const float *b, int n)
{
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += a[j + l] * b[j + l];
    float s = fold(acc);
    for (; j < n; j++) s += a[j] * b[j];
    return s;
}

void sd_l2norm(float *x, int n, float eps)
{
    float s = 1.0f / fmaxf(sqrtf(dot(x, x, n)), eps);
    for (int i = 0; i < n; i++) x[i] *= s;
}

static inline float clamp_state(float s) { return s < -1e6f ? -1e6f : s > 1e6f ? 1e6f : s; }

void sd_deltanet_step(float *S, const float *q, const float *k, const float *v, float decay, float beta, int dk,
                      int dv, float *out)
{
    for (int i = 0; i < dv; i++) {
        float *row = S + (size_t)i * dk;
        float vn = beta * (v[i] - decay * dot(row, k, dk));
        float acc[LANES] = {0};
        int j = 0;
        for (; j + LANES <= dk; j += LANES)
            for (int l = 0; l < LANES; l++) {
                float s = clamp_state(decay * row[j + l] + vn * k[j + l]);
                row[j + l] = s;
                acc[l] += s * q[j + l];
            }
        float o = fold(acc);
        for (; j < dk; j++) {
            float s = clamp_state(decay * row[j] + vn * k[j]);
            row[j] = s;
            o += s * q[j];
        }
        out[i] = o;
    }
}
