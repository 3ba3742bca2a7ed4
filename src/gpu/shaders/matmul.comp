#version 450
// y[t][r] (+)= scale * dot(row r of W, x[t]) for a batch of tokens (prefill):
// the same product as matvec.comp, tiled. A workgroup computes 32 rows x 32
// tokens; per step of 32 columns it decodes the weight tile into shared
// memory once (wv of dequant.glsl, one format per compiled kernel) and
// stages the activation tile beside it, and each thread then accumulates a
// 4 x 4 block of outputs from shared memory. A weight value is thus decoded
// once per 32 tokens, not once per 8 as in matvec.
// Q4_1/Q5_1: a 32-column step is one block, so its offset term is added per
// step as m (Ms) times the activation block's F16 sum (Ss, left by
// quant_act.comp at X[s_off + t*blocks + block]), as the CPU forms it.
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_control_flow_attributes : enable
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Wb { uint W[]; };
layout(std430, binding = 1) readonly buffer Xb { float X[]; };
layout(std430, binding = 2) buffer Yb { float Y[]; };
layout(push_constant) uniform P {
    uint rows, cols, n_tok, row_bytes;
    uint x_off, x_stride, y_off, y_stride;
    float scale; uint add; uint s_off;
} p;

#if defined(FMT_Q4_1) || defined(FMT_Q5_1)
#define SPLIT_MIN
#endif
#include "dequant.glsl"

#define BM 32u
#define BN 32u
#define BK 32u
// One column of padding: the loads write down a column (k varies fastest
// across threads), so a 33-word row stride keeps them in distinct banks.
shared float Ws[BK][BM + 1u];
shared float Xs[BK][BN + 1u];
#ifdef SPLIT_MIN
shared float Ms[BM], Ss[BN];
#ifdef FMT_Q4_1
#define BLOCK_BYTES 20u
#else
#define BLOCK_BYTES 24u
#endif
#endif

void main()
{
    uint tid = gl_LocalInvocationID.x, r0 = gl_WorkGroupID.x * BM, t0 = gl_WorkGroupID.y * BN;
    // Thread (tr, tc) owns rows r0 + tr + 8i and tokens t0 + tc + 8j, i, j < 4:
    // neighbouring threads read neighbouring shared words.
    uint tr = tid % 8u, tc = tid / 8u;
    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; i++) [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;
    for (uint k0 = 0u; k0 < p.cols; k0 += BK) {
        for (uint e = tid; e < BM * BK; e += 64u) {
            uint r = e / BK, k = e % BK, row = r0 + r, col = k0 + k;
            Ws[k][r] = row < p.rows && col < p.cols ? wv(row * p.row_bytes, col) : 0.0;
        }
        for (uint e = tid; e < BN * BK; e += 64u) {
            uint t = e / BK, k = e % BK, tok = t0 + t, col = k0 + k;
            Xs[k][t] = tok < p.n_tok && col < p.cols ? X[p.x_off + tok * p.x_stride + col] : 0.0;
        }
#ifdef SPLIT_MIN
        if (tid < BM) Ms[tid] = r0 + tid < p.rows ? h16((r0 + tid) * p.row_bytes + (k0 / 32u) * BLOCK_BYTES + 2u) : 0.0;
        else if (tid < BM + BN)
            Ss[tid - BM] = t0 + tid - BM < p.n_tok ? X[p.s_off + (t0 + tid - BM) * (p.cols / 32u) + k0 / 32u] : 0.0;
#endif
        barrier();
        [[unroll]] for (uint k = 0u; k < BK; k++) {
            float w[4], x[4];
            [[unroll]] for (uint i = 0u; i < 4u; i++) w[i] = Ws[k][tr + 8u * i];
            [[unroll]] for (uint j = 0u; j < 4u; j++) x[j] = Xs[k][tc + 8u * j];
            [[unroll]] for (uint i = 0u; i < 4u; i++) [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] += w[i] * x[j];
        }
#ifdef SPLIT_MIN
        [[unroll]] for (uint i = 0u; i < 4u; i++) [[unroll]] for (uint j = 0u; j < 4u; j++)
            acc[i][j] += Ms[tr + 8u * i] * Ss[tc + 8u * j];
#endif
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < 4u; i++) [[unroll]] for (uint j = 0u; j < 4u; j++) {
        uint row = r0 + tr + 8u * i, tok = t0 + tc + 8u * j;
        if (row >= p.rows || tok >= p.n_tok) continue;
        uint o = p.y_off + tok * p.y_stride + row;
        float v = p.scale * acc[i][j];
        Y[o] = p.add != 0u ? Y[o] + v : v;
    }
}
