/* Encoding tensors row by row, in parallel, straight into a GGUF writer: the
 * shared engine of `quantize` (rows come from the input file) and `synth`
 * (rows come from a seeded generator). Only one chunk of rows is in memory
 * at a time, so a tensor of any size streams through a fixed buffer. */
#ifndef SD_QUANT_ROWS_H
#define SD_QUANT_ROWS_H

#include <stdint.h>

#include "gguf/gguf_write.h"
#include "runtime/pool.h"

/* Fills dst with the F32 values of rows [row0, row0 + n) (n * n_per_row
 * floats). Called from several threads at once, for disjoint rows. */
typedef void (*sd_rows_fn)(void *ctx, int64_t row0, int64_t n, float *dst);

/* NVFP4's per-tensor scale for a tensor whose largest magnitude is amax:
 * the block scales (E4M3, up to 448) times the largest code (6) then span
 * the tensor's range. 1 for an all-zero or non-finite amax. */
float sd_nvfp4_scale(float amax);

/* Largest |value| over all rows. pool may be NULL. -1 when out of memory. */
int sd_rows_amax(sd_pool *pool, int64_t nrows, int64_t n_per_row, sd_rows_fn fn, void *ctx, float *amax);

/* Encodes nrows rows in `type` into dst (nrows * row bytes). -1 when out of
 * memory. */
int sd_rows_encode(sd_pool *pool, uint32_t type, float scale, int64_t nrows, int64_t n_per_row, sd_rows_fn fn,
                   void *ctx, void *dst);

/* Encodes nrows rows in `type` and writes them to w (which must be at this
 * tensor). scale: the NVFP4 per-tensor scale (values are stored divided by
 * it); ignored for other formats. 0, or -1 with a message naming path. */
int sd_rows_write(gguf_writer *w, const char *path, sd_pool *pool, uint32_t type, float scale, int64_t nrows,
                  int64_t n_per_row, sd_rows_fn fn, void *ctx, char *err);

#endif
