#version 450
// Rotary embedding for a paged step (the serving engine's batch): n_tok rows
// of heads from I into O (the same buffer for keys), token t at position
// M[t] of the step's metadata (vk_paged.h). Angles as rope.comp.
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Ib { float I[]; };
layout(std430, binding = 1) readonly buffer Fb { float FF[]; };
layout(std430, binding = 2) readonly buffer Mb { uint M[]; };
layout(std430, binding = 3) buffer Ob { float O[]; };
layout(push_constant) uniform P {
    uint n_tok, n_head, hd; float base, scale; uint neox, has_ff;
    float yarn_fs, corr_lo, corr_hi, mscale;
} p;

void main()
{
    uint half_d = p.hd / 2u, id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * 64u;
    if (id >= p.n_tok * p.n_head * half_d) return;
    uint i = id % half_d, h = (id / half_d) % p.n_head, t = id / (half_d * p.n_head);
    float pos = p.yarn_fs > 0.0 ? float(M[t]) : float(M[t]) / p.scale, m = 1.0;
    float theta = pos * pow(p.base, -2.0 * float(i) / float(p.hd));
    if (p.has_ff != 0u) theta /= FF[i];
    if (p.yarn_fs > 0.0) {
        float r = (float(i) - p.corr_lo) / max(0.001, p.corr_hi - p.corr_lo);
        float ramp = 1.0 - min(1.0, max(0.0, r));   // 1: the original angle
        theta = theta * p.yarn_fs * (1.0 - ramp) + theta * ramp;
        m = p.mscale;
    }
    float c = cos(theta) * m, s = sin(theta) * m;
    uint o = (t * p.n_head + h) * p.hd, a = o + (p.neox != 0u ? i : 2u * i), b = o + (p.neox != 0u ? i + half_d : 2u * i + 1u);
    // both reads before either write: I and O may be one buffer
    float x0 = I[a], x1 = I[b];
    O[a] = x0 * c - x1 * s;
    O[b] = x0 * s + x1 * c;
}
