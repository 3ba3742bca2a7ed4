/* The compute shaders as SPIR-V, embedded at build time (scripts/embed-shaders.sh
 * writes the table from the .comp files of src/gpu/shaders). */
#ifndef SD_GPU_SPV_H
#define SD_GPU_SPV_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;       /* "matvec_Q4_0", "rmsnorm", ... */
    const uint32_t *code;
    size_t bytes;
} sd_spv;

extern const sd_spv sd_spv_table[];   /* ends with a NULL name */

#endif
