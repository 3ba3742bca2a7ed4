#version 450
// x[t] += sum over token t's k slots j of w[t][j] * (y[t k + j] + the
// chosen expert's down bias when the model has one), slots in routing order.
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Xb { float X[]; };
layout(std430, binding = 1) readonly buffer Yb { float Y[]; };
layout(std430, binding = 2) readonly buffer Ib { uint IDS[]; };
layout(std430, binding = 3) readonly buffer Wtb { float Wt[]; };
layout(std430, binding = 4) readonly buffer BDb { float BD[]; };
layout(push_constant) uniform P { uint n_embd, n_tok, k, tok_stride, ids_base, has_bias; } p;

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * 64u;
    if (i >= p.n_embd * p.n_tok) return;
    uint t = i / p.n_embd, c = i % p.n_embd;
    float x = X[i];
    for (uint j = 0u; j < p.k; j++) {
        uint s = t * p.k + j;
        float y = Y[s * p.n_embd + c];
        if (p.has_bias != 0u) y += BD[IDS[t * p.tok_stride + p.ids_base + j] * p.n_embd + c];
        x += Wt[s] * y;
    }
    X[i] = x;
}
