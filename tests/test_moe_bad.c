/* Hostile mixture-of-experts files: a shared MoE model with one header field
 * or tensor name patched in place must be refused with one line naming the
 * file and the key; and the older layout (one 2-D tensor per expert) loads
 * to the same logits as the 3-D one. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "common.h"
#include "gguf_patch.h"

static void load_model(const char *rel)
{
    char p[512];
    buf = read_all(shared_path(p, sizeof p, rel), &buf_len);
    cr_assert_not_null(buf, "cannot read %s", p);
}

/* Writes the patched copy and expects the load to fail with needle. */
static void expect_refused(const char *needle) { expect_refused_as("moe", needle); }

Test(moe_bad, zero_experts)
{
    load_model("models/moe-qwen3moe-f32.gguf");
    set_u32("qwen3moe.expert_count", 0);
    expect_refused("qwen3moe.expert_count is 0");
}

Test(moe_bad, more_used_than_experts)
{
    load_model("models/moe-qwen3moe-f32.gguf");
    set_u32("qwen3moe.expert_used_count", 9);
    expect_refused("qwen3moe.expert_used_count = 9, but there are 8 experts");
}

Test(moe_bad, zero_used)
{
    load_model("models/moe-gptoss-f32.gguf");
    set_u32("gpt-oss.expert_used_count", 0);
    expect_refused("gpt-oss.expert_used_count = 0");
}

Test(moe_bad, too_many_used)
{
    load_model("models/moe-qwen3moe-f32.gguf");
    set_u32("qwen3moe.expert_count", 100);
    set_u32("qwen3moe.expert_used_count", 65);
    expect_refused("qwen3moe.expert_used_count = 65 is more than the 64 supported");
}

Test(moe_bad, absurd_expert_count)
{
    load_model("models/moe-qwen3moe-f32.gguf");
    set_u32("qwen3moe.expert_count", 1u << 20);
    expect_refused("qwen3moe.expert_count = 1048576 is absurd");
}

/* Counts that disagree with the tensors' shapes: the router, then the experts. */
Test(moe_bad, expert_count_disagrees_with_router)
{
    load_model("models/moe-mixtral-f32.gguf");
    set_u32("llama.expert_count", 3);
    expect_refused("blk.0.ffn_gate_inp.weight has shape [256, 4], expected [256, 3] (llama.expert_count = 3)");
}

Test(moe_bad, expert_size_disagrees_with_tensors)
{
    load_model("models/moe-qwen3moe-f32.gguf");
    set_u32("qwen3moe.expert_feed_forward_length", 64);
    expect_refused("blk.0.ffn_gate_exps.weight has shape [256, 128, 8], expected [256, 64, 8]");
}

Test(moe_bad, missing_experts)
{
    load_model("models/moe-mixtral-f32.gguf");
    size_t at = find_str("blk.1.ffn_up_exps.weight");
    buf[at - 8] = 'X';   /* blk.1.ffn_up_exps.weigXt */
    expect_refused("missing tensor blk.1.ffn_up_exps.weight (or blk.1.ffn_up.0.weight)");
}

Test(moe_bad, gptoss_without_expert_biases)
{
    load_model("models/moe-gptoss-f32.gguf");
    size_t at = find_str("blk.0.ffn_up_exps.bias");
    buf[at - 1] = 'X';
    expect_refused("layer 0: gpt-oss needs the router and expert biases");
}

Test(moe_bad, gptoss_zero_window)
{
    load_model("models/moe-gptoss-f32.gguf");
    set_u32("gpt-oss.attention.sliding_window", 0);
    expect_refused("gpt-oss.attention.sliding_window is 0");
}

/* The older layout: the 3-D expert tensors split into blk.N.ffn_gate.E etc. */
static void write_per_expert(const char *src, const char *dst)
{
    char err[SD_ERR_LEN];
    gguf_file *g;
    cr_assert_eq(gguf_open(src, &g, err), 0, "%s", err);
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < g->n_kv; i++) cr_assert_eq(gguf_writer_copy_kv(w, &g->kv[i]), 0);
    /* Declared in file order; a 3-D tensor becomes its experts' 2-D slices. */
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        char name[96], kind[8];
        int layer;
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (t->n_dims == 3 && sscanf(name, "blk.%d.ffn_%4[a-z]_exps.weight", &layer, kind) == 2) {
            for (int64_t e = 0; e < t->ne[2]; e++) {
                char en[96];
                snprintf(en, sizeof en, "blk.%d.ffn_%s.%lld.weight", layer, kind, (long long)e);
                cr_assert_eq(gguf_writer_add_tensor(w, en, t->type, 2, t->ne, err), 0, "%s", err);
            }
        } else {
            cr_assert_eq(gguf_writer_add_tensor(w, name, t->type, (int)t->n_dims, t->ne, err), 0, "%s", err);
        }
    }
    cr_assert_eq(gguf_writer_begin(w, dst, err), 0, "%s", err);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        cr_assert_eq(gguf_writer_write(w, g->tensors[i].data, g->tensors[i].n_bytes, err), 0, "%s", err);
    cr_assert_eq(gguf_writer_finish(w, err), 0, "%s", err);
    gguf_writer_free(w);
    gguf_close(g);
}

static void last_logits(const char *path, float *out, int nv)
{
    char err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    sd_session_params p = {64, 1, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &p, &s, err), 0, "%s", err);
    const int32_t toks[] = {1, 300, 17, 42, 99, 250};
    cr_assert_eq(sd_session_eval(s, toks, 6, NULL, err), 0, "%s", err);
    memcpy(out, sd_session_logits(s), (size_t)nv * sizeof *out);
    sd_session_free(s);
    sd_model_free(m);
}

Test(moe_bad, per_expert_tensors_load_like_3d)
{
    char src[512], dst[64];
    shared_path(src, sizeof src, "models/moe-mixtral-q8_0.gguf");
    snprintf(dst, sizeof dst, "/tmp/sd-moe-2d-%d.gguf", (int)getpid());
    write_per_expert(src, dst);
    float a[512], b[512];
    last_logits(src, a, 512);
    last_logits(dst, b, 512);
    unlink(dst);
    cr_expect_eq(memcmp(a, b, sizeof a), 0, "per-expert tensors gave other logits than the 3-D ones");
}
