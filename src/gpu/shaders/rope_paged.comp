#version 450
// Rotary embedding for a paged step (the serving engine's batch): n_tok rows
// of heads from I into O (the same buffer for keys), token t at position
// M[t] of the step's metadata (vk_paged.h). Angles as rope.comp.
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Ib { float I[]; };
layout(std430, binding = 1) readonly buffer Fb { float FF[]; };
layout(std430, binding = 2) readonly buffer Mb { uint M[]; };
layout(std430, binding = 3) buffer Ob { float O[]; };
layout(push_constant) uniform P { uint n_tok, n_head, hd; float base, scale; uint neox, has_ff; } p;

void main()
{
    uint half_d = p.hd / 2u, id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * 64u;
    if (id >= p.n_tok * p.n_head * half_d) return;
    uint i = id % half_d, h = (id / half_d) % p.n_head, t = id / (half_d * p.n_head);
    float theta = (float(M[t]) / p.scale) * pow(p.base, -2.0 * float(i) / float(p.hd));
    if (p.has_ff != 0u) theta /= FF[i];
    float c = cos(theta), s = sin(theta);
    uint o = (t * p.n_head + h) * p.hd, a = o + (p.neox != 0u ? i : 2u * i), b = o + (p.neox != 0u ? i + half_d : 2u * i + 1u);
    // both reads before either write: I and O may be one buffer
    float x0 = I[a], x1 = I[b];
    O[a] = x0 * c - x1 * s;
    O[b] = x0 * s + x1 * c;
}
