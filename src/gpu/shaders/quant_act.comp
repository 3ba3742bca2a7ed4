#version 450
// The activations as the CPU's dot products see them: rounded to F16 or
// BF16, or quantized to 8-bit blocks (Q8_0: 32 values, F16 scale; Q8_K: 256
// values, F32 scale) and widened back, as tensor/q_legacy.c and q_k.c encode
// them. The matrix kernel then multiplies the same numbers the CPU does.
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Xb { float X[]; };
layout(std430, binding = 1) writeonly buffer Ob { float O[]; };
layout(push_constant) uniform P { uint n, rows, x_off, mode; } p;   // mode: 1 f16, 2 bf16, 3 q8_0, 4 q8_k

float f16r(float x) { return unpackHalf2x16(packHalf2x16(vec2(x, 0.0))).x; }

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
    uint blk = p.mode == 3u ? 32u : 256u;
    for (uint b = tid; b < p.n / blk; b += 64u) {
        float amax = 0.0;
        for (uint i = 0u; i < blk; i++) amax = max(amax, abs(X[xo + b * blk + i]));
        float d, id;
        // ggml's rounding, as the CPU encoders: quants from x * 127/amax
        id = amax != 0.0 ? 127.0 / amax : 0.0;
        d = p.mode == 3u ? f16r(amax / 127.0) : amax / 127.0;
        for (uint i = 0u; i < blk; i++)
            O[oo + b * blk + i] = d * clamp(roundEven(X[xo + b * blk + i] * id), -127.0, 127.0);
    }
}
