#version 450
#extension GL_GOOGLE_include_directive : enable
// The activations as the CPU's dot products see them: rounded to F16 or
// BF16, or quantized to 8-bit blocks (Q8_0: 32 values, F16 scale; Q8_K: 256
// values, F32 scale) and widened back, as tensor/q_legacy.c and q_k.c encode
// them. The matrix kernel then multiplies the same numbers the CPU does.
// Q8_1 (mode 5) is Q8_0 plus each block's sum s = F16(d * sum of quants)
// with d unrounded, as the CPU's encoder stores it: rows * n/32 of them
// follow the rows' values in O.
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Xb { float X[]; };
layout(std430, binding = 1) writeonly buffer Ob { float O[]; };
layout(push_constant) uniform P { uint n, rows, x_off, mode; } p;   // mode: 1 f16, 2 bf16, 3 q8_0, 4 q8_k, 5 q8_1

#include "f16.glsl"

void main()
{
    uint r = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x, xo = p.x_off + r * p.n, oo = r * p.n;
    if (r >= p.rows) return;
    if (p.mode == 1u || p.mode == 2u) {
        for (uint i = tid; i < p.n; i += 64u) {
            float x = X[xo + i];
            if (p.mode == 1u) O[oo + i] = f16r(x);
            else {
                uint u = floatBitsToUint(x);
                O[oo + i] = isnan(x) ? x : uintBitsToFloat((u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u);
            }
        }
        return;
    }
    uint blk = p.mode == 4u ? 256u : 32u;
    for (uint b = tid; b < p.n / blk; b += 64u) {
        float amax = 0.0;
        for (uint i = 0u; i < blk; i++) amax = max(amax, abs(X[xo + b * blk + i]));
        float d, id;
        // ggml's rounding, as the CPU encoders: quants from x * 127/amax
        id = amax != 0.0 ? 127.0 / amax : 0.0;
        d = p.mode != 4u ? f16r(amax / 127.0) : amax / 127.0;
        float sum = 0.0;   // exact: at most 256 * 127
        for (uint i = 0u; i < blk; i++) {
            float q = clamp(roundEven(X[xo + b * blk + i] * id), -127.0, 127.0);
            sum += q;
            O[oo + b * blk + i] = d * q;
        }
        if (p.mode == 5u) O[p.rows * p.n + r * (p.n / 32u) + b] = f16r(amax / 127.0 * sum);
    }
}
