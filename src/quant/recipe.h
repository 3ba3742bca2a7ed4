/* Quantization targets: a plain weight format ("Q8_0", "NVFP4": every matrix
 * in that format) or one of the ecosystem's mixed recipes ("Q4_K_M": a base
 * format, with some tensors bumped to more bits following llama.cpp's rules,
 * see docs/FORMATS.md "Mixed recipes"). */
#ifndef SD_QUANT_RECIPE_H
#define SD_QUANT_RECIPE_H

#include <stddef.h>
#include <stdint.h>

/* The ecosystem's general.file_type values (llama.cpp's LLAMA_FTYPE_*). */
enum {
    SD_FTYPE_ALL_F32 = 0, SD_FTYPE_F16 = 1, SD_FTYPE_Q4_0 = 2, SD_FTYPE_Q4_1 = 3,
    SD_FTYPE_Q8_0 = 7, SD_FTYPE_Q5_0 = 8, SD_FTYPE_Q5_1 = 9, SD_FTYPE_Q2_K = 10,
    SD_FTYPE_Q3_K_S = 11, SD_FTYPE_Q3_K_M = 12, SD_FTYPE_Q3_K_L = 13, SD_FTYPE_Q4_K_S = 14,
    SD_FTYPE_Q4_K_M = 15, SD_FTYPE_Q5_K_S = 16, SD_FTYPE_Q5_K_M = 17, SD_FTYPE_Q6_K = 18,
    SD_FTYPE_BF16 = 32, SD_FTYPE_MXFP4 = 38, SD_FTYPE_NVFP4 = 39
};

typedef struct {
    const char *name;   /* as printed: "Q4_K_M", "Q8_0" */
    int ftype;          /* general.file_type */
    int base;           /* format of most matrices (enum sd_type) */
    int mixed;          /* 1: llama.cpp's per-tensor bumps apply (unless pure) */
} sd_qrecipe;

/* Case-insensitive; NULL if the name is neither a recipe nor a format that
 * can be written (Q8_1 and Q8_K are activation formats, not storage). */
const sd_qrecipe *sd_qrecipe_find(const char *name);
/* "F32 F16 BF16 Q4_0 ... Q4_K_M ..." for error messages. */
void sd_qrecipe_names(char *out, size_t n);

/* What a recipe needs to know about the model. */
typedef struct {
    int n_layer, n_head, n_head_kv;
    int has_output;     /* a separate output.weight (else token_embd is the output) */
    int is_70b;         /* llama.cpp's LLM_TYPE_70B: 80-layer llama/qwen2 */
} sd_qrecipe_model;

typedef struct {
    int pure;             /* every matrix in the base format, no bumps */
    int keep_output_f16;  /* the output matrix (or tied token_embd) in F16 */
} sd_qrecipe_opts;

/* Whether a tensor is a weight matrix that quantization applies to (2-D or
 * more, name ending in "weight", not a norm). Others are kept in F32. */
int sd_qrecipe_quantizes(const char *name, int n_dims);

/* The format for one matrix before any row-length fallback (the caller
 * applies sd_type_fallback and reports it). */
int sd_qrecipe_tensor_type(const sd_qrecipe *r, const sd_qrecipe_opts *o, const sd_qrecipe_model *m,
                          const char *name, int64_t n_per_row);

#endif
