/* The scheduler thread. Each step: end cancelled requests, admit queued ones
 * to free slots (reusing cached prefix blocks), then build one batch: one
 * token for every generating sequence, then chunks of waiting prompts,
 * first come first served, up to n_batch tokens; run it through the batched
 * forward pass over the paged KV cache (its GPU layers, if the model has
 * any, in one command buffer over a device pool mirroring the CPU cache's
 * blocks: model/offload.h); sample and report. A failed GPU step ends every
 * request in flight with an error, and the engine refuses new ones. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/offload.h"
#include "serve/engine_impl.h"
#include "runtime/errf.h"

#define OUT_ROWS_EXTRA 64   /* rows of logits per step beyond two per slot (prompt log-probabilities) */

struct eng_sched {
    sd_kv_cache *kv;
    sd_fwd f;
    int max_out;               /* rows of logits per step */
    float *logits;             /* max_out rows */
    int32_t *tok;              /* the batch */
    int *pos, *seq, *out;
};

static void update_kv_stats(sd_engine *e)
{
    const sd_kv_cache *c = e->sc->kv;
    e->stats.kv_blocks = c->n_blocks;
    e->stats.kv_blocks_used = c->n_blocks - sd_kv_available(c);
    e->stats.kv_block_size = SD_KV_BLOCK;
    e->stats.kv_bytes = c->bytes;
    e->stats.state_snapshot_bytes = c->snap.bytes;
}

/* Gives slot si's blocks back and empties it; returns its request, with
 * e->mu held (the caller updates the stats and unlocks). */
static eng_req *vacate_locked(sd_engine *e, int si)
{
    eng_slot *sl = &e->slots[si];
    eng_req *q = sl->req;
    sd_kv_seq_release(e->sc->kv, si);
    free(sl->prev);
    sl->prev = NULL;
    pthread_mutex_lock(&e->mu);
    sl->req = NULL;
    e->busy--;
    return q;
}

/* Frees the slot and its blocks, then ends its request. */
static void release(sd_engine *e, int si, sd_finish why, const char *msg)
{
    eng_req *q = vacate_locked(e, si);
    update_kv_stats(e);
    pthread_mutex_unlock(&e->mu);
    eng_finish(e, q, why, msg);
}

/* Under the lock: the queue's head into free slots while its blocks can be
 * had (reusing cached ones). A request preempted before is readmitted the
 * same way: it recomputes its prompt and the tokens it had generated but
 * the last (the next one to feed). */
static void admit(sd_engine *e)
{
    sd_kv_cache *kv = e->sc->kv;
    for (int i = 0; i < e->n_slots && e->q_head; i++) {
        eng_slot *sl = &e->slots[i];
        if (sl->req) continue;
        eng_req *q = e->q_head;
        int n_prompt = q->r.n_prompt, n_fill = n_prompt + (q->n_gen ? q->n_gen - 1 : 0);
        memcpy(sl->tokens, q->prompt, (size_t)n_prompt * sizeof *sl->tokens);
        if (q->n_gen > 1) memcpy(sl->tokens + n_prompt, q->gen, (size_t)(q->n_gen - 1) * sizeof *sl->tokens);
        int rows = q->r.prompt_logprobs && q->n_prompt_ev < n_prompt;
        /* Prompt log-probabilities need every position's logits: no reuse (engine.h). */
        int cached = rows ? 0 : sd_kv_seq_reuse_prefix(kv, i, sl->tokens, n_fill);
        sd_kv_seq_plan_snapshot(kv, i, sl->tokens, n_fill);   /* recurrent state at the prompt's last block */
        /* Room for the first decode position too: otherwise a sequence
         * admitted into the last blocks could be preempted at once and
         * recompute its prompt every step until blocks come back. */
        if (sd_kv_seq_grow(kv, i, n_fill < e->n_ctx ? n_fill + 1 : n_fill)) {
            sd_kv_seq_release(kv, i);   /* wait for blocks to come back */
            break;
        }
        if (rows && !(sl->prev = malloc((size_t)e->m->hp.n_vocab * sizeof(float)))) {
            sd_kv_seq_release(kv, i);
            break;
        }
        e->q_head = q->next;
        if (!e->q_head) e->q_tail = NULL;
        q->next = NULL;
        e->n_queued--;
        e->busy++;
        if (q->n_admit++ == 0) {
            q->t_admit = sd_time_ms();
            q->n_cached = cached;
            e->stats.prompt_tokens += (uint64_t)n_prompt;
            e->stats.prefix_hit_tokens += (uint64_t)cached;
        }
        sl->req = q;
        sl->n_done = cached;
        sl->n_fill = n_fill;
        sl->rows = rows;
        sl->order = q->id;
        if (q->n_gen) {
            sl->last = q->gen[q->n_gen - 1];
            if (n_fill < e->n_ctx) sl->tokens[n_fill] = sl->last;
        }
    }
    update_kv_stats(e);
}

/* Gives slot si's blocks back and puts its request at the head of the
 * queue, to be recomputed when blocks are free again. */
static void preempt(sd_engine *e, int si)
{
    eng_req *q = vacate_locked(e, si);
    q->next = e->q_head;
    e->q_head = q;
    if (!e->q_tail) e->q_tail = q;
    e->n_queued++;
    e->stats.preemptions++;
    update_kv_stats(e);
    pthread_mutex_unlock(&e->mu);
}

/* The running sequence submitted last, or -1. */
static int youngest(const sd_engine *e)
{
    int y = -1;
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].req && (y < 0 || e->slots[i].order > e->slots[y].order)) y = i;
    return y;
}

/* Every generating sequence gets the block for its next position, oldest
 * first; when the pool has none left, the youngest running sequence is
 * preempted (itself, if it is the youngest). Sequences at the end of the
 * context end here. */
static void make_room(sd_engine *e)
{
    sd_kv_cache *kv = e->sc->kv;
    int seen[e->n_slots];
    memset(seen, 0, sizeof seen);
    for (;;) {
        int s = -1;
        for (int i = 0; i < e->n_slots; i++) {
            const eng_slot *sl = &e->slots[i];
            if (sl->req && !seen[i] && sl->n_done >= sl->n_fill && (s < 0 || sl->order < e->slots[s].order)) s = i;
        }
        if (s < 0) break;
        seen[s] = 1;
        eng_slot *sl = &e->slots[s];
        if (sl->n_done >= e->n_ctx) {
            release(e, s, SD_FINISH_LENGTH, NULL);
            continue;
        }
        while (sd_kv_seq_grow(kv, s, sl->n_done + 1)) {
            int v = youngest(e);
            if (v == s && e->busy == 1) {
                /* Alone and still no room: only a pool smaller than one context could do that. */
                char msg[SD_ERR_LEN];
                snprintf(msg, sizeof msg, "the KV cache (%d blocks of %d positions) cannot hold this sequence of %d",
                         kv->n_blocks, SD_KV_BLOCK, sl->n_done + 1);
                release(e, s, SD_FINISH_ERROR, msg);
                break;
            }
            preempt(e, v);
            if (v == s) break;
        }
    }
}

/* Slot si's window blocks (sliding layers) for its next n positions; a
 * pass of at most n_batch cannot run out of them (model/kv_cache.h), so a
 * failure is a bug: it ends the request with an error. */
static int hold_window(sd_engine *e, int si, int n)
{
    const eng_slot *sl = &e->slots[si];
    if (!sd_kv_seq_window(e->sc->kv, si, sl->n_done, sl->n_done + n)) return 0;
    release(e, si, SD_FINISH_ERROR, "the KV cache holds no window blocks for this sequence");
    return -1;
}

/* The batch of this step; returns its size. */
static int build_batch(sd_engine *e)
{
    struct eng_sched *sc = e->sc;
    int n = 0, n_out = 0;
    make_room(e);
    for (int i = 0; i < e->n_slots; i++) e->slots[i].b_n = e->slots[i].o_n = 0;
    /* One token for every generating sequence. */
    for (int i = 0; i < e->n_slots; i++) {
        eng_slot *sl = &e->slots[i];
        if (!sl->req || sl->n_done < sl->n_fill || hold_window(e, i, 1)) continue;
        sl->b_first = n;
        sl->b_n = 1;
        sl->o_first = n_out;
        sl->o_n = 1;
        sc->tok[n] = sl->last;
        sc->pos[n] = sl->n_done;
        sc->seq[n] = i;
        sc->out[n_out++] = n++;
    }
    /* Then prompt chunks, oldest request first. */
    for (;;) {
        int best = -1;
        for (int i = 0; i < e->n_slots; i++) {
            eng_slot *sl = &e->slots[i];
            if (sl->req && !sl->b_n && sl->n_done < sl->n_fill && (best < 0 || sl->order < e->slots[best].order))
                best = i;
        }
        if (best < 0 || n >= e->n_batch) break;
        eng_slot *sl = &e->slots[best];
        eng_req *q = sl->req;
        int c = sl->n_fill - sl->n_done;
        if (c > e->n_batch - n) c = e->n_batch - n;
        if (sl->rows && c > sc->max_out - n_out) c = sc->max_out - n_out;
        if (c <= 0) {
            sl->b_n = -1;   /* no room: next step (marks it seen) */
            continue;
        }
        /* The last position's logits give the first token; a recomputed
         * sequence (after a preemption) has its next token already. */
        int last_row = sl->n_done + c == sl->n_fill && !q->n_gen;
        if (!sl->rows && last_row && n_out >= sc->max_out) { sl->b_n = -1; continue; }
        if (hold_window(e, best, c)) continue;
        sl->b_first = n;
        sl->b_n = c;
        sl->o_first = n_out;
        for (int k = 0; k < c; k++) {
            sc->tok[n + k] = sl->tokens[sl->n_done + k];
            sc->pos[n + k] = sl->n_done + k;
            sc->seq[n + k] = best;
            if (sl->rows || (last_row && k == c - 1)) sc->out[n_out++] = n + k;
        }
        sl->o_n = n_out - sl->o_first;
        n += c;
    }
    return n;
}

/* The prompt log-probabilities of slot si's chunk (those not reported
 * before a preemption). Returns 1 if the callback stopped it. */
static int prompt_events(sd_engine *e, int si)
{
    eng_slot *sl = &e->slots[si];
    eng_req *q = sl->req;
    int nv = e->m->hp.n_vocab, i0 = sl->n_done;
    for (int k = 0; k < sl->b_n; k++) {
        if (i0 + k < q->n_prompt_ev) continue;
        const float *prev = i0 + k == 0 ? NULL : k == 0 ? sl->prev : e->sc->logits + (size_t)(sl->o_first + k - 1) * nv;
        q->n_prompt_ev++;
        if (eng_prompt_event(e, q, i0 + k, prev)) return 1;
    }
    memcpy(sl->prev, e->sc->logits + (size_t)(sl->o_first + sl->b_n - 1) * nv, (size_t)nv * sizeof(float));
    return 0;
}

/* After the pass: slot si's tokens are cached; report and sample. */
static void finish_slot_step(sd_engine *e, int si)
{
    eng_slot *sl = &e->slots[si];
    eng_req *q = sl->req;
    int nv = e->m->hp.n_vocab;
    int prefill = sl->n_done < sl->n_fill;
    if (prefill && sl->rows && prompt_events(e, si)) {
        release(e, si, SD_FINISH_STOP, NULL);
        return;
    }
    sl->n_done += sl->b_n;
    sd_kv_seq_publish(e->sc->kv, si, sl->tokens, sl->n_done);
    if (sl->n_done < sl->n_fill) return;   /* more prompt to come */
    if (prefill && q->n_gen) return;       /* recomputed: sl->last is the next token to feed */
    if (prefill && q->r.max_tokens == 0) {
        release(e, si, SD_FINISH_LENGTH, NULL);
        return;
    }
    const float *row = e->sc->logits + (size_t)(sl->o_first + sl->o_n - 1) * nv;
    sd_finish f = eng_sample(e, q, row, &sl->last);
    if (f != SD_FINISH_NONE) {
        release(e, si, f, f == SD_FINISH_ERROR ? "out of memory" : NULL);
        return;
    }
    if (sl->n_done < e->n_ctx) sl->tokens[sl->n_done] = sl->last;
}

/* A GPU step failed (device lost, or a failed allocation): its results are
 * void and the device is not used again. Every running and queued request
 * ends with the error; submit refuses new ones (SD_SUBMIT_FAILED). */
static void gpu_failed(sd_engine *e, const char *why)
{
    char msg[SD_ERR_LEN];
    snprintf(msg, sizeof msg, "the GPU step failed: %.400s", why);
    pthread_mutex_lock(&e->mu);
    e->failed = 1;
    e->stats.failed = 1;
    snprintf(e->stats.failure, sizeof e->stats.failure, "%s", why);
    eng_req *queued = e->q_head;
    e->q_head = e->q_tail = NULL;
    e->n_queued = 0;
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].req) release(e, i, SD_FINISH_ERROR, msg);
    while (queued) {
        eng_req *q = queued;
        queued = q->next;
        eng_finish(e, q, SD_FINISH_ERROR, msg);
    }
}

static void step(sd_engine *e)
{
    struct eng_sched *sc = e->sc;
    int n = build_batch(e);
    if (n == 0) return;
    int n_out = 0;
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].b_n > 0) n_out += e->slots[i].o_n;
    sd_batch b = {n, sc->tok, sc->pos, sc->seq, sc->out, n_out};
    sd_forward_batch(&sc->f, &b, sc->logits);
    if (sc->f.gpu_err && sc->f.gpu_err[0]) {
        gpu_failed(e, sc->f.gpu_err);
        return;
    }
    pthread_mutex_lock(&e->mu);
    e->stats.batch_tokens += (uint64_t)n;
    if (n > e->stats.max_step_tokens) e->stats.max_step_tokens = n;
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].req && e->slots[i].b_n > 0) finish_slot_step(e, i);
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
        int cancel[e->n_slots];
        for (int i = 0; i < e->n_slots; i++) cancel[i] = e->slots[i].req && (e->slots[i].req->cancelled || stopping);
        pthread_mutex_unlock(&e->mu);

        while (dead) {
            eng_req *q = dead;
            dead = q->next;
            eng_finish(e, q, SD_FINISH_CANCELLED, NULL);
        }
        for (int i = 0; i < e->n_slots; i++)
            if (cancel[i]) release(e, i, SD_FINISH_CANCELLED, NULL);
        if (stopping) break;
        pthread_mutex_lock(&e->mu);
        admit(e);
        e->stats.steps++;
        pthread_mutex_unlock(&e->mu);
        step(e);
    }
    return NULL;
}

int sd_engine_new(sd_model *m, const sd_engine_params *p, sd_engine **out, char *err)
{
    sd_engine_params d = sd_engine_default_params();
    if (!p) p = &d;
    if (p->n_slots < 1 || p->n_slots > 256) return sd_errf(err, "%d slots: between 1 and 256, please", p->n_slots);
    if (p->n_ctx < 0 || p->n_ctx > (1 << 22)) return sd_errf(err, "context of %d positions is not supported", p->n_ctx);
    if (p->n_batch < 0 || p->n_batch > 4096) return sd_errf(err, "batch of %d tokens is not supported", p->n_batch);
    switch (p->kv_type) {
    case SD_KV_F32: case SD_KV_F16: break;
    case SD_KV_Q8_0:
        if (m->hp.head_dim % 32)
            return sd_errf(err, "%s: a q8_0 KV cache needs a head size that is a multiple of 32 (it is %d)", m->path,
                            m->hp.head_dim);
        break;
    default: return sd_errf(err, "KV cache type %d is not supported (f32, f16, q8_0)", (int)p->kv_type);
    }
    sd_engine *e = calloc(1, sizeof *e);
    if (!e) return sd_errf(err, "out of memory");
    int nv = m->hp.n_vocab;
    e->m = m;
    e->n_slots = p->n_slots;
    e->n_ctx = p->n_ctx > 0 ? p->n_ctx : (m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    e->n_batch = p->n_batch > 0 ? p->n_batch : DEFAULT_BATCH;
    if (e->n_batch < e->n_slots) e->n_batch = e->n_slots;
    e->max_queue = p->max_queue > 0 ? p->max_queue : DEFAULT_QUEUE;
    e->n_threads = p->n_threads > 0 ? p->n_threads : sd_cpu_count();
    e->kv_type = p->kv_type;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->slots = calloc((size_t)e->n_slots, sizeof *e->slots);
    e->pen = malloc((size_t)nv * sizeof *e->pen);
    e->sc = calloc(1, sizeof *e->sc);
    if (!e->slots || !e->pen || !e->sc) goto oom;
    for (int i = 0; i < e->n_slots; i++)
        if (!(e->slots[i].tokens = malloc((size_t)e->n_ctx * sizeof(int32_t)))) goto oom;
    struct eng_sched *sc = e->sc;
    if (sd_kv_cache_new(m, p->kv_type, e->n_ctx, e->n_slots, e->n_batch, &sc->kv, err)) {
        sd_engine_free(e);
        return -1;
    }
    update_kv_stats(e);
    if (sd_fwd_init(&sc->f, m, sc->kv, e->n_batch, e->n_threads, err)) {
        sd_engine_free(e);
        return -1;
    }
    sc->max_out = 2 * e->n_slots + OUT_ROWS_EXTRA;
    if (sc->max_out > e->n_batch) sc->max_out = e->n_batch;   /* no step has more rows than tokens */
    if (sd_offload_engine_new(&sc->f, sc->max_out, err)) {
        sd_engine_free(e);
        return -1;
    }
    e->stats.gpu_layers = sd_model_gpu_layers(m);
    e->stats.gpu_first = m->hp.n_layer - e->stats.gpu_layers;
    e->stats.placement = sd_model_placement(m);
    sc->logits = malloc((size_t)sc->max_out * nv * sizeof(float));
    sc->tok = malloc((size_t)e->n_batch * sizeof *sc->tok);
    sc->pos = malloc((size_t)e->n_batch * sizeof *sc->pos);
    sc->seq = malloc((size_t)e->n_batch * sizeof *sc->seq);
    sc->out = malloc((size_t)e->n_batch * sizeof *sc->out);
    if (!sc->logits || !sc->tok || !sc->pos || !sc->seq || !sc->out) goto oom;
    if (pthread_create(&e->thread, NULL, sched_main, e)) {
        sd_engine_free(e);
        return sd_errf(err, "cannot start the scheduler thread");
    }
    e->started = 1;
    *out = e;
    return 0;
oom:
    sd_engine_free(e);
    return sd_errf(err, "out of memory");
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
        sd_offload_engine_free(&e->sc->f);
        sd_fwd_free(&e->sc->f);
        sd_kv_cache_free(e->sc->kv);
        free(e->sc->logits); free(e->sc->tok); free(e->sc->pos); free(e->sc->seq); free(e->sc->out);
        free(e->sc);
    }
    if (e->slots)
        for (int i = 0; i < e->n_slots; i++) {
            free(e->slots[i].tokens);
            free(e->slots[i].prev);
        }
    free(e->slots);
    free(e->pen);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
