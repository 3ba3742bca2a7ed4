/* The weight formats: one row per format in a traits table (see types.c),
 * instead of a switch in every operation. Type ids are GGUF's. */
#ifndef SD_TYPES_H
#define SD_TYPES_H

#include <stddef.h>
#include <stdint.h>

enum sd_type {
    SD_TYPE_F32 = 0, SD_TYPE_F16 = 1, SD_TYPE_Q4_0 = 2, SD_TYPE_Q4_1 = 3,
    SD_TYPE_Q5_0 = 6, SD_TYPE_Q5_1 = 7, SD_TYPE_Q8_0 = 8, SD_TYPE_Q8_1 = 9,
    SD_TYPE_Q2_K = 10, SD_TYPE_Q3_K = 11, SD_TYPE_Q4_K = 12, SD_TYPE_Q5_K = 13,
    SD_TYPE_Q6_K = 14, SD_TYPE_Q8_K = 15, SD_TYPE_IQ4_NL = 20, SD_TYPE_BF16 = 30,
    SD_TYPE_MXFP4 = 39, SD_TYPE_NVFP4 = 40,
    SD_TYPE_COUNT = 41
};

/* Dequantize n values (n a multiple of block) from src to dst. */
typedef void (*sd_to_float_fn)(const void *src, float *dst, int64_t n);
/* Quantize n values (n a multiple of block); the encoder of this format. */
typedef void (*sd_from_float_fn)(const float *src, void *dst, int64_t n);
/* Dot product of n weights (this format) with n activations already
 * converted to vec_dot_type by that type's from_float. */
typedef float (*sd_vec_dot_fn)(int64_t n, const void *w, const void *x);

typedef struct {
    const char *name;         /* "Q4_0", as the ecosystem writes it */
    int block;                /* elements per block */
    int block_bytes;          /* bytes per block */
    sd_to_float_fn to_float;
    sd_from_float_fn from_float;
    int vec_dot_type;         /* activations are converted to this before vec_dot */
    sd_vec_dot_fn vec_dot;
    int is_quantized;
} sd_type_traits;

/* NULL for an id we do not know or cannot compute with. */
const sd_type_traits *sd_type_get(uint32_t type);
/* Case-insensitive lookup by name ("q4_0", "BF16"); -1 if unknown. */
int sd_type_from_name(const char *name);
const char *sd_type_name(uint32_t type);   /* "type 99" style string for unknown ids */
/* Bytes of a row of n elements; 0 if n is not a multiple of the block. */
size_t sd_row_bytes(uint32_t type, int64_t n);

/* Scalar conversions shared by many formats (tensor/half.c). */
float sd_f16_to_f32(uint16_t h);
uint16_t sd_f32_to_f16(float f);
float sd_bf16_to_f32(uint16_t h);
uint16_t sd_f32_to_bf16(float f);   /* round to nearest even, NaN kept quiet */

/* Bits per weight of a format (block_bytes*8/block); 0 for unknown ids. */
double sd_type_bpw(uint32_t type);

/* Q8_0 activation encoder with the reference engine's (ggml's) rounding;
 * Q8_0's from_float is the weight encoder (src/tensor/q_legacy.c). */
void sd_q8_0_quantize_act(const float *src, void *dst, int64_t n);

/* Quantizes a whole tensor of nrows rows of n_per_row values (n_per_row a
 * multiple of the block) into dst (nrows * sd_row_bytes bytes). Returns the
 * tensor's second-level scale: every dequantized value must be multiplied by
 * it. It is 1.0 for every format except NVFP4, whose FP32 per-tensor scale
 * lets the E4M3 block scales use their whole range; the writer stores it as
 * the f32 metadata key SD_TENSOR_SCALE_PREFIX + tensor name (only when it is
 * not 1), and sd_tensor_scale() (tensor/scale.h) reads it back. Returns 0 on
 * bad arguments (unknown type, bad row length). */
float sd_quantize_tensor(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row);
#define SD_TENSOR_SCALE_PREFIX "showdown.tensor_scale."

/* NVFP4 with an explicit second-level scale: encodes src/scale, so that
 * to_float(dst) * scale approximates src. */
void sd_quantize_nvfp4_scaled(const float *src, void *dst, int64_t n, float scale);

/* The format to store a tensor in when its rows (n_per_row) cannot be cut
 * into blocks of `type`: K-quants (256) fall back to a format of 32
 * (Q2_K, Q3_K -> IQ4_NL ... as llama.cpp does, see docs/FORMATS.md), 32-blocks
 * to F16 (Q8_0 to F16 too), NVFP4 (64) to MXFP4 or F16. Returns type itself
 * when it fits, -1 for an unknown type. */
int sd_type_fallback(int type, int64_t n_per_row);

#endif
