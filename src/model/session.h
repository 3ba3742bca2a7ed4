/* An inference session: one sequence over the batched forward pass (a KV
 * cache of one sequence whose blocks are all its own, the scratch, the
 * threads). The serving engine runs the same pass with many sequences. */
#ifndef SD_SESSION_H
#define SD_SESSION_H

#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/model.h"

#define SD_UBATCH 64   /* tokens per pass through the layers during prefill */
/* A mixture of experts on the CPU takes longer passes: each pass reads every
 * expert a token chose, so at 64 tokens a 512-token prompt read each expert
 * 8 times, ~4 tokens at a time; at 512 once, ~32 at a time (the reference
 * engine's default n_ubatch). Halved while the experts' scratch would pass
 * SD_UBATCH_MOE_BYTES, a guard for wide experts (at 512 tokens
 * qwen3-30b-a3b's takes 92 MB, mixtral-8x7b's 151 MB). */
#define SD_UBATCH_MOE 512
#define SD_UBATCH_MOE_BYTES (512ull << 20)

struct sd_session {
    sd_model *m;
    sd_kv_cache *kv;           /* one sequence holding every block (sliding layers: their window) */
    sd_fwd f;
    int n_ctx, pos;
    sd_kv_type kv_type;
    int ubatch;                /* tokens per pass: SD_UBATCH, or more for a mixture of experts */
    int *pos_buf, *seq_buf, *out_buf;   /* ubatch each */
    float *logits;             /* last row */
    struct sd_gpu_state *gpu;  /* KV cache and scratch of the GPU layers (model/offload.c), or NULL */
    char *gpu_err;             /* set when a GPU step failed: the step's results are void */
};

/* Runs n <= s->ubatch tokens at positions pos..pos+n-1 through the model.
 * logits_out: NULL (only the last row, into s->logits) or n rows. */
void sd_forward(sd_session *s, const int32_t *tokens, int n, float *logits_out);

#endif
