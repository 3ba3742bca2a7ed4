/* The K-quant mixes on the two real models' shapes (rows of 576 and 640,
 * which fit no super-block of 256): tensor by tensor, the formats our recipe
 * picks must be the ones the reference quantizer wrote for the same input
 * (llama-quantize --allow-requantize; the tables below were read from its
 * output files, see docs/BENCHMARKS.md "Our quantizer against
 * llama-quantize"). Most matrices there are fallbacks, so this checks the
 * fallback chain (Q2_K/Q3_K -> IQ4_NL, Q4_K -> Q5_0, Q5_K -> Q5_1) as much as
 * the per-layer bumps. Only the file header is read (a plan, nothing written);
 * a model that is not fetched skips its test. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "quant/quantize.h"
#include "showdown.h"
#include "tensor/types.h"

static const char *model_or_skip(char *buf, size_t n, const char *name)
{
    const char *dir = getenv("SHOWDOWN_MODELS");
    snprintf(buf, n, "%s/%s.gguf", dir && *dir ? dir : "build/models", name);
    if (access(buf, R_OK)) cr_skip_test("%s is not fetched (make models)", buf);
    return buf;
}

/* One run of layers [first, last] of a tensor role and its format. */
typedef struct { const char *role; int first, last; uint32_t type; } layer_run;

typedef struct {
    const layer_run *runs;
    uint32_t embd;           /* token_embd.weight (tied: the output too) */
    int n_checked, n_bad;
    char first_bad[200];
} expect;

static uint32_t expected_type(const expect *e, const char *name)
{
    if (!strcmp(name, "token_embd.weight")) return e->embd;
    int layer;
    char role[64];
    if (sscanf(name, "blk.%d.%63s", &layer, role) != 2) return SD_TYPE_COUNT;
    for (const layer_run *r = e->runs; r->role; r++)
        if (!strcmp(r->role, role) && layer >= r->first && layer <= r->last) return r->type;
    return SD_TYPE_COUNT;
}

static void check(void *ctx, const char *name, const int64_t *ne, uint32_t from, uint32_t to)
{
    expect *e = ctx;
    (void)from;
    if (ne[1] <= 1) return;   /* vectors stay F32 */
    uint32_t want = expected_type(e, name);
    e->n_checked++;
    if (to != want && !e->n_bad++)
        snprintf(e->first_bad, sizeof e->first_bad, "%s: ours %s, reference %s", name, sd_type_name(to),
                 sd_type_name(want));
}

static void plan_matches(const char *model, const char *recipe, const layer_run *runs, uint32_t embd, int n_mat)
{
    char path[512], err[SD_ERR_LEN];
    model_or_skip(path, sizeof path, model);
    sd_quantize_params p = sd_quantize_default_params();
    p.target = recipe;
    p.allow_requantize = 1;
    expect e = {runs, embd, 0, 0, ""};
    cr_assert_eq(sd_quantize_plan(path, &p, check, &e, err), 0, "%s", err);
    cr_assert_eq(e.n_checked, n_mat, "%s %s: %d matrices planned", model, recipe, e.n_checked);
    cr_assert_eq(e.n_bad, 0, "%s %s: %d matrices differ, first %s", model, recipe, e.n_bad, e.first_bad);
}

TestSuite(quant_recipe_real, .timeout = 60);

/* SmolLM2-135M: 30 layers, 9 heads, 3 KV heads (n_gqa 3: Q2_K's attn_v
 * stays Q3_K, so IQ4_NL). llama.cpp c392e509. */
Test(quant_recipe_real, smollm2_q3_k_m)
{
    static const layer_run runs[] = {
        {"attn_q.weight", 0, 29, SD_TYPE_IQ4_NL},   {"attn_k.weight", 0, 29, SD_TYPE_IQ4_NL},
        {"attn_v.weight", 0, 1, SD_TYPE_Q5_1},      {"attn_v.weight", 2, 29, SD_TYPE_Q5_0},
        {"attn_output.weight", 0, 29, SD_TYPE_Q5_0},
        {"ffn_gate.weight", 0, 29, SD_TYPE_IQ4_NL}, {"ffn_up.weight", 0, 29, SD_TYPE_IQ4_NL},
        {"ffn_down.weight", 0, 0, SD_TYPE_Q5_K},    {"ffn_down.weight", 1, 29, SD_TYPE_Q4_K},
        {NULL, 0, 0, 0}};
    plan_matches("smollm2-135m-instruct-q4_1", "Q3_K_M", runs, SD_TYPE_Q8_0, 211);
}

Test(quant_recipe_real, smollm2_q2_k)
{
    static const layer_run runs[] = {
        {"attn_q.weight", 0, 29, SD_TYPE_IQ4_NL},      {"attn_k.weight", 0, 29, SD_TYPE_IQ4_NL},
        {"attn_v.weight", 0, 29, SD_TYPE_IQ4_NL},      {"attn_output.weight", 0, 29, SD_TYPE_IQ4_NL},
        {"ffn_gate.weight", 0, 29, SD_TYPE_IQ4_NL},    {"ffn_up.weight", 0, 29, SD_TYPE_IQ4_NL},
        {"ffn_down.weight", 0, 29, SD_TYPE_Q3_K},      {NULL, 0, 0, 0}};
    plan_matches("smollm2-135m-instruct-q4_1", "Q2_K", runs, SD_TYPE_Q8_0, 211);
}

/* Gemma 3 270M: 18 layers, 4 heads, 1 KV head (n_gqa 4: Q2_K's attn_v is
 * Q4_K, so Q5_0); attn_output has rows of 1024 and ffn_down of 2048 (real
 * K-quants). ik_llama.cpp 8337e4cd, which has gemma3. Its Q3_K_M differs in
 * one place: it sends Q5_K rows that do not fit to its own Q6_0 (blk.0/1
 * attn_v), where mainline llama.cpp and we write Q5_1. */
Test(quant_recipe_real, gemma3_q3_k_m)
{
    static const layer_run runs[] = {
        {"attn_q.weight", 0, 17, SD_TYPE_IQ4_NL},   {"attn_k.weight", 0, 17, SD_TYPE_IQ4_NL},
        {"attn_v.weight", 0, 1, SD_TYPE_Q5_1},      {"attn_v.weight", 2, 17, SD_TYPE_Q5_0},
        {"attn_output.weight", 0, 17, SD_TYPE_Q4_K},
        {"ffn_gate.weight", 0, 17, SD_TYPE_IQ4_NL}, {"ffn_up.weight", 0, 17, SD_TYPE_IQ4_NL},
        {"ffn_down.weight", 0, 0, SD_TYPE_Q5_K},    {"ffn_down.weight", 1, 17, SD_TYPE_Q4_K},
        {NULL, 0, 0, 0}};
    plan_matches("gemma-3-270m-q4_k_m", "Q3_K_M", runs, SD_TYPE_Q8_0, 127);
}

Test(quant_recipe_real, gemma3_q2_k)
{
    static const layer_run runs[] = {
        {"attn_q.weight", 0, 17, SD_TYPE_IQ4_NL},   {"attn_k.weight", 0, 17, SD_TYPE_IQ4_NL},
        {"attn_v.weight", 0, 17, SD_TYPE_Q5_0},     {"attn_output.weight", 0, 17, SD_TYPE_Q3_K},
        {"ffn_gate.weight", 0, 17, SD_TYPE_IQ4_NL}, {"ffn_up.weight", 0, 17, SD_TYPE_IQ4_NL},
        {"ffn_down.weight", 0, 17, SD_TYPE_Q3_K},   {NULL, 0, 0, 0}};
    plan_matches("gemma-3-270m-q4_k_m", "Q2_K", runs, SD_TYPE_Q8_0, 127);
}
