/* `showdown quantize`: rewrite an F32/F16/BF16 GGUF model with its matrices in
 * another format or mixed recipe (or, with allow_requantize, a quantized one:
 * its matrices are decoded to F32 first, so two losses add up). Metadata is copied, general.file_type set,
 * 1-D tensors stay F32. Streams tensor by tensor (memory: one chunk of rows). */
#ifndef SD_QUANT_QUANTIZE_H
#define SD_QUANT_QUANTIZE_H

#include <stdint.h>

#include "gguf/gguf_write.h"

/* A one-line notice for the user (a row-length fallback, ...). */
typedef void (*sd_note_fn)(void *ctx, const char *msg);

typedef struct {
    const char *target;        /* format or recipe name, any case: "q4_k_m", "NVFP4" */
    int pure;                  /* no recipe bumps: every matrix in the base format */
    int keep_output_f16;       /* output.weight (or the tied token_embd) in F16 */
    int allow_requantize;      /* accept quantized matrices (decoded, then encoded;
                                * one already in its target format is copied) */
    int n_threads;             /* 0: every CPU */
    gguf_progress_fn progress;
    void *progress_ctx;
    sd_note_fn note;
    void *note_ctx;
} sd_quantize_params;

typedef struct {
    uint64_t in_bytes, out_bytes;   /* tensor data */
    int n_tensors, n_quantized, n_fallback;
} sd_quantize_stats;

sd_quantize_params sd_quantize_default_params(void);
/* 0, or -1 with a message naming the file at fault; on failure nothing is
 * left under out_path. stats may be NULL. */
int sd_quantize_file(const char *in_path, const char *out_path, const sd_quantize_params *p,
                     sd_quantize_stats *stats, char *err);

/* What quantizing would do, without writing: fn is called for every tensor
 * of the input with its shape and its format before and after. */
typedef void (*sd_quantize_plan_fn)(void *ctx, const char *name, const int64_t *ne, uint32_t from, uint32_t to);
int sd_quantize_plan(const char *in_path, const sd_quantize_params *p, sd_quantize_plan_fn fn, void *ctx,
                     char *err);

#endif
