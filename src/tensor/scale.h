/* Second-level (per-tensor) scales: a format such as NVFP4 may carry one FP32
 * factor per tensor beside its blocks. Stored outside the tensor data so other
 * GGUF readers still load the file (docs/FORMATS.md says where). */
#ifndef SD_TENSOR_SCALE_H
#define SD_TENSOR_SCALE_H

#include "gguf/gguf.h"

/* The factor every dequantized value of t is multiplied by; 1 when none. */
float sd_tensor_scale(const gguf_file *f, const gguf_tensor *t);

#endif
