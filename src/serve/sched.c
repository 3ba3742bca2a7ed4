/* The scheduler thread: admits queued requests to free slots, runs one step
 * for every busy slot, ends cancelled requests, and cancels everything at
 * shutdown. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/session.h"
#include "serve/engine_impl.h"

struct eng_sched {
    sd_session **sess;         /* one per slot */
    float *rows;               /* SD_UBATCH rows of logits (prompt log-probabilities) */
    float *prev;               /* the row before a chunk */
};

static int sch_fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SD_ERR_LEN, fmt, ap);
    va_end(ap);
    return -1;
}

/* Frees the slot (under the lock) and ends its request. */
static void release(sd_engine *e, eng_slot *sl, sd_finish why, const char *msg)
{
    eng_req *q = sl->req;
    pthread_mutex_lock(&e->mu);
    sl->req = NULL;
    e->busy--;
    pthread_mutex_unlock(&e->mu);
    eng_finish(e, q, why, msg);
}

/* The prompt through the slot's session, with its log-probabilities when asked. */
static sd_finish prefill(sd_engine *e, int si, eng_req *q, char *err)
{
    sd_session *s = e->sc->sess[si];
    int nv = e->m->hp.n_vocab, n = q->r.n_prompt;
    sd_session_reset(s);
    for (int i = 0; i < n; i += SD_UBATCH) {
        int c = n - i < SD_UBATCH ? n - i : SD_UBATCH;
        if (sd_session_eval(s, q->prompt + i, c, q->r.prompt_logprobs ? e->sc->rows : NULL, err)) return SD_FINISH_ERROR;
        if (!q->r.prompt_logprobs) continue;
        for (int k = 0; k < c; k++) {
            int idx = i + k;
            const float *prev = idx == 0 ? NULL : k == 0 ? e->sc->prev : e->sc->rows + (size_t)(k - 1) * nv;
            if (eng_prompt_event(e, q, idx, prev)) return SD_FINISH_STOP;
        }
        memcpy(e->sc->prev, e->sc->rows + (size_t)(c - 1) * nv, (size_t)nv * sizeof(float));
    }
    return SD_FINISH_NONE;
}

static void step_slot(sd_engine *e, int si)
{
    eng_slot *sl = &e->slots[si];
    eng_req *q = sl->req;
    sd_session *s = e->sc->sess[si];
    char err[SD_ERR_LEN] = "";
    sd_finish f;
    if (sl->n_done == 0) {
        f = prefill(e, si, q, err);
        if (f != SD_FINISH_NONE) { release(e, sl, f, err); return; }
        sl->n_done = q->r.n_prompt;
        if (q->r.max_tokens == 0) { release(e, sl, SD_FINISH_LENGTH, NULL); return; }
    } else {
        if (sl->n_done >= e->n_ctx) { release(e, sl, SD_FINISH_LENGTH, NULL); return; }
        if (sd_session_eval(s, &sl->last, 1, NULL, err)) { release(e, sl, SD_FINISH_ERROR, err); return; }
        sl->n_done++;
    }
    f = eng_sample(e, q, sd_session_logits(s), &sl->last);
    if (f != SD_FINISH_NONE) release(e, sl, f, f == SD_FINISH_ERROR ? "out of memory" : NULL);
}

static void *sched_main(void *arg)
{
    sd_engine *e = arg;
    for (;;) {
        eng_req *dead = NULL;   /* cancelled while queued */
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->n_queued && !e->busy) pthread_cond_wait(&e->cv, &e->mu);
        int stopping = e->stopping;
        for (eng_req **pp = &e->q_head; *pp;) {
            eng_req *q = *pp;
            if (q->cancelled || stopping) {
                *pp = q->next;
                q->next = dead;
                dead = q;
                e->n_queued--;
            } else {
                pp = &q->next;
            }
        }
        e->q_tail = NULL;
        for (eng_req *q = e->q_head; q; q = q->next) e->q_tail = q;
        for (int i = 0; i < e->n_slots && e->q_head && !stopping; i++) {
            if (e->slots[i].req) continue;
            eng_req *q = e->q_head;
            e->q_head = q->next;
            if (!e->q_head) e->q_tail = NULL;
            q->next = NULL;
            e->n_queued--;
            e->busy++;
            q->t_admit = sd_time_ms();
            e->slots[i].req = q;
            e->slots[i].n_done = 0;
            e->stats.prompt_tokens += (uint64_t)q->r.n_prompt;
        }
        int cancel[e->n_slots > 0 ? e->n_slots : 1];
        for (int i = 0; i < e->n_slots; i++) cancel[i] = e->slots[i].req && (e->slots[i].req->cancelled || stopping);
        e->stats.steps++;
        pthread_mutex_unlock(&e->mu);

        while (dead) {
            eng_req *q = dead;
            dead = q->next;
            eng_finish(e, q, SD_FINISH_CANCELLED, NULL);
        }
        for (int i = 0; i < e->n_slots; i++)
            if (cancel[i]) release(e, &e->slots[i], SD_FINISH_CANCELLED, NULL);
        if (stopping) break;
        for (int i = 0; i < e->n_slots; i++)
            if (e->slots[i].req) step_slot(e, i);
    }
    return NULL;
}

int sd_engine_new(sd_model *m, const sd_engine_params *p, sd_engine **out, char *err)
{
    sd_engine_params d = sd_engine_default_params();
    if (!p) p = &d;
    if (p->n_slots < 1 || p->n_slots > 256) return sch_fail(err, "%d slots: between 1 and 256, please", p->n_slots);
    sd_engine *e = calloc(1, sizeof *e);
    if (!e) return sch_fail(err, "out of memory");
    e->m = m;
    e->n_slots = p->n_slots;
    e->n_ctx = p->n_ctx > 0 ? p->n_ctx : (m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    e->n_batch = p->n_batch > 0 ? p->n_batch : 256;
    e->max_queue = p->max_queue > 0 ? p->max_queue : DEFAULT_QUEUE;
    e->n_threads = p->n_threads;
    e->kv_type = p->kv_type;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->slots = calloc((size_t)e->n_slots, sizeof *e->slots);
    e->pen = malloc((size_t)m->hp.n_vocab * sizeof *e->pen);
    e->sc = calloc(1, sizeof *e->sc);
    if (!e->slots || !e->pen || !e->sc) goto oom;
    e->sc->sess = calloc((size_t)e->n_slots, sizeof *e->sc->sess);
    e->sc->rows = malloc((size_t)SD_UBATCH * m->hp.n_vocab * sizeof(float));
    e->sc->prev = malloc((size_t)m->hp.n_vocab * sizeof(float));
    if (!e->sc->sess || !e->sc->rows || !e->sc->prev) goto oom;
    sd_session_params sp = {e->n_ctx, p->n_threads, p->kv_type};
    for (int i = 0; i < e->n_slots; i++)
        if (sd_session_new(m, &sp, &e->sc->sess[i], err)) {
            sd_engine_free(e);
            return -1;
        }
    if (pthread_create(&e->thread, NULL, sched_main, e)) {
        sd_engine_free(e);
        return sch_fail(err, "cannot start the scheduler thread");
    }
    e->started = 1;
    *out = e;
    return 0;
oom:
    sd_engine_free(e);
    return sch_fail(err, "out of memory");
}

void sd_engine_free(sd_engine *e)
{
    if (!e) return;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        e->stopping = 1;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    if (e->sc) {
        if (e->sc->sess)
            for (int i = 0; i < e->n_slots; i++) sd_session_free(e->sc->sess[i]);
        free(e->sc->sess);
        free(e->sc->rows);
        free(e->sc->prev);
        free(e->sc);
    }
    free(e->slots);
    free(e->pen);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
