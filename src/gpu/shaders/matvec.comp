#version 450
// y[t][r] (+)= scale * dot(row r of W, x[t]) for t < n_tok (decode and short
// batches). W holds the rows as GGUF stores them; FMT picks the decoder
// (units.glsl), compiled once per format. A workgroup takes NR rows: each
// thread decodes whole 32-value units of them (a block, or a K-quant
// sub-block: every scale read once, the quants a word at a time) and
// multiplies each decoded unit with TB tokens at once, so a weight is read
// once per TB tokens. Partial sums are reduced within a subgroup
// (subgroupAdd), then across the workgroup's subgroups in shared memory.
// Q4_1/Q5_1 (activations in Q8_1): the offset term is m times the block's
// activation sum s, which quant_act.comp leaves at X[s_off + t*units + u]
// rounded to F16 as the CPU's Q8_1 encoder stores it.
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Wb { uint W[]; };
layout(std430, binding = 1) readonly buffer Xb { float X[]; };
layout(std430, binding = 2) buffer Yb { float Y[]; };
layout(push_constant) uniform P {
    uint rows, cols, n_tok, row_bytes;
    uint x_off, x_stride, y_off, y_stride;
    float scale; uint add; uint s_off;
} p;

#include "dequant.glsl"
#include "units.glsl"

#define NR 2u   // rows per workgroup (vk_model.c dispatches rows / NR groups)
#define TB 8u   // tokens per pass
// One slot per subgroup: 64 of them covers a subgroup size down to 1.
shared float red[64][NR * TB];

void main()
{
    uint r0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * NR, tid = gl_LocalInvocationID.x;
    if (r0 >= p.rows) return;   // uniform across the workgroup
    uint nu = (p.cols + 31u) / 32u;
    for (uint t0 = 0u; t0 < p.n_tok; t0 += TB) {
        uint nt = min(TB, p.n_tok - t0);
        float acc[NR][TB];
        [[unroll]] for (uint i = 0u; i < NR; i++) [[unroll]] for (uint t = 0u; t < TB; t++) acc[i][t] = 0.0;
        for (uint u = tid; u < nu; u += 64u) {
            [[unroll]] for (uint i = 0u; i < NR; i++) {
                if (r0 + i >= p.rows) continue;
                float v[32], mo;
                unit32((r0 + i) * p.row_bytes, u, v, mo);
                // a constant trip count the driver may unroll (forcing it
                // here multiplies the code, which lavapipe compiles slowly)
                for (uint t = 0u; t < TB; t++) {
                    if (t >= nt) break;
                    uint xo = p.x_off + (t0 + t) * p.x_stride + 32u * u;
                    float s = 0.0;
#if defined(FMT_F32) || defined(FMT_F16) || defined(FMT_BF16)
                    // rows of any length: the last unit may be partial
                    [[unroll]] for (uint j = 0u; j < 32u; j++)
                        if (32u * u + j < p.cols) s += v[j] * X[xo + j];
#else
                    [[unroll]] for (uint j = 0u; j < 32u; j++) s += v[j] * X[xo + j];
#endif
#if defined(FMT_Q4_1) || defined(FMT_Q5_1)
                    s += mo * X[p.s_off + (t0 + t) * nu + u];
#endif
                    acc[i][t] += s;
                }
            }
        }
        [[unroll]] for (uint i = 0u; i < NR; i++) for (uint t = 0u; t < nt; t++) {
            float s = subgroupAdd(acc[i][t]);   // nt is uniform: decode reduces NR sums
            if (subgroupElect()) red[gl_SubgroupID][i * TB + t] = s;
        }
        barrier();
        if (tid < NR * TB) {
            uint i = tid / TB, t = tid % TB;
            float s = 0.0;
            for (uint g = 0u; g < gl_NumSubgroups; g++) s += red[g][tid];
            if (r0 + i < p.rows && t < nt) {
                uint o = p.y_off + (t0 + t) * p.y_stride + r0 + i;
                float v = p.scale * s;
                Y[o] = p.add != 0u ? Y[o] + v : v;
            }
        }
        barrier();
    }
}
