/* The operations of a transformer layer on F32 activations. Matrix products
 * go through the weight format's traits row (and its ISA kernels). */
#ifndef SD_OPS_H
#define SD_OPS_H

#include <stddef.h>

#include "tensor/weight.h"
#include "runtime/pool.h"

void sd_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void sd_softmax(float *x, int n);
/* Rotates each head of q (n_q x head_dim) and of k (n_k x head_dim) in
 * place for position pos, the angles computed once for both. neox: rotate
 * (i, i + d/2) pairs; otherwise adjacent (2i, 2i + 1) pairs. */
void sd_rope(float *q, int n_q, float *k, int n_k, int head_dim, int pos, float base, float scale, int neox,
             const float *freq_factors);

/* YaRN context extension (the reference engine's rope_yarn): each pair's
 * angle blends the interpolated angle (freq_scale = 1 / factor) and the
 * original one by a ramp over the pair index between corr_lo and corr_hi,
 * and cos and sin are multiplied by mscale = 1 + 0.1 ln(factor). */
typedef struct { float freq_scale, corr_lo, corr_hi, mscale; } sd_rope_yarn;
/* beta_fast / beta_slow: rotations over n_ctx_orig that bound the ramp (32 and 1 by default). */
void sd_rope_yarn_init(sd_rope_yarn *y, int head_dim, float base, float factor, int n_ctx_orig, float beta_fast,
                       float beta_slow);
/* sd_rope with YaRN when yarn is set (then scale is ignored). */
void sd_rope_ext(float *q, int n_q, float *k, int n_k, int head_dim, int pos, float base, float scale, int neox,
                 const float *freq_factors, const sd_rope_yarn *yarn);

/* Bytes of scratch sd_matmul needs for a rows x cols weight of type `type`
 * and n_tok activation rows: the activations converted to the weight's
 * activation format, and the partial sums of a packed weight's panels. */
size_t sd_matmul_scratch_bytes(unsigned type, long long rows, long long cols, int n_tok);
/* out[t * w->rows + r] = w->scale * dot(row r of w, x[t * w->cols ...]) for t < n_tok. */
void sd_matmul(sd_pool *pool, const sd_weight *w, const float *x, int n_tok, float *out, void *scratch);
/* n_w products of the same activations (same cols) in one pool run, e.g.
 * Q/K/V or gate/up: out[k] receives weight k's rows as sd_matmul would.
 * next (n_next weights, NULL if unknown): the product that follows, whose
 * weights the threads prefetch at decode once their share is done. */
void sd_matmul_multi(sd_pool *pool, const sd_weight *const *w, int n_w, const float *x, int n_tok, float *const *out,
                     void *scratch, const sd_weight *const *next, int n_next);
/* n_w products of one token each, in one pool run: out[k] = weight k times
 * row k of x (n_w rows of w[0]->cols values; all weights of that width).
 * A mixture of experts' down matrices at decode, each on its expert's
 * hidden state. scratch: sd_matmul_scratch_bytes for n_w tokens. */
void sd_matmul_each(sd_pool *pool, const sd_weight *const *w, int n_w, const float *x, float *const *out,
                    void *scratch);
/* The general form, one pool run: weight k over its own activation rows
 * [first[k], first[k] + count[k]) of x (n_rows rows of w[0]->cols values,
 * encoded once); out[k] receives count[k] rows of w[k]->rows values. A
 * mixture of experts' prefill, the batch's tokens grouped by expert.
 * scratch: sd_matmul_scratch_bytes for n_rows tokens. */
void sd_matmul_grouped(sd_pool *pool, const sd_weight *const *w, int n_w, const float *x, int n_rows,
                       const int *first, const int *count, float *const *out, void *scratch);
/* The weight bytes thread i of nth starts such a product with (its fixed
 * first claim): *len of them from the address returned, NULL if none. */
const void *sd_matmul_first_claim(const sd_weight *const *w, int n_w, int n_tok, int nth, int i, size_t *len);

#endif
