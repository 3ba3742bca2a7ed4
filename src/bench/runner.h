/* Internals shared by the sweep (runner.c) and one test's repetitions
 * (run_test.c). */
#ifndef SD_BENCH_RUNNER_H
#define SD_BENCH_RUNNER_H

#include "bench/bench.h"
#include "measure/energy.h"

/* What one loaded model contributes to every row. */
typedef struct {
    sd_model *m;
    double load_ms, cached_fraction;
    uint64_t weight_bytes_per_token;
} bench_model;

/* Seconds per prefill token and per decode step, measured once. */
typedef struct { double pf_s, dec_s; double size_bytes; } bench_probe;

typedef void (*rep_hook)(void *ud, int rep, int warmup);

/* Runs warm-up and timed repetitions of the test described by row (its
 * n_prompt/n_gen/n_depth/n_threads/type_k already set) and fills the timing,
 * TTFT and energy fields. -1 with row->error set on failure. */
int sd_bench_run_test(const sd_bench_config *cfg, bench_model *bm, sd_kv_type kv, sd_energy *probe,
                      sd_bench_row *row, rep_hook hook, void *hook_ud);
/* Times one decode step and a short prefill with the model. */
int sd_bench_probe(bench_model *bm, int n_threads, bench_probe *out, char *err);

#endif
