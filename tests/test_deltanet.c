/* kernels/deltanet.c against float64 loops of the definitions, on sizes
 * with and without a tail past the 16-lane sums, over several steps (the
 * state carries from one to the next), and the state clamp; the chunked
 * run against the token-by-token one on several heads laid out as the
 * model lays them out, over lengths crossing chunk boundaries. */
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

/* Several heads of random tokens laid out as qwen3next's batch is (q | k | v
 * of every head per token, beta | decay per token), through sd_deltanet_run
 * chunked and token by token from the same random state; returns the worst
 * difference of outputs and final states relative to their largest value,
 * and whether all of them are identical. */
typedef struct {
    int dk, dv, heads, n, chunk;
    float vscale, dmin, dmax;   /* v's magnitude, the range of decays */
} run_case;

static double run_both(run_case rc, int *identical)
{
    unsigned seed = 11u + (unsigned)(rc.n * 7 + rc.dk + rc.chunk);
    int H = rc.heads, dk = rc.dk, dv = rc.dv, n = rc.n;
    size_t ld = (size_t)H * (2 * dk + dv), lg = 2 * (size_t)H, mat = (size_t)dk * dv, ldo = (size_t)H * dv;
    float *x = malloc((size_t)n * ld * sizeof *x), *g = malloc((size_t)n * lg * sizeof *g);
    float *S[2], *o[2], *work = malloc(sd_deltanet_work_floats(dk, dv) * sizeof *work);
    for (int w = 0; w < 2; w++) {
        S[w] = malloc((size_t)H * mat * sizeof *S[w]);
        o[w] = malloc((size_t)n * ldo * sizeof *o[w]);
    }
    for (size_t i = 0; i < (size_t)H * mat; i++) S[0][i] = S[1][i] = 0.05f * rnd(&seed);
    for (int t = 0; t < n; t++) {
        float *xt = x + (size_t)t * ld;
        for (size_t i = 0; i < ld; i++) xt[i] = rnd(&seed) * (i >= (size_t)2 * H * dk ? rc.vscale : 1.0f);
        for (int h = 0; h < H; h++) {
            sd_l2norm(xt + (size_t)h * dk, dk, 1e-6f);
            for (int j = 0; j < dk; j++) xt[(size_t)h * dk + j] /= sqrtf((float)dk);
            sd_l2norm(xt + (size_t)(H + h) * dk, dk, 1e-6f);
            g[(size_t)t * lg + h] = 0.5f + 0.5f * rnd(&seed);                                     /* beta */
            g[(size_t)t * lg + H + h] = rc.dmin + (rc.dmax - rc.dmin) * (0.5f + 0.5f * rnd(&seed)); /* decay */
        }
    }
    for (int w = 0; w < 2; w++)
        for (int h = 0; h < H; h++)
            sd_deltanet_run(S[w] + h * mat, x + (size_t)h * dk, x + (size_t)(H + h) * dk, ld,
                            x + (size_t)2 * H * dk + (size_t)h * dv, ld, g + h, g + H + h, lg, n, dk, dv, o[w] + h * dv,
                            ldo, w ? rc.chunk : 1, work);
    double worst = 0, big_o = 1e-30, big_s = 1e-30, dif_o = 0, dif_s = 0;
    *identical = 1;
    for (size_t i = 0; i < (size_t)n * ldo; i++) {
        big_o = fmax(big_o, fabs(o[0][i]));
        dif_o = fmax(dif_o, fabs(o[0][i] - o[1][i]));
        *identical &= o[0][i] == o[1][i];
    }
    for (size_t i = 0; i < (size_t)H * mat; i++) {
        big_s = fmax(big_s, fabs(S[0][i]));
        dif_s = fmax(dif_s, fabs(S[0][i] - S[1][i]));
        *identical &= S[0][i] == S[1][i];
    }
    worst = fmax(dif_o / big_o, dif_s / big_s);
    for (int w = 0; w < 2; w++) { free(S[w]); free(o[w]); }
    free(x); free(g); free(work);
    return worst;
}

Test(deltanet, chunked_matches_token_by_token)
{
    static const int lens[] = {1, 2, 7, 15, 16, 17, 63, 64, 65, 127, 129, 200};
    static const int chunks[] = {64, 16, 5};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++)
        for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
            int same;
            run_case rc = {32, 32, 3, lens[i], chunks[c], 1.0f, 0.3f, 1.0f};
            double e = run_both(rc, &same);
            cr_expect_leq(e, 2e-5, "n %d chunk %d: worst difference %.3e of the largest value", lens[i], chunks[c], e);
        }
    int same;
    run_case wide = {128, 128, 2, 150, 64, 1.0f, 0.9f, 1.0f};   /* the real model's head size */
    double e = run_both(wide, &same);
    cr_expect_leq(e, 2e-5, "128 x 128: worst difference %.3e", e);
    run_case odd = {20, 7, 3, 70, 64, 1.0f, 0.5f, 1.0f};        /* register-block tails */
    e = run_both(odd, &same);
    cr_expect_leq(e, 2e-5, "20 x 7: worst difference %.3e", e);
    run_case fast = {64, 64, 2, 100, 64, 1.0f, 1e-4f, 1e-2f};   /* decays near zero: no overflow of e^-l */
    e = run_both(fast, &same);
    cr_expect_leq(e, 2e-5, "small decays: worst difference %.3e", e);
}

Test(deltanet, chunked_keeps_the_clamp)
{
    /* values that drive the state past 1e6, and decays above 1: the
     * chunks fall back to the steps, so the clamp acts token by token */
    int same;
    run_case big = {32, 32, 2, 100, 64, 3e5f, 0.9f, 1.0f};
    run_both(big, &same);
    cr_expect(same, "with the clamp acting, chunked and token-by-token runs differ");
    run_case grow = {32, 32, 2, 100, 16, 1.0f, 1.0f, 1.5f};
    run_both(grow, &same);
    cr_expect(same, "with decays above 1, chunked and token-by-token runs differ");
}
