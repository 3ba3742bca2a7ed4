#version 450
// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, one workgroup per row of n
// (rows of the hidden state, or one head each for the per-head norms).
// x and out may be the same buffer (in place).
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Xb { float X[]; };
layout(std430, binding = 1) readonly buffer Wb { float Wt[]; };
layout(std430, binding = 2) buffer Ob { float O[]; };
layout(push_constant) uniform P { uint n, rows, x_off, o_off; float eps; } p;
shared float red[64];

void main()
{
    uint r = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    if (r >= p.rows) return;
    uint xo = p.x_off + r * p.n, oo = p.o_off + r * p.n;
    float s = 0.0;
    for (uint i = tid; i < p.n; i += 64u) s += X[xo + i] * X[xo + i];
    red[tid] = s;
    barrier();
    for (uint k = 32u; k > 0u; k >>= 1) {
        if (tid < k) red[tid] += red[tid + k];
        barrier();
    }
    float inv = 1.0 / sqrt(red[0] / float(p.n) + p.eps);
    for (uint i = tid; i < p.n; i += 64u) O[oo + i] = X[xo + i] * inv * Wt[i];
}
