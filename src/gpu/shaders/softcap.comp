#version 450
// Y[off + i] = cap * tanh(Y[off + i] / cap): Gemma's final logit soft-capping.
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Yb { float Y[]; };
layout(push_constant) uniform P { uint n, off; float cap; } p;

// tanh to a few ulps, as libm's tanhf the CPU calls: a driver's tanh may
// take (e^2x - 1) / (e^2x + 1), whose cancellation near 0 moved a row of
// small logits by 1e-4. Small |x|: the series; else from e^-2|x| (at most
// 0.78: no cancellation to speak of; 1 to float precision past 9).
float tanh_acc(float x)
{
    float a = abs(x), r;
    if (a < 0.125) {
        float a2 = a * a;
        r = a * (1.0 + a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 + a2 * (-17.0 / 315.0))));
    } else {
        float e = exp(-2.0 * min(a, 9.0));
        r = (1.0 - e) / (1.0 + e);
    }
    return x < 0.0 ? -r : r;
}

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * 65535u * 64u;
    if (i < p.n) Y[p.off + i] = p.cap * tanh_acc(Y[p.off + i] / p.cap);
}
