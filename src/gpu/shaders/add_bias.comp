#version 450
// x[t][i] += b[i] for n_tok rows of n (the q/k/v biases of qwen2).
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Xb { float X[]; };
layout(std430, binding = 1) readonly buffer Bb { float B[]; };
layout(push_constant) uniform P { uint n, n_tok; } p;

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * 64u;
    if (i < p.n * p.n_tok) X[i] += B[i % p.n];
}
