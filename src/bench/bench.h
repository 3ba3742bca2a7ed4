/* `showdown bench`: the llama-bench style runner. A config is the cross
 * product of its lists; every test becomes one result row carrying
 * everything needed to reproduce and judge it (see docs/BENCHMARKS-report.md). */
#ifndef SD_BENCH_H
#define SD_BENCH_H

#include <stdint.h>

#include "showdown.h"
#include "measure/calibrate.h"

#define SD_BENCH_MAX_REPS 1000
#define SD_BENCH_SCHEMA "showdown-bench/1"

#ifndef SD_BUILD_COMMIT
#define SD_BUILD_COMMIT "unknown"
#endif

typedef struct {
    char **models; int n_models;
    int *n_prompt; int n_n_prompt;     /* each > 0 value: a pp test */
    int *n_gen; int n_n_gen;           /* each > 0 value: a tg test */
    int *pg; int n_pg;                 /* pairs (pp, tg): pg tests, 2 * n_pg values */
    int *n_depth; int n_n_depth;
    int *n_threads; int n_n_threads;
    sd_kv_type *kv; int n_kv;
    int reps, warmup;
    uint64_t seed;
    const char *energy;                /* sd_energy_open's `which` */
    int cold;                          /* drop each model's file from the page cache before loading */
    const sd_calibration *calib;       /* NULL: roofline_fraction is null */
    int *n_gpu_layers; int n_n_gpu_layers;   /* -ngl values (SD_NGL_AUTO: auto), each a model load;
                                              * none: 0, the CPU only (unless device) */
    int device;                        /* --device */
} sd_bench_config;

typedef struct {
    /* what was run (llama-bench names where the meaning is the same) */
    char model_filename[512], model_type[64];
    uint64_t model_size, model_n_params;
    int n_threads, n_prompt, n_gen, n_depth;
    char type_k[8], type_v[8];
    int n_reps, n_warmup;
    uint64_t seed;
    /* how fast */
    double samples_ns[SD_BENCH_MAX_REPS], samples_ts[SD_BENCH_MAX_REPS];
    double avg_ns, stddev_ns, avg_ts, stddev_ts;
    double ttft_ms, stddev_ttft_ms;
    double load_ms;
    char load_cache[16];               /* "cold", "warm", "partial" (before loading) */
    double load_cached_fraction;
    uint64_t peak_rss_bytes;
    /* energy: NAN when not measured (written as null) */
    double energy_j, stddev_energy_j, tokens_per_joule;
    char energy_source[256];
    /* against the machine's ceiling: NAN when there is no calibration */
    double roofline_ts, roofline_fraction;
    char roofline_ceiling[32];         /* which ceiling: "compute", "dram", "cache+dram", ... (roofline.h) */
    char roofline_note[256];           /* its basis; says so when avg_ts is above it */
    /* where and when */
    char cpu_info[128], build_commit[64], kernel_isa[32], test_time[32];
    uint64_t l2_bytes, llc_bytes;      /* one instance of each; 0: unknown */
    int llc_shared_cpus;               /* CPUs sharing one LLC */
    char error[SD_ERR_LEN];            /* empty when the test ran */
    /* where it ran (llama-bench's names): what actually ran, not what was asked */
    char backends[16], gpu_info[256];  /* "vulkan" or "cpu"; the device's name or "" */
    int n_gpu_layers;
} sd_bench_row;

/* "pp512", "tg128", "pp512+tg128", with " @ d1024" when there is depth. */
const char *sd_bench_test_name(const sd_bench_row *r, char *buf, unsigned long n);

typedef struct {
    int test, n_tests;                 /* 1-based index of the running test */
    const char *model, *test_name;
    int n_threads;
    int rep, n_reps, warmup;           /* warmup: 1 while in warm-up runs */
    double elapsed_s, eta_s;           /* eta_s < 0: unknown */
} sd_bench_progress;

typedef struct {
    /* Called once, after the first model is loaded and probed: the estimated
     * seconds for the whole sweep. Return 0 to go on, non-zero to stop. */
    int (*on_estimate)(double seconds, void *ud);
    void (*on_progress)(const sd_bench_progress *p, void *ud);
    /* Every finished test, in order, errors included. */
    void (*on_row)(const sd_bench_row *r, void *ud);
    void *ud;
    /* Each model loaded: what runs where (sd_model_placement), when a GPU was asked for. */
    void (*on_placement)(const char *model, const char *placement, void *ud);
} sd_bench_callbacks;

/* Runs every test. A test that fails gets a row with `error` set and the
 * others still run. Returns the number of failed tests (0: all ran), or -1
 * when the sweep itself could not run or was stopped (message in err). */
int sd_bench_run(const sd_bench_config *cfg, const sd_bench_callbacks *cb, char *err);
/* How many tests the config makes. */
int sd_bench_count_tests(const sd_bench_config *cfg);

/* KV cache format names as -ctk/-ctv spell them. */
const char *sd_kv_type_name(sd_kv_type t);
int sd_kv_type_parse(const char *s, sd_kv_type *out);

#endif
