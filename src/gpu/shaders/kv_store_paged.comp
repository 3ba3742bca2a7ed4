#version 450
// Writes n_tok rows of keys (or values) S into one layer's paged device
// cache C, laid out [KV head][n_pos][head_dim] (n_pos: the pool's blocks
// times the block size), as F16 (two per word) or F32. Token t at position
// pos = M[t] of its sequence goes to row table[pos / block] * block +
// pos % block, its table at M[M[n_tok + t]] (vk_paged.h).
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Sb { float S[]; };
layout(std430, binding = 1) buffer Cb { uint C[]; };
layout(std430, binding = 2) readonly buffer Mb { uint M[]; };
layout(push_constant) uniform P { uint n_tok, n_kv, hd, n_pos, block, f32; } p;

void main()
{
    uint w = p.f32 != 0u ? p.hd : p.hd / 2u;   // words per head row
    uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * 64u;
    if (id >= p.n_tok * p.n_kv * w) return;
    uint i = id % w, h = (id / w) % p.n_kv, t = id / (w * p.n_kv);
    uint pos = M[t], row = M[M[p.n_tok + t] + pos / p.block] * p.block + pos % p.block;
    uint src = (t * p.n_kv + h) * p.hd, dst = (h * p.n_pos + row) * w + i;
    if (p.f32 != 0u) C[dst] = floatBitsToUint(S[src + i]);
    else C[dst] = packHalf2x16(vec2(S[src + 2u * i], S[src + 2u * i + 1u]));
}
