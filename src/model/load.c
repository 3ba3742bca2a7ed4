/* Model loading: read and check the hyper-parameters, find every weight,
 * check its shape and format, and keep views of the mapped data. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/pack.h"
#include "model/model.h"
#include "model/moe.h"
#include "model/offload.h"
#include "runtime/pool.h"
#include "tensor/scale.h"
#include "tensor/types.h"
#include "model/arch_gemma3.h"
#include "model/arch_qwen3next.h"
#include "text/tokenizer.h"

typedef struct { const char *name; sd_arch arch; int neox; } arch_row;
static const arch_row archs[] = {
    {"llama", SD_ARCH_LLAMA, 0},
    {"mistral", SD_ARCH_LLAMA, 0},
    {"qwen2", SD_ARCH_QWEN2, 1},
    {"qwen3", SD_ARCH_QWEN3, 1},
    {"gemma3", SD_ARCH_GEMMA3, 1},
    {"qwen3moe", SD_ARCH_QWEN3MOE, 1},
    {"gpt-oss", SD_ARCH_GPTOSS, 1},
    {"qwen3next", SD_ARCH_QWEN3NEXT, 1},
};

/* "{arch}.suffix" as an integer hyper-parameter; required ones must be present. */
static int hp_u32(const sd_model *m, const char *suffix, int required, uint32_t def, int *out, char *err)
{
    char key[96];
    uint32_t v = def;
    snprintf(key, sizeof key, "%s.%s", m->hp.arch_name, suffix);
    int r = gguf_get_u32(m->gguf, key, &v, err);
    if (r < 0) return -1;
    if (r == 0 && required) return gguf_fail(err, m->path, "missing hyper-parameter %s", key);
    if (v > (1u << 30)) return gguf_fail(err, m->path, "hyper-parameter %s = %u is absurd", key, v);
    *out = (int)v;
    return 0;
}

static int hp_f32(const sd_model *m, const char *suffix, float def, float *out, char *err)
{
    char key[96];
    float v = def;
    snprintf(key, sizeof key, "%s.%s", m->hp.arch_name, suffix);
    if (gguf_get_f32(m->gguf, key, &v, err) < 0) return -1;
    if (!isfinite(v)) return gguf_fail(err, m->path, "hyper-parameter %s is not finite", key);
    *out = v;
    return 0;
}

/* YaRN: factor already in hp->rope_scale; the ramp's bounds default as the reference engine's. */
static int read_yarn(sd_model *m, char *err)
{
    sd_hparams *hp = &m->hp;
    int orig = hp->n_ctx_train;
    float fast = 32.0f, slow = 1.0f;
    if (hp_u32(m, "rope.scaling.original_context_length", 0, (uint32_t)hp->n_ctx_train, &orig, err) ||
        hp_f32(m, "rope.scaling.yarn_beta_fast", 32.0f, &fast, err) ||
        hp_f32(m, "rope.scaling.yarn_beta_slow", 1.0f, &slow, err))
        return -1;
    if (orig < 1 || fast <= 0 || slow <= 0)
        return gguf_fail(err, m->path, "nonsense YaRN parameters (original context %d, beta fast %g, slow %g)", orig,
                         fast, slow);
    sd_rope_yarn_init(&m->yarn, hp->head_dim, hp->rope_base, hp->rope_scale, orig, fast, slow);
    return 0;
}

/* Mixture of experts: {arch}.expert_count routed experts, expert_used_count
 * of them per token, each an FFN of expert_feed_forward_length rows
 * (mixtral: feed_forward_length). */
static int read_experts(sd_model *m, char *err)
{
    sd_hparams *hp = &m->hp;
    int moe_arch = hp->arch == SD_ARCH_QWEN3MOE || hp->arch == SD_ARCH_GPTOSS;
    if (hp_u32(m, "expert_count", moe_arch, 0, &hp->n_expert, err)) return -1;
    if (hp->n_expert == 0) {
        if (moe_arch) return gguf_fail(err, m->path, "%s.expert_count is 0", hp->arch_name);
        return 0;
    }
    if (hp->n_expert > 4096)
        return gguf_fail(err, m->path, "%s.expert_count = %d is absurd", hp->arch_name, hp->n_expert);
    if (hp_u32(m, "expert_used_count", 1, 0, &hp->n_expert_used, err) ||
        hp_u32(m, "expert_feed_forward_length", 0, (uint32_t)hp->n_ff, &hp->n_ff_exp, err))
        return -1;
    if (hp->n_expert_used > SD_MOE_MAX_USED)
        return gguf_fail(err, m->path, "%s.expert_used_count = %d is more than the %d supported", hp->arch_name,
                         hp->n_expert_used, SD_MOE_MAX_USED);
    if (hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert)
        return gguf_fail(err, m->path, "%s.expert_used_count = %d, but there are %d experts", hp->arch_name,
                         hp->n_expert_used, hp->n_expert);
    if (hp->n_ff_exp < 1) return gguf_fail(err, m->path, "%s.expert_feed_forward_length is 0", hp->arch_name);
    return 0;
}

static int read_hparams(sd_model *m, char *err)
{
    sd_hparams *hp = &m->hp;
    gguf_str a;
    int r = gguf_get_str(m->gguf, "general.architecture", &a, err);
    if (r < 0) return -1;
    if (r == 0) return gguf_fail(err, m->path, "not a model: no general.architecture (a vocabulary-only file?)");
    const arch_row *row = NULL;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (gguf_str_eq(a, archs[i].name)) row = &archs[i];
    if (!row)
        return gguf_fail(err, m->path,
                         "unsupported architecture '%.*s' (llama, mistral, qwen2, qwen3, gemma3, qwen3moe, gpt-oss, "
                         "qwen3next are)",
                         (int)(a.len > 32 ? 32 : a.len), a.ptr);
    hp->arch = row->arch;
    hp->rope_neox = row->neox;
    snprintf(hp->arch_name, sizeof hp->arch_name, "%s", row->name);

    if (hp_u32(m, "embedding_length", 1, 0, &hp->n_embd, err) ||
        hp_u32(m, "block_count", 1, 0, &hp->n_layer, err) ||
        hp_u32(m, "feed_forward_length", 1, 0, &hp->n_ff, err) ||
        hp_u32(m, "attention.head_count", 1, 0, &hp->n_head, err) ||
        hp_u32(m, "context_length", 0, 2048, &hp->n_ctx_train, err))
        return -1;
    if (hp->n_head == 0) return gguf_fail(err, m->path, "zero attention heads");
    if (hp_u32(m, "attention.head_count_kv", 0, (uint32_t)hp->n_head, &hp->n_head_kv, err)) return -1;
    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_ff == 0 || hp->n_head_kv == 0)
        return gguf_fail(err, m->path, "zero-sized hyper-parameter (embedding %d, layers %d, ffn %d, kv heads %d)",
                         hp->n_embd, hp->n_layer, hp->n_ff, hp->n_head_kv);
    if (hp->n_head % hp->n_head_kv)
        return gguf_fail(err, m->path, "%d KV heads do not divide %d heads", hp->n_head_kv, hp->n_head);
    if (hp->n_layer > SD_MAX_LAYERS) return gguf_fail(err, m->path, "%d layers is absurd", hp->n_layer);
    if (hp_u32(m, "attention.key_length", 0, (uint32_t)(hp->n_embd / hp->n_head), &hp->head_dim, err)) return -1;
    if (hp->head_dim == 0 || hp->head_dim % 2)
        return gguf_fail(err, m->path, "head size %d must be even and non-zero", hp->head_dim);
    int rope_dim = hp->head_dim;
    if (hp_u32(m, "rope.dimension_count", 0, (uint32_t)hp->head_dim, &rope_dim, err)) return -1;
    if (rope_dim != hp->head_dim && hp->arch != SD_ARCH_QWEN3NEXT)   /* qwen3next: arch_qwen3next.c */
        return gguf_fail(err, m->path, "partial rotary embedding (%d of %d) is not supported", rope_dim, hp->head_dim);
    if (hp_f32(m, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->norm_eps, err) ||
        hp_f32(m, "rope.freq_base", 10000.0f, &hp->rope_base, err))
        return -1;
    if (hp->norm_eps < 0 || hp->rope_base <= 0)
        return gguf_fail(err, m->path, "nonsense rms epsilon %g or rope base %g", hp->norm_eps, hp->rope_base);
    hp->rope_scale = 1.0f;
    char key[96];
    gguf_str st;
    snprintf(key, sizeof key, "%s.rope.scaling.type", hp->arch_name);
    r = gguf_get_str(m->gguf, key, &st, err);
    if (r < 0) return -1;
    if (r == 1 && (gguf_str_eq(st, "linear") || gguf_str_eq(st, "yarn"))) {
        if (hp_f32(m, "rope.scaling.factor", 1.0f, &hp->rope_scale, err)) return -1;
        if (hp->rope_scale <= 0) return gguf_fail(err, m->path, "rope scaling factor must be positive");
        if (gguf_str_eq(st, "yarn") && read_yarn(m, err)) return -1;
    } else if (r == 1 && !gguf_str_eq(st, "none")) {
        return gguf_fail(err, m->path, "rope scaling type '%.*s' is not supported (linear, yarn are)",
                         (int)(st.len > 32 ? 32 : st.len), st.ptr);
    }
    m->embd_scale = m->q_scale = 1.0f;
    if (read_experts(m, err)) return -1;
    if (hp->arch == SD_ARCH_QWEN3NEXT) return sd_qnext_hparams(m, err);
    return hp->arch == SD_ARCH_GEMMA3 ? sd_gemma3_hparams(m, err) : 0;
}

/* A matrix weight of the expected shape, kept mapped. */
static int get_weight(sd_model *m, const char *name, int64_t cols, int64_t rows, int optional, sd_weight *w, char *err)
{
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    if (!t) return optional ? 0 : gguf_fail(err, m->path, "missing tensor %s", name);
    if (t->n_dims > 2 || t->ne[0] != cols || t->ne[1] != rows)
        return gguf_fail(err, m->path, "tensor %s has shape [%lld, %lld], expected [%lld, %lld]", name,
                         (long long)t->ne[0], (long long)t->ne[1], (long long)cols, (long long)rows);
    const sd_type_traits *tr = sd_type_get(t->type);
    if (!tr || !tr->to_float || !tr->vec_dot)
        return gguf_fail(err, m->path, "tensor %s: format %s cannot be computed with", name, sd_type_name(t->type));
    w->data = t->data;
    w->type = t->type;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = sd_row_bytes(t->type, cols);
    w->scale = sd_tensor_scale(m->gguf, t);
    return 0;
}

int sd_load_matrix(sd_model *m, const char *name, int64_t cols, int64_t rows, int optional, sd_weight *w, char *err)
{
    return get_weight(m, name, cols, rows, optional, w, err);
}

/* A small vector (norm weights, biases) converted to an owned F32 copy. */
static int get_vector(sd_model *m, const char *name, int64_t n, int optional, float **out, char *err)
{
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    *out = NULL;
    if (!t) return optional ? 0 : gguf_fail(err, m->path, "missing tensor %s", name);
    if (t->n_elements != (uint64_t)n || t->ne[0] != n)
        return gguf_fail(err, m->path, "tensor %s has %llu elements, expected %lld", name,
                         (unsigned long long)t->n_elements, (long long)n);
    const sd_type_traits *tr = sd_type_get(t->type);
    if (!tr || !tr->to_float) return gguf_fail(err, m->path, "tensor %s: format %s unreadable", name, sd_type_name(t->type));
    *out = malloc((size_t)n * sizeof **out);
    if (!*out) return gguf_fail(err, m->path, "out of memory");
    tr->to_float(t->data, *out, n);
    float s = sd_tensor_scale(m->gguf, t);
    for (int64_t i = 0; i < n; i++) (*out)[i] *= s;
    return 0;
}

int sd_load_vector(sd_model *m, const char *name, int64_t n, int optional, float **out, char *err)
{
    return get_vector(m, name, n, optional, out, err);
}

static int load_layer(sd_model *m, int il, char *err)
{
    const sd_hparams *hp = &m->hp;
    sd_layer *L = &m->layers[il];
    int64_t e = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim, kv = (int64_t)hp->n_head_kv * hp->head_dim;
    char n[16][64];
    static const char *sfx[16] = {"attn_norm.weight", "ffn_norm.weight", "attn_q.weight", "attn_k.weight",
                                  "attn_v.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                  "ffn_down.weight", "attn_q.bias", "attn_k.bias", "attn_v.bias",
                                  "attn_q_norm.weight", "attn_k_norm.weight", "post_attention_norm.weight",
                                  "post_ffw_norm.weight"};
    for (int i = 0; i < 16; i++) snprintf(n[i], sizeof n[i], "blk.%d.%s", il, sfx[i]);
    int gptoss = hp->arch == SD_ARCH_GPTOSS, qwen2 = hp->arch == SD_ARCH_QWEN2 || gptoss;
    int gemma3 = hp->arch == SD_ARCH_GEMMA3;
    int qwen3 = hp->arch == SD_ARCH_QWEN3 || hp->arch == SD_ARCH_QWEN3MOE || gemma3;   /* per-head q/k norms */
    int qnext = hp->arch == SD_ARCH_QWEN3NEXT;
    if (gptoss || qnext) snprintf(n[1], sizeof n[1], "blk.%d.post_attention_norm.weight", il);   /* its pre-FFN norm */
    if (qnext) {   /* gated attention or linear attention, and the shared expert: arch_qwen3next.c */
        if (get_vector(m, n[0], e, 0, &L->attn_norm, err) || get_vector(m, n[1], e, 0, &L->ffn_norm, err) ||
            sd_qnext_layer(m, il, err))
            return -1;
    } else if (get_vector(m, n[0], e, 0, &L->attn_norm, err) || get_vector(m, n[1], e, 0, &L->ffn_norm, err) ||
        get_weight(m, n[2], e, q, 0, &L->wq, err) || get_weight(m, n[3], e, kv, 0, &L->wk, err) ||
        get_weight(m, n[4], e, kv, 0, &L->wv, err) || get_weight(m, n[5], q, e, 0, &L->wo, err) ||
        get_vector(m, n[9], q, !qwen2, &L->bq, err) || get_vector(m, n[10], kv, !qwen2, &L->bk, err) ||
        get_vector(m, n[11], kv, !qwen2, &L->bv, err) ||
        get_vector(m, n[12], hp->head_dim, !qwen3, &L->q_norm, err) ||
        get_vector(m, n[13], hp->head_dim, !qwen3, &L->k_norm, err) ||
        (!gptoss && (get_vector(m, n[14], e, !gemma3, &L->post_attn_norm, err) ||   /* gpt-oss: its FFN norm */
                     get_vector(m, n[15], e, !gemma3, &L->post_ffn_norm, err))))
        return -1;
    if (hp->n_expert) {
        if (sd_moe_load_layer(m, il, err)) return -1;
    } else if (get_weight(m, n[6], e, hp->n_ff, 0, &L->w_gate, err) ||
               get_weight(m, n[7], e, hp->n_ff, 0, &L->w_up, err) ||
               get_weight(m, n[8], hp->n_ff, e, 0, &L->w_down, err)) {
        return -1;
    }
    if (gptoss) {
        char b[64];
        snprintf(b, sizeof b, "blk.%d.attn_output.bias", il);
        if (get_vector(m, b, e, 0, &L->bo, err)) return -1;
        snprintf(b, sizeof b, "blk.%d.attn_sinks.weight", il);
        if (get_vector(m, b, hp->n_head, 0, &L->attn_sinks, err)) return -1;
        L->swa = il % 2 == 0 ? m->swa_window : 0;   /* sliding window on even layers */
    }
    L->rope_base = hp->rope_base;
    L->rope_scale = hp->rope_scale;
    return gemma3 ? sd_gemma3_layer(m, il, err) : 0;
}

/* The most common weight format by bytes names the model ("Q4_0"), with
 * "mixed" when no format holds 90% of the matrix bytes. */
static void summarize(sd_model *m)
{
    uint64_t bytes[SD_TYPE_COUNT] = {0}, total = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const gguf_tensor *t = &m->gguf->tensors[i];
        m->n_params += t->n_elements;
        m->weight_bytes += t->n_bytes;
        if (t->n_dims >= 2 && t->type < SD_TYPE_COUNT) { bytes[t->type] += t->n_bytes; total += t->n_bytes; }
    }
    int best = 0;
    for (int i = 1; i < SD_TYPE_COUNT; i++)
        if (bytes[i] > bytes[best]) best = i;
    snprintf(m->type_name, sizeof m->type_name, "%s%s", sd_type_name((uint32_t)best),
             bytes[best] * 10 < total * 9 ? " - mixed" : "");
}

static int load_tensors(sd_model *m, char *err)
{
    const sd_hparams *hp = &m->hp;
    const gguf_tensor *te = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te) return gguf_fail(err, m->path, "missing tensor token_embd.weight");
    if (te->ne[1] > (1 << 24)) return gguf_fail(err, m->path, "vocabulary of %lld tokens is absurd", (long long)te->ne[1]);
    m->hp.n_vocab = (int)te->ne[1];
    if (get_weight(m, "token_embd.weight", hp->n_embd, hp->n_vocab, 0, &m->tok_embd, err)) return -1;
    if (get_vector(m, "output_norm.weight", hp->n_embd, 0, &m->output_norm, err)) return -1;
    if (get_weight(m, "output.weight", hp->n_embd, hp->n_vocab, 1, &m->output, err)) return -1;
    if (!m->output.data) m->output = m->tok_embd;  /* tied embeddings */
    if (get_vector(m, "rope_freqs.weight", hp->head_dim / 2, 1, &m->rope_freq_factors, err)) return -1;
    if (hp->arch == SD_ARCH_GPTOSS) {
        if (hp_u32(m, "attention.sliding_window", 1, 0, &m->swa_window, err)) return -1;
        if (m->swa_window < 1) return gguf_fail(err, m->path, "%s.attention.sliding_window is 0", hp->arch_name);
    }
    if ((uint64_t)hp->n_layer * 9 > m->gguf->n_tensors)
        return gguf_fail(err, m->path, "%d layers but only %llu tensors", hp->n_layer,
                         (unsigned long long)m->gguf->n_tensors);
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return gguf_fail(err, m->path, "out of memory");
    for (int il = 0; il < hp->n_layer; il++)
        if (load_layer(m, il, err)) return -1;
    return 0;
}

/* The Jinja chat template, copied so it outlives the mapping's lack of a
 * terminator; a missing or wrongly typed one is just absent (chat needs
 * --chat-template then), never a reason to refuse the model. */
static int read_chat_template(sd_model *m, char *err)
{
    gguf_str s;
    char scratch[SD_ERR_LEN];
    if (gguf_get_str(m->gguf, "tokenizer.chat_template", &s, scratch) != 1 || s.len == 0) return 0;
    if (!(m->chat_template = malloc(s.len + 1))) return gguf_fail(err, m->path, "out of memory");
    memcpy(m->chat_template, s.ptr, s.len);
    m->chat_template[s.len] = 0;
    return 0;
}

int sd_model_load(const char *path, sd_model **out, char *err)
{
    sd_model *m = calloc(1, sizeof *m);
    if (!m) return gguf_fail(err, path, "out of memory");
    snprintf(m->path, sizeof m->path, "%s", path);
    if (gguf_open(path, &m->gguf, err) || read_hparams(m, err) || load_tensors(m, err) ||
        sd_tokenizer_from_gguf(m->gguf, &m->tok, err) || read_chat_template(m, err)) {
        sd_model_free(m);
        return -1;
    }
    if (sd_tokenizer_n_vocab(m->tok) != m->hp.n_vocab) {
        gguf_fail(err, path, "tokenizer has %d tokens but the embedding has %d rows", sd_tokenizer_n_vocab(m->tok),
                  m->hp.n_vocab);
        sd_model_free(m);
        return -1;
    }
    if (sd_model_pack(m) < 0) {
        gguf_fail(err, path, "out of memory");
        sd_model_free(m);
        return -1;
    }
    summarize(m);
    *out = m;
    return 0;
}

void sd_model_free(sd_model *m)
{
    if (!m) return;
    sd_offload_free(m);
    sd_model_packer_free(m);
    if (m->layers)
        for (int i = 0; i < m->hp.n_layer; i++) {
            sd_layer *L = &m->layers[i];
            free(L->attn_norm); free(L->ffn_norm); free(L->bq); free(L->bk); free(L->bv);
            free(L->q_norm); free(L->k_norm); free(L->attn_sinks); free(L->post_attn_norm); free(L->post_ffn_norm);
            free(L->bo);
            sd_moe_free(L->moe);
            sd_weight *lw[] = {SD_LAYER_MATRICES(L)};
            for (int k = 0; k < SD_LAYER_N_MATRICES; k++) sd_weight_unpack(lw[k]);
        }
    sd_weight_unpack(&m->output);
    sd_qnext_free(m);
    free(m->layers);
    free(m->output_norm);
    free(m->rope_freq_factors);
    free(m->chat_template);
    if (m->tok) sd_tokenizer_free(m->tok);
    gguf_close(m->gguf);
    free(m);
}

const sd_hparams *sd_model_hparams(const sd_model *m) { return &m->hp; }
sd_tokenizer *sd_model_tokenizer(sd_model *m) { return m->tok; }
uint64_t sd_model_n_params(const sd_model *m) { return m->n_params; }
uint64_t sd_model_weight_bytes(const sd_model *m) { return m->weight_bytes; }
const char *sd_model_path(const sd_model *m) { return m->path; }
const char *sd_model_chat_template(const sd_model *m) { return m->chat_template; }
const char *sd_model_type_name(const sd_model *m) { return m->type_name; }
