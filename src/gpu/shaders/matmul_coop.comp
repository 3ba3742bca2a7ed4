#version 450
// matmul.comp's product on cooperative matrices (VK_KHR_cooperative_matrix):
// y[t][r] (+)= scale * dot(row r of W, x[t]) for a batch of tokens (prefill).
// The host picks, at pipeline creation, a configuration the device reports
// for F16 x F16 -> F32 at subgroup scope (TM x TN x TK) and pins the
// subgroup size (SG); a workgroup is 4 subgroups in a 2 x 2 grid, each
// computing 2 x 2 tiles, so it covers BM = 4 TM rows x BN = 4 TN tokens.
// Per step of 32 columns the weight tile is decoded once into shared memory
// as F16 (wv of dequant.glsl, one format per compiled kernel) beside the
// activation tile, also F16, and the products accumulate in F32. The CPU
// multiplies the same activations exactly (integer or F32 dot products):
// rounding both operands to F16 (11 significant bits) is this kernel's
// whole difference from it, and a value beyond F16's range (65504) would
// become infinite.
// Q4_1/Q5_1: a 32-column step is one block; its offset term m * s (the row's
// m, the token's Q8_1 block sum left by quant_act.comp at X[s_off + ...],
// both exact in F16) rides along as an extra TK-column slice holding m and s
// in its first column and zeros elsewhere.
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_cooperative_matrix : enable
#extension GL_KHR_memory_scope_semantics : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : enable
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 32;   // 4 subgroups of SG
layout(constant_id = 1) const uint TM = 8;
layout(constant_id = 2) const uint TN = 8;
layout(constant_id = 3) const uint TK = 8;
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

const uint BM = 4u * TM, BN = 4u * TN, BK = 32u;
#ifdef SPLIT_MIN
const uint BKX = BK + TK;
#ifdef FMT_Q4_1
#define BLOCK_BYTES 20u
#else
#define BLOCK_BYTES 24u
#endif
#else
const uint BKX = BK;
#endif
// Row strides in elements: 16-byte multiples (cooperative loads and stores
// want them), padded so that rows start in different banks.
const uint WS = BKX + 8u, CS = BM + 4u;
shared float16_t Ws[BM * WS];   // weight tile, row-major: [row][column]
shared float16_t Xs[BN * WS];   // activation tile: [token][column]
shared float Cs[BN * CS];       // results: [token][row]

void main()
{
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID;
    uint r0 = gl_WorkGroupID.x * BM, t0 = gl_WorkGroupID.y * BN;
    uint wm = (sg % 2u) * 2u * TM, wn = (sg / 2u) * 2u * TN;   // this subgroup's corner in the tile
    coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator> acc[2][2];
    [[unroll]] for (uint i = 0u; i < 2u; i++) [[unroll]] for (uint j = 0u; j < 2u; j++)
        acc[i][j] = coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator>(0.0);
    for (uint k0 = 0u; k0 < p.cols; k0 += BK) {
        for (uint e = tid; e < BM * BK; e += WG) {
            uint r = e / BK, k = e % BK, row = r0 + r, col = k0 + k;
            Ws[r * WS + k] = float16_t(row < p.rows && col < p.cols ? wv(row * p.row_bytes, col) : 0.0);
        }
        for (uint e = tid; e < BN * BK; e += WG) {
            uint t = e / BK, k = e % BK, tok = t0 + t, col = k0 + k;
            Xs[t * WS + k] = float16_t(tok < p.n_tok && col < p.cols ? X[p.x_off + tok * p.x_stride + col] : 0.0);
        }
#ifdef SPLIT_MIN
        for (uint e = tid; e < BM * TK; e += WG) {
            uint r = e / TK, k = e % TK;
            Ws[r * WS + BK + k] = float16_t(k == 0u && r0 + r < p.rows
                                            ? h16((r0 + r) * p.row_bytes + (k0 / 32u) * BLOCK_BYTES + 2u) : 0.0);
        }
        for (uint e = tid; e < BN * TK; e += WG) {
            uint t = e / TK, k = e % TK;
            Xs[t * WS + BK + k] = float16_t(k == 0u && t0 + t < p.n_tok
                                            ? X[p.s_off + (t0 + t) * (p.cols / 32u) + k0 / 32u] : 0.0);
        }
#endif
        barrier();
        for (uint kk = 0u; kk < BKX; kk += TK) {
            coopmat<float16_t, gl_ScopeSubgroup, TM, TK, gl_MatrixUseA> a[2];
            coopmat<float16_t, gl_ScopeSubgroup, TK, TN, gl_MatrixUseB> b[2];
            [[unroll]] for (uint i = 0u; i < 2u; i++)
                coopMatLoad(a[i], Ws, (wm + i * TM) * WS + kk, WS, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint j = 0u; j < 2u; j++)
                coopMatLoad(b[j], Xs, (wn + j * TN) * WS + kk, WS, gl_CooperativeMatrixLayoutColumnMajor);
            [[unroll]] for (uint i = 0u; i < 2u; i++) [[unroll]] for (uint j = 0u; j < 2u; j++)
                acc[i][j] = coopMatMulAdd(a[i], b[j], acc[i][j]);
        }
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < 2u; i++) [[unroll]] for (uint j = 0u; j < 2u; j++)
        coopMatStore(acc[i][j], Cs, (wn + j * TN) * CS + wm + i * TM, CS, gl_CooperativeMatrixLayoutColumnMajor);
    barrier();
    for (uint e = tid; e < BM * BN; e += WG) {
        uint t = e / BM, r = e % BM, row = r0 + r, tok = t0 + t;
        if (row >= p.rows || tok >= p.n_tok) continue;
        uint o = p.y_off + tok * p.y_stride + row;
        float v = p.scale * Cs[t * CS + r];
        Y[o] = p.add != 0u ? Y[o] + v : v;
    }
}
