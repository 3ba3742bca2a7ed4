/* A model's shape and its real weight bytes from the GGUF header alone: a
 * 40 GB file is never mapped, only its metadata and tensor table are read. */
#include <stdio.h>
#include <string.h>

#include "showdown.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "plan/plan.h"
#include "tensor/types.h"

/* "{arch}.{key}" as an integer; 0 absent, 1 found, -1 wrong type (err set). */
static int arch_u32(const gguf_file *f, const char *arch, const char *key, int *out, char *err)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t v;
    int rc = gguf_get_u32(f, full, &v, err);
    if (rc == 1) {
        if (v > 1u << 30) { snprintf(err, SD_ERR_LEN, "%s: %s = %u is implausible", f->path, full, v); return -1; }
        *out = (int)v;
    }
    if (rc == -1) {   /* some architectures store per-layer arrays: take the largest */
        const gguf_kv *kv = gguf_find(f, full);
        if (kv && kv->type == GGUF_ARRAY && (kv->arr_type == GGUF_INT32 || kv->arr_type == GGUF_UINT32) &&
            kv->arr_n > 0) {
            int best = 0;
            for (uint64_t i = 0; i < kv->arr_n; i++) {
                int32_t x;
                memcpy(&x, kv->arr_data + 4 * i, 4);
                if (x > best) best = x;
            }
            *out = best;
            return 1;
        }
    }
    return rc;
}

static int need(const gguf_file *f, const char *arch, const char *key, int *out, char *err)
{
    int rc = arch_u32(f, arch, key, out, err);
    if (rc == 1 && *out > 0) return 0;
    if (rc == 0 || rc == 1)
        snprintf(err, SD_ERR_LEN, "%s: not a usable model header: %s.%s is missing or zero", f->path, arch, key);
    return -1;
}

static double tensor_bytes(const gguf_tensor *t)
{
    if (t->n_bytes) return (double)t->n_bytes;
    return (double)t->n_elements * sd_plan_type_bpw((int)t->type) / 8.0;
}

static int fill(const gguf_file *f, sd_gguf_model *g, char *err)
{
    sd_model_shape *s = &g->shape;
    gguf_str a;
    if (gguf_get_str(f, "general.architecture", &a, err) != 1) {
        snprintf(err, SD_ERR_LEN, "%s: not a model: no general.architecture in the header", f->path);
        return -1;
    }
    if (a.len == 0 || a.len >= sizeof s->arch) { snprintf(err, SD_ERR_LEN, "%s: bad general.architecture", f->path); return -1; }
    memcpy(s->arch, a.ptr, a.len);
    s->arch[a.len] = 0;
    const char *slash = strrchr(f->path, '/');
    snprintf(s->name, sizeof s->name, "%.63s", slash ? slash + 1 : f->path);
    s->source = "GGUF header";
    const gguf_tensor *embd = gguf_find_tensor(f, "token_embd.weight");
    if (!f->n_tensors || !embd) {
        snprintf(err, SD_ERR_LEN, "%s: not a model: %s", f->path,
                 f->n_tensors ? "no token_embd.weight tensor" : "no tensors (a vocabulary-only file?)");
        return -1;
    }
    if (need(f, s->arch, "embedding_length", &s->n_embd, err) || need(f, s->arch, "block_count", &s->n_layer, err) ||
        need(f, s->arch, "attention.head_count", &s->n_head, err))
        return -1;
    s->n_head_kv = s->n_head;
    if (arch_u32(f, s->arch, "attention.head_count_kv", &s->n_head_kv, err) < 0) return -1;
    s->head_dim = s->n_embd / s->n_head;
    if (arch_u32(f, s->arch, "attention.key_length", &s->head_dim, err) < 0) return -1;
    if (arch_u32(f, s->arch, "feed_forward_length", &s->n_ff, err) < 0 ||
        arch_u32(f, s->arch, "context_length", &s->n_ctx_train, err) < 0 ||
        arch_u32(f, s->arch, "expert_count", &s->n_expert, err) < 0 ||
        arch_u32(f, s->arch, "expert_used_count", &s->n_expert_used, err) < 0 ||
        arch_u32(f, s->arch, "expert_feed_forward_length", &s->expert_ff, err) < 0 ||
        arch_u32(f, s->arch, "expert_shared_feed_forward_length", &s->shared_ff, err) < 0 ||
        arch_u32(f, s->arch, "attention.sliding_window", &s->sliding_window, err) < 0)
        return -1;
    /* The cost model walks the layers: a hostile count would hang it. */
    if (s->n_layer > SD_MAX_LAYERS) {
        snprintf(err, SD_ERR_LEN, "%s: %d layers is absurd", f->path, s->n_layer);
        return -1;
    }
    if (s->n_head_kv <= 0 || s->head_dim <= 0 || s->n_head_kv > s->n_head) {
        snprintf(err, SD_ERR_LEN, "%s: inconsistent attention heads (%d heads, %d KV heads, head size %d)",
                 f->path, s->n_head, s->n_head_kv, s->head_dim);
        return -1;
    }
    if (s->n_expert && (s->n_expert_used <= 0 || s->n_expert_used > s->n_expert)) {
        snprintf(err, SD_ERR_LEN, "%s: %d of %d experts per token", f->path, s->n_expert_used, s->n_expert);
        return -1;
    }
    /* Sliding-window patterns the header does not spell out (llama.cpp hard-codes them). */
    if (!strcmp(s->arch, "gemma3")) s->swa_every = 6;
    else if (!strcmp(s->arch, "gpt-oss")) s->swa_every = 2;
    else s->sliding_window = 0;
    s->full_attn_every = 1;
    if (!strcmp(s->arch, "qwen3next")) {
        s->full_attn_every = 4;
        arch_u32(f, s->arch, "full_attention_interval", &s->full_attn_every, err);
        arch_u32(f, s->arch, "ssm.group_count", &s->lin_k_heads, err);
        arch_u32(f, s->arch, "ssm.time_step_rank", &s->lin_v_heads, err);
        arch_u32(f, s->arch, "ssm.state_size", &s->lin_k_dim, err);
        arch_u32(f, s->arch, "ssm.conv_kernel", &s->lin_conv, err);
        /* value head size = ssm.inner_size / value heads (as llama.cpp reads it) */
        int inner = 0;
        arch_u32(f, s->arch, "ssm.inner_size", &inner, err);
        s->lin_v_dim = inner > 0 && s->lin_v_heads > 0 ? inner / s->lin_v_heads : s->lin_k_dim;
    }
    s->n_vocab = embd->ne[1] > 0 && embd->ne[1] < (1 << 30) ? (int)embd->ne[1] : 0;
    if (embd->ne[0] != s->n_embd || s->n_vocab <= 0) {
        snprintf(err, SD_ERR_LEN, "%s: token_embd.weight is %lldx%lld, expected rows of %d", f->path,
                 (long long)embd->ne[0], (long long)embd->ne[1], s->n_embd);
        return -1;
    }
    s->tied = gguf_find_tensor(f, "output.weight") == NULL;

    /* Parameters and bytes by class; the dominant type names the file's format. */
    double by_type[SD_TYPE_COUNT] = {0};
    sd_params *p = &g->params;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        double n = (double)t->n_elements, b = tensor_bytes(t);
        if (gguf_str_eq(t->name, "token_embd.weight")) { p->embd += n; g->bytes_embd += b; }
        else if (gguf_str_eq(t->name, "output.weight")) { p->output += n; g->bytes_output += b; }
        else {
            int expert = 0;
            for (uint64_t k = 0; k + 5 <= t->name.len; k++)
                if (!memcmp(t->name.ptr + k, "_exps", 5)) expert = 1;
            if (expert) { p->experts += n; g->bytes_experts += b; }
            else { p->body += n; g->bytes_body += b; }
            if (t->type < SD_TYPE_COUNT && t->n_dims >= 2) by_type[t->type] += b;
        }
    }
    p->total = p->embd + p->output + p->body + p->experts;
    double used = s->n_expert ? (double)s->n_expert_used / s->n_expert : 0;
    p->active = p->body + p->experts * used + (s->tied ? p->embd : p->output);
    int best = 0;
    for (int t = 1; t < SD_TYPE_COUNT; t++)
        if (by_type[t] > by_type[best]) best = t;
    snprintf(g->file_type, sizeof g->file_type, "%s", sd_type_name((uint32_t)best));
    return 0;
}

int sd_shape_from_gguf(const char *path, sd_gguf_model *out, char *err)
{
    memset(out, 0, sizeof *out);
    gguf_file *f = NULL;
    if (gguf_open_header(path, &f, err)) return -1;
    int rc = fill(f, out, err);
    if (rc) gguf_msg_clean(err);   /* messages quote the file's architecture name */
    gguf_close(f);
    return rc;
}
