#version 450
// The experts' gate and up outputs (one row of n_ff per (token, slot) pair
// s) to their activation in G, as model/ffn_moe.c activate(): each chosen
// expert's gate and up biases first when the model has them, then SiLU(g) * u,
// or gpt-oss's x = min(g, 7), y = clamp(u, -7, 7), x * sigmoid(1.702 x) * (y + 1).
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Gb { float G[]; };
layout(std430, binding = 1) readonly buffer Ub { float U[]; };
layout(std430, binding = 2) readonly buffer Ib { uint IDS[]; };
layout(std430, binding = 3) readonly buffer BGb { float BG[]; };
layout(std430, binding = 4) readonly buffer BUb { float BU[]; };
layout(push_constant) uniform P { uint n_ff, n, k, tok_stride, ids_base, has_bias, oai; } p;

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * 64u;
    if (i >= p.n) return;
    uint s = i / p.n_ff, c = i % p.n_ff;
    float g = G[i], u = U[i];
    if (p.has_bias != 0u) {
        uint e = IDS[(s / p.k) * p.tok_stride + p.ids_base + s % p.k];
        g += BG[e * p.n_ff + c];
        u += BU[e * p.n_ff + c];
    }
    if (p.oai == 0u) G[i] = g / (1.0 + exp(-g)) * u;
    else {
        float x = min(g, 7.0), y = clamp(u, -7.0, 7.0);
        G[i] = x / (1.0 + exp(-1.702 * x)) * (y + 1.0);
    }
}
