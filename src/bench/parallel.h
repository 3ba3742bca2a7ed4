/* `showdown bench --parallel`: B sequences decoding together in one forward
 * pass, as llama-batched-bench measures it and as the server runs them. Each
 * sequence is prefilled with its own random prompt of n_prompt tokens, then
 * every step decodes one token of each (greedy, so the steps are real
 * decode steps with sampling). No HTTP, no scheduler: the forward pass and
 * the sampling alone. */
#ifndef SD_BENCH_PARALLEL_H
#define SD_BENCH_PARALLEL_H

#include <stdint.h>

#include "showdown.h"

#define SD_PAR_MAX_REPS 100

typedef struct {
    int n_parallel, n_prompt, n_gen, n_threads, n_reps;
    sd_kv_type kv;
    /* per repetition: prefill of all sequences, decode of all steps */
    double pp_ms[SD_PAR_MAX_REPS], tg_ms[SD_PAR_MAX_REPS];
    double avg_ts, stddev_ts;          /* aggregate generated tokens/s (B * n_gen / decode time) */
    double avg_step_ms, stddev_step_ms;/* one decode step (B tokens) */
    double avg_pp_ts;                  /* aggregate prompt tokens/s */
} sd_par_row;

/* One row: B = r->n_parallel sequences, after `warmup` untimed repetitions.
 * r's inputs (n_parallel, n_prompt, n_gen, n_threads, n_reps, kv) are set
 * by the caller. Returns 0, or -1 with err set. */
int sd_bench_parallel(sd_model *m, sd_par_row *r, int warmup, uint64_t seed, char *err);

#endif
