/* kernels/deltanet.c against float64 loops of the definitions, on sizes
 * with and without a tail past the 16-lane sums, over several steps (the
 * state carries from one to the next), and the state clamp. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "kernels/deltanet.h"

static float rnd(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void check_delta(int dk, int dv)
{
    unsigned seed = 7u + (unsigned)dk;
    float *S = calloc((size_t)dk * dv, sizeof *S), *q = malloc(dk * sizeof *q), *k = malloc(dk * sizeof *k);
    float *v = malloc(dv * sizeof *v), *o = malloc(dv * sizeof *o);
    double *R = calloc((size_t)dk * dv, sizeof *R), worst = 0;
    for (int step = 0; step < 5; step++) {
        for (int j = 0; j < dk; j++) { q[j] = rnd(&seed); k[j] = rnd(&seed); }
        for (int i = 0; i < dv; i++) v[i] = rnd(&seed);
        float decay = 0.5f + 0.1f * (float)step, beta = 0.3f + 0.1f * (float)step;
        sd_deltanet_step(S, q, k, v, decay, beta, dk, dv, o);
        for (int i = 0; i < dv; i++) {
            double *row = R + (size_t)i * dk, sk = 0, oi = 0, on = 0;
            for (int j = 0; j < dk; j++) sk += row[j] * k[j];
            double vn = beta * (v[i] - decay * sk);
            for (int j = 0; j < dk; j++) {
                row[j] = decay * row[j] + vn * k[j];
                oi += row[j] * q[j];
                on += fabs(row[j] * q[j]);
            }
            worst = fmax(worst, fabs(o[i] - oi) / (on + 1e-30));
        }
    }
    cr_expect_leq(worst, 1e-5, "dk %d dv %d: worst error %.3e of the sum of magnitudes", dk, dv, worst);
    free(S); free(q); free(k); free(v); free(o); free(R);
}

Test(deltanet, delta_rule_against_float64)
{
    check_delta(32, 32);
    check_delta(20, 7);    /* a tail past the 16-lane sums */
    check_delta(3, 5);     /* only the tail */
    check_delta(128, 128);
}

Test(deltanet, state_clamped)
{
    float S[4] = {2e6f, -2e6f, 0, 0}, q[2] = {1, 0}, k[2] = {0, 0}, v[2] = {0, 0}, o[2];
    sd_deltanet_step(S, q, k, v, 1.0f, 1.0f, 2, 2, o);
    cr_expect_eq(S[0], 1e6f);
    cr_expect_eq(S[1], -1e6f);
    cr_expect_eq(o[0], 1e6f);
}

Test(deltanet, conv_step_is_causal)
{
    /* two channels, 3 taps: out_t = w0 x_{t-2} + w1 x_{t-1} + w2 x_t */
    float st[4] = {0}, w[6] = {1, 10, 100, 2, 20, 200};
    float xs[3][2] = {{1, 1}, {2, 3}, {4, 5}}, want[3][2] = {{100, 200}, {210, 620}, {421, 1062}};
    for (int t = 0; t < 3; t++) {
        float x[2] = {xs[t][0], xs[t][1]};
        sd_conv_step(st, w, x, 2, 3);
        cr_expect_eq(x[0], want[t][0], "t %d ch 0: %g", t, x[0]);
        cr_expect_eq(x[1], want[t][1], "t %d ch 1: %g", t, x[1]);
    }
}

Test(deltanet, l2norm)
{
    float x[19];
    for (int i = 0; i < 19; i++) x[i] = (float)(i + 1);
    sd_l2norm(x, 19, 1e-6f);
    double ss = 0;
    for (int i = 0; i < 19; i++) ss += (double)x[i] * x[i];
    cr_expect_float_eq(ss, 1.0, 1e-6);
    float z[3] = {0, 0, 0};
    sd_l2norm(z, 3, 1e-6f);   /* x / max(|x|, eps): zero stays zero */
    cr_expect_eq(z[0], 0.0f);
}
