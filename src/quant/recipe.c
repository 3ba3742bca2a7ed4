/* The quantization targets and llama.cpp's per-tensor rules for the K-quant
 * mixes (llama_tensor_get_type, dense models; the IQ, MoE and Falcon branches
 * do not apply to the architectures we write). docs/FORMATS.md lists them. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "quant/recipe.h"
#include "tensor/types.h"

static const sd_qrecipe recipes[] = {
    /* plain formats: every matrix in that format (Q8_0 is a mix in
     * llama-quantize that comes out the same) */
    {"F32", SD_FTYPE_ALL_F32, SD_TYPE_F32, 0},
    {"F16", SD_FTYPE_F16, SD_TYPE_F16, 0},
    {"BF16", SD_FTYPE_BF16, SD_TYPE_BF16, 0},
    {"Q8_0", SD_FTYPE_Q8_0, SD_TYPE_Q8_0, 0},
    /* llama-quantize's legacy types are mixes too: the output matrix gets
     * Q6_K (it costs the most logit error per weight), the rest the base */
    {"Q4_0", SD_FTYPE_Q4_0, SD_TYPE_Q4_0, 1},
    {"Q4_1", SD_FTYPE_Q4_1, SD_TYPE_Q4_1, 1},
    {"Q5_0", SD_FTYPE_Q5_0, SD_TYPE_Q5_0, 1},
    {"Q5_1", SD_FTYPE_Q5_1, SD_TYPE_Q5_1, 1},
    {"Q3_K", SD_FTYPE_Q3_K_S, SD_TYPE_Q3_K, 0},
    {"Q4_K", SD_FTYPE_Q4_K_S, SD_TYPE_Q4_K, 0},
    {"Q5_K", SD_FTYPE_Q5_K_S, SD_TYPE_Q5_K, 0},
    {"MXFP4", SD_FTYPE_MXFP4, SD_TYPE_MXFP4, 0},
    {"NVFP4", SD_FTYPE_NVFP4, SD_TYPE_NVFP4, 0},
    /* llama-quantize's mixes (Q2_K and Q6_K are mixes there too) */
    {"Q2_K", SD_FTYPE_Q2_K, SD_TYPE_Q2_K, 1},
    {"Q3_K_S", SD_FTYPE_Q3_K_S, SD_TYPE_Q3_K, 1},
    {"Q3_K_M", SD_FTYPE_Q3_K_M, SD_TYPE_Q3_K, 1},
    {"Q3_K_L", SD_FTYPE_Q3_K_L, SD_TYPE_Q3_K, 1},
    {"Q4_K_S", SD_FTYPE_Q4_K_S, SD_TYPE_Q4_K, 1},
    {"Q4_K_M", SD_FTYPE_Q4_K_M, SD_TYPE_Q4_K, 1},
    {"Q5_K_S", SD_FTYPE_Q5_K_S, SD_TYPE_Q5_K, 1},
    {"Q5_K_M", SD_FTYPE_Q5_K_M, SD_TYPE_Q5_K, 1},
    {"Q6_K", SD_FTYPE_Q6_K, SD_TYPE_Q6_K, 1},
};
#define N_RECIPES (sizeof recipes / sizeof recipes[0])

/* A recipe is offered only when the format table can encode its formats
 * (a mix may also use Q3_K..Q6_K and Q8_0). */
static int encodable(int type)
{
    const sd_type_traits *tr = sd_type_get((uint32_t)type);
    return tr && tr->from_float;
}

static int available(const sd_qrecipe *r)
{
    if (!encodable(r->base)) return 0;
    if (!r->mixed) return 1;
    static const int bumps[] = {SD_TYPE_Q3_K, SD_TYPE_Q4_K, SD_TYPE_Q5_K, SD_TYPE_Q6_K, SD_TYPE_Q8_0};
    for (size_t i = 0; i < sizeof bumps / sizeof bumps[0]; i++)
        if (!encodable(bumps[i])) return 0;
    return 1;
}

const sd_qrecipe *sd_qrecipe_find(const char *name)
{
    for (size_t i = 0; name && i < N_RECIPES; i++)
        if (!strcasecmp(recipes[i].name, name)) return available(&recipes[i]) ? &recipes[i] : NULL;
    return NULL;
}

void sd_qrecipe_names(char *out, size_t n)
{
    size_t o = 0;
    if (n) out[0] = 0;
    for (size_t i = 0; i < N_RECIPES && o < n; i++) {
        if (!available(&recipes[i])) continue;
        int k = snprintf(out + o, n - o, "%s%s", o ? " " : "", recipes[i].name);
        if (k < 0) break;
        o += (size_t)k;
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int sd_qrecipe_quantizes(const char *name, int n_dims)
{
    /* MoE routers stay F32, as the reference quantizer keeps them; so does
     * qwen3next's convolution (the reference's ssm_conv reads F32 only) */
    return n_dims >= 2 && ends_with(name, "weight") && !strstr(name, "_norm.weight") && !strstr(name, "ffn_gate_inp.") &&
           !strstr(name, "ssm_conv1d.");
}

/* llama.cpp's choice of layers that get more bits: the first and last eighth
 * and every third layer between. */
static int use_more_bits(int i_layer, int n_layer)
{
    return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

static int bump(const sd_qrecipe *r, const sd_qrecipe_model *m, const char *name, int layer)
{
    int ft = r->ftype, t = r->base, n = m->n_layer > 0 ? m->n_layer : 1;
    int gqa = m->n_head_kv > 0 ? m->n_head / m->n_head_kv : 1;
    if (strstr(name, "attn_v.weight")) {
        if (ft == SD_FTYPE_Q2_K) t = gqa >= 4 ? SD_TYPE_Q4_K : SD_TYPE_Q3_K;
        else if (ft == SD_FTYPE_Q3_K_M) t = layer < 2 ? SD_TYPE_Q5_K : SD_TYPE_Q4_K;
        else if (ft == SD_FTYPE_Q3_K_L) t = SD_TYPE_Q5_K;
        else if ((ft == SD_FTYPE_Q4_K_M || ft == SD_FTYPE_Q5_K_M) && use_more_bits(layer, n)) t = SD_TYPE_Q6_K;
        else if (ft == SD_FTYPE_Q4_K_S && layer < 4) t = SD_TYPE_Q5_K;
        /* 70B: 8 query heads share each V head, so V is small and worth bits */
        if (m->is_70b && (t == SD_TYPE_Q3_K || t == SD_TYPE_Q4_K)) t = SD_TYPE_Q5_K;
    } else if (strstr(name, "ffn_down")) {
        if (ft == SD_FTYPE_Q2_K) t = SD_TYPE_Q3_K;
        else if (ft == SD_FTYPE_Q3_K_M) t = layer < n / 16 ? SD_TYPE_Q5_K : SD_TYPE_Q4_K;
        else if (ft == SD_FTYPE_Q3_K_L) t = SD_TYPE_Q5_K;
        else if ((ft == SD_FTYPE_Q4_K_M || ft == SD_FTYPE_Q5_K_M) && use_more_bits(layer, n)) t = SD_TYPE_Q6_K;
        else if (ft == SD_FTYPE_Q4_K_S && layer < n / 8) t = SD_TYPE_Q5_K;
    } else if (strstr(name, "attn_output.weight")) {
        if (ft == SD_FTYPE_Q2_K) t = SD_TYPE_Q3_K;
        else if (ft == SD_FTYPE_Q3_K_M) t = SD_TYPE_Q4_K;
        else if (ft == SD_FTYPE_Q3_K_L) t = SD_TYPE_Q5_K;
    }
    return t;
}

int sd_qrecipe_tensor_type(const sd_qrecipe *r, const sd_qrecipe_opts *o, const sd_qrecipe_model *m,
                          const char *name, int64_t n_per_row)
{
    int is_output = !strcmp(name, "output.weight") || (!m->has_output && !strcmp(name, "token_embd.weight"));
    if (is_output && o->keep_output_f16) return SD_TYPE_F16;
    if (!r->mixed || o->pure) return r->base;
    if (is_output) {
        /* the output matrix gets Q6_K, or Q8_0 when its rows do not fit
         * super-blocks of 256 (llama.cpp tests QK_K whatever the base) */
        const sd_type_traits *tr = sd_type_get(SD_TYPE_Q6_K);
        if (tr && n_per_row % tr->block) return SD_TYPE_Q8_0;
        return r->base == SD_TYPE_Q8_0 ? r->base : SD_TYPE_Q6_K;
    }
    if (!strcmp(name, "token_embd.weight")) return r->base;
    int layer = 0;
    if (sscanf(name, "blk.%d.", &layer) != 1) layer = 0;
    return bump(r, m, name, layer);
}
