/* Gated DeltaNet steps (kernels/deltanet.h). */
#include <math.h>
#include <stddef.h>

#include "kernels/deltanet.h"

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

void sd_l2norm(float *x, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float s = 1.0f / fmaxf(sqrtf((float)ss), eps);
    for (int i = 0; i < n; i++) x[i] *= s;
}

void sd_deltanet_step(float *S, const float *q, const float *k, const float *v, float decay, float beta, int dk,
                      int dv, float *out)
{
    for (int i = 0; i < dv; i++) {
        float *row = S + (size_t)i * dk;
        float sk = 0.0f;
        for (int j = 0; j < dk; j++) sk += row[j] * k[j];
        float vn = beta * (v[i] - decay * sk), o = 0.0f;
        for (int j = 0; j < dk; j++) {
            float s = decay * row[j] + vn * k[j];
            s = fminf(fmaxf(s, -1e6f), 1e6f);
            row[j] = s;
            o += s * q[j];
        }
        out[i] = o;
    }
}
