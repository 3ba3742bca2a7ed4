/* The serving engine (serve/engine.h): a scheduler thread that owns the
 * model, a bounded queue of requests, and n_slots slots each generating one
 * sequence. Requests enter through sd_engine_submit (any thread), the
 * scheduler admits them to free slots, runs their prompts and one decode
 * token per generating slot each step, samples, and reports through the
 * request's callback. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "serve/engine.h"
#include "serve/engine_impl.h"
#include "runtime/errf.h"

sd_engine_params sd_engine_default_params(void)
{
    sd_engine_params p = {.n_slots = 4, .n_ctx = 0, .n_threads = 0, .n_batch = 0, .max_queue = 0,
                          .kv_type = SD_KV_F16};
    return p;
}



/* ---- requests ------------------------------------------------------------ */

static void req_free(eng_req *q)
{
    if (!q) return;
    free(q->prompt);
    free(q->counts);
    free(q->gen);
    sd_sampler_free(q->smp);
    free(q);
}

/* ---- submit / cancel (any thread) ---------------------------------------- */

int sd_engine_submit(sd_engine *e, const sd_gen_request *r, sd_gen_cb cb, void *user, uint64_t *id, int *queue_full,
                     char *err)
{
    if (queue_full) *queue_full = 0;
    int nv = e->m->hp.n_vocab;
    if (!r || !cb) return sd_errf(err, "no request or no callback");
    if (r->n_prompt < 1 || !r->prompt) return sd_errf(err, "the prompt is empty");
    if (r->n_prompt > e->n_ctx)
        return sd_errf(err, "the prompt has %d tokens, more than the context of %d", r->n_prompt, e->n_ctx);
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= nv)
            return sd_errf(err, "token id %d out of range (vocabulary of %d)", (int)r->prompt[i], nv);
    if (r->n_top < 0 || r->n_top > SD_ENGINE_MAX_TOP)
        return sd_errf(err, "%d top log-probabilities asked, at most %d", r->n_top, SD_ENGINE_MAX_TOP);
    eng_req *q = calloc(1, sizeof *q);
    if (!q) return sd_errf(err, "out of memory");
    q->r = *r;
    q->prompt = malloc((size_t)r->n_prompt * sizeof *q->prompt);
    q->smp = sd_sampler_new(&r->sampling, nv);
    if (r->presence_penalty != 0 || r->frequency_penalty != 0) q->counts = calloc((size_t)nv, sizeof *q->counts);
    if (!q->prompt || !q->smp || ((r->presence_penalty != 0 || r->frequency_penalty != 0) && !q->counts)) {
        req_free(q);
        return sd_errf(err, "out of memory");
    }
    memcpy(q->prompt, r->prompt, (size_t)r->n_prompt * sizeof *q->prompt);
    q->r.prompt = q->prompt;
    q->cb = cb;
    q->user = user;
    q->t_submit = sd_time_ms();

    pthread_mutex_lock(&e->mu);
    int free_slots = e->n_slots - e->busy;
    if (e->failed) {
        char why[SD_ERR_LEN];
        snprintf(why, sizeof why, "%s", e->stats.failure);
        pthread_mutex_unlock(&e->mu);
        req_free(q);
        if (queue_full) *queue_full = SD_SUBMIT_FAILED;
        return sd_errf(err, "the GPU failed (%.160s); this server refuses requests until it is restarted", why);
    }
    if (e->stopping || e->n_queued - free_slots >= e->max_queue) {
        int stopping = e->stopping;
        pthread_mutex_unlock(&e->mu);
        req_free(q);
        if (queue_full) *queue_full = stopping ? SD_SUBMIT_STOPPING : SD_SUBMIT_QUEUE_FULL;
        return sd_errf(err, stopping ? "the engine is shutting down" : "the queue is full (%d waiting)", e->max_queue);
    }
    q->id = ++e->next_id;
    if (id) *id = q->id;
    if (e->q_tail) e->q_tail->next = q;
    else e->q_head = q;
    e->q_tail = q;
    e->n_queued++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void sd_engine_cancel(sd_engine *e, uint64_t id)
{
    pthread_mutex_lock(&e->mu);
    for (eng_req *q = e->q_head; q; q = q->next)
        if (q->id == id) q->cancelled = 1;
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].req && e->slots[i].req->id == id) e->slots[i].req->cancelled = 1;
    e->n_cancel++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

int sd_engine_n_ctx(const sd_engine *e) { return e->n_ctx; }

void sd_engine_get_stats(sd_engine *e, sd_engine_stats *st)
{
    pthread_mutex_lock(&e->mu);
    *st = e->stats;
    st->n_slots = e->n_slots;
    st->busy_slots = e->busy;
    st->queued = e->n_queued;
    pthread_mutex_unlock(&e->mu);
}

/* ---- events ------------------------------------------------------------- */

/* Ends the request: the DONE event, then the slot is free. */
void eng_finish(sd_engine *e, eng_req *q, sd_finish why, const char *msg)
{
    sd_gen_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = SD_EV_DONE;
    ev.finish = why;
    if (msg) snprintf(ev.message, sizeof ev.message, "%s", msg);
    ev.n_prompt = q->r.n_prompt;
    ev.n_cached = q->n_cached;
    ev.n_gen = q->n_gen;
    double now = sd_time_ms();
    double admit = q->t_admit > 0 ? q->t_admit : now, first = q->t_first > 0 ? q->t_first : now;
    ev.queued_ms = admit - q->t_submit;
    ev.prompt_ms = first - admit;
    ev.gen_ms = now - first;
    q->cb(&ev, q->user);
    req_free(q);
}

/* log-probabilities of the model's distribution (raw logits, before
 * penalties and temperature): the token's, and the n_top best. */
static void fill_logprobs(const float *logits, int nv, int32_t tok, int n_top, sd_gen_event *ev)
{
    float mx = -INFINITY;
    for (int i = 0; i < nv; i++) mx = logits[i] > mx ? logits[i] : mx;
    double z = 0;
    for (int i = 0; i < nv; i++) z += exp((double)logits[i] - mx);
    float lse = mx + (float)log(z);
    ev->logprob = logits[tok] - lse;
    ev->n_top = 0;
    for (int i = 0; i < nv; i++) {
        float l = logits[i];
        if (ev->n_top == n_top && (n_top == 0 || l <= ev->top_logprob[n_top - 1])) continue;
        int k = ev->n_top < n_top ? ev->n_top++ : n_top - 1;   /* insertion, best first */
        while (k > 0 && ev->top_logprob[k - 1] < l) {
            ev->top_logprob[k] = ev->top_logprob[k - 1];
            ev->top_id[k] = ev->top_id[k - 1];
            k--;
        }
        ev->top_logprob[k] = l;
        ev->top_id[k] = i;
    }
    for (int k = 0; k < ev->n_top; k++) ev->top_logprob[k] -= lse;
}

int eng_prompt_event(sd_engine *e, eng_req *q, int index, const float *prev_logits)
{
    sd_gen_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = SD_EV_PROMPT;
    ev.index = index;
    ev.token = q->prompt[index];
    if (prev_logits) fill_logprobs(prev_logits, e->m->hp.n_vocab, ev.token, q->r.n_top, &ev);
    return q->cb(&ev, q->user);
}

/* Samples the next token from the logits after the sequence so far and
 * reports it. Returns SD_FINISH_NONE to go on, or why the request ends. */
sd_finish eng_sample(sd_engine *e, eng_req *q, const float *logits, int32_t *tok_out)
{
    int nv = e->m->hp.n_vocab;
    const float *l = logits;
    if (q->counts) {
        /* OpenAI's penalties over the generated tokens. */
        memcpy(e->pen, logits, (size_t)nv * sizeof *e->pen);
        for (int i = 0; i < q->n_gen; i++) {
            int32_t t = q->gen[i];
            if (q->counts[t] > 0) {
                e->pen[t] -= q->r.frequency_penalty * (float)q->counts[t] + q->r.presence_penalty;
                q->counts[t] = -q->counts[t];   /* once per distinct token */
            }
        }
        for (int i = 0; i < q->n_gen; i++)
            if (q->counts[q->gen[i]] < 0) q->counts[q->gen[i]] = -q->counts[q->gen[i]];
        l = e->pen;
    }
    int32_t tok = sd_sample(q->smp, l);
    *tok_out = tok;
    if (q->t_first <= 0) q->t_first = sd_time_ms();
    if (!q->r.ignore_eos && sd_token_is_eog(e->m->tok, tok)) return SD_FINISH_STOP;
    sd_gen_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = SD_EV_TOKEN;
    ev.index = q->n_gen;
    ev.token = tok;
    fill_logprobs(logits, nv, tok, q->r.n_top, &ev);
    if (q->n_gen == q->gen_cap) {
        int cap = q->gen_cap ? 2 * q->gen_cap : 64;
        int32_t *g = realloc(q->gen, (size_t)cap * sizeof *g);
        if (!g) return SD_FINISH_ERROR;
        q->gen = g;
        q->gen_cap = cap;
    }
    q->gen[q->n_gen++] = tok;
    if (q->counts) q->counts[tok]++;
    pthread_mutex_lock(&e->mu);
    e->stats.generated_tokens++;
    pthread_mutex_unlock(&e->mu);
    if (q->cb(&ev, q->user)) return SD_FINISH_STOP;
    if (q->r.max_tokens >= 0 && q->n_gen >= q->r.max_tokens) return SD_FINISH_LENGTH;
    return SD_FINISH_NONE;
}
