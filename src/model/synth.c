/* Writing a synthesized model: hyper-parameters under llama.cpp's key names,
 * a vocabulary, then every tensor generated row by row inside the writer's
 * stream (see quant/rows.h), in the format or recipe asked for. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/synth.h"
#include "quant/recipe.h"
#include "quant/rows.h"
#include "showdown.h"
#include "tensor/types.h"

#define SIGMA 0.02f   /* standard deviation of the random weights */

enum { GEN_RANDOM, GEN_ONES, GEN_ROPE_FREQS, GEN_NEG_EXP };   /* NEG_EXP: -exp(sigma z), qwen3next's ssm_a */

typedef struct {
    char name[64];
    int n_dims;
    int64_t ne[3];
    int gen;
    float sigma;
    uint32_t type;
    float scale;       /* NVFP4 per-tensor scale */
} synth_tensor;

typedef struct {
    synth_tensor *t;
    int n, cap;
} tensor_list;

sd_synth_params sd_synth_default_params(void)
{
    sd_synth_params p;
    memset(&p, 0, sizeof p);
    p.seed = 42;
    return p;
}

/* ---- random numbers ----------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Unit-variance, bell-shaped, bounded (|z| < 3.47) and bit-reproducible on
 * every platform: the sum of four 16-bit uniforms (Irwin-Hall), centred. */
static float normalish(uint64_t *s)
{
    uint64_t r = splitmix64(s);
    int32_t sum = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) + (int32_t)((r >> 32) & 0xffff) +
                  (int32_t)(r >> 48) - 131070;
    return (float)sum * (1.7320508f / 65536.0f);
}
#define NORMALISH_MAX 3.4641016f

/* Every row has its own stream, so rows can be made in any order. */
static uint64_t row_stream(uint64_t seed, int tensor, int64_t row)
{
    uint64_t s = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(tensor + 1)) ^ (0xD1B54A32D192ED03ull * (uint64_t)row);
    splitmix64(&s);
    return s;
}

/* ---- the tensors ----------------------------------------------------------- */

/* Rows the generator fills: all of a 3-D tensor's matrices one after another. */
static int64_t n_rows(const synth_tensor *t) { return t->ne[1] * t->ne[2]; }

static int add(tensor_list *l, const char *name, int64_t ne0, int64_t ne1, int gen, float sigma)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        synth_tensor *n = realloc(l->t, (size_t)cap * sizeof *n);
        if (!n) return -1;
        l->t = n;
        l->cap = cap;
    }
    synth_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 > 1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = 1;
    t->gen = gen;
    t->sigma = sigma;
    t->type = SD_TYPE_F32;
    t->scale = 1.0f;
    return 0;
}

static int add3(tensor_list *l, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, int gen, float sigma)
{
    if (add(l, name, ne0, ne1, gen, sigma)) return -1;
    synth_tensor *t = &l->t[l->n - 1];
    t->ne[2] = ne2;
    if (ne2 > 1) t->n_dims = 3;
    return 0;
}

/* A layer's experts in the reference layout: the router {n_embd, n_expert}
 * (kept F32 by the recipes), 3-D ffn_{gate,up,down}_exps, and gpt-oss's
 * router and expert biases. The router's sigma is larger so that routing
 * is decided, not a near-tie of tiny logits. */
static int list_experts(const sd_synth_shape *s, tensor_list *l, int i, int gptoss, float res)
{
    int64_t e = s->n_embd, f = s->n_ff_exp, x = s->n_expert;
    char n[64];
    int rc = 0;
#define T(sfx, a, b, c, g, sg) (snprintf(n, sizeof n, "blk.%d." sfx, i), rc |= add3(l, n, a, b, c, g, sg))
    T("ffn_gate_inp.weight", e, x, 1, GEN_RANDOM, 1.0f);
    T("ffn_gate_exps.weight", e, f, x, GEN_RANDOM, SIGMA);
    T("ffn_up_exps.weight", e, f, x, GEN_RANDOM, SIGMA);
    T("ffn_down_exps.weight", f, e, x, GEN_RANDOM, res);
    if (gptoss) {
        T("ffn_gate_inp.bias", x, 1, 1, GEN_RANDOM, SIGMA);
        T("ffn_gate_exps.bias", f, x, 1, GEN_RANDOM, SIGMA);
        T("ffn_up_exps.bias", f, x, 1, GEN_RANDOM, SIGMA);
        T("ffn_down_exps.bias", e, x, 1, GEN_RANDOM, SIGMA);
    }
#undef T
    return rc;
}

/* qwen3next's layer il as the reference fork names it: gated attention
 * (attn_q twice as wide: query and gate per head) on every attn_interval-th
 * layer, gated DeltaNet on the others, then the routed experts and the
 * shared expert with its gate. The decay's ssm_a is negative (-exp), as the
 * converter stores -exp(A_log). */
static int list_qwen3next_layer(const sd_synth_shape *s, tensor_list *l, int i, float res)
{
    int64_t e = s->n_embd, q = (int64_t)s->n_head * s->head_dim, kv = (int64_t)s->n_head_kv * s->head_dim;
    int64_t kd = (int64_t)s->ssm_state * s->ssm_groups, vd = (int64_t)s->ssm_state * s->ssm_heads, h = s->ssm_heads;
    int64_t fs = s->n_ff_shexp;
    char n[64];
    int rc = 0;
#define T(sfx, a, b, g, sg) (snprintf(n, sizeof n, "blk.%d." sfx, i), rc |= add(l, n, a, b, g, sg))
    T("attn_norm.weight", e, 1, GEN_ONES, 0);
    if ((i + 1) % s->attn_interval == 0) {
        T("attn_q.weight", e, 2 * q, GEN_RANDOM, SIGMA);
        T("attn_k.weight", e, kv, GEN_RANDOM, SIGMA);
        T("attn_v.weight", e, kv, GEN_RANDOM, SIGMA);
        T("attn_q_norm.weight", s->head_dim, 1, GEN_ONES, 0);
        T("attn_k_norm.weight", s->head_dim, 1, GEN_ONES, 0);
        T("attn_output.weight", q, e, GEN_RANDOM, res);
    } else {
        T("attn_qkv.weight", e, 2 * kd + vd, GEN_RANDOM, SIGMA);
        T("attn_gate.weight", e, vd, GEN_RANDOM, SIGMA);
        T("ssm_conv1d.weight", s->ssm_conv, 2 * kd + vd, GEN_RANDOM, 0.5f);
        T("ssm_dt.bias", h, 1, GEN_RANDOM, 1.0f);
        T("ssm_a", h, 1, GEN_NEG_EXP, 0.5f);
        T("ssm_ba.weight", e, 2 * h, GEN_RANDOM, SIGMA);
        T("ssm_norm.weight", s->ssm_state, 1, GEN_ONES, 0);
        T("ssm_out.weight", vd, e, GEN_RANDOM, res);
    }
    T("post_attention_norm.weight", e, 1, GEN_ONES, 0);
    rc |= list_experts(s, l, i, 0, res);
    T("ffn_gate_inp_shexp.weight", e, 1, GEN_RANDOM, 1.0f / sqrtf((float)e));
    T("ffn_gate_shexp.weight", e, fs, GEN_RANDOM, SIGMA);
    T("ffn_up_shexp.weight", e, fs, GEN_RANDOM, SIGMA);
    T("ffn_down_shexp.weight", fs, e, GEN_RANDOM, res);
#undef T
    return rc;
}

/* llama.cpp's tensor names and shapes ([row length, rows]). Projections into
 * the residual stream get a smaller sigma (GPT-2 style, 1/sqrt(2 layers)) so
 * activations stay the same size however deep the model is. */
static int list_tensors(const sd_synth_shape *s, tensor_list *l)
{
    int64_t e = s->n_embd, q = (int64_t)s->n_head * s->head_dim, kv = (int64_t)s->n_head_kv * s->head_dim;
    float res = SIGMA / sqrtf(2.0f * (float)s->n_layer);
    int gptoss = !strcmp(s->arch, "gpt-oss"), qwen2 = !strcmp(s->arch, "qwen2") || gptoss;
    int gemma3 = !strcmp(s->arch, "gemma3");
    int qwen3 = !strcmp(s->arch, "qwen3") || !strcmp(s->arch, "qwen3moe") || gemma3;
    char n[64];
    int rc = add(l, "token_embd.weight", e, s->n_vocab, GEN_RANDOM, SIGMA);
    if (s->rope_llama3_factor > 0) rc |= add(l, "rope_freqs.weight", s->head_dim / 2, 1, GEN_ROPE_FREQS, 0);
    for (int i = 0; i < s->n_layer && !rc; i++) {
        if (!strcmp(s->arch, "qwen3next")) {
            rc |= list_qwen3next_layer(s, l, i, res);
            continue;
        }
#define T(sfx, a, b, g, sg) (snprintf(n, sizeof n, "blk.%d." sfx, i), rc |= add(l, n, a, b, g, sg))
        T("attn_norm.weight", e, 1, GEN_ONES, 0);
        T("attn_q.weight", e, q, GEN_RANDOM, SIGMA);
        T("attn_k.weight", e, kv, GEN_RANDOM, SIGMA);
        T("attn_v.weight", e, kv, GEN_RANDOM, SIGMA);
        if (qwen2) {
            T("attn_q.bias", q, 1, GEN_RANDOM, SIGMA);
            T("attn_k.bias", kv, 1, GEN_RANDOM, SIGMA);
            T("attn_v.bias", kv, 1, GEN_RANDOM, SIGMA);
        }
        if (qwen3) {
            T("attn_q_norm.weight", s->head_dim, 1, GEN_ONES, 0);
            T("attn_k_norm.weight", s->head_dim, 1, GEN_ONES, 0);
        }
        T("attn_output.weight", q, e, GEN_RANDOM, res);
        if (gptoss) {
            T("attn_output.bias", e, 1, GEN_RANDOM, SIGMA);
            T("attn_sinks.weight", s->n_head, 1, GEN_RANDOM, 1.0f);
        }
        if (gptoss || gemma3) T("post_attention_norm.weight", e, 1, GEN_ONES, 0);   /* gpt-oss: its pre-FFN norm */
        if (gemma3) T("post_ffw_norm.weight", e, 1, GEN_ONES, 0);
        if (!gptoss) T("ffn_norm.weight", e, 1, GEN_ONES, 0);
        if (s->n_expert) {
            rc |= list_experts(s, l, i, gptoss, res);
            continue;
        }
        T("ffn_gate.weight", e, s->n_ff, GEN_RANDOM, SIGMA);
        T("ffn_up.weight", e, s->n_ff, GEN_RANDOM, SIGMA);
        T("ffn_down.weight", s->n_ff, e, GEN_RANDOM, res);
#undef T
    }
    rc |= add(l, "output_norm.weight", e, 1, GEN_ONES, 0);
    if (!s->tied) rc |= add(l, "output.weight", e, s->n_vocab, GEN_RANDOM, SIGMA);
    return rc ? -1 : 0;
}

/* Llama 3.1's rope scaling as llama.cpp stores it: one divisor per frequency
 * (1 for short wavelengths, the factor for long ones, smooth in between). */
static void rope_freqs(const sd_synth_shape *s, float *out)
{
    const float lo_factor = 1.0f, hi_factor = 4.0f, orig_ctx = 8192.0f, pi = 3.14159265358979f;
    float lo_wavelen = orig_ctx / lo_factor, hi_wavelen = orig_ctx / hi_factor;
    for (int i = 0; i < s->head_dim / 2; i++) {
        float freq = powf(s->rope_base, -2.0f * (float)i / (float)s->head_dim), wavelen = 2 * pi / freq;
        if (wavelen < hi_wavelen) out[i] = 1.0f;
        else if (wavelen > lo_wavelen) out[i] = s->rope_llama3_factor;
        else {
            float smooth = (orig_ctx / wavelen - lo_factor) / (hi_factor - lo_factor);
            out[i] = 1.0f / ((1 - smooth) / s->rope_llama3_factor + smooth);
        }
    }
}

typedef struct {
    const sd_synth_shape *shape;
    const synth_tensor *t;
    int id;
    uint64_t seed;
} gen_ctx;

static void gen_rows(void *arg, int64_t row0, int64_t n, float *dst)
{
    const gen_ctx *g = arg;
    int64_t cols = g->t->ne[0];
    for (int64_t r = 0; r < n; r++) {
        float *d = dst + r * cols;
        if (g->t->gen == GEN_ONES) {
            for (int64_t c = 0; c < cols; c++) d[c] = 1.0f;
        } else if (g->t->gen == GEN_ROPE_FREQS) {
            rope_freqs(g->shape, d);
        } else if (g->t->gen == GEN_NEG_EXP) {
            uint64_t st = row_stream(g->seed, g->id, row0 + r);
            for (int64_t c = 0; c < cols; c++) d[c] = -expf(g->t->sigma * normalish(&st));
        } else {
            uint64_t st = row_stream(g->seed, g->id, row0 + r);
            for (int64_t c = 0; c < cols; c++) d[c] = g->t->sigma * normalish(&st);
        }
    }
}

/* ---- quantized matrices: blocks drawn from a pool ------------------------
 * A real quantizer searches for the best scales and is far too slow to fill
 * a 70B file with random numbers (hours). Random weights need no care: the
 * blocks of a quantized matrix are drawn, row stream by row stream, from a
 * pool of blocks quantized once per (format, sigma). The values keep the
 * same distribution; writing runs at disk speed. */

#define POOL_VALUES (1 << 16)   /* 256 K-quant super-blocks, 2048 blocks of 32 */

typedef struct {
    uint32_t type;
    float sigma, scale;
    int64_t block, n_blocks;
    size_t block_bytes;
    uint8_t *data;
} block_pool;

typedef struct {
    block_pool p[16];
    int n;
} pool_set;

static const block_pool *pool_get(pool_set *ps, const synth_tensor *t, const sd_synth_shape *s, uint64_t seed,
                                  sd_pool *threads)
{
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i].type == t->type && ps->p[i].sigma == t->sigma) return &ps->p[i];
    if (ps->n == (int)(sizeof ps->p / sizeof ps->p[0])) return NULL;
    block_pool *bp = &ps->p[ps->n];
    const sd_type_traits *tr = sd_type_get(t->type);
    bp->type = t->type;
    bp->sigma = t->sigma;
    bp->scale = t->scale;
    bp->block = tr->block;
    bp->block_bytes = (size_t)tr->block_bytes;
    bp->n_blocks = POOL_VALUES / bp->block;
    if (!(bp->data = malloc((size_t)bp->n_blocks * bp->block_bytes))) return NULL;
    /* the pool's values: rows of one block, from streams no tensor uses */
    synth_tensor row = *t;
    row.ne[0] = bp->block;
    gen_ctx g = {s, &row, -1 - ps->n, seed};
    if (sd_rows_encode(threads, t->type, t->scale, bp->n_blocks, bp->block, gen_rows, &g, bp->data)) {
        free(bp->data);
        return NULL;
    }
    ps->n++;
    return bp;
}

static void pool_free(pool_set *ps)
{
    for (int i = 0; i < ps->n; i++) free(ps->p[i].data);
}

static int write_pooled(gguf_writer *w, const char *path, const synth_tensor *t, int id, const block_pool *bp,
                        uint64_t seed, char *err)
{
    size_t rb = sd_row_bytes(t->type, t->ne[0]);
    int64_t per_row = t->ne[0] / bp->block, cr = (int64_t)((16u << 20) / rb);
    if (cr < 1) cr = 1;
    if (cr > n_rows(t)) cr = n_rows(t);
    uint8_t *buf = malloc((size_t)cr * rb);
    if (!buf) {
        snprintf(err, SD_ERR_LEN, "%s: out of memory", path);
        return -1;
    }
    int rc = 0;
    for (int64_t r0 = 0; r0 < n_rows(t) && !rc; r0 += cr) {
        int64_t n = n_rows(t) - r0 < cr ? n_rows(t) - r0 : cr;
        uint8_t *o = buf;
        for (int64_t r = r0; r < r0 + n; r++) {
            uint64_t st = row_stream(seed, id, r);
            for (int64_t b = 0; b < per_row; b++, o += bp->block_bytes) {
                uint64_t k = ((splitmix64(&st) >> 32) * (uint64_t)bp->n_blocks) >> 32;
                memcpy(o, bp->data + k * bp->block_bytes, bp->block_bytes);
            }
        }
        rc = gguf_writer_write(w, buf, (size_t)n * rb, err);
    }
    free(buf);
    return rc;
}

/* ---- the file ----------------------------------------------------------- */

static int set_hparams(gguf_writer *w, const sd_synth_shape *s, const sd_qrecipe *r, uint64_t seed)
{
    char k[96], name[96];
    const char *a = s->arch;
    int rc = 0;
    snprintf(name, sizeof name, "synthetic %s (random weights)", s->name);
    rc |= gguf_writer_set_str(w, "general.architecture", a);
    rc |= gguf_writer_set_str(w, "general.name", name);
    rc |= gguf_writer_set_u32(w, "general.file_type", (uint32_t)r->ftype);
    if (r->base != SD_TYPE_F32 && r->base != SD_TYPE_F16 && r->base != SD_TYPE_BF16)
        rc |= gguf_writer_set_u32(w, "general.quantization_version", 2);
    rc |= gguf_writer_set_str(w, "showdown.synth.preset", s->name);
    rc |= gguf_writer_set_u64(w, "showdown.synth.seed", seed);
#define U32(sfx, v) (snprintf(k, sizeof k, "%s." sfx, a), rc |= gguf_writer_set_u32(w, k, (uint32_t)(v)))
#define F32(sfx, v) (snprintf(k, sizeof k, "%s." sfx, a), rc |= gguf_writer_set_f32(w, k, (v)))
    U32("vocab_size", s->n_vocab);
    U32("context_length", s->n_ctx);
    U32("embedding_length", s->n_embd);
    U32("block_count", s->n_layer);
    U32("feed_forward_length", s->n_expert && !strcmp(a, "llama") ? s->n_ff_exp : s->n_ff);   /* mixtral: the experts' */
    U32("attention.head_count", s->n_head);
    U32("attention.head_count_kv", s->n_head_kv);
    U32("rope.dimension_count", s->n_rot ? s->n_rot : s->head_dim);
    if (s->n_expert) {
        U32("expert_count", s->n_expert);
        U32("expert_used_count", s->n_expert_used);
        if (strcmp(a, "llama")) U32("expert_feed_forward_length", s->n_ff_exp);   /* mixtral: feed_forward_length */
    }
    if (!strcmp(a, "qwen3next")) {
        U32("expert_shared_feed_forward_length", s->n_ff_shexp);
        U32("ssm.conv_kernel", s->ssm_conv);
        U32("ssm.state_size", s->ssm_state);
        U32("ssm.group_count", s->ssm_groups);
        U32("ssm.time_step_rank", s->ssm_heads);
        U32("ssm.inner_size", s->ssm_state * s->ssm_heads);
        U32("full_attention_interval", s->attn_interval);
    }
    if (!strcmp(a, "gemma3")) {
        /* a window short enough for a test's prompt to slide past it */
        U32("attention.sliding_window", 8);
        F32("final_logit_softcapping", 30.0f);
    }
    if (!strcmp(a, "gpt-oss")) {
        U32("attention.sliding_window", 128);
        snprintf(k, sizeof k, "%s.rope.scaling.type", a);
        rc |= gguf_writer_set_str(w, k, "yarn");
        F32("rope.scaling.factor", 32.0f);
        U32("rope.scaling.original_context_length", 4096);
    }
    if (s->head_dim * s->n_head != s->n_embd || !strcmp(a, "qwen3") || !strcmp(a, "qwen3moe") || !strcmp(a, "gpt-oss") ||
        !strcmp(a, "qwen3next") || !strcmp(a, "gemma3")) {
        U32("attention.key_length", s->head_dim);
        U32("attention.value_length", s->head_dim);
    }
    F32("rope.freq_base", s->rope_base);
    F32("attention.layer_norm_rms_epsilon", s->norm_eps);
#undef U32
#undef F32
    return rc ? -1 : 0;
}

/* Formats: 1-D tensors F32; matrices by the recipe, with row-length fallback. */
static int choose_types(tensor_list *l, const sd_synth_shape *s, const sd_qrecipe *r, const sd_synth_params *p,
                        char *err)
{
    sd_qrecipe_model m = {s->n_layer, s->n_head, s->n_head_kv, !s->tied,
                         s->n_layer == 80 && (!strcmp(s->arch, "llama") || !strcmp(s->arch, "qwen2"))};
    sd_qrecipe_opts o = {0, 0};
    for (int i = 0; i < l->n; i++) {
        synth_tensor *t = &l->t[i];
        if (!sd_qrecipe_quantizes(t->name, t->n_dims)) continue;
        int want = sd_qrecipe_tensor_type(r, &o, &m, t->name, t->ne[0]);
        int got = sd_type_fallback(want, t->ne[0]);
        if (got < 0) {
            snprintf(err, SD_ERR_LEN, "%s: no format fits rows of %lld values", t->name, (long long)t->ne[0]);
            return -1;
        }
        if (got != want && p->note) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s: rows of %lld values do not fit %s blocks, using %s", t->name,
                     (long long)t->ne[0], sd_type_name((uint32_t)want), sd_type_name((uint32_t)got));
            p->note(p->note_ctx, msg);
        }
        t->type = (uint32_t)got;
        /* NVFP4: the generator's bound is the tensor's range, known up front */
        if (got == SD_TYPE_NVFP4) t->scale = sd_nvfp4_scale(t->sigma * NORMALISH_MAX);
    }
    return 0;
}

static int declare(gguf_writer *w, const tensor_list *l, char *err)
{
    for (int i = 0; i < l->n; i++) {
        const synth_tensor *t = &l->t[i];
        if (gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, err)) return -1;
        if (t->scale != 1.0f) {
            char key[128];
            snprintf(key, sizeof key, "%s%s", SD_TENSOR_SCALE_PREFIX, t->name);
            if (gguf_writer_set_f32(w, key, t->scale)) return -1;
        }
    }
    return 0;
}

int sd_synth_write(const sd_synth_params *p, const char *path, char *err)
{
    sd_synth_shape s = p->shape;
    const char *type = p->type ? p->type : "F16";
    const sd_qrecipe *r = sd_qrecipe_find(type);
    if (!r) {
        char names[400];
        sd_qrecipe_names(names, sizeof names);
        snprintf(err, SD_ERR_LEN, "%s: unknown weight type (valid: %s)", type, names);
        return -1;
    }
    gguf_writer *w = gguf_writer_new();
    tensor_list l = {0};
    sd_pool *pool = NULL;
    pool_set pools = {.n = 0};
    int rc = -1;
    if (!w) { snprintf(err, SD_ERR_LEN, "%s: out of memory", path); return -1; }
    /* the vocabulary first: a copied one decides the vocabulary size */
    if (p->vocab_path) {
        if (sd_synth_copy_vocab(w, p->vocab_path, &s.n_vocab, err)) goto done;
    }
    char why[SD_ERR_LEN];
    if (sd_synth_check(&s, why)) {
        snprintf(err, SD_ERR_LEN, "%s: %.400s", path, why);
        goto done;
    }
    if (!p->vocab_path && sd_synth_vocab(w, s.n_vocab, err)) goto done;
    if (set_hparams(w, &s, r, p->seed) || list_tensors(&s, &l)) {
        snprintf(err, SD_ERR_LEN, "%s: out of memory", path);
        goto done;
    }
    if (choose_types(&l, &s, r, p, err) || declare(w, &l, err)) goto done;
    gguf_writer_set_progress(w, p->progress, p->progress_ctx);
    if (gguf_writer_begin(w, path, err)) goto done;
    if (p->header_only) {
        rc = gguf_writer_finish_sparse(w, err);
        goto done;
    }
    int nt = p->n_threads > 0 ? p->n_threads : sd_cpu_count();
    if (nt > 1 && !(pool = sd_pool_new(nt))) {
        snprintf(err, SD_ERR_LEN, "%s: cannot start %d threads", path, nt);
        goto done;
    }
    for (int i = 0; i < l.n; i++) {
        const synth_tensor *t = &l.t[i];
        if (sd_type_get(t->type)->is_quantized && t->gen == GEN_RANDOM) {
            const block_pool *bp = pool_get(&pools, t, &s, p->seed, pool);
            if (!bp) {
                snprintf(err, SD_ERR_LEN, "%s: out of memory for the block pool of %s", path, t->name);
                goto done;
            }
            if (write_pooled(w, path, t, i, bp, p->seed, err)) goto done;
            continue;
        }
        gen_ctx g = {&s, t, i, p->seed};
        if (sd_rows_write(w, path, pool, t->type, t->scale, n_rows(t), t->ne[0], gen_rows, &g, err)) goto done;
    }
    rc = gguf_writer_finish(w, err);
done:
    pool_free(&pools);
    gguf_writer_free(w);
    sd_pool_free(pool);
    free(l.t);
    return rc;
}
