#version 450
// y[t][r] (+)= scale * dot(row r of W, x[t]) for t < n_tok. W holds the rows
// as GGUF stores them (FMT picks the decoder, compiled once per format); one
// workgroup per row, each thread a strided share of its values, tokens 8 at a
// time so a weight value is decoded once per 8 tokens.
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_control_flow_attributes : enable
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Wb { uint W[]; };
layout(std430, binding = 1) readonly buffer Xb { float X[]; };
layout(std430, binding = 2) buffer Yb { float Y[]; };
layout(push_constant) uniform P {
    uint rows, cols, n_tok, row_bytes;
    uint x_off, x_stride, y_off, y_stride;
    float scale; uint add;
} p;

#include "dequant.glsl"

#define TB 8u
shared float red[TB][64];

void main()
{
    uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x, tid = gl_LocalInvocationID.x;
    if (r >= p.rows) return;
    uint rb = r * p.row_bytes;
    for (uint t0 = 0u; t0 < p.n_tok; t0 += TB) {
        float acc[TB];
        [[unroll]] for (uint t = 0u; t < TB; t++) acc[t] = 0.0;
        uint nt = min(TB, p.n_tok - t0);
#if defined(FMT_Q4_0) || defined(FMT_Q8_0)
        // A thread takes whole blocks: the scale read once, each byte once.
        for (uint bi = tid; bi < p.cols / 32u; bi += 64u) {
            float v[32];
#ifdef FMT_Q4_0
            uint bb = rb + bi * 18u;
            float d = h16(bb);
            [[unroll]] for (uint i = 0u; i < 16u; i++) {
                uint q = b8(bb + 2u + i);
                v[i] = d * (float(q & 15u) - 8.0);
                v[i + 16u] = d * (float(q >> 4) - 8.0);
            }
#else
            uint bb = rb + bi * 34u;
            float d = h16(bb);
            [[unroll]] for (uint i = 0u; i < 32u; i++) v[i] = d * float(s8(bb + 2u + i));
#endif
            for (uint t = 0u; t < nt; t++) {
                uint xo = p.x_off + (t0 + t) * p.x_stride + bi * 32u;
                float sum = 0.0;
                [[unroll]] for (uint i = 0u; i < 32u; i++) sum += v[i] * X[xo + i];
                acc[t] += sum;
            }
        }
#elif defined(FMT_Q4_K)
        // A thread takes whole sub-blocks of 32: 144-byte super-blocks keep
        // rows word-aligned, so the 32 nibbles come in 8 word reads.
        for (uint k = tid; k < p.cols / 32u; k += 64u) {
            uint bb = rb + (k / 8u) * 144u, sub = k % 8u, q0 = (bb + 16u + 32u * (sub / 2u)) >> 2;
            float sc, mn;
            sm6(bb + 4u, sub, sc, mn);
            float d = h16(bb) * sc, m = h16(bb + 2u) * mn;
            uint sh = (sub & 1u) * 4u;
            float v[32];
            [[unroll]] for (uint w = 0u; w < 8u; w++) {
                uint word = W[q0 + w] >> sh;
                [[unroll]] for (uint i = 0u; i < 4u; i++) v[4u * w + i] = d * float((word >> (8u * i)) & 15u) - m;
            }
            for (uint t = 0u; t < nt; t++) {
                uint xo = p.x_off + (t0 + t) * p.x_stride + k * 32u;
                float sum = 0.0;
                [[unroll]] for (uint i = 0u; i < 32u; i++) sum += v[i] * X[xo + i];
                acc[t] += sum;
            }
        }
#elif defined(FMT_F16)
        if ((p.row_bytes & 3u) == 0u && (p.cols & 1u) == 0u) {
            // Two halves per word read.
            for (uint j2 = tid; j2 < p.cols / 2u; j2 += 64u) {
                vec2 w = unpackHalf2x16(W[(rb >> 2) + j2]);
                for (uint t = 0u; t < nt; t++) {
                    uint xo = p.x_off + (t0 + t) * p.x_stride + 2u * j2;
                    acc[t] += w.x * X[xo] + w.y * X[xo + 1u];
                }
            }
        } else {
            for (uint j = tid; j < p.cols; j += 64u) {
                float w = wv(rb, j);
                for (uint t = 0u; t < nt; t++) acc[t] += w * X[p.x_off + (t0 + t) * p.x_stride + j];
            }
        }
#else
        for (uint j = tid; j < p.cols; j += 64u) {
            float w = wv(rb, j);
            for (uint t = 0u; t < nt; t++) acc[t] += w * X[p.x_off + (t0 + t) * p.x_stride + j];
        }
#endif
        [[unroll]] for (uint t = 0u; t < TB; t++) red[t][tid] = acc[t];
        barrier();
        for (uint s = 32u; s > 0u; s >>= 1) {
            if (tid < s) [[unroll]] for (uint t = 0u; t < TB; t++) red[t][tid] += red[t][tid + s];
            barrier();
        }
        if (tid < nt) {
            uint o = p.y_off + (t0 + tid) * p.y_stride + r;
            float v = p.scale * red[tid][0];
            Y[o] = p.add != 0u ? Y[o] + v : v;
        }
        barrier();
    }
}
