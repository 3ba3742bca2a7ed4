/* Quant names -> bits per weight for each class of tensor. Single types come
 * from the format table (tensor/types.h). llama.cpp's mixed recipes (q4_k_m,
 * q2_k, ...) quantize some tensors harder than others: their body figure is
 * the effective bpw of the repeating layers, fitted to published file sizes
 * (docs/PLANNER.md shows the fit); the LM head keeps Q6_K as llama.cpp does. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "showdown.h"
#include "plan/plan.h"
#include "tensor/types.h"

/* GGUF's block geometry, used only while the format table lacks a type. */
static const struct { int type, block, bytes; } gguf_blocks[] = {
    {SD_TYPE_F32, 1, 4},     {SD_TYPE_F16, 1, 2},     {SD_TYPE_BF16, 1, 2},
    {SD_TYPE_Q4_0, 32, 18},  {SD_TYPE_Q4_1, 32, 20},  {SD_TYPE_Q5_0, 32, 22},
    {SD_TYPE_Q5_1, 32, 24},  {SD_TYPE_Q8_0, 32, 34},  {SD_TYPE_Q8_1, 32, 36},
    {SD_TYPE_Q2_K, 256, 84}, {SD_TYPE_Q3_K, 256, 110}, {SD_TYPE_Q4_K, 256, 144},
    {SD_TYPE_Q5_K, 256, 176}, {SD_TYPE_Q6_K, 256, 210}, {SD_TYPE_Q8_K, 256, 292},
    {SD_TYPE_MXFP4, 32, 17}, {SD_TYPE_NVFP4, 64, 36},
};

double sd_plan_type_bpw(int type)
{
    const sd_type_traits *tr = type >= 0 ? sd_type_get((uint32_t)type) : NULL;
    if (tr && tr->block > 0) return 8.0 * tr->block_bytes / tr->block;
    for (size_t i = 0; i < sizeof gguf_blocks / sizeof gguf_blocks[0]; i++)
        if (gguf_blocks[i].type == type) return 8.0 * gguf_blocks[i].bytes / gguf_blocks[i].block;
    return 0;
}

/* body_type/eff: the repeating layers (eff > 0 overrides the type's bpw);
 * experts (-1: as body); output and token embedding types. */
static const struct {
    const char *name;
    int quality;
    int body_type;
    double body_eff;
    int expert_type, output_type, embd_type;
    const char *note;
} recipes[] = {
    {"f32", 100, SD_TYPE_F32, 0, -1, SD_TYPE_F32, SD_TYPE_F32, "all F32"},
    {"bf16", 90, SD_TYPE_BF16, 0, -1, SD_TYPE_BF16, SD_TYPE_BF16, "all BF16"},
    {"f16", 90, SD_TYPE_F16, 0, -1, SD_TYPE_F16, SD_TYPE_F16, "all F16"},
    {"q8_0", 80, SD_TYPE_Q8_0, 0, -1, SD_TYPE_Q8_0, SD_TYPE_Q8_0, "all Q8_0"},
    {"q6_k", 70, SD_TYPE_Q6_K, 0, -1, SD_TYPE_Q6_K, SD_TYPE_Q6_K, "all Q6_K"},
    {"q5_k_m", 60, SD_TYPE_Q5_K, 5.65, -1, SD_TYPE_Q6_K, SD_TYPE_Q5_K,
     "Q5_K with Q6_K on half of attn_v/ffn_down; 5.65 effective bpw in the layers"},
    {"q4_k_m", 50, SD_TYPE_Q4_K, 4.81, -1, SD_TYPE_Q6_K, SD_TYPE_Q4_K,
     "Q4_K with Q6_K on half of attn_v/ffn_down; 4.81 effective bpw in the layers (~4.85 overall)"},
    {"mxfp4", 48, SD_TYPE_MXFP4, 0, SD_TYPE_MXFP4, SD_TYPE_Q8_0, SD_TYPE_Q8_0,
     "MXFP4 weights (for MoE: experts MXFP4, the rest Q8_0, as gpt-oss ships)"},
    {"nvfp4", 48, SD_TYPE_NVFP4, 0, -1, SD_TYPE_Q8_0, SD_TYPE_Q8_0, "NVFP4 layers, Q8_0 head and embedding"},
    {"q4_0", 45, SD_TYPE_Q4_0, 0, -1, SD_TYPE_Q6_K, SD_TYPE_Q4_0, "Q4_0 layers, Q6_K head"},
    /* IQ4_XS is not in the format table: 136 bytes per 256 weights. */
    {"iq4_xs", 42, SD_TYPE_Q4_K, 4.25, -1, SD_TYPE_Q6_K, SD_TYPE_Q4_K,
     "IQ4_XS layers (4.25 bpw), Q6_K head; the embedding taken as Q4_K"},
    {"q3_k_m", 35, SD_TYPE_Q3_K, 3.85, -1, SD_TYPE_Q6_K, SD_TYPE_Q3_K,
     "Q3_K with Q4_K/Q5_K on attention and ffn_down; 3.85 effective bpw in the layers"},
    {"q2_k", 20, SD_TYPE_Q2_K, 2.94, -1, SD_TYPE_Q6_K, SD_TYPE_Q2_K,
     "Q2_K with Q3_K/Q4_K on attn_v and ffn_down; 2.94 effective bpw in the layers"},
};

enum { N_RECIPES = sizeof recipes / sizeof recipes[0] };

static void fill(int i, sd_recipe *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", recipes[i].name);
    r->quality = recipes[i].quality;
    r->bpw_body = recipes[i].body_eff > 0 ? recipes[i].body_eff : sd_plan_type_bpw(recipes[i].body_type);
    r->bpw_output = sd_plan_type_bpw(recipes[i].output_type);
    r->bpw_embd = sd_plan_type_bpw(recipes[i].embd_type);
    r->bpw_experts = recipes[i].expert_type >= 0 ? sd_plan_type_bpw(recipes[i].expert_type) : r->bpw_body;
    r->note = recipes[i].note;
}

int sd_plan_recipe_find(const char *name, sd_recipe *out, char *err)
{
    for (int i = 0; name && i < N_RECIPES; i++)
        if (!strcasecmp(recipes[i].name, name)) { fill(i, out); return 0; }
    int t = name ? sd_type_from_name(name) : -1;
    double bpw = sd_plan_type_bpw(t);
    if (t >= 0 && bpw > 0) {   /* a single type from the format table, everywhere */
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", name);
        out->quality = (int)(bpw * 5);
        out->bpw_body = out->bpw_experts = out->bpw_output = out->bpw_embd = bpw;
        out->note = "one type for every tensor";
        return 0;
    }
    char list[512];
    size_t used = 0;
    list[0] = 0;
    for (int i = 0; i < N_RECIPES; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", recipes[i].name);
    snprintf(err, SD_ERR_LEN, "unknown format '%.40s'; valid: %.380s (or any single type in the format table)",
             name ? name : "", list);
    return -1;
}

int sd_plan_recipe_ladder(sd_recipe *out, int max)
{
    /* The usual download choices, best first (f32, f16 and the FP4 variants left out). */
    static const char *ladder[] = {"bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k"};
    int n = 0;
    char err[SD_ERR_LEN];
    for (size_t i = 0; i < sizeof ladder / sizeof ladder[0] && n < max; i++)
        if (!sd_plan_recipe_find(ladder[i], &out[n], err)) n++;
    return n;
}

double sd_kv_type_bytes(const char *name)
{
    int t = sd_type_from_name(name);
    if (t < 0) {   /* the table may not list every KV type yet */
        if (!strcasecmp(name, "f16") || !strcasecmp(name, "bf16")) return 2;
        if (!strcasecmp(name, "f32")) return 4;
        if (!strcasecmp(name, "q8_0")) t = SD_TYPE_Q8_0;
        else if (!strcasecmp(name, "q4_0")) t = SD_TYPE_Q4_0;
        else return 0;
    }
    return sd_plan_type_bpw(t) / 8.0;
}

/* Per-weight ALU cost of a GPU mat-vec at the F16 rate. K-quants unpack
 * 6-bit sub-block scales and minimums on top of the nibbles; the legacy
 * formats one scale per 32 weights; 16-bit weights are one multiply-add.
 * The k-quant figure is fitted to two published Apple rows (Llama 3 8B
 * Q4_K_M on M1 Max and M2 Ultra, docs/PLANNER.md); the others are set at or
 * below what the Q4_0 / Q8_0 Apple rows allow (they stay bandwidth-bound). */
double sd_plan_recipe_decode_ops(const sd_recipe *r)
{
    const char *n = r->name;
    if (r->bpw_body >= 15.9) return 2;
    if (strstr(n, "_k") || !strcmp(n, "q2_k") || !strcmp(n, "file")) return 30;
    if (!strcmp(n, "mxfp4") || !strcmp(n, "nvfp4")) return 20;
    return 15;
}
