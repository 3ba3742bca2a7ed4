#version 450
// The experts' products: for each (token, slot) pair s, y[s] = scale * W_e x
// with e the expert the router chose for it (ids), so only the chosen
// experts' rows are read. W binds experts [e0, e1) of one 3-D tensor, each
// expert_bytes long (a device may bind less than the whole tensor: the
// host dispatches once per range, and pairs routed elsewhere return). A
// workgroup takes NR rows of one pair (x row s / x_div: the token's input
// for gate and up, the pair's own hidden state for down), decoded as
// matvec.comp does (units.glsl), reduced by subgroup, then across
// subgroups. ids[(s / k) * tok_stride + ids_base + s % k]: model/moe.h's
// layout of the chosen experts (token, layer, slot).
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Wb { uint W[]; };
layout(std430, binding = 1) readonly buffer Xb { float X[]; };
layout(std430, binding = 2) writeonly buffer Yb { float Y[]; };
layout(std430, binding = 3) readonly buffer Ib { uint IDS[]; };
layout(push_constant) uniform P {
    uint rows, cols, row_bytes, expert_bytes;
    float scale; uint s_off, x_div, k;
    uint tok_stride, ids_base, e0, e1;
} p;

#include "dequant.glsl"
#include "units.glsl"

#define NR 2u   // rows per workgroup (vk_moe.c dispatches rows / NR groups)
shared float red[64][NR];

void main()
{
    uint r0 = gl_WorkGroupID.x * NR, s = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint e = IDS[(s / p.k) * p.tok_stride + p.ids_base + s % p.k];
    if (r0 >= p.rows || e < p.e0 || e >= p.e1) return;   // uniform across the workgroup
    uint nu = (p.cols + 31u) / 32u, xr = s / p.x_div, eb = (e - p.e0) * p.expert_bytes;
    float acc[NR];
    [[unroll]] for (uint i = 0u; i < NR; i++) acc[i] = 0.0;
    for (uint u = tid; u < nu; u += 64u) {
        [[unroll]] for (uint i = 0u; i < NR; i++) {
            if (r0 + i >= p.rows) continue;
            float v[32], mo;
            unit32(eb + (r0 + i) * p.row_bytes, u, v, mo);
            uint xo = xr * p.cols + 32u * u;
            float sum = 0.0;
#if defined(FMT_F32) || defined(FMT_F16) || defined(FMT_BF16)
            [[unroll]] for (uint j = 0u; j < 32u; j++)
                if (32u * u + j < p.cols) sum += v[j] * X[xo + j];
#else
            [[unroll]] for (uint j = 0u; j < 32u; j++) sum += v[j] * X[xo + j];
#endif
#if defined(FMT_Q4_1) || defined(FMT_Q5_1)
            sum += mo * X[p.s_off + xr * nu + u];
#endif
            acc[i] += sum;
        }
    }
    [[unroll]] for (uint i = 0u; i < NR; i++) {
        float t = subgroupAdd(acc[i]);
        if (subgroupElect()) red[gl_SubgroupID][i] = t;
    }
    barrier();
    if (tid < NR && r0 + tid < p.rows) {
        float t = 0.0;
        for (uint g = 0u; g < gl_NumSubgroups; g++) t += red[g][tid];
        Y[s * p.rows + r0 + tid] = p.scale * t;
    }
}
