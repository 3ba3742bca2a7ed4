/* Internal to src/tensor: one K-quant super-block (256 values) in a
 * format-independent unpacked form, shared by the K-quant dequantizers, dot
 * products and encoders (q_k.c, q_k_quant.c).
 *
 *   with mins  (Q2_K, Q4_K, Q5_K): x = (d*sc[k]) * L - (dmin*mn[k]),  L >= 0
 *   symmetric  (Q3_K, Q6_K):       x = (d*sc[k]) * L,                  L signed
 * where k = index / sublen is the sub-block. */
#ifndef SD_TENSOR_Q_K_H
#define SD_TENSOR_Q_K_H

#include "tensor/formats.h"

typedef struct {
    int nsub, sublen;   /* sub-blocks per super-block and their length */
    int lmin, lmax;     /* range of the levels L */
    int smin, smax;     /* range of the integer sub-scales sc (and 0..smax for mn) */
    int has_min;
} kq_shape;

typedef struct {
    float d, dmin;      /* FP16 values, as floats */
    int sc[16], mn[16];
    int8_t L[QKK];
} kq_block;

extern const kq_shape kq_shape_q2, kq_shape_q3, kq_shape_q4, kq_shape_q5, kq_shape_q6;

/* Per format: unpack one block, pack one block (levels/scales in range). */
void kq_unpack_q2(const blk_q2_k *b, kq_block *u);
void kq_unpack_q3(const blk_q3_k *b, kq_block *u);
void kq_unpack_q4(const blk_q4_k *b, kq_block *u);
void kq_unpack_q5(const blk_q5_k *b, kq_block *u);
void kq_unpack_q6(const blk_q6_k *b, kq_block *u);
void kq_pack_q2(const kq_block *u, blk_q2_k *b);
void kq_pack_q3(const kq_block *u, blk_q3_k *b);
void kq_pack_q4(const kq_block *u, blk_q4_k *b);
void kq_pack_q5(const kq_block *u, blk_q5_k *b);
void kq_pack_q6(const kq_block *u, blk_q6_k *b);

/* The encoder: the best unpacked block it finds for 256 values. */
void kq_encode(const kq_shape *s, const float *x, kq_block *u);

#endif
