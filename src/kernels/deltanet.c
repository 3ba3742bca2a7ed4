/* Gated DeltaNet (kernels/deltanet.h). Every product runs along contiguous
 * rows (the state's dv-long columns, the chunk's rows) with a scalar
 * broadcast, which the compiler turns into vector multiply-adds without
 * reassociating: no horizontal sums. Fused multiply-adds where the ISA has
 * them (ISO C mode does not contract a * b + c by itself), so the last bit
 * depends on the ISA.
 *
 * The chunked form, per chunk of c tokens with cumulative log decays
 * l_t = sum_{s<=t} log decay_s and starting state S0 (dk x dv, transposed):
 *   W = K S0, P = Q S0                    (c x dv)
 *   u_t = beta_t (v_t - e^{l_t} W_t - sum_{s<t} e^{l_t-l_s} (k_t.k_s) u_s)
 *   o_t = e^{l_t} P_t + sum_{s<=t} e^{l_t-l_s} (q_t.k_s) u_s
 *   S   = e^{l_c} S0 + sum_s e^{l_c-l_s} k_s u_s^T
 * which unrolls S_t = decay_t S_{t-1} + u_t k_t^T (u_t the step's
 * beta (v - decay S k)); the clamp is the only thing it cannot express. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

#define LANES 16

static float sumsq(const float *x, int n)
{
    float acc[LANES] = {0}, s = 0.0f;
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[j + l] * x[j + l];
    for (int l = 0; l < LANES; l++) s += acc[l];
    for (; j < n; j++) s += x[j] * x[j];
    return s;
}

void sd_l2norm(float *x, int n, float eps)
{
    float s = 1.0f / fmaxf(sqrtf(sumsq(x, n)), eps);
    for (int i = 0; i < n; i++) x[i] *= s;
}

#ifdef __FMA__
#define MADD(a, b, c) fmaf(a, b, c)
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

static inline float clamp_state(float s) { return s < -1e6f ? -1e6f : s > 1e6f ? 1e6f : s; }

/* ---- token by token ------------------------------------------------------ */

#define IB 64   /* state rows (value components) one pass keeps in registers */

/* Value components [i0, i0 + w) of one step: sk = S k, then the update and
 * out = S q over the columns. Inlined with w = IB for whole blocks. */
static inline __attribute__((always_inline)) void step_block(float *S, const float *q, const float *k,
                                                             const float *v, float decay, float beta, int dk,
                                                             int dv, float *out, int i0, int w)
{
    float sk[IB] = {0}, o[IB] = {0};
    for (int j = 0; j < dk; j++) {
        const float *col = S + (size_t)j * dv + i0;
        for (int i = 0; i < w; i++) sk[i] = MADD(col[i], k[j], sk[i]);
    }
    for (int i = 0; i < w; i++) sk[i] = beta * (v[i0 + i] - decay * sk[i]);
    for (int j = 0; j < dk; j++) {
        float *col = S + (size_t)j * dv + i0;
        for (int i = 0; i < w; i++) {
            float s = clamp_state(MADD(sk[i], k[j], decay * col[i]));
            col[i] = s;
            o[i] = MADD(s, q[j], o[i]);
        }
    }
    memcpy(out + i0, o, (size_t)w * sizeof(float));
}

void sd_deltanet_step(float *S, const float *q, const float *k, const float *v, float decay, float beta, int dk,
                      int dv, float *out)
{
    int i0 = 0;
    for (; i0 + IB <= dv; i0 += IB) step_block(S, q, k, v, decay, beta, dk, dv, out, i0, IB);
    if (i0 < dv) step_block(S, q, k, v, decay, beta, dk, dv, out, i0, dv - i0);
}

/* ---- chunks -------------------------------------------------------------- */

#define MB 4    /* rows and columns of one register block of gemm */
#define NB 32

/* C (M x N, row stride ldc) = (acc ? C : 0) + A (M x K) B (K x N), row-major. */
static inline __attribute__((always_inline)) void gemm_block(int rows, int nw, int K, const float *A, size_t lda,
                                                             const float *B, size_t ldb, float *C, size_t ldc,
                                                             int acc)
{
    float c[MB][NB];
    for (int r = 0; r < rows; r++)
        for (int x = 0; x < nw; x++) c[r][x] = acc ? C[(size_t)r * ldc + x] : 0.0f;
    for (int kk = 0; kk < K; kk++) {
        const float *b = B + (size_t)kk * ldb;
        for (int r = 0; r < rows; r++) {
            float a = A[(size_t)r * lda + kk];
            for (int x = 0; x < nw; x++) c[r][x] = MADD(a, b[x], c[r][x]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int x = 0; x < nw; x++) C[(size_t)r * ldc + x] = c[r][x];
}

static void gemm(int M, int N, int K, const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc,
                 int acc)
{
    for (int n0 = 0; n0 < N; n0 += NB) {
        int nw = N - n0 < NB ? N - n0 : NB, m0 = 0;
        for (; m0 + MB <= M; m0 += MB) {
            const float *a = A + (size_t)m0 * lda;
            float *c = C + (size_t)m0 * ldc + n0;
            if (nw == NB) gemm_block(MB, NB, K, a, lda, B + n0, ldb, c, ldc, acc);
            else gemm_block(MB, nw, K, a, lda, B + n0, ldb, c, ldc, acc);
        }
        for (; m0 < M; m0++) gemm_block(1, nw, K, A + (size_t)m0 * lda, lda, B + n0, ldb, C + (size_t)m0 * ldc + n0, ldc, acc);
    }
}

size_t sd_deltanet_work_floats(int dk, int dv)
{
    size_t c = SD_DELTANET_CHUNK_MAX;
    /* KQ (2c x dk), KT (dk x c), A (2c x c), WP (2c x dv), U (c x dv), l (c doubles) */
    return 2 * c * (size_t)dk + (size_t)dk * c + 2 * c * c + 2 * c * (size_t)dv + c * (size_t)dv + 2 * c + 2;
}

/* Can the clamp act within these c tokens? With decay and beta in [0, 1]
 * and |k| <= 1, each step's map S -> decay S (I - beta k k^T) does not grow
 * the Frobenius norm, so every entry stays below |S0| + sum beta |v|. */
static int clamp_free(const float *S, const float *k, size_t ld_qk, const float *v, size_t ld_v, const float *beta,
                      const float *decay, size_t ld_g, int c, int dk, int dv)
{
    double bound = sqrt((double)sumsq(S, dk * dv));
    for (int t = 0; t < c; t++) {
        float g = decay[t * ld_g], b = beta[t * ld_g];
        if (!(g > 0.0f && g <= 1.0f && b >= 0.0f && b <= 1.0f)) return 0;
        if (!(sumsq(k + t * ld_qk, dk) <= 1.0001f)) return 0;
        bound += b * sqrt((double)sumsq(v + t * ld_v, dv));
    }
    return bound < 5e5;   /* half the clamp: room for rounding */
}

static void run_chunk(float *S, const float *q, const float *k, size_t ld_qk, const float *v, size_t ld_v,
                      const float *beta, const float *decay, size_t ld_g, int c, int dk, int dv, float *out,
                      size_t ld_o, float *work)
{
    size_t C = SD_DELTANET_CHUNK_MAX;
    float *KQ = work, *KT = KQ + 2 * C * dk, *A = KT + (size_t)dk * C, *WP = A + 2 * C * C, *U = WP + 2 * C * dv;
    double *l = (double *)(((uintptr_t)(U + C * dv) + 7) & ~(uintptr_t)7);
    double acc = 0.0;
    for (int t = 0; t < c; t++) {
        acc += log((double)decay[t * ld_g]);
        l[t] = acc;
        memcpy(KQ + (size_t)t * dk, k + t * ld_qk, (size_t)dk * sizeof(float));
        memcpy(KQ + (size_t)(c + t) * dk, q + t * ld_qk, (size_t)dk * sizeof(float));
        for (int j = 0; j < dk; j++) KT[(size_t)j * c + t] = k[t * ld_qk + j];
    }
    gemm(2 * c, dv, dk, KQ, dk, S, dv, WP, dv, 0);   /* W = K S0, P = Q S0 */
    gemm(2 * c, c, dk, KQ, dk, KT, c, A, c, 0);      /* k_t.k_s, then q_t.k_s */
    /* u_t, row after row (each needs the earlier ones) */
    for (int t = 0; t < c; t++) {
        float *u = U + (size_t)t * dv, *akk = A + (size_t)t * c, b = beta[t * ld_g], et = (float)exp(l[t]);
        const float *vt = v + t * ld_v, *w = WP + (size_t)t * dv;
        for (int i = 0; i < dv; i++) u[i] = b * (vt[i] - et * w[i]);
        for (int s = 0; s < t; s++) akk[s] = b * (float)exp(l[t] - l[s]) * akk[s];
        for (int s = 0; s < t; s++) {
            const float *us = U + (size_t)s * dv;
            float a = akk[s];
            for (int i = 0; i < dv; i++) u[i] = MADD(-a, us[i], u[i]);
        }
    }
    /* o_t = e^{l_t} P_t + (decayed, causal q.k) U */
    for (int t = 0; t < c; t++) {
        float *aqk = A + (size_t)(c + t) * c, *o = out + t * ld_o, et = (float)exp(l[t]);
        const float *p = WP + (size_t)(c + t) * dv;
        for (int s = 0; s < c; s++) aqk[s] = s <= t ? (float)exp(l[t] - l[s]) * aqk[s] : 0.0f;
        for (int i = 0; i < dv; i++) o[i] = et * p[i];
    }
    gemm(c, dv, c, A + (size_t)c * c, c, U, dv, out, ld_o, 1);
    /* S = e^{l_c} S0 + (e^{l_c - l_s} k_s) U */
    float ec = (float)exp(l[c - 1]);
    for (size_t i = 0; i < (size_t)dk * dv; i++) S[i] *= ec;
    for (int s = 0; s < c; s++) {
        float f = (float)exp(l[c - 1] - l[s]);
        for (int j = 0; j < dk; j++) KT[(size_t)j * c + s] *= f;
    }
    gemm(dk, dv, c, KT, c, U, dv, S, dv, 1);
}

void sd_deltanet_run(float *S, const float *q, const float *k, size_t ld_qk, const float *v, size_t ld_v,
                     const float *beta, const float *decay, size_t ld_g, int n, int dk, int dv, float *out, size_t ld_o,
                     int chunk, float *work)
{
    if (chunk > SD_DELTANET_CHUNK_MAX) chunk = SD_DELTANET_CHUNK_MAX;
    for (int t0 = 0; t0 < n;) {
        int c = chunk > 1 ? (n - t0 < chunk ? n - t0 : chunk) : 1;
        const float *qt = q + t0 * ld_qk, *kt = k + t0 * ld_qk, *vt = v + t0 * ld_v;
        const float *bt = beta + t0 * ld_g, *gt = decay + t0 * ld_g;
        if (c > 1 && clamp_free(S, kt, ld_qk, vt, ld_v, bt, gt, ld_g, c, dk, dv))
            run_chunk(S, qt, kt, ld_qk, vt, ld_v, bt, gt, ld_g, c, dk, dv, out + t0 * ld_o, ld_o, work);
        else
            for (int t = 0; t < c; t++)
                sd_deltanet_step(S, qt + t * ld_qk, kt + t * ld_qk, vt + t * ld_v, gt[t * ld_g], bt[t * ld_g], dk, dv,
                                 out + (t0 + t) * ld_o);
        t0 += c;
    }
}
