#version 450
// Routing as model/ffn_moe.c route(): token t's router logits L (n_expert,
// plus the router's bias when there is one) to its k experts, best first
// (ties: the lower index), into ids[t * tok_stride + ids_base + j], and
// their weights into Wt[t * k + j]. gating 0: softmax over all experts, top
// k, weights renormalized to sum to 1 (qwen3moe, mixtral); 1: top k of the
// logits, softmax over those k (gpt-oss). One invocation per token.
layout(local_size_x = 1) in;
layout(std430, binding = 0) buffer Lb { float L[]; };
layout(std430, binding = 1) readonly buffer Bb { float B[]; };
layout(std430, binding = 2) buffer Ib { uint IDS[]; };
layout(std430, binding = 3) writeonly buffer Wtb { float Wt[]; };
layout(push_constant) uniform P { uint n_expert, k, gating, has_bias, tok_stride, ids_base; } p;

void main()
{
    uint t = gl_WorkGroupID.x, lo = t * p.n_expert, io = t * p.tok_stride + p.ids_base;
    if (p.has_bias != 0u)
        for (uint i = 0u; i < p.n_expert; i++) L[lo + i] += B[i];
    if (p.gating == 0u) {
        float mx = L[lo];
        for (uint i = 1u; i < p.n_expert; i++) mx = max(mx, L[lo + i]);
        float sum = 0.0;
        for (uint i = 0u; i < p.n_expert; i++) { L[lo + i] = exp(L[lo + i] - mx); sum += L[lo + i]; }
        float inv = 1.0 / sum;
        for (uint i = 0u; i < p.n_expert; i++) L[lo + i] *= inv;
    }
    for (uint j = 0u; j < p.k; j++) {
        int best = -1;
        for (uint i = 0u; i < p.n_expert; i++) {
            bool taken = false;
            for (uint q = 0u; q < j; q++) taken = taken || IDS[io + q] == i;
            if (!taken && (best < 0 || L[lo + i] > L[lo + uint(best)])) best = int(i);
        }
        IDS[io + j] = uint(best);
    }
    float sum = 0.0, mx = L[lo + IDS[io]];
    for (uint j = 0u; j < p.k; j++) {
        float v = L[lo + IDS[io + j]];
        v = p.gating == 0u ? v : exp(v - mx);
        Wt[t * p.k + j] = v;
        sum += v;
    }
    for (uint j = 0u; j < p.k; j++) Wt[t * p.k + j] /= sum;
}
