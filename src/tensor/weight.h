/* A weight matrix as the kernels see it: rows of `cols` values in one
 * format, mapped from the file (or a packed copy). Below the kernels so that
 * kernels/ and the GPU backends know no model types. */
#ifndef SD_WEIGHT_H
#define SD_WEIGHT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const void *data;
    uint32_t type;
    int64_t rows, cols;
    size_t row_bytes;
    float scale;       /* second-level per-tensor factor (NVFP4); 1 otherwise */
    void *packed;      /* owned copy in the kernels' 16-row layout (kernels/pack.h), or NULL */
} sd_weight;

#endif
