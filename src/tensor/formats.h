/* Internal to src/tensor: the byte layout of every block (as the GGUF
 * ecosystem lays it out, little endian, no padding), the traits rows each
 * family file defines, and small helpers the families share. */
#ifndef SD_TENSOR_FORMATS_H
#define SD_TENSOR_FORMATS_H

#include <math.h>
#include <string.h>

#include "tensor/types.h"

#define QK32 32     /* legacy and MXFP4 block */
#define QKK 256     /* K-quant super-block */
#define QKNV 64     /* NVFP4 block (four sub-blocks of 16) */

/* Legacy formats: value j of a block sits in the low nibble of qs[j] for
 * j < 16 and in the high nibble of qs[j-16] for j >= 16. */
typedef struct { uint16_t d; int8_t qs[32]; } blk_q8_0;                    /* x = d*q */
typedef struct { uint16_t d, s; int8_t qs[32]; } blk_q8_1;                 /* s = d*sum(q) */
typedef struct { uint16_t d; uint8_t qs[16]; } blk_q4_0;                   /* x = d*(q-8) */
typedef struct { uint16_t d, m; uint8_t qs[16]; } blk_q4_1;                /* x = d*q + m */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_0;    /* x = d*(q-16) */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_1; /* x = d*q + m */

/* K-quants: super-blocks of 256. */
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } blk_q2_k;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } blk_q3_k;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } blk_q4_k;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } blk_q5_k;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } blk_q6_k;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } blk_q8_k;

/* FP4 formats: E2M1 codes, two per byte. */
typedef struct { uint8_t e; uint8_t qs[16]; } blk_mxfp4;     /* E8M0 scale per 32 */
typedef struct { uint8_t d[4]; uint8_t qs[32]; } blk_nvfp4;  /* UE4M3 scale per 16 */

/* IQ4_NL: 4-bit indices into a fixed int8 table, FP16 factor per 32. */
typedef struct { uint16_t d; uint8_t qs[16]; } blk_iq4_nl;

/* Round to nearest, ties to even, for |x| < 2^22 (what the encoders need):
 * adding 1.5*2^23 leaves the rounded integer in the low mantissa bits. */
static inline int sd_nearest(float x)
{
    float v = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static inline float sd_f16_round(float x) { return sd_f16_to_f32(sd_f32_to_f16(x)); }

extern const sd_type_traits sd_traits_f32, sd_traits_f16, sd_traits_bf16;
extern const sd_type_traits sd_traits_q8_0, sd_traits_q8_1, sd_traits_q4_0, sd_traits_q4_1,
                            sd_traits_q5_0, sd_traits_q5_1;
extern const sd_type_traits sd_traits_q2_k, sd_traits_q3_k, sd_traits_q4_k, sd_traits_q5_k,
                            sd_traits_q6_k, sd_traits_q8_k;
extern const sd_type_traits sd_traits_mxfp4, sd_traits_nvfp4, sd_traits_iq4_nl;

#endif
