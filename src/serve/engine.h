/* The serving engine: many sequences of one model decoded together.
 *
 * One scheduler thread owns the model: each step it adds one token for every
 * generating sequence and fills the rest of a token budget with chunks of
 * waiting prompts (chunked prefill), runs them as one batched forward pass
 * over a paged KV cache shared by all slots, samples, and reports each new
 * token through the request's callback. Prompts that start with tokens whose
 * KV blocks are already cached reuse them (prefix cache).
 *
 * This is the contract between the HTTP side (serve/http*.c) and the engine
 * (serve/engine.c over model/): submit and cancel may be called from any
 * thread; callbacks run on the scheduler thread and must not block. The
 * library never prints: stats go out through sd_engine_stats.
 *
 * A model offloaded with sd_model_offload runs its GPU layers in the same
 * steps: one command buffer per step for the whole batch, the GPU layers'
 * keys and values in a device pool that mirrors the CPU cache's blocks
 * (model/offload.h). A failed GPU step (device lost) ends every request in
 * flight with SD_FINISH_ERROR and the engine refuses new ones: it does not
 * fall back to the CPU (docs/ARCHITECTURE.md, the GPU boundary). */
#ifndef SD_SERVE_ENGINE_H
#define SD_SERVE_ENGINE_H

#include <stdint.h>

#include "showdown.h"

typedef struct sd_engine sd_engine;

typedef struct {
    int n_slots;          /* sequences generating at once (-np) */
    int n_ctx;            /* KV positions shared by all slots (-c); one sequence may use them all */
    int n_threads;        /* 0: all CPUs */
    int n_batch;          /* tokens per step, decode tokens first, then prompt chunks (0: default) */
    int max_queue;        /* requests waiting beyond the busy slots (preempted ones included);
                             submit refuses more (0: default, 64) */
    sd_kv_type kv_type;
} sd_engine_params;

sd_engine_params sd_engine_default_params(void);

#define SD_ENGINE_MAX_TOP 20   /* top log-probabilities per token, at most */

typedef struct {
    const int32_t *prompt;   /* copied by submit */
    int n_prompt;
    int max_tokens;          /* < 0: until the context is full */
    sd_sampler_params sampling;
    float presence_penalty, frequency_penalty;
    int ignore_eos;          /* 1: end-of-generation tokens do not end it */
    int n_top;               /* top log-probabilities to report per generated token (0..SD_ENGINE_MAX_TOP) */
    int prompt_logprobs;     /* 1: report each prompt token's log-probability (completions' echo).
                                Such a prompt is computed whole, never taken from the prefix cache: a
                                position's log-probability needs the logits of the position before,
                                which only a forward pass over it gives (cached blocks hold keys and
                                values, not logits), so reuse would save nothing. Its blocks are
                                published for later requests all the same. */
} sd_gen_request;

typedef enum {
    SD_FINISH_NONE = 0,      /* not finished (a token event) */
    SD_FINISH_STOP,          /* an end-of-generation token, or the callback asked to stop */
    SD_FINISH_LENGTH,        /* max_tokens, or the context is full (n_ctx positions) */
    SD_FINISH_CANCELLED,     /* sd_engine_cancel, or the engine is shutting down */
    SD_FINISH_ERROR          /* see message */
} sd_finish;

typedef enum { SD_EV_PROMPT = 0, SD_EV_TOKEN = 1, SD_EV_DONE = 2 } sd_gen_event_kind;

typedef struct {
    sd_gen_event_kind kind;
    /* SD_EV_PROMPT (once per prompt token when prompt_logprobs; the first has no
     * log-probability: logprob = 0, index 0) and SD_EV_TOKEN: */
    int index;               /* position in the prompt, or in the generated tokens */
    int32_t token;
    float logprob;           /* log-probability of token under the model */
    int n_top;
    int32_t top_id[SD_ENGINE_MAX_TOP];
    float top_logprob[SD_ENGINE_MAX_TOP];
    /* SD_EV_DONE: */
    sd_finish finish;
    char message[SD_ERR_LEN];   /* SD_FINISH_ERROR */
    int n_prompt, n_cached;     /* prompt tokens, of which reused from the prefix cache */
    int n_gen;
    double queued_ms, prompt_ms, gen_ms;   /* waiting for a slot; prefill; decode after the first token */
} sd_gen_event;

/* An end-of-generation token (unless ignore_eos) ends the request with
 * SD_FINISH_STOP without a TOKEN event: it is not part of the text. */
/* Called on the scheduler thread for each event; DONE is the last call for
 * a request. Returns 0 to go on, 1 to finish the request now with
 * SD_FINISH_STOP (a stop string was seen). Must not block. */
typedef int (*sd_gen_cb)(const sd_gen_event *ev, void *user);

int sd_engine_new(sd_model *m, const sd_engine_params *p, sd_engine **out, char *err);
/* Stops the scheduler: requests still queued or running end with
 * SD_FINISH_CANCELLED (their callbacks are called), then frees everything. */
void sd_engine_free(sd_engine *e);

/* Queues a request. Fails (returns -1, message in err) when the prompt is
 * empty or longer than the context, a token is out of range, or the queue is
 * full (*queue_full set to SD_SUBMIT_QUEUE_FULL then, for a 429) or the
 * engine is stopping (SD_SUBMIT_STOPPING, for a 503). *id identifies it for
 * cancel.
 *
 * The KV pool is shared: when a generating sequence needs a block and none
 * is left, the youngest running sequence (the latest submitted; possibly
 * itself) gives its blocks back and returns to the head of the queue; when
 * readmitted it recomputes its prompt and the tokens it had generated (its
 * published blocks usually still in the prefix cache) and goes on where it
 * stopped, with the same sampler state: its callbacks see no difference
 * but a pause. */
/* SD_SUBMIT_FAILED: a GPU step failed earlier (device lost): the engine
 * ended the requests it held with an error and refuses new ones (a 503),
 * until the process is restarted. */
enum { SD_SUBMIT_QUEUE_FULL = 1, SD_SUBMIT_STOPPING = 2, SD_SUBMIT_FAILED = 3 };
int sd_engine_submit(sd_engine *e, const sd_gen_request *r, sd_gen_cb cb, void *user, uint64_t *id,
                     int *queue_full, char *err);
/* The request ends with SD_FINISH_CANCELLED within one scheduler step (its
 * slot and KV blocks freed). Unknown or finished ids are ignored. */
void sd_engine_cancel(sd_engine *e, uint64_t id);

typedef struct {
    int n_slots, busy_slots, queued;
    int kv_blocks, kv_blocks_used, kv_block_size;
    uint64_t kv_bytes;          /* the KV cache's keys and values (sliding layers: their windows only) */
    uint64_t state_snapshot_bytes; /* recurrent state kept for prefix reuse (qwen3next; model/kv_cache.h) */
    uint64_t prefix_hit_tokens, prompt_tokens, generated_tokens, steps;
    uint64_t batch_tokens;      /* tokens through the forward pass (batch_tokens / steps: mean batch) */
    uint64_t preemptions;       /* sequences sent back to the queue for KV blocks (recomputed later) */
    int max_step_tokens;        /* the largest batch so far */
    int gpu_layers, gpu_first;  /* layers [gpu_first, gpu_first + gpu_layers) run on the GPU (0: none) */
    const char *placement;      /* what runs where (sd_model_placement), "" when -ngl was not asked */
    int failed;                 /* a GPU step failed: requests are refused (SD_SUBMIT_FAILED) */
    char failure[SD_ERR_LEN];   /* why */
} sd_engine_stats;

void sd_engine_get_stats(sd_engine *e, sd_engine_stats *st);
/* Positions one sequence may use (-c). */
int sd_engine_n_ctx(const sd_engine *e);

#endif
