#version 450
#extension GL_GOOGLE_include_directive : enable
// g = GELU(g) * u, GELU in its tanh form as kernels/geglu.c computes it
// (the reference engine's table of F16 inputs): x rounded to F16 and
// looked up in the CPU's own table T (F16 GELU of every F16 value, two a
// word), so the same input gives the same value on both sides whatever
// the driver's tanh; 0 below -10 and x above 10.
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Gb { float G[]; };
layout(std430, binding = 1) readonly buffer Ub { float U[]; };
layout(std430, binding = 2) readonly buffer Tb { uint T[]; };
layout(push_constant) uniform P { uint n; } p;

#include "f16.glsl"

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * 64u;
    if (i >= p.n) return;
    float x = G[i], y;
    if (x <= -10.0) y = 0.0;
    else if (x >= 10.0) y = x;
    else {
        uint h = packHalf2x16(vec2(f16r(x), 0.0)) & 0xffffu;   // exact: f16r's value is an F16 one
        y = unpackHalf2x16(T[h >> 1] >> (16u * (h & 1u))).x;
    }
    G[i] = y * U[i];
}
