#version 450
// Rotary embedding in place on n_tok rows of heads (q or k), token t at
// position pos0 + t. neox: pairs (i, i + d/2); otherwise (2i, 2i + 1).
// Angles as kernels/ops.c sd_rope_ext: (pos / scale) * base^(-2i/d) / ff[i];
// with YaRN (yarn_fs > 0) pos unscaled, the angle ramped towards
// angle * yarn_fs between pairs corr_lo and corr_hi, cos and sin times mscale.
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Vb { float V[]; };
layout(std430, binding = 1) readonly buffer Fb { float FF[]; };
layout(push_constant) uniform P {
    uint n_tok, n_head, hd, pos0; float base, scale; uint neox, has_ff;
    float yarn_fs, corr_lo, corr_hi, mscale;
} p;

void main()
{
    uint half_d = p.hd / 2u, id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * 64u;
    if (id >= p.n_tok * p.n_head * half_d) return;
    uint i = id % half_d, h = (id / half_d) % p.n_head, t = id / (half_d * p.n_head);
    float pos = p.yarn_fs > 0.0 ? float(p.pos0 + t) : float(p.pos0 + t) / p.scale, m = 1.0;
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
    float x0 = V[a], x1 = V[b];
    V[a] = x0 * c - x1 * s;
    V[b] = x0 * s + x1 * c;
}
