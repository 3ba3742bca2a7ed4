#version 450
// g = silu(g) * u, as kernels/dispatch.c swiglu_generic.
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Gb { float G[]; };
layout(std430, binding = 1) readonly buffer Ub { float U[]; };
layout(push_constant) uniform P { uint n; } p;

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * 64u;
    if (i < p.n) G[i] = G[i] / (1.0 + exp(-G[i])) * U[i];
}
