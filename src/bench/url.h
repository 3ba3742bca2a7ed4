/* showdown bench --url: load an OpenAI-compatible server the way users do and
 * measure what they feel, with the definitions of vLLM's `bench serve`
 * (TTFT, TPOT, ITL, E2E latency, throughputs, goodput) so results compare.
 *
 *   prompts (url_prompts.c) -> sd_url_run (url_run.c: libcurl multi, one
 *   thread, SSE via sse.c, chunks via url_chunk.c) -> per-request results ->
 *   sd_url_metrics_compute (url_stats.c) -> JSON/CSV/md (url_emit.c), SVG
 *   (url_svg.c).
 *
 * Library code: never prints; fallible calls fill err (SD_ERR_LEN). */
#ifndef SD_BENCH_URL_H
#define SD_BENCH_URL_H

#include <stdint.h>
#include <stdio.h>

#include "showdown.h"

/* ---- one streamed chunk of an OpenAI response (url_chunk.c) ------------ */

typedef struct {
    int done;                  /* data: [DONE] */
    int is_error;              /* {"error": ...} or an event: error */
    char error[200];
    size_t content_len;        /* bytes of generated text in this chunk (0: none) */
    int has_usage;
    long prompt_tokens, completion_tokens;
    int has_timings;           /* llama-server / showdown serve: the server's own clock */
    double prompt_ms, predicted_ms;
    long prompt_n, predicted_n;
} sd_oai_chunk;

/* Interprets one SSE event's data. chat: choices[0].delta.content (and
 * reasoning_content), else choices[0].text. 0 ok, -1 not JSON or not an
 * object (one line in err). */
int sd_oai_chunk_parse(const char *event, const char *data, size_t n, int chat, sd_oai_chunk *c, char *err);

/* ---- random numbers and arrivals (url_rand.c) --------------------------- */

typedef struct { uint64_t s; } sd_rng;
void sd_rng_seed(sd_rng *r, uint64_t seed);
uint64_t sd_rng_next(sd_rng *r);
double sd_rng_uniform(sd_rng *r);          /* [0, 1) */
double sd_rng_gamma(sd_rng *r, double shape, double scale);
/* Send times (seconds from the start) of n requests arriving at rate per
 * second with vLLM's burstiness: gaps are gamma(shape = burstiness,
 * scale = 1 / (rate * burstiness)), so burstiness 1 is Poisson. rate
 * INFINITY: all at 0. */
void sd_url_arrivals(double rate, double burstiness, uint64_t seed, int n, double *t_s);

/* ---- prompts (url_prompts.c) ------------------------------------------- */

typedef struct {
    char *text;
    int n_tokens;      /* prompt tokens as counted (exact or approximated) */
    int output_len;    /* max_tokens for this prompt (<= 0: the run's) */
} sd_url_prompt;

/* Counts the tokens of text (no special tokens): the server's /tokenize or a
 * local tokenizer. 0 ok, -1 with err. */
typedef int (*sd_token_count_fn)(void *ctx, const char *text, int *n, char *err);

typedef struct {
    int n, input_len, prefix_len;
    int output_len;            /* > 0 with range_ratio: each prompt's own max_tokens varies too */
    double range_ratio;        /* lengths uniform in [len*(1-r), len*(1+r)], as vLLM's random dataset */
    uint64_t seed;
    sd_token_count_fn count;   /* NULL: approximate (one token per word) */
    void *count_ctx;
} sd_url_random_spec;

int sd_url_prompts_random(const sd_url_random_spec *s, sd_url_prompt **out, char *err);
/* JSONL: one prompt per line, a JSON string or {"prompt": "...", optional
 * "output_len"/"max_tokens"}. ShareGPT: [{"conversations": [{"from":
 * "human", "value"}, {"from": "gpt", "value"}]}], the first human turn is
 * the prompt and the reply's length its output_len. Up to n prompts (taken
 * in order for JSONL, shuffled by seed for ShareGPT, cycled when short).
 * count may be NULL (lengths approximated). Return the number of prompts
 * read, or -1 with err naming the file (and line). */
int sd_url_prompts_jsonl(const char *path, int n, sd_token_count_fn count, void *ctx, sd_url_prompt **out, char *err);
int sd_url_prompts_sharegpt(const char *path, int n, uint64_t seed, sd_token_count_fn count, void *ctx,
                            sd_url_prompt **out, char *err);
void sd_url_prompts_free(sd_url_prompt *p, int n);
/* Approximate count: one token per whitespace-separated word. */
int sd_url_approx_tokens(const char *text);

/* ---- the server (url_server.c) ----------------------------------------- */

/* libcurl's global initialisation, once per process (thread-safe). */
void sd_url_curl_init(void);
/* Checks url ("http[s]://host[:port]/..."): 0 ok, -1 one line in err. */
int sd_url_check(const char *url, char *err);
/* GET url/models: reachable (0) or not (-1, why in err). The first model id
 * goes into model (may be left empty when the list has none). */
int sd_url_probe(const char *url, const char *api_key, double timeout_s, char *model, size_t model_len, char *err);
/* The server's /tokenize (at the root above /v1): a count function when it
 * answers with tokens, else NULL. */
typedef struct { char root[1024]; char model[256]; char api_key[256]; void *curl; } sd_url_tokenizer;
int sd_url_tokenizer_open(sd_url_tokenizer *t, const char *url, const char *model, const char *api_key);
void sd_url_tokenizer_close(sd_url_tokenizer *t);
int sd_url_tokenizer_count(void *ctx, const char *text, int *n, char *err);

/* ---- the run (url_run.c) ------------------------------------------------ */

typedef struct {
    int done, failed, total, in_flight;
    long output_tokens;
    double elapsed_s;
} sd_url_progress;

typedef struct {
    const char *url;            /* .../v1 */
    const char *model, *api_key;
    int chat;                   /* /chat/completions instead of /completions */
    const sd_url_prompt *prompts;
    int n;                      /* requests: prompts[i % n_prompts] */
    int n_prompts;
    int output_len;             /* max_tokens unless the prompt has its own (> 0); <= 0: none sent */
    int ignore_eos;
    int concurrency;            /* > 0: closed loop of this many streams */
    double request_rate;        /* concurrency == 0: open loop (INFINITY: all at once) */
    double burstiness;
    uint64_t seed;
    double timeout_s;           /* a request with no bytes for this long fails */
    int require_usage;          /* a stream without usage fails */
    void (*progress)(const sd_url_progress *p, void *user);
    void *user;
} sd_url_params;

typedef struct {
    int ok;
    char reason[200];           /* why it failed */
    double start_s;             /* sent, seconds from the run's start */
    double ttft_ms, e2el_ms;
    int prompt_tokens, output_tokens, n_chunks;
    double *itl_ms;             /* gaps between content chunks (malloc'd) */
    int n_itl;
    int has_timings;            /* the server's own "timings" (llama-server, showdown serve) */
    double srv_prompt_ms, srv_predicted_ms;
    long srv_predicted_n;
} sd_url_result;

typedef struct {
    double duration_s;
    int peak_concurrency;
} sd_url_run_info;

/* Runs the n requests; every one gets a result (ok or a reason). Returns 0,
 * or -1 when the run could not start (libcurl, memory), with err. */
int sd_url_run(const sd_url_params *p, sd_url_result *res, sd_url_run_info *info, char *err);
void sd_url_results_free(sd_url_result *res, int n);

/* ---- metrics (url_stats.c) --------------------------------------------- */

typedef struct { double mean, median, std, p90, p99; } sd_url_dist;   /* NAN when empty */

typedef struct { double ttft_ms, tpot_ms, e2el_ms; } sd_url_slo;       /* NAN: no SLO */

#define SD_URL_MAX_REASONS 8

typedef struct {
    /* the sweep point */
    int concurrency;            /* 0: rate mode */
    double request_rate, burstiness;
    int num_prompts;
    /* vLLM bench serve */
    int completed, failed;
    long total_input_tokens, total_output_tokens;
    double duration_s, request_throughput, output_throughput, total_token_throughput;
    sd_url_dist ttft, tpot, itl, e2el;
    double goodput;             /* requests/s meeting every SLO; NAN without --goodput */
    /* ours */
    int peak_concurrency;
    /* what the server says of itself, where it reports "timings" (else 0 / NAN) */
    int server_timed;
    long server_output_tokens;
    double server_mean_prompt_ms, server_mean_ms_per_token;
    double energy_j, tokens_per_j;   /* NAN when not measured */
    char energy_boundary[160];
    int n_reasons;
    char reasons[SD_URL_MAX_REASONS][200];
    int reason_count[SD_URL_MAX_REASONS];
    char first_reason[200];
} sd_url_metrics;

/* numpy.percentile's default (linear between closest ranks) on sorted x. */
double sd_percentile_sorted(const double *x, int n, double pct);
void sd_url_dist_of(double *x, int n, sd_url_dist *d);   /* sorts x */
/* slo: NULL for no goodput. Leaves the sweep-point and energy fields alone. */
int sd_url_metrics_compute(const sd_url_result *r, int n, const sd_url_run_info *info, const sd_url_slo *slo,
                           sd_url_metrics *m, char *err);
/* "ttft:500,tpot:50,e2el:2000" -> slo (unset ones NAN). */
int sd_url_slo_parse(const char *s, sd_url_slo *slo, char *err);

/* ---- output (url_emit.c, url_svg.c) ------------------------------------ */

typedef struct {
    const char *url, *model, *endpoint, *prompt_source;   /* prompt_source: how lengths were counted */
    int input_len, output_len;
} sd_url_run_desc;

/* One sweep point as a JSON object with vLLM's field names (json_t *). */
void *sd_url_point_json(const sd_url_metrics *m, const sd_url_run_desc *d);
/* fmt: "md", "json", "jsonl", "csv". 0, or -1 when out of memory. */
int sd_url_emit(FILE *f, const char *fmt, const sd_url_metrics *m, int n, const sd_url_run_desc *d);
/* Latency (TTFT and TPOT, p50 and p99) against output throughput. */
void sd_url_svg(FILE *f, const sd_url_metrics *m, int n, const sd_url_run_desc *d);

#endif
