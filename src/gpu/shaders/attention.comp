#version 450
// Causal attention over the cached keys and values: one workgroup per
// (query head, token). Positions go in chunks of 64 (one score per thread);
// the running max, sum and output are rescaled per chunk (online softmax),
// so any context length fits. Each thread owns head dims tid, tid + 64, ...
// q is rounded to F16 against an F16 cache, as the CPU path scores it.
// swa > 0: a token sees itself and the swa - 1 positions before it (a
// sliding window). sinks: one extra logit per query head in the softmax's
// denominator that carries no value (gpt-oss).
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Qb { float Q[]; };
layout(std430, binding = 1) readonly buffer KCb { uint KC[]; };
layout(std430, binding = 2) readonly buffer VCb { uint VC[]; };
layout(std430, binding = 3) writeonly buffer Ob { float O[]; };
layout(std430, binding = 4) readonly buffer Sb { float S[]; };
layout(push_constant) uniform P { uint n_head, n_kv, hd, n_ctx, pos0, f32; float scale; uint swa, sinks; } p;
shared float sc[64];
shared float qs[512];

float kv(uint w_base, uint d, bool is_k)
{
    if (p.f32 != 0u) return uintBitsToFloat(is_k ? KC[w_base + d] : VC[w_base + d]);
    uint w = is_k ? KC[w_base + d / 2u] : VC[w_base + d / 2u];
    vec2 v = unpackHalf2x16(w);
    return (d & 1u) != 0u ? v.y : v.x;
}

void main()
{
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint kvh = h / (p.n_head / p.n_kv), len = p.pos0 + t + 1u;
    uint wrow = p.f32 != 0u ? p.hd : p.hd / 2u, base = kvh * p.n_ctx * wrow;
    uint q0 = (t * p.n_head + h) * p.hd;
    for (uint d = tid; d < p.hd; d += 64u)
        qs[d] = p.f32 != 0u ? Q[q0 + d] : unpackHalf2x16(packHalf2x16(vec2(Q[q0 + d], 0.0))).x;
    barrier();
    float m = -1.0 / 0.0, l = 0.0, acc[8];
    for (uint k = 0u; k < 8u; k++) acc[k] = 0.0;
    uint lo = p.swa != 0u && len > p.swa ? len - p.swa : 0u;
    for (uint c0 = lo; c0 < len; c0 += 64u) {
        uint n = min(64u, len - c0), pos = c0 + tid;
        if (tid < n) {
            float s = 0.0;
            uint kb = base + pos * wrow;
            for (uint d = 0u; d < p.hd; d++) s += qs[d] * kv(kb, d, true);
            sc[tid] = s * p.scale;
        }
        barrier();
        float cm = m;
        for (uint i = 0u; i < n; i++) cm = max(cm, sc[i]);
        float corr = exp(m - cm);
        l *= corr;
        for (uint k = 0u; k < 8u; k++) acc[k] *= corr;
        for (uint i = 0u; i < n; i++) {
            float e = exp(sc[i] - cm);
            l += e;
            uint vb = base + (c0 + i) * wrow;
            for (uint k = 0u, d = tid; d < p.hd; k++, d += 64u) acc[k] += e * kv(vb, d, false);
        }
        m = cm;
        barrier();
    }
    if (p.sinks != 0u) {
        float sk = S[h], mm = max(m, sk), c = exp(m - mm);
        l = l * c + exp(sk - mm);
        for (uint k = 0u; k < 8u; k++) acc[k] *= c;
    }
    for (uint k = 0u, d = tid; d < p.hd; k++, d += 64u) O[q0 + d] = acc[k] / l;
}
