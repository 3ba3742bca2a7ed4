/* showdown plan: what the engine does per step beside streaming weights
 * (graph ops launched without graph replay), and Qwen3-Next's recurrent state
 * in place of most of the KV cache. Independent truths: op counts and bytes
 * worked out by hand from the model configs and llama.cpp's graph builders
 * (src/plan/model_cost.c lists the counts). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "plan/plan.h"
#include "gguf/gguf_write.h"
#include "tensor/types.h"
#include "plan_fixture.h"

static sd_plan_result predict(const char *model, const char *hw_id, const char *quant, int graphless)
{
    char err[SD_ERR_LEN];
    sd_model_ref m = preset(model);
    sd_recipe r;
    sd_hw hw;
    find_recipe_hw(quant, hw_id, &r, &hw);
    sd_plan_opts o;
    sd_plan_default_opts(&o);
    o.n_prompt = 0;
    o.decode_depth = 0;
    o.no_graph_replay = graphless;
    sd_plan_result res;
    cr_assert_eq(sd_plan_predict(&m, &r, &hw, NULL, &o, &res, err), 0, "%s", err);
    return res;
}

/* Per layer: attention 13 (+4 q/k norms, +3 output gate), delta net 35, dense
 * FFN 8, MoE FFN 14 + (k-1) adds (+8 shared expert); head 3. */
Test(plan, graph_ops_per_step_follow_the_layer_kinds)
{
    cr_expect_float_eq(sd_graph_nodes(preset("llama-2-7b").shape), 32 * (13 + 8) + 3, 1e-9);
    cr_expect_float_eq(sd_graph_nodes(preset("qwen3-30b-a3b").shape), 48 * ((13 + 4) + (14 + 7)) + 3, 1e-9);
    cr_expect_float_eq(sd_graph_nodes(preset("qwen3-next-80b-a3b").shape),
                       36 * (35 + 14 + 9 + 8) + 12 * ((13 + 4 + 3) + 14 + 9 + 8) + 3, 1e-9);
}

/* Without graph replay a 7B's 675 ops each leave the A100 idle node_gap_us,
 * and Qwen3-Next's 2991 small ops are launched faster by no host than
 * launch_us each: the host's launch rate is its ceiling. */
Test(plan, ops_launched_one_by_one_cost_time, .init = load_table, .fini = free_table)
{
    const sd_eff *e = sd_eff_for("cuda-dc");
    cr_assert_not_null(e);
    sd_plan_result with = predict("llama-2-7b", "a100-80g", "q4_0", 0);
    sd_plan_result without = predict("llama-2-7b", "a100-80g", "q4_0", 1);
    double extra = 1 / without.tg_ts - 1 / with.tg_ts;
    cr_expect_float_eq(extra, 675 * e->node_gap_us * 1e-6, 1e-9, "%.3f ms more per token", extra * 1e3);

    /* Qwen3-Next: llama.cpp replays no CUDA graph for it, whatever the flag */
    sd_plan_result q = predict("qwen3-next-80b-a3b", "a100-80g", "q4_k_m", 0);
    cr_expect_float_eq(1 / q.tg_ts, 2991 * e->launch_us * 1e-6, 1e-9, "tg %.1f t/s", q.tg_ts);
    cr_expect_str_eq(q.limit, "op launches");
    cr_expect_str_eq(without.limit, "bandwidth");
    /* Apple's engine replays nothing either way; its per-layer cost already holds that */
    sd_plan_result a = predict("llama-2-7b", "m2-ultra-76", "q4_0", 0);
    sd_plan_result b = predict("llama-2-7b", "m2-ultra-76", "q4_0", 1);
    cr_expect_float_eq(a.tg_ts, b.tg_ts, 1e-12);
}

/* Qwen3-Next-80B-A3B (config.json): 48 layers, full attention every 4th (12
 * layers x 2 KV heads x 256), the other 36 gated delta nets with a 32 x 128 x
 * 128 f32 state and a 3-step conv tail over 2*16*128 + 32*128 channels. */
Test(plan, qwen3next_keeps_kv_in_a_quarter_of_the_layers_and_a_fixed_state, .init = load_table, .fini = free_table)
{
    char err[SD_ERR_LEN];
    sd_model_ref m = preset("qwen3-next-80b-a3b");
    cr_expect(fabs(m.params.total / 79.67e9 - 1) < 0.002, "total %.3fB (llama-bench: 79.67 B)", m.params.total / 1e9);
    sd_recipe r;
    cr_assert_eq(sd_plan_recipe_find("q4_k_m", &r, err), 0, "%s", err);
    sd_cost c;
    cr_assert_eq(sd_model_cost(&m, &r, 262144, 2, 512, &c), 0);
    cr_expect_float_eq(c.kv_bytes, 12.0 * 2 * 2 * 256 * 2 * 262144, 1.0);   /* 6 GiB at the full context */
    cr_expect_float_eq(c.state_bytes, 36.0 * (4.0 * 32 * 128 * 128 + 4.0 * 3 * (2 * 2048 + 4096)), 1.0);
    /* the state does not grow with the context */
    sd_cost small;
    cr_assert_eq(sd_model_cost(&m, &r, 4096, 2, 512, &small), 0);
    cr_expect_float_eq(small.state_bytes, c.state_bytes, 1.0);
    cr_expect_float_eq(small.kv_bytes, c.kv_bytes / 64, 1.0);
}

/* A qwen3next header: the value head size comes from ssm.inner_size, not the
 * key size, and the attention interval from its key. */
Test(plan, qwen3next_header_gives_the_linear_attention_shape)
{
    char err[SD_ERR_LEN], path[64];
    snprintf(path, sizeof path, "/tmp/sd-plan-q3n-%d.gguf", (int)getpid());
    gguf_writer *w = gguf_writer_new();
    cr_assert_not_null(w);
    gguf_writer_set_str(w, "general.architecture", "qwen3next");
    static const struct { const char *k; uint32_t v; } kv[] = {
        {"qwen3next.embedding_length", 64}, {"qwen3next.block_count", 6}, {"qwen3next.attention.head_count", 4},
        {"qwen3next.attention.head_count_kv", 2}, {"qwen3next.attention.key_length", 32},
        {"qwen3next.expert_count", 8}, {"qwen3next.expert_used_count", 2},
        {"qwen3next.expert_feed_forward_length", 32}, {"qwen3next.expert_shared_feed_forward_length", 32},
        {"qwen3next.full_attention_interval", 3}, {"qwen3next.ssm.conv_kernel", 4},
        {"qwen3next.ssm.state_size", 8}, {"qwen3next.ssm.group_count", 2}, {"qwen3next.ssm.time_step_rank", 4},
        {"qwen3next.ssm.inner_size", 64}, {"qwen3next.context_length", 4096},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) cr_assert_eq(gguf_writer_set_u32(w, kv[i].k, kv[i].v), 0);
    cr_assert_eq(gguf_writer_add_tensor(w, "token_embd.weight", SD_TYPE_F32, 2, (int64_t[]){64, 32}, err), 0, "%s", err);
    cr_assert_eq(gguf_writer_begin(w, path, err), 0, "%s", err);
    cr_assert_eq(gguf_writer_finish_sparse(w, err), 0, "%s", err);
    gguf_writer_free(w);

    sd_gguf_model g;
    int rc = sd_shape_from_gguf(path, &g, err);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_eq(g.shape.full_attn_every, 3);
    cr_expect_eq(g.shape.lin_k_heads, 2);
    cr_expect_eq(g.shape.lin_v_heads, 4);
    cr_expect_eq(g.shape.lin_k_dim, 8);
    cr_expect_eq(g.shape.lin_v_dim, 16);
    cr_expect_eq(g.shape.lin_conv, 4);
}

/* Qwen3-Next Q4_K_M (45 GiB) on a 24 GB card: both placements are predicted
 * and the note names both; the plan is the faster. On a 128 GB Mac it fits
 * whole, and a unified-memory machine gets no expert placement. */
Test(plan, qwen3next_placements_on_a_24gb_card_and_a_mac, .init = load_table, .fini = free_table)
{
    char err[SD_ERR_LEN];
    sd_model_ref m = preset("qwen3-next-80b-a3b");
    sd_recipe r;
    sd_hw hw, host;
    find_recipe_hw("q4_k_m", "rtx-4090", &r, &hw);
    cr_assert_eq(sd_hw_find(&table, hw.host, &host, err), 0, "%s", err);
    sd_plan_opts o;
    sd_plan_default_opts(&o);
    sd_plan_result res;
    cr_assert_eq(sd_plan_predict(&m, &r, &hw, &host, &o, &res, err), 0, "%s", err);
    cr_assert(res.runs && !res.fits, "%s", res.note);
    cr_assert(isfinite(res.tg_layer_split) && isfinite(res.tg_experts_on_host));
    double best = fmax(res.tg_layer_split, res.tg_experts_on_host);
    cr_expect_float_eq(res.tg_ts, best, 1e-9 * best);
    cr_expect(strstr(res.note, "--n-cpu-moe") && strstr(res.note, "-ngl"), "%s", res.note);
    /* --n-cpu-moe N forces the placement; its GPU part fits the card */
    o.n_cpu_moe = 30;
    cr_assert_eq(sd_plan_predict(&m, &r, &hw, &host, &o, &res, err), 0, "%s", err);
    cr_expect_eq(res.n_cpu_moe, 30);
    cr_expect_leq(res.device_bytes, hw.usable_gib * 1073741824.0);
    cr_expect_float_eq(res.tg_ts, res.tg_experts_on_host, 1e-9 * res.tg_ts);

    cr_assert_eq(sd_hw_find(&table, "m4-max-40", &hw, err), 0, "%s", err);
    sd_plan_default_opts(&o);
    cr_assert_eq(sd_plan_predict(&m, &r, &hw, NULL, &o, &res, err), 0, "%s", err);
    cr_expect(res.fits && res.runs);
    cr_expect_eq(res.n_cpu_moe, 0);
    cr_expect(isnan(res.tg_experts_on_host));
}

/* The source column names the test: "tg32 @ d32768" is 32 tokens generated
 * after 32768 in the cache, predicted exactly as sd_plan_predict does with
 * that depth; a depth beyond the model's context is one error line. */
Test(plan, published_rows_read_their_test_from_the_source, .init = load_table, .fini = free_table)
{
    char err[SD_ERR_LEN], path[64];
    snprintf(path, sizeof path, "/tmp/sd-plan-rows-%d.tsv", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("# hardware\tmem\tbw\tengine\tmodel\tparams\tquant\tpp512\ttg128\tsource\n"
          "NVIDIA DGX Spark (GB10)\t128\t273\tllama.cpp CUDA\tQwen3 30B-A3B\t30.53B\tQ8_0\t-\t30.80\tx (tg32 @ d32768)\n"
          "NVIDIA RTX 4090\t24\t1008\tllama.cpp CUDA\tQwen3 30B-A3B\t30.53B\tQ4_0\t-\t205.87\tx (-ub 1, i.e. tg4096)\n",
          f);
    fclose(f);
    sd_published_row *rows;
    int n;
    int rc = sd_published_check(path, &table, &rows, &n, err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(rows[0].variant, "tg32 @ d32768");
    cr_expect_str_eq(rows[1].variant, "tg4096");

    sd_model_ref m = preset("qwen3-30b-a3b");
    sd_recipe r;
    sd_hw hw;
    find_recipe_hw("q8_0", "dgx-spark", &r, &hw);
    sd_plan_opts o;
    sd_plan_default_opts(&o);
    o.n_ctx = 40960;
    o.n_gen = 32;
    o.decode_depth = 32768;
    sd_plan_result res;
    cr_assert_eq(sd_plan_predict(&m, &r, &hw, NULL, &o, &res, err), 0, "%s", err);
    cr_expect_float_eq(rows[0].pred_tg, res.tg_ts, 1e-9 * res.tg_ts);
    o.decode_depth = 0;
    sd_plan_result empty;
    cr_assert_eq(sd_plan_predict(&m, &r, &hw, NULL, &o, &empty, err), 0, "%s", err);
    cr_expect_lt(res.tg_ts, 0.6 * empty.tg_ts, "32k tokens of KV: %.1f vs %.1f t/s", res.tg_ts, empty.tg_ts);
    free(rows);

    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("Apple M2 Ultra 76-core GPU\t192\t800\tllama.cpp Metal\tLLaMA 2 7B\t6.74B\tQ4_0\t-\t50\tx (tg32 @ d32768)\n", f);
    fclose(f);
    rc = sd_published_check(path, &table, &rows, &n, err);
    unlink(path);
    cr_expect_eq(rc, -1);
    cr_expect(strstr(err, "beyond") && strstr(err, ":1:"), "%s", err);
}
