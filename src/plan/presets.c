/* Real architectures' exact shapes (from each model's config.json), and the
 * parameter counts derived from them. published_params is what the model card
 * or paper states; tests check the derivation against it. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "showdown.h"
#include "plan/plan.h"

/* Designated initializers keep each shape readable; unset fields are 0. */
static const sd_model_shape presets[] = {
    {.name = "llama-2-7b", .arch = "llama", .n_embd = 4096, .n_layer = 32, .n_head = 32, .n_head_kv = 32,
     .head_dim = 128, .n_ff = 11008, .n_vocab = 32000, .n_ctx_train = 4096, .full_attn_every = 1,
     .published_params = 6.74e9, .source = "huggingface.co/meta-llama/Llama-2-7b-hf config.json; 6.74B in the Llama 2 paper"},
    {.name = "llama-2-70b", .arch = "llama", .n_embd = 8192, .n_layer = 80, .n_head = 64, .n_head_kv = 8,
     .head_dim = 128, .n_ff = 28672, .n_vocab = 32000, .n_ctx_train = 4096, .full_attn_every = 1,
     .published_params = 68.98e9, .source = "huggingface.co/meta-llama/Llama-2-70b-hf config.json; 68.98B in its safetensors index"},
    {.name = "llama-3-8b", .arch = "llama", .n_embd = 4096, .n_layer = 32, .n_head = 32, .n_head_kv = 8,
     .head_dim = 128, .n_ff = 14336, .n_vocab = 128256, .n_ctx_train = 8192, .full_attn_every = 1,
     .published_params = 8.03e9, .source = "huggingface.co/meta-llama/Meta-Llama-3-8B config.json; 8.03B on the model card"},
    {.name = "llama-3-70b", .arch = "llama", .n_embd = 8192, .n_layer = 80, .n_head = 64, .n_head_kv = 8,
     .head_dim = 128, .n_ff = 28672, .n_vocab = 128256, .n_ctx_train = 8192, .full_attn_every = 1,
     .published_params = 70.55e9, .source = "huggingface.co/meta-llama/Meta-Llama-3-70B config.json (3.1/3.3 70B share the shape); 70.55B"},
    {.name = "llama-3.1-8b", .arch = "llama", .n_embd = 4096, .n_layer = 32, .n_head = 32, .n_head_kv = 8,
     .head_dim = 128, .n_ff = 14336, .n_vocab = 128256, .n_ctx_train = 131072, .full_attn_every = 1,
     .published_params = 8.03e9, .source = "huggingface.co/meta-llama/Llama-3.1-8B config.json; 8.03B"},
    {.name = "qwen2.5-1.5b", .arch = "qwen2", .n_embd = 1536, .n_layer = 28, .n_head = 12, .n_head_kv = 2,
     .head_dim = 128, .n_ff = 8960, .n_vocab = 151936, .tied = 1, .n_ctx_train = 32768, .qkv_bias = 1,
     .full_attn_every = 1, .published_params = 1.54e9,
     .source = "huggingface.co/Qwen/Qwen2.5-1.5B config.json; 1.54B on the model card"},
    {.name = "qwen2.5-7b", .arch = "qwen2", .n_embd = 3584, .n_layer = 28, .n_head = 28, .n_head_kv = 4,
     .head_dim = 128, .n_ff = 18944, .n_vocab = 152064, .n_ctx_train = 32768, .qkv_bias = 1,
     .full_attn_every = 1, .published_params = 7.61e9,
     .source = "huggingface.co/Qwen/Qwen2.5-7B config.json; 7.61B on the model card"},
    {.name = "qwen3-8b", .arch = "qwen3", .n_embd = 4096, .n_layer = 36, .n_head = 32, .n_head_kv = 8,
     .head_dim = 128, .n_ff = 12288, .n_vocab = 151936, .n_ctx_train = 40960, .qk_norm = 1,
     .full_attn_every = 1, .published_params = 8.19e9,
     .source = "huggingface.co/Qwen/Qwen3-8B config.json; 8.2B on the model card (8.19B in safetensors)"},
    {.name = "gemma-3-4b", .arch = "gemma3", .n_embd = 2560, .n_layer = 34, .n_head = 8, .n_head_kv = 4,
     .head_dim = 256, .n_ff = 10240, .n_vocab = 262208, .tied = 1, .n_ctx_train = 131072, .qk_norm = 1,
     .sliding_window = 1024, .swa_every = 6, .full_attn_every = 1, .published_params = 3.884e9,
     .source = "huggingface.co/google/gemma-3-4b-pt config.json (text model); Gemma 3 report table 1: 675M embedding + 3209M other (vision encoder not counted)"},
    {.name = "mistral-7b", .arch = "llama", .n_embd = 4096, .n_layer = 32, .n_head = 32, .n_head_kv = 8,
     .head_dim = 128, .n_ff = 14336, .n_vocab = 32000, .n_ctx_train = 32768, .full_attn_every = 1,
     .published_params = 7.24e9, .source = "huggingface.co/mistralai/Mistral-7B-v0.1 config.json; 7.24B"},
    {.name = "gpt-oss-20b", .arch = "gpt-oss", .n_embd = 2880, .n_layer = 24, .n_head = 64, .n_head_kv = 8,
     .head_dim = 64, .n_vocab = 201088, .n_ctx_train = 131072, .n_expert = 32, .n_expert_used = 4,
     .expert_ff = 2880, .qkv_bias = 1, .o_bias = 1, .sliding_window = 128, .swa_every = 2, .full_attn_every = 1,
     .published_params = 20.91e9,
     .source = "huggingface.co/openai/gpt-oss-20b config.json; gpt-oss model card: 20.91B total, 3.61B active"},
    {.name = "gpt-oss-120b", .arch = "gpt-oss", .n_embd = 2880, .n_layer = 36, .n_head = 64, .n_head_kv = 8,
     .head_dim = 64, .n_vocab = 201088, .n_ctx_train = 131072, .n_expert = 128, .n_expert_used = 4,
     .expert_ff = 2880, .qkv_bias = 1, .o_bias = 1, .sliding_window = 128, .swa_every = 2, .full_attn_every = 1,
     .published_params = 116.83e9,
     .source = "huggingface.co/openai/gpt-oss-120b config.json; gpt-oss model card: 116.83B total, 5.13B active"},
    {.name = "qwen3-30b-a3b", .arch = "qwen3moe", .n_embd = 2048, .n_layer = 48, .n_head = 32, .n_head_kv = 4,
     .head_dim = 128, .n_ff = 0, .n_vocab = 151936, .n_ctx_train = 40960, .n_expert = 128, .n_expert_used = 8,
     .expert_ff = 768, .qk_norm = 1, .full_attn_every = 1, .published_params = 30.5e9,
     .source = "huggingface.co/Qwen/Qwen3-30B-A3B config.json; model card: 30.5B total, 3.3B activated"},
    {.name = "qwen3-next-80b-a3b", .arch = "qwen3next", .n_embd = 2048, .n_layer = 48, .n_head = 16, .n_head_kv = 2,
     .head_dim = 256, .n_ff = 0, .n_vocab = 151936, .n_ctx_train = 262144, .n_expert = 512, .n_expert_used = 10,
     .expert_ff = 512, .shared_ff = 512, .attn_gate = 1, .qk_norm = 1, .full_attn_every = 4,
     .lin_k_heads = 16, .lin_v_heads = 32, .lin_k_dim = 128, .lin_v_dim = 128, .lin_conv = 4,
     .published_params = 80e9,
     .source = "huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct config.json; model card: 80B total, 3B activated"},
};

enum { N_PRESETS = sizeof presets / sizeof presets[0] };

int sd_preset_count(void) { return N_PRESETS; }
const sd_model_shape *sd_preset_at(int i) { return i >= 0 && i < N_PRESETS ? &presets[i] : NULL; }

void sd_preset_list(char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < N_PRESETS && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", presets[i].name);
}

const sd_model_shape *sd_preset_find(const char *id, char *err)
{
    for (int i = 0; id && i < N_PRESETS; i++)
        if (!strcasecmp(presets[i].name, id)) return &presets[i];
    char list[1024];
    sd_preset_list(list, sizeof list);
    snprintf(err, SD_ERR_LEN, "unknown model preset '%.40s' (and no such file); valid presets: %.400s", id ? id : "", list);
    return NULL;
}

/* Layers that attend over the whole context (the rest are linear attention). */
static int is_full_attn(const sd_model_shape *s, int il)
{
    return s->full_attn_every <= 1 || (il + 1) % s->full_attn_every == 0;
}

static double attn_params(const sd_model_shape *s)
{
    double q = (double)s->n_head * s->head_dim, kv = (double)s->n_head_kv * s->head_dim;
    double p = s->n_embd * q * (s->attn_gate ? 2 : 1) + 2 * s->n_embd * kv + q * s->n_embd;
    if (s->qkv_bias) p += q + 2 * kv;
    if (s->o_bias) p += s->n_embd;
    if (s->qk_norm) p += 2.0 * s->head_dim;
    return p;
}

static double linear_attn_params(const sd_model_shape *s)
{
    double kd = (double)s->lin_k_heads * s->lin_k_dim, vd = (double)s->lin_v_heads * s->lin_v_dim;
    return s->n_embd * (2 * kd + 2 * vd)          /* q, k, v and the output gate z */
         + s->n_embd * 2.0 * s->lin_v_heads       /* beta and the decay */
         + (2 * kd + vd) * s->lin_conv            /* short convolution */
         + vd * s->n_embd                         /* output projection */
         + 2.0 * s->lin_v_heads + s->lin_v_dim;   /* A, dt bias, norm */
}

void sd_shape_params(const sd_model_shape *s, sd_params *p)
{
    memset(p, 0, sizeof *p);
    p->embd = (double)s->n_vocab * s->n_embd;
    p->output = s->tied ? 0 : p->embd;
    double ffn_dense = 3.0 * s->n_embd * s->n_ff;
    double moe_dense = 0, experts_layer = 0;
    if (s->n_expert) {
        moe_dense = (double)s->n_embd * s->n_expert;                     /* router */
        if (s->shared_ff) moe_dense += 3.0 * s->n_embd * s->shared_ff + s->n_embd;
        experts_layer = (double)s->n_expert * 3.0 * s->n_embd * s->expert_ff;
    }
    for (int il = 0; il < s->n_layer; il++) {
        double a = is_full_attn(s, il) ? attn_params(s) : linear_attn_params(s);
        p->body += a + ffn_dense + moe_dense + 2.0 * s->n_embd;          /* + two norms */
        p->experts += experts_layer;
    }
    p->body += s->n_embd;                                                 /* final norm */
    p->total = p->embd + p->output + p->body + p->experts;
    double used = s->n_expert ? (double)s->n_expert_used / s->n_expert : 0;
    p->active = p->body + p->experts * used + (s->tied ? p->embd : p->output);
}
