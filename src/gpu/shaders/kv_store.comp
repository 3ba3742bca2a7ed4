#version 450
// Appends n_tok rows of K and V to one layer's cache, laid out
// [KV head][n_ctx][head_dim], as F16 (two per word) or F32.
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Kb { float K[]; };
layout(std430, binding = 1) readonly buffer Vb { float V[]; };
layout(std430, binding = 2) buffer KCb { uint KC[]; };
layout(std430, binding = 3) buffer VCb { uint VC[]; };
layout(push_constant) uniform P { uint n_tok, n_kv, hd, pos0, n_ctx, f32; } p;

void main()
{
    uint w = p.f32 != 0u ? p.hd : p.hd / 2u;   // words per head row
    uint id = gl_GlobalInvocationID.x;
    if (id >= p.n_tok * p.n_kv * w) return;
    uint i = id % w, h = (id / w) % p.n_kv, t = id / (w * p.n_kv);
    uint src = (t * p.n_kv + h) * p.hd, dst = (h * p.n_ctx + p.pos0 + t) * w + i;
    if (p.f32 != 0u) {
        KC[dst] = floatBitsToUint(K[src + i]);
        VC[dst] = floatBitsToUint(V[src + i]);
    } else {
        KC[dst] = packHalf2x16(vec2(K[src + 2u * i], K[src + 2u * i + 1u]));
        VC[dst] = packHalf2x16(vec2(V[src + 2u * i], V[src + 2u * i + 1u]));
    }
}
