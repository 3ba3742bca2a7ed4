/* The engine's insides, shared by the request side (engine.c) and the
 * scheduler (sched.c). Nothing outside src/serve/engine*.c, sched.c uses it. */
#ifndef SD_SERVE_ENGINE_IMPL_H
#define SD_SERVE_ENGINE_IMPL_H

#include <pthread.h>

#include "model/model.h"
#include "serve/engine.h"

typedef struct eng_req {
    uint64_t id;
    sd_gen_request r;          /* r.prompt points at prompt */
    int32_t *prompt;
    sd_gen_cb cb;
    void *user;
    sd_sampler *smp;
    int *counts;               /* per vocabulary entry, when a penalty is set */
    int32_t *gen;              /* generated tokens */
    int n_gen, gen_cap;
    int n_cached;              /* prompt tokens reused from the prefix cache (at its first admission) */
    int n_prompt_ev;           /* prompt log-probability events already reported */
    int n_admit;               /* times admitted: more than once after a preemption */
    int cancelled;             /* set under the engine's lock */
    double t_submit, t_admit, t_first;
    struct eng_req *next;      /* in the queue */
} eng_req;

#define DEFAULT_QUEUE 64   /* waiting requests, when max_queue is 0 */
#define DEFAULT_BATCH 128  /* tokens per step, when n_batch is 0 */

struct eng_sched;

typedef struct {
    eng_req *req;              /* NULL: free */
    int n_done;                /* tokens of the sequence already in the cache */
    int n_fill;                /* tokens to prefill: the prompt, or after a preemption the prompt and
                                  the generated tokens but the last (recomputed) */
    int rows;                  /* 1: every prefill position's logits (prompt log-probabilities still to report) */
    int32_t last;              /* the last sampled token, not yet in the cache */
    uint64_t order;            /* the request's arrival (its id): prompts are served first come, first
                                  served, and the youngest sequence is preempted first */
    int32_t *tokens;           /* n_ctx: the sequence (prompt, then generated), for the prefix cache */
    float *prev;               /* n_vocab: the logits before a prompt chunk (prompt log-probabilities) */
    /* this step: */
    int b_first, b_n;          /* its tokens in the batch */
    int o_first, o_n;          /* its rows of logits */
} eng_slot;

struct sd_engine {
    sd_model *m;
    int n_slots, n_ctx, n_batch, max_queue, n_threads;
    sd_kv_type kv_type;
    pthread_mutex_t mu;        /* guards the queue, the slots' req pointers, stats, flags */
    pthread_cond_t cv;
    pthread_t thread;
    int started, stopping;
    eng_req *q_head, *q_tail;
    int n_queued, busy;
    uint64_t next_id, n_cancel;
    eng_slot *slots;
    sd_engine_stats stats;
    float *pen;                /* n_vocab: logits with penalties (scheduler thread) */
    struct eng_sched *sc;      /* the scheduler's model state */
    int failed;                /* a GPU step failed: submit refuses (under mu; the message in stats.failure) */
};

/* Scheduler thread helpers (engine.c). */
void eng_finish(sd_engine *e, eng_req *q, sd_finish why, const char *msg);
int eng_prompt_event(sd_engine *e, eng_req *q, int index, const float *prev_logits);
sd_finish eng_sample(sd_engine *e, eng_req *q, const float *logits, int32_t *tok_out);

#endif
