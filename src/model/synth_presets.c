/* Shapes of real models for `synth`, taken from their published configs
 * (hidden size, layers, heads, KV heads, head size, FFN, vocabulary, context,
 * rope base, RMS epsilon, tied embeddings), plus two of our own: `tiny` for
 * tests and `bench-1.1b`, the benchmark shape. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "model/synth.h"
#include "showdown.h"
#include "runtime/errf.h"

static const sd_synth_shape presets[] = {
    /* name            arch     embd  lay head kv hd   ffn    vocab   ctx     rope      eps  llama3 tied */
    {"tiny",           "llama",  128,  2,  4, 2,  32,   384,    512,    512,  10000.f, 1e-5f,  0, 0,
     "a toy shape for tests and `make run`", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"bench-1.1b",     "llama", 2048, 16, 32, 8,  64,  8192,  32000,   2048,  10000.f, 1e-5f,  0, 0,
     "the benchmark shape (Llama-2 vocabulary, 1.1B parameters)", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"tinyllama-1.1b", "llama", 2048, 22, 32, 4,  64,  5632,  32000,   2048,  10000.f, 1e-5f,  0, 0,
     "TinyLlama 1.1B", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"llama-3.2-1b",   "llama", 2048, 16, 32, 8,  64,  8192, 128256, 131072, 500000.f, 1e-5f, 32, 1,
     "Llama 3.2 1B", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"llama-3.2-3b",   "llama", 3072, 28, 24, 8, 128,  8192, 128256, 131072, 500000.f, 1e-5f, 32, 1,
     "Llama 3.2 3B", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"llama-3.1-8b",   "llama", 4096, 32, 32, 8, 128, 14336, 128256, 131072, 500000.f, 1e-5f,  8, 0,
     "Llama 3.1 8B", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"llama-3.3-70b",  "llama", 8192, 80, 64, 8, 128, 28672, 128256, 131072, 500000.f, 1e-5f,  8, 0,
     "Llama 3.3 70B", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"mistral-7b",     "llama", 4096, 32, 32, 8, 128, 14336,  32768,  32768, 1000000.f, 1e-5f, 0, 0,
     "Mistral 7B v0.3", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"qwen2.5-1.5b",   "qwen2", 1536, 28, 12, 2, 128,  8960, 151936,  32768, 1000000.f, 1e-6f, 0, 1,
     "Qwen2.5 1.5B", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"qwen2.5-7b",     "qwen2", 3584, 28, 28, 4, 128, 18944, 152064,  32768, 1000000.f, 1e-6f, 0, 0,
     "Qwen2.5 7B", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"qwen3-0.6b",     "qwen3", 1024, 28, 16, 8, 128,  3072, 151936,  40960, 1000000.f, 1e-6f, 0, 1,
     "Qwen3 0.6B", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"qwen3-8b",       "qwen3", 4096, 36, 32, 8, 128, 12288, 151936,  40960, 1000000.f, 1e-6f, 0, 0,
     "Qwen3 8B", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    /* mixtures of experts: + experts, used per token, expert FFN size */
    {"qwen3-30b-a3b",  "qwen3moe", 2048, 48, 32, 4, 128, 6144, 151936, 40960, 1000000.f, 1e-6f, 0, 0,
     "Qwen3 30B-A3B (128 experts, 8 per token)", 128, 8, 768, 0, 0, 0, 0, 0, 0, 0},
    {"mixtral-8x7b",   "llama", 4096, 32, 32, 8, 128, 14336,  32000,  32768, 1000000.f, 1e-5f, 0, 0,
     "Mixtral 8x7B (8 experts, 2 per token)", 8, 2, 14336, 0, 0, 0, 0, 0, 0, 0},
    {"gpt-oss-20b",    "gpt-oss", 2880, 24, 64, 8, 64,  2880, 201088, 131072, 150000.f, 1e-5f, 0, 0,
     "gpt-oss 20B (32 experts, 4 per token; sinks, YaRN, window 128 on even layers)", 32, 4, 2880, 0, 0, 0, 0, 0, 0, 0},
    /* + shared expert FFN, DeltaNet conv taps, key head size, key heads, value heads, rope dims, attention every 4th */
    {"qwen3-next-80b-a3b", "qwen3next", 2048, 48, 16, 2, 256, 5120, 151936, 262144, 10000000.f, 1e-6f, 0, 0,
     "Qwen3-Next 80B-A3B (512 experts, 10 per token, shared expert; gated DeltaNet on 3 of 4 layers)", 512, 10, 512,
     512, 4, 128, 16, 32, 64, 4},
};
#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

int sd_synth_n_presets(void) { return N_PRESETS; }

const sd_synth_shape *sd_synth_preset_at(int i) { return i >= 0 && i < N_PRESETS ? &presets[i] : NULL; }

const sd_synth_shape *sd_synth_preset(const char *name)
{
    for (int i = 0; name && i < N_PRESETS; i++)
        if (!strcasecmp(presets[i].name, name)) return &presets[i];
    return NULL;
}

int sd_synth_set_arch(sd_synth_shape *s, const char *arch)
{
    static const char *archs[] = {"llama", "qwen2", "qwen3", "qwen3moe", "gpt-oss", "qwen3next", "gemma3"};
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcasecmp(arch, archs[i])) {
            snprintf(s->arch, sizeof s->arch, "%s", archs[i]);
            return 0;
        }
    return -1;
}

int sd_synth_check(const sd_synth_shape *s, char *err)
{
    sd_synth_shape tmp = *s;
    if (sd_synth_set_arch(&tmp, s->arch))
        return sd_errf(err, "unknown architecture '%s' (llama, qwen2, qwen3, qwen3moe, gpt-oss, qwen3next, gemma3)",
                   s->arch);
    int moe_arch = !strcmp(s->arch, "qwen3moe") || !strcmp(s->arch, "gpt-oss");
    if (moe_arch && s->n_expert < 1) return sd_errf(err, "%s needs experts (--experts)", s->arch);
    if (s->n_expert < 0 || s->n_expert > 4096) return sd_errf(err, "expert count %d is out of range (0..4096)", s->n_expert);
    if (s->n_expert && (s->n_expert_used < 1 || s->n_expert_used > s->n_expert || s->n_expert_used > 64))
        return sd_errf(err, "%d experts per token is out of range (1..%d)", s->n_expert_used,
                   s->n_expert < 64 ? s->n_expert : 64);
    if (s->n_expert && (s->n_ff_exp < 1 || s->n_ff_exp > (1 << 20)))
        return sd_errf(err, "expert FFN size %d is out of range (1..%d)", s->n_ff_exp, 1 << 20);
    struct { const char *what; int v, lo, hi; } lim[] = {
        {"embedding size", s->n_embd, 2, 1 << 16},  {"layer count", s->n_layer, 1, 1024},
        {"head count", s->n_head, 1, 1024},         {"KV head count", s->n_head_kv, 1, 1024},
        {"head size", s->head_dim, 2, 4096},        {"FFN size", s->n_ff, 1, 1 << 20},
        {"vocabulary size", s->n_vocab, 1, 1 << 24}, {"context length", s->n_ctx, 1, 1 << 24},
    };
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
        if (lim[i].v < lim[i].lo || lim[i].v > lim[i].hi)
            return sd_errf(err, "%s %d is out of range (%d..%d)", lim[i].what, lim[i].v, lim[i].lo, lim[i].hi);
    if (s->n_head % s->n_head_kv) return sd_errf(err, "%d KV heads do not divide %d heads", s->n_head_kv, s->n_head);
    if (s->head_dim % 2) return sd_errf(err, "head size %d must be even (rotary embedding)", s->head_dim);
    if (!(s->rope_base > 0) || !(s->norm_eps > 0)) return sd_errf(err, "rope base and RMS epsilon must be positive");
    if (!strcmp(s->arch, "qwen3next")) {
        struct { const char *what; int v, lo, hi; } q[] = {
            {"shared expert FFN size", s->n_ff_shexp, 1, 1 << 20}, {"convolution taps", s->ssm_conv, 2, 64},
            {"DeltaNet head size", s->ssm_state, 1, 4096},       {"DeltaNet key heads", s->ssm_groups, 1, 4096},
            {"DeltaNet value heads", s->ssm_heads, 1, 4096},     {"rotated values per head", s->n_rot, 2, s->head_dim},
            {"attention interval", s->attn_interval, 1, 1024},
        };
        for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
            if (q[i].v < q[i].lo || q[i].v > q[i].hi)
                return sd_errf(err, "%s %d is out of range (%d..%d)", q[i].what, q[i].v, q[i].lo, q[i].hi);
        if (s->ssm_heads % s->ssm_groups)
            return sd_errf(err, "%d DeltaNet value heads are not a multiple of %d key heads", s->ssm_heads, s->ssm_groups);
        if (s->n_rot % 2) return sd_errf(err, "rotated values per head %d must be even", s->n_rot);
        if (s->n_expert < 1) return sd_errf(err, "qwen3next needs experts (--experts)");
    }
    return 0;
}

uint64_t sd_synth_n_params(const sd_synth_shape *s)
{
    uint64_t e = (uint64_t)s->n_embd, q = (uint64_t)s->n_head * s->head_dim, kv = (uint64_t)s->n_head_kv * s->head_dim;
    uint64_t layer = e * q * 2 + e * kv * 2 + 3 * e * (uint64_t)s->n_ff + 2 * e;
    if (s->n_expert) {
        uint64_t x = (uint64_t)s->n_expert, f = (uint64_t)s->n_ff_exp;
        layer += 3 * e * f * x + e * x - 3 * e * (uint64_t)s->n_ff;
        if (!strcmp(s->arch, "gpt-oss")) layer += q + 2 * kv + e + (uint64_t)s->n_head + x + (2 * f + e) * x;
    }
    if (!strcmp(s->arch, "qwen2")) layer += q + 2 * kv;
    if (!strcmp(s->arch, "qwen3next")) {
        /* average over one attention layer (q twice as wide) and interval - 1 DeltaNet layers,
         * plus the shared expert and its gate */
        uint64_t kd = (uint64_t)s->ssm_state * s->ssm_groups, vd = (uint64_t)s->ssm_state * s->ssm_heads;
        uint64_t h = (uint64_t)s->ssm_heads, conv = 2 * kd + vd, n_i = (uint64_t)s->attn_interval;
        uint64_t lin = e * conv + e * vd + (uint64_t)s->ssm_conv * conv + 2 * h + e * 2 * h + (uint64_t)s->ssm_state +
                       vd * e;
        uint64_t att = e * q * 3 + e * kv * 2 + 2 * (uint64_t)s->head_dim;   /* attn_q is twice as wide */
        uint64_t n_att = (uint64_t)s->n_layer / n_i, n_lin = (uint64_t)s->n_layer - n_att;
        uint64_t rest = 3 * e * (uint64_t)s->n_ff_shexp + e;
        uint64_t n = (att * n_att + lin * n_lin) + (layer - (e * q * 2 + e * kv * 2) + rest) * (uint64_t)s->n_layer;
        return n + e * (uint64_t)s->n_vocab * (s->tied ? 1 : 2) + e;
    }
    if (!strcmp(s->arch, "qwen3") || !strcmp(s->arch, "qwen3moe")) layer += 2 * (uint64_t)s->head_dim;
    if (!strcmp(s->arch, "gemma3")) layer += 2 * (uint64_t)s->head_dim + 2 * e;   /* q/k norms, post-norms */
    uint64_t n = layer * (uint64_t)s->n_layer + e * (uint64_t)s->n_vocab * (s->tied ? 1 : 2) + e;
    if (s->rope_llama3_factor > 0) n += (uint64_t)s->head_dim / 2;
    return n;
}
