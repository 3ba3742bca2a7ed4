/* The serving engine: a request's greedy tokens equal sd_session's greedy
 * decoding of the same prompt; cancel, queue limits, max_tokens, callback
 * stop, context limits, log-probabilities and shutdown behave as engine.h
 * promises. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "model/model.h"
#include "serve/engine.h"
#include "common.h"
#include "engine_fixture.h"

#define MAXG 600

typedef struct collect {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, n_tok, n_prompt_ev;
    int32_t tok[MAXG];
    float lp[MAXG];
    sd_gen_event last_tok;      /* the last TOKEN event */
    float prompt_lp[MAXG];
    int32_t prompt_tok[MAXG];
    sd_gen_event done_ev;
    int stop_after;             /* > 0: the callback returns 1 at this many tokens */
    int sleep_us;               /* per token: a slow consumer */
    int order_ok;               /* events arrive in order, DONE last */
    struct collect *watch;      /* another request: its token count at our first token */
    int watch_at_first;
    /* at our first token, submit this request (from the scheduler's thread: deterministic timing) */
    sd_engine *then_engine;
    const sd_gen_request *then_req;
    struct collect *then_col;
} collect;

static void col_init(collect *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->order_ok = 1;
}

static int on_event(const sd_gen_event *ev, void *user)
{
    collect *c = user;
    pthread_mutex_lock(&c->mu);
    int ret = 0;
    if (c->done) c->order_ok = 0;
    if (ev->kind == SD_EV_PROMPT) {
        if (ev->index != c->n_prompt_ev || c->n_tok) c->order_ok = 0;
        if (c->n_prompt_ev < MAXG) {
            c->prompt_lp[c->n_prompt_ev] = ev->logprob;
            c->prompt_tok[c->n_prompt_ev] = ev->token;
        }
        c->n_prompt_ev++;
    } else if (ev->kind == SD_EV_TOKEN) {
        if (ev->index != c->n_tok) c->order_ok = 0;
        if (c->n_tok < MAXG) {
            c->tok[c->n_tok] = ev->token;
            c->lp[c->n_tok] = ev->logprob;
        }
        c->last_tok = *ev;
        if (c->n_tok == 0 && c->watch) c->watch_at_first = c->watch->n_tok;   /* same thread: no lock needed */
        c->n_tok++;
        if (c->stop_after && c->n_tok == c->stop_after) ret = 1;
        if (c->n_tok == 1 && c->then_req) {
            uint64_t id;
            int full;
            char err[SD_ERR_LEN];
            if (sd_engine_submit(c->then_engine, c->then_req, on_event, c->then_col, &id, &full, err)) c->order_ok = 0;
        }
    } else {
        c->done_ev = *ev;
        c->done = 1;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    if (ev->kind == SD_EV_TOKEN && c->sleep_us) usleep((useconds_t)c->sleep_us);
    return ret;
}

static void col_wait(collect *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->done) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static int col_tokens(collect *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->n_tok;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static sd_engine *start(sd_model *m, int slots, int n_ctx, int max_queue)
{
    sd_engine_params p = sd_engine_default_params();
    p.max_queue = max_queue;
    return start_with(m, &p, slots, n_ctx);
}

static uint64_t submit(sd_engine *e, const sd_gen_request *r, collect *c)
{
    uint64_t id;
    int full;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_engine_submit(e, r, on_event, c, &id, &full, err), 0, "%s", err);
    return id;
}

Test(engine, greedy_equals_session, .timeout = 120)
{
    sd_model *m = load_shared("models/tiny-q8_0.gguf");
    int nv = sd_model_hparams(m)->n_vocab;
    sd_engine *e = start(m, 2, 256, 0);
    int32_t prompt[40], want[32];
    make_prompt(prompt, 40, 1, nv);
    session_greedy(m, 256, prompt, 40, 32, want);
    sd_gen_request r = greedy(prompt, 40, 32);
    collect c;
    col_init(&c);
    submit(e, &r, &c);
    col_wait(&c);
    cr_assert(c.order_ok);
    cr_assert_eq(c.done_ev.finish, SD_FINISH_LENGTH);
    cr_assert_eq(c.n_tok, 32);
    cr_assert_eq(c.done_ev.n_gen, 32);
    cr_assert_eq(c.done_ev.n_prompt, 40);
    for (int i = 0; i < 32; i++) {
        cr_assert_eq(c.tok[i], want[i], "token %d: %d, sd_session %d", i, c.tok[i], want[i]);
        cr_assert(c.lp[i] <= 0 && isfinite(c.lp[i]));
    }
    sd_engine_free(e);
    sd_model_free(m);
}

Test(engine, max_tokens_and_callback_stop, .timeout = 60)
{
    sd_model *m = load_shared("models/stories260K.gguf");
    sd_engine *e = start(m, 2, 128, 0);
    int32_t prompt[8];
    make_prompt(prompt, 8, 2, sd_model_hparams(m)->n_vocab);
    sd_gen_request r = greedy(prompt, 8, 5);
    collect a, b, z;
    col_init(&a);
    col_init(&b);
    col_init(&z);
    b.stop_after = 3;
    submit(e, &r, &a);
    r.max_tokens = 50;
    submit(e, &r, &b);
    r.max_tokens = 0;
    submit(e, &r, &z);
    col_wait(&a);
    col_wait(&b);
    col_wait(&z);
    cr_assert_eq(a.done_ev.finish, SD_FINISH_LENGTH);
    cr_assert_eq(a.n_tok, 5);
    cr_assert_eq(b.done_ev.finish, SD_FINISH_STOP);
    cr_assert_eq(b.n_tok, 3);
    cr_assert_eq(b.done_ev.n_gen, 3);
    cr_assert_eq(z.done_ev.finish, SD_FINISH_LENGTH);
    cr_assert_eq(z.n_tok, 0);
    cr_assert(a.order_ok && b.order_ok && z.order_ok);
    sd_engine_free(e);
    sd_model_free(m);
}

Test(engine, context_full_ends_with_length, .timeout = 60)
{
    sd_model *m = load_shared("models/stories260K.gguf");
    sd_engine *e = start(m, 1, 32, 0);
    int32_t prompt[10];
    make_prompt(prompt, 10, 3, sd_model_hparams(m)->n_vocab);
    sd_gen_request r = greedy(prompt, 10, -1);
    collect c;
    col_init(&c);
    submit(e, &r, &c);
    col_wait(&c);
    cr_assert_eq(c.done_ev.finish, SD_FINISH_LENGTH);
    /* 22 more positions after the prompt, and the last token is never stored. */
    cr_assert_eq(c.n_tok, 32 - 10 + 1);
    sd_engine_free(e);
    sd_model_free(m);
}

Test(engine, bad_requests_refused, .timeout = 60)
{
    sd_model *m = load_shared("models/stories260K.gguf");
    sd_engine *e = start(m, 1, 64, 0);
    int32_t prompt[65];
    make_prompt(prompt, 65, 4, sd_model_hparams(m)->n_vocab);
    char err[SD_ERR_LEN];
    uint64_t id;
    int full = -1;
    collect c;
    col_init(&c);
    sd_gen_request r = greedy(prompt, 65, 4);
    cr_assert_eq(sd_engine_submit(e, &r, on_event, &c, &id, &full, err), -1);
    cr_assert(strstr(err, "context"), "%s", err);
    cr_assert_eq(full, 0);
    r.n_prompt = 0;
    cr_assert_eq(sd_engine_submit(e, &r, on_event, &c, &id, &full, err), -1);
    cr_assert(strstr(err, "empty"), "%s", err);
    r.n_prompt = 4;
    prompt[2] = 512;
    cr_assert_eq(sd_engine_submit(e, &r, on_event, &c, &id, &full, err), -1);
    cr_assert(strstr(err, "out of range"), "%s", err);
    prompt[2] = 7;
    r.n_top = SD_ENGINE_MAX_TOP + 1;
    cr_assert_eq(sd_engine_submit(e, &r, on_event, &c, &id, &full, err), -1);
    sd_engine_free(e);
    sd_model_free(m);
}

Test(engine, cancel_and_queue_full, .timeout = 60)
{
    sd_model *m = load_shared("models/stories260K.gguf");
    sd_engine *e = start(m, 1, 512, 1);
    int32_t prompt[6];
    make_prompt(prompt, 6, 5, sd_model_hparams(m)->n_vocab);
    sd_gen_request r = greedy(prompt, 6, -1);
    collect a, b, x;
    col_init(&a);
    col_init(&b);
    col_init(&x);
    a.sleep_us = b.sleep_us = 2000;   /* ~1 s for a whole context */
    uint64_t ida = submit(e, &r, &a), idb = submit(e, &r, &b), id;
    /* One busy slot and one waiting request: the third is refused. */
    char err[SD_ERR_LEN];
    int full = 0;
    cr_assert_eq(sd_engine_submit(e, &r, on_event, &x, &id, &full, err), -1);
    cr_assert_eq(full, 1);
    cr_assert(strstr(err, "queue"), "%s", err);
    sd_engine_stats st;
    sd_engine_get_stats(e, &st);
    cr_assert_eq(st.n_slots, 1);
    cr_assert_eq(st.busy_slots + st.queued, 2);
    while (col_tokens(&a) < 3) usleep(1000);
    sd_engine_cancel(e, ida);
    col_wait(&a);
    cr_assert_eq(a.done_ev.finish, SD_FINISH_CANCELLED);
    cr_assert(a.n_tok < 100, "%d tokens after cancel", a.n_tok);
    /* b takes the slot; cancel it while it runs, then unknown ids are ignored. */
    while (col_tokens(&b) < 2) usleep(1000);
    sd_engine_cancel(e, idb);
    sd_engine_cancel(e, 987654);
    col_wait(&b);
    cr_assert_eq(b.done_ev.finish, SD_FINISH_CANCELLED);
    cr_assert(b.done_ev.queued_ms >= 0 && b.done_ev.prompt_ms >= 0 && b.done_ev.gen_ms >= 0);
    sd_engine_free(e);
    sd_model_free(m);
}

Test(engine, shutdown_cancels_everything, .timeout = 60)
{
    sd_model *m = load_shared("models/stories260K.gguf");
    sd_engine *e = start(m, 2, 512, 8);
    int32_t prompt[6];
    make_prompt(prompt, 6, 6, sd_model_hparams(m)->n_vocab);
    sd_gen_request r = greedy(prompt, 6, -1);
    collect c[4];
    for (int i = 0; i < 4; i++) {
        col_init(&c[i]);
        c[i].sleep_us = 2000;
        submit(e, &r, &c[i]);
    }
    while (col_tokens(&c[0]) < 1) usleep(1000);
    sd_engine_free(e);
    for (int i = 0; i < 4; i++) {
        cr_assert(c[i].done, "request %d got no DONE", i);
        cr_assert_eq(c[i].done_ev.finish, SD_FINISH_CANCELLED);
    }
    sd_model_free(m);
}

Test(engine, log_probabilities_match_the_session, .timeout = 60)
{
    sd_model *m = load_shared("models/tiny-q8_0.gguf");
    int nv = sd_model_hparams(m)->n_vocab;
    sd_engine *e = start(m, 1, 256, 0);
    enum { N = 70 };   /* longer than one prefill pass */
    int32_t prompt[N];
    make_prompt(prompt, N, 7, nv);
    sd_gen_request r = greedy(prompt, N, 3);
    r.prompt_logprobs = 1;
    r.n_top = 5;
    collect c;
    col_init(&c);
    submit(e, &r, &c);
    col_wait(&c);
    cr_assert(c.order_ok);
    cr_assert_eq(c.n_prompt_ev, N);
    /* Truth: log-softmax of sd_session's rows. */
    char err[SD_ERR_LEN];
    sd_session_params sp = {256, 2, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    float *rows = malloc((size_t)N * nv * sizeof *rows);
    cr_assert_eq(sd_session_eval(s, prompt, N, rows, err), 0, "%s", err);
    cr_assert_eq(c.prompt_lp[0], 0.0f);
    for (int i = 1; i < N; i++) {
        const float *l = rows + (size_t)(i - 1) * nv;
        double mx = -INFINITY, z = 0;
        for (int k = 0; k < nv; k++) mx = l[k] > mx ? l[k] : mx;
        for (int k = 0; k < nv; k++) z += exp(l[k] - mx);
        double want = l[prompt[i]] - mx - log(z);
        cr_assert_eq(c.prompt_tok[i], prompt[i]);
        cr_assert(fabs(c.prompt_lp[i] - want) < 1e-3, "prompt token %d: %f, want %f", i, c.prompt_lp[i], want);
    }
    /* The last token event: greedy, so the chosen token is the best of the top list. */
    sd_gen_event *t = &c.last_tok;
    cr_assert_eq(t->n_top, 5);
    cr_assert_eq(t->top_id[0], t->token);
    cr_assert_float_eq(t->top_logprob[0], t->logprob, 1e-6);
    for (int k = 1; k < 5; k++) cr_assert(t->top_logprob[k] <= t->top_logprob[k - 1]);
    free(rows);
    sd_session_free(s);
    sd_engine_free(e);
    sd_model_free(m);
}

Test(engine, penalties_change_greedy_choice, .timeout = 60)
{
    /* A huge frequency penalty forbids repeating a generated token. */
    sd_model *m = load_shared("models/stories260K.gguf");
    sd_engine *e = start(m, 1, 128, 0);
    int32_t prompt[4];
    make_prompt(prompt, 4, 8, sd_model_hparams(m)->n_vocab);
    sd_gen_request r = greedy(prompt, 4, 40);
    r.frequency_penalty = 1000;
    collect c;
    col_init(&c);
    submit(e, &r, &c);
    col_wait(&c);
    cr_assert_eq(c.n_tok, 40);
    for (int i = 0; i < 40; i++)
        for (int k = 0; k < i; k++) cr_assert_neq(c.tok[i], c.tok[k], "token %d repeats token %d", i, k);
    sd_engine_free(e);
    sd_model_free(m);
}

/* ---- milestone 2: batching, prefix cache, chunked prefill -------------- */

/* Runs r to the end and checks its tokens against sd_session's greedy ones. */
static void run_and_check(sd_engine *e, sd_model *m, const int32_t *prompt, int n, int g, collect *c)
{
    int32_t want[64];
    session_greedy(m, 256, prompt, n, g, want);
    sd_gen_request r = greedy(prompt, n, g);
    col_init(c);
    submit(e, &r, c);
    col_wait(c);
    cr_assert_eq(c->n_tok, g);
    for (int k = 0; k < g; k++) cr_assert_eq(c->tok[k], want[k], "token %d: %d, sd_session %d", k, c->tok[k], want[k]);
}

Test(engine, prefix_cache_reuses_blocks, .timeout = 120)
{
    sd_model *m = load_shared("models/tiny-q8_0.gguf");
    int nv = sd_model_hparams(m)->n_vocab;
    sd_engine *e = start_batched(m, 2, 256, 0);
    int32_t a[70], b[74];
    make_prompt(a, 70, 21, nv);
    memcpy(b, a, 64 * sizeof *b);
    make_prompt(b + 64, 10, 22, nv);
    collect ca, cb, cc;
    run_and_check(e, m, a, 70, 8, &ca);
    cr_assert_eq(ca.done_ev.n_cached, 0);
    /* b shares a's first 64 tokens: four blocks of 16. */
    run_and_check(e, m, b, 74, 8, &cb);
    cr_assert_eq(cb.done_ev.n_cached, 64);
    cr_assert_eq(cb.done_ev.n_prompt, 74);
    /* a again: its own four full blocks (the fifth holds its generated tokens
     * too, which a's second run does not have). */
    run_and_check(e, m, a, 70, 8, &cc);
    cr_assert_eq(cc.done_ev.n_cached, 64);
    for (int k = 0; k < 8; k++) cr_assert_eq(cc.tok[k], ca.tok[k]);
    sd_engine_stats st;
    sd_engine_get_stats(e, &st);
    cr_assert_eq(st.prefix_hit_tokens, 128);
    cr_assert_eq(st.prompt_tokens, 70 + 74 + 70);
    cr_assert_eq(st.kv_block_size, 16);
    cr_assert_eq(st.kv_blocks, 16);
    cr_assert_eq(st.kv_blocks_used, 0, "nothing held between requests");
    sd_engine_free(e);
    sd_model_free(m);
}

static int all_invariant(const sd_model *m);

Test(engine, chunked_prefill_beside_decode, .timeout = 120)
{
    /* 16 tokens per step: a 150-token prompt takes ten steps while two other
     * requests keep decoding, and every result is still sd_session's.
     * Request 1 decodes N1 = 120 tokens so that it is still running when the
     * long prompt arrives even if this thread is held up (a loaded machine
     * once let a 40-token request finish first). */
    enum { N1 = 120 };
    sd_model *m = load_shared("models/tiny-q8_0.gguf");
    int nv = sd_model_hparams(m)->n_vocab;
    /* 384 positions hold all three at once (9 + 3 + 10 blocks): with 256 a
     * request ended early (length) whenever the three peaked together, as
     * the steps' timing against this thread decides. */
    sd_engine *e = start_batched(m, 3, 384, 16);
    int32_t p1[20], p2[7], big[150];
    make_prompt(p1, 20, 31, nv);
    make_prompt(p2, 7, 32, nv);
    make_prompt(big, 150, 33, nv);
    int32_t w1[N1], w2[40], wb[10];
    session_greedy(m, 256, p1, 20, N1, w1);
    session_greedy(m, 256, p2, 7, 40, w2);
    session_greedy(m, 256, big, 150, 10, wb);
    collect c1, c2, cb;
    col_init(&c1);
    col_init(&c2);
    col_init(&cb);
    sd_gen_request r1 = greedy(p1, 20, N1), r2 = greedy(p2, 7, 40), rb = greedy(big, 150, 10);
    c1.sleep_us = 1000;   /* a step takes >= 1 ms: request 1 lasts >= 120 ms past a held-up test thread */
    submit(e, &r1, &c1);
    submit(e, &r2, &c2);
    while (col_tokens(&c1) < 2 || col_tokens(&c2) < 2) usleep(200);
    int before = col_tokens(&c1);
    cb.watch = &c1;
    submit(e, &rb, &cb);
    col_wait(&c1);
    col_wait(&c2);
    col_wait(&cb);
    /* Token for token sd_session's where every product is batch-invariant
     * (packed weights: AVX-512's default). Elsewhere (SHOWDOWN_REPACK=0, AVX2)
     * a step's other rows change the sums' order and a near-tie can flip a
     * later greedy token (seen: request 1 token 29), so only the first few. */
    int exact = all_invariant(m), upto = exact ? 1 << 30 : 4;
    if (!exact) cr_log_info("products not batch-invariant here: the first %d tokens of each request compared", upto);
    for (int k = 0; k < N1 && k < upto; k++) cr_assert_eq(c1.tok[k], w1[k], "request 1 token %d", k);
    for (int k = 0; k < 40 && k < upto; k++) cr_assert_eq(c2.tok[k], w2[k], "request 2 token %d", k);
    for (int k = 0; k < 10 && k < upto; k++) cr_assert_eq(cb.tok[k], wb[k], "long prompt token %d", k);
    /* The long prompt took at least 150 / (16 - 2) steps, in each of which
     * request 1 decoded a token; no step ran more than 16 tokens. */
    cr_assert_leq(before + 10, N1, "request 1 had %d of %d tokens when the long prompt came", before, N1);
    cr_assert_geq(cb.watch_at_first, before + 10, "request 1: %d tokens before, %d at the long prompt's first",
                  before, cb.watch_at_first);
    sd_engine_stats st;
    sd_engine_get_stats(e, &st);
    cr_assert_leq(st.max_step_tokens, 16);
    /* each prompt once, then every generated token but the last fed back (a
     * diverged greedy path may end early at end-of-text where not exact) */
    if (exact) cr_assert(c1.n_tok == N1 && c2.n_tok == 40 && cb.n_tok == 10);
    uint64_t once = 20 + 7 + 150 + (c1.n_tok - 1) + (c2.n_tok - 1) + (cb.n_tok - 1);
    /* The three need 22 of the 16 blocks if request 1 is far along when the
     * long prompt comes (a loaded machine): then one was preempted and
     * recomputed, which costs tokens beyond once each. */
    if (st.preemptions) cr_assert_gt(st.batch_tokens, once);
    else cr_assert_eq(st.batch_tokens, once);
    sd_engine_free(e);
    sd_model_free(m);
}

/* Each of 8 requests decoded together returns the tokens it returns alone,
 * and sd_session's greedy tokens. */
/* Exact when every matrix product is batch-invariant (packed weights, F32:
 * tests/test_batch_invariance.c); otherwise the same tokens and
 * log-probabilities within LP_BOUND (docs/ARCHITECTURE.md, determinism). */
#define LP_BOUND 2e-3

static int all_invariant(const sd_model *m)
{
    const sd_hparams *hp = sd_model_hparams(m);
    sd_model_prepare(m, 1);   /* what the first forward pass packs */
    for (int il = 0; il < hp->n_layer; il++) {
        const sd_layer *L = &m->layers[il];
        const sd_weight *lw[] = {SD_LAYER_MATRICES(L)};
        for (int i = 0; i < SD_LAYER_N_MATRICES; i++)
            if (!lw[i]->packed && lw[i]->type != 0) return 0;
    }
    return m->output.packed || m->output.type == 0;
}

static void concurrent_equals_solo(const char *model, int kv_f16)
{
    enum { R = 8, G = 24 };
    sd_model *m = load_shared(model);
    int exact = all_invariant(m);
    cr_log_info("%s: %s", model, exact ? "every product batch-invariant: exact" : "within the bound");
    int nv = sd_model_hparams(m)->n_vocab;
    int32_t prompt[R][48], want[R][G];
    int len[R];
    for (int i = 0; i < R; i++) {
        len[i] = 5 + 5 * i;
        make_prompt(prompt[i], len[i], 10 + i, nv);
        if (!kv_f16) session_greedy(m, 256, prompt[i], len[i], G, want[i]);
    }
    sd_engine_params p = sd_engine_default_params();
    p.n_slots = R;
    p.n_ctx = 512;
    p.n_threads = 2;
    p.n_batch = 64;
    p.kv_type = kv_f16 ? SD_KV_F16 : SD_KV_F32;
    char err[SD_ERR_LEN];
    sd_engine *e;
    cr_assert_eq(sd_engine_new(m, &p, &e, err), 0, "%s", err);
    static collect solo[R], many[R];
    for (int i = 0; i < R; i++) {
        sd_gen_request r = greedy(prompt[i], len[i], G);
        col_init(&solo[i]);
        submit(e, &r, &solo[i]);
        col_wait(&solo[i]);
    }
    for (int i = 0; i < R; i++) {
        sd_gen_request r = greedy(prompt[i], len[i], G);
        col_init(&many[i]);
        submit(e, &r, &many[i]);
    }
    for (int i = 0; i < R; i++) col_wait(&many[i]);
    for (int i = 0; i < R; i++) {
        cr_assert_eq(solo[i].n_tok, G);
        cr_assert_eq(many[i].n_tok, G);
        for (int k = 0; k < G; k++) {
            cr_assert_eq(many[i].tok[k], solo[i].tok[k], "request %d token %d: %d together, %d alone", i, k,
                         many[i].tok[k], solo[i].tok[k]);
            if (exact)
                cr_assert_eq(many[i].lp[k], solo[i].lp[k], "request %d token %d: log-probability %.9g together, %.9g alone",
                             i, k, many[i].lp[k], solo[i].lp[k]);
            else
                cr_assert(fabsf(many[i].lp[k] - solo[i].lp[k]) <= LP_BOUND,
                          "request %d token %d: log-probability %.9g together, %.9g alone", i, k, many[i].lp[k],
                          solo[i].lp[k]);
            if (!kv_f16) cr_assert_eq(solo[i].tok[k], want[i][k], "request %d token %d: %d, sd_session %d", i, k,
                                      solo[i].tok[k], want[i][k]);
        }
    }
    sd_engine_stats st;
    sd_engine_get_stats(e, &st);
    cr_assert_eq(st.generated_tokens, 2 * R * G);
    sd_engine_free(e);
    sd_model_free(m);
}

Test(engine, eight_concurrent_equal_solo_q8_0, .timeout = 120) { concurrent_equals_solo("models/tiny-q8_0.gguf", 0); }
Test(engine, eight_concurrent_equal_solo_q4_k, .timeout = 120) { concurrent_equals_solo("models/tiny-q4_k_m.gguf", 0); }
Test(engine, eight_concurrent_equal_solo_f16_kv, .timeout = 120) { concurrent_equals_solo("models/tiny-f16.gguf", 1); }
Test(engine, eight_concurrent_equal_solo_f32, .timeout = 120) { concurrent_equals_solo("models/tiny-f32.gguf", 0); }

Test(engine, admission_waits_for_kv_blocks, .timeout = 60)
{
    /* 64 positions in all (4 blocks): a 40-token prompt holds 3, so a
     * 30-token prompt (2 blocks) waits in the queue although a slot is free,
     * until the first request has used the whole pool and ended. */
    sd_model *m = load_shared("models/stories260K.gguf");
    sd_engine *e = start_batched(m, 2, 64, 0);
    int nv = sd_model_hparams(m)->n_vocab;
    int32_t a[40], b[30];
    make_prompt(a, 40, 41, nv);
    make_prompt(b, 30, 42, nv);
    collect ca, cb;
    col_init(&ca);
    col_init(&cb);
    ca.sleep_us = 1000;
    sd_gen_request ra = greedy(a, 40, -1), rb = greedy(b, 30, 3);
    submit(e, &ra, &ca);
    while (col_tokens(&ca) < 1) usleep(200);
    submit(e, &rb, &cb);
    usleep(5000);
    sd_engine_stats st;
    sd_engine_get_stats(e, &st);
    cr_assert_eq(st.busy_slots, 1, "the second request is not admitted without blocks");
    cr_assert_eq(st.queued, 1);
    col_wait(&ca);
    col_wait(&cb);
    cr_assert_eq(ca.done_ev.finish, SD_FINISH_LENGTH);
    cr_assert_eq(ca.n_tok, 64 - 40 + 1, "the first used every position of the pool");
    cr_assert_eq(cb.done_ev.finish, SD_FINISH_LENGTH);
    cr_assert_eq(cb.n_tok, 3);
    cr_assert(cb.done_ev.queued_ms >= ca.done_ev.gen_ms * 0.5, "queued %.1f ms", cb.done_ev.queued_ms);
    sd_engine_free(e);
    sd_model_free(m);
}

Test(engine, kv_pool_exhaustion_preempts_and_recomputes, .timeout = 120)
{
    /* 64 positions in all (4 blocks of 16) for three requests that need 3
     * blocks each: decoding runs out of blocks, the youngest sequence gives
     * its blocks back and is recomputed later. Every request still returns
     * sd_session's greedy tokens, and the prompt log-probabilities of the
     * youngest are each reported once. */
    enum { R = 3, G = 30 };
    sd_model *m = load_shared("models/tiny-q8_0.gguf");
    int nv = sd_model_hparams(m)->n_vocab;
    sd_engine *e = start_batched(m, R, 64, 0);
    int32_t prompt[R][16], want[R][G];
    int len[R] = {10, 12, 14};
    static collect c[R];
    for (int i = 0; i < R; i++) {
        make_prompt(prompt[i], len[i], 50 + i, nv);
        session_greedy(m, 256, prompt[i], len[i], G, want[i]);
    }
    for (int i = 0; i < R; i++) {
        sd_gen_request r = greedy(prompt[i], len[i], G);
        r.prompt_logprobs = i == R - 1;
        col_init(&c[i]);
        submit(e, &r, &c[i]);
    }
    for (int i = 0; i < R; i++) col_wait(&c[i]);
    for (int i = 0; i < R; i++) {
        cr_assert(c[i].order_ok, "request %d: events out of order or repeated", i);
        cr_assert_eq(c[i].done_ev.finish, SD_FINISH_LENGTH, "request %d: %s", i, c[i].done_ev.message);
        cr_assert_eq(c[i].n_tok, G, "request %d: %d tokens", i, c[i].n_tok);
        for (int k = 0; k < G; k++)
            cr_assert_eq(c[i].tok[k], want[i][k], "request %d token %d: %d, sd_session %d", i, k, c[i].tok[k],
                         want[i][k]);
        cr_assert_eq(c[i].done_ev.n_prompt, len[i]);
    }
    cr_assert_eq(c[R - 1].n_prompt_ev, len[R - 1], "prompt log-probabilities reported once each");
    sd_engine_stats st;
    sd_engine_get_stats(e, &st);
    cr_assert_gt(st.preemptions, 0, "the pool never ran out: the test does not test preemption");
    cr_assert_eq(st.generated_tokens, R * G);
    cr_assert_eq(st.prompt_tokens, 10 + 12 + 14, "a recomputed prompt is not a new one");
    cr_assert_eq(st.kv_blocks_used, 0);
    cr_assert_eq(st.busy_slots + st.queued, 0);
    cr_log_info("%llu preemptions", (unsigned long long)st.preemptions);
    sd_engine_free(e);
    sd_model_free(m);
}

Test(engine, preempted_mid_prompt_reports_each_prompt_logprob_once, .timeout = 120)
{
    /* 64 positions (4 blocks), 16 tokens per step. A (15-token prompt)
     * holds one block; at A's first token B (40 tokens, prompt
     * log-probabilities) is submitted and takes the other three. The next
     * step runs 15 of B's prompt beside A's decode; then A needs a second
     * block: B, the youngest, is preempted mid-prompt, waits for A to end,
     * and recomputes. Its prompt log-probabilities come once each, in order,
     * equal to a run alone; its tokens too. */
    sd_model *m = load_shared("models/tiny-q8_0.gguf");
    int nv = sd_model_hparams(m)->n_vocab;
    sd_engine *e = start_batched(m, 2, 64, 16);
    int32_t pa[15], pb[40];
    make_prompt(pa, 15, 61, nv);
    make_prompt(pb, 40, 62, nv);
    sd_gen_request ra = greedy(pa, 15, 30), rb = greedy(pb, 40, 8);
    rb.prompt_logprobs = 1;
    static collect ca, cb, solo;
    col_init(&ca);
    col_init(&cb);
    col_init(&solo);
    ca.then_engine = e;
    ca.then_req = &rb;
    ca.then_col = &cb;
    submit(e, &ra, &ca);
    col_wait(&ca);
    col_wait(&cb);
    sd_engine_stats st;
    sd_engine_get_stats(e, &st);
    cr_assert_gt(st.preemptions, 0);
    cr_assert(ca.order_ok && cb.order_ok, "events out of order or repeated");
    cr_assert_eq(ca.n_tok, 30);
    cr_assert_eq(cb.n_prompt_ev, 40, "%d prompt events", cb.n_prompt_ev);
    submit(e, &rb, &solo);
    col_wait(&solo);
    for (int i = 0; i < 40; i++) {
        cr_assert_eq(cb.prompt_tok[i], pb[i]);
        cr_assert(fabsf(cb.prompt_lp[i] - solo.prompt_lp[i]) <= 1e-3f, "prompt token %d: %f, alone %f", i,
                  cb.prompt_lp[i], solo.prompt_lp[i]);
    }
    cr_assert_eq(cb.n_tok, 8);
    for (int k = 0; k < 8; k++) cr_assert_eq(cb.tok[k], solo.tok[k], "token %d", k);
    sd_engine_free(e);
    sd_model_free(m);
}
