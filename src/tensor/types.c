/* The traits table: one row per GGUF type id, filled from the family files
 * (half.c, q_legacy.c, q_k.c, fp4.c, iq4_nl.c). Lookups by id and by name. */
#include <stdio.h>
#include <strings.h>

#include "tensor/formats.h"

_Static_assert(sizeof(blk_q8_0) == 34 && sizeof(blk_q8_1) == 36, "legacy 8-bit blocks");
_Static_assert(sizeof(blk_q4_0) == 18 && sizeof(blk_q4_1) == 20, "legacy 4-bit blocks");
_Static_assert(sizeof(blk_q5_0) == 22 && sizeof(blk_q5_1) == 24, "legacy 5-bit blocks");
_Static_assert(sizeof(blk_q2_k) == 84 && sizeof(blk_q3_k) == 110, "K-quant blocks");
_Static_assert(sizeof(blk_q4_k) == 144 && sizeof(blk_q5_k) == 176, "K-quant blocks");
_Static_assert(sizeof(blk_q6_k) == 210 && sizeof(blk_q8_k) == 292, "K-quant blocks");
_Static_assert(sizeof(blk_mxfp4) == 17 && sizeof(blk_nvfp4) == 36, "FP4 blocks");
_Static_assert(sizeof(blk_iq4_nl) == 18, "IQ4_NL block");

static const sd_type_traits *const table[SD_TYPE_COUNT] = {
    [SD_TYPE_F32] = &sd_traits_f32,   [SD_TYPE_F16] = &sd_traits_f16,
    [SD_TYPE_BF16] = &sd_traits_bf16,
    [SD_TYPE_Q8_0] = &sd_traits_q8_0, [SD_TYPE_Q8_1] = &sd_traits_q8_1,
    [SD_TYPE_Q4_0] = &sd_traits_q4_0, [SD_TYPE_Q4_1] = &sd_traits_q4_1,
    [SD_TYPE_Q5_0] = &sd_traits_q5_0, [SD_TYPE_Q5_1] = &sd_traits_q5_1,
    [SD_TYPE_Q2_K] = &sd_traits_q2_k, [SD_TYPE_Q3_K] = &sd_traits_q3_k,
    [SD_TYPE_Q4_K] = &sd_traits_q4_k, [SD_TYPE_Q5_K] = &sd_traits_q5_k,
    [SD_TYPE_Q6_K] = &sd_traits_q6_k, [SD_TYPE_Q8_K] = &sd_traits_q8_k,
    [SD_TYPE_MXFP4] = &sd_traits_mxfp4, [SD_TYPE_NVFP4] = &sd_traits_nvfp4,
    [SD_TYPE_IQ4_NL] = &sd_traits_iq4_nl,
};

const sd_type_traits *sd_type_get(uint32_t type)
{
    return type < SD_TYPE_COUNT ? table[type] : NULL;
}

int sd_type_from_name(const char *name)
{
    if (!name) return -1;
    for (int t = 0; t < SD_TYPE_COUNT; t++)
        if (table[t] && strcasecmp(table[t]->name, name) == 0) return t;
    return -1;
}

const char *sd_type_name(uint32_t type)
{
    const sd_type_traits *tr = sd_type_get(type);
    if (tr) return tr->name;
    /* Unknown ids: a per-thread buffer so callers may print it directly. */
    static _Thread_local char buf[24];
    snprintf(buf, sizeof buf, "type %u", type);
    return buf;
}

size_t sd_row_bytes(uint32_t type, int64_t n)
{
    const sd_type_traits *tr = sd_type_get(type);
    if (!tr || n < 0 || n % tr->block) return 0;
    return (size_t)(n / tr->block) * (size_t)tr->block_bytes;
}
