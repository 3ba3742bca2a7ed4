/* The KV cache's window pool: sliding-window layers keep only the blocks
 * their window can still see. Its size is the formula (kv_cache.h,
 * docs/ARCHITECTURE.md), blocks are held and given back as the window
 * moves, a prefix is reused only with the window blocks its end needs, and
 * the logits are bit for bit those of the cache that keeps every position
 * (SHOWDOWN_KV_WINDOW=0): sessions, the serving engine with concurrent long
 * requests, preemption and the prefix cache, a gpt-oss model with its own
 * window and the real Gemma 3 270M past its window of 512. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "serve/engine.h"
#include "common.h"
#include "engine_fixture.h"

/* ---- the pool's shape and bookkeeping, on a model without weights -------- */

static sd_model fake;
static sd_layer fake_layers[18];

/* n_layer layers of one KV head of hd; layer l slides (window swa) when l % period < period - 1. */
static void make_fake(int n_layer, int hd, int swa, int period)
{
    memset(&fake, 0, sizeof fake);
    memset(fake_layers, 0, sizeof fake_layers);
    snprintf(fake.path, sizeof fake.path, "fake.gguf");
    fake.hp.n_layer = n_layer;
    fake.hp.n_head_kv = 1;
    fake.hp.head_dim = hd;
    fake.layers = fake_layers;
    for (int l = 0; l < n_layer; l++) fake_layers[l].swa = l % period < period - 1 ? swa : 0;
}

static uint64_t blocks_bytes(int hd, int row_bytes, uint64_t layer_blocks)
{
    return 2 * layer_blocks * SD_KV_BLOCK * (uint64_t)hd * (uint64_t)row_bytes;
}

Test(kv_window, bytes_follow_the_formula)
{
    /* Gemma 3 270M's shape: 18 layers, 15 sliding with a window of 512,
     * one KV head of 256, F16. A session (one sequence, passes of 64): a
     * sliding layer holds the blocks of 512 - 1 + 64 positions, at most
     * ceil(575 / 16) + 1 = 37 blocks; the 3 global layers hold the context. */
    make_fake(18, 256, 512, 6);
    uint64_t got = sd_kv_cache_bytes(&fake, SD_KV_F16, 32768, 1, 64);
    uint64_t want = blocks_bytes(256, 2, 3 * 2048 + 15 * 37), all = blocks_bytes(256, 2, 18 * 2048);
    cr_assert_eq(got, want, "%llu bytes, formula %llu", (unsigned long long)got, (unsigned long long)want);
    cr_log_info("gemma3-270m shape, 32k context, f16: %.1f MiB (every position: %.1f MiB)", got / 1048576.0,
                all / 1048576.0);
    cr_assert_eq(blocks_bytes(256, 2, 18 * 2048), 576ull << 20);
    sd_kv_cache *c;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_kv_cache_new(&fake, SD_KV_F16, 32768, 1, 64, &c, err), 0, "%s", err);
    cr_assert_eq(c->bytes, want);
    cr_assert_eq(c->win.n_blocks, 37);
    cr_assert_eq(c->full.n_blocks, 2048);
    cr_assert_eq(c->window, 512);
    sd_kv_cache_free(c);
    /* The server: 4 sequences, steps of 128 tokens: (511 + 128 + 14) / 16 + 1 = 41 blocks each. */
    cr_assert_eq(sd_kv_cache_bytes(&fake, SD_KV_F16, 32768, 4, 128), blocks_bytes(256, 2, 3 * 2048 + 15 * 4 * 41));
    /* Eight windows of 4096 positions in all are no smaller than the pool:
     * every layer keeps every position then. */
    cr_assert_eq(sd_kv_cache_bytes(&fake, SD_KV_F16, 4096, 8, 128), blocks_bytes(256, 2, 18 * 256));
    /* No sliding layer: every position. */
    make_fake(4, 64, 0, 1);
    cr_assert_eq(sd_kv_cache_bytes(&fake, SD_KV_F32, 1000, 1, 64), blocks_bytes(64, 4, 4 * 63));
    /* The tests' switch: keep every position. */
    make_fake(18, 256, 512, 6);
    setenv("SHOWDOWN_KV_WINDOW", "0", 1);
    cr_assert_eq(sd_kv_cache_bytes(&fake, SD_KV_F16, 32768, 1, 64), all);
    unsetenv("SHOWDOWN_KV_WINDOW");
}

/* Held window blocks of sequence s: [lo, hi), all others -1. */
static void expect_held(const sd_kv_cache *c, int s, int lo, int hi)
{
    const sd_kv_seq *q = &c->seqs[s];
    cr_assert_eq(q->win_lo, lo, "held from %d, want %d", q->win_lo, lo);
    cr_assert_eq(q->win_hi, hi, "held to %d, want %d", q->win_hi, hi);
    for (int i = 0; i < c->n_blocks; i++) cr_assert_eq(q->win[i] >= 0, i >= lo && i < hi, "block %d", i);
}

Test(kv_window, blocks_follow_the_window)
{
    /* Two layers, one with a window of 20; 16 blocks; passes of 16. A
     * sequence holds 20 - 1 + 16 positions: 4 blocks at most, 8 for two. */
    make_fake(2, 8, 20, 2);
    sd_kv_cache *c;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_kv_cache_new(&fake, SD_KV_F32, 256, 2, 16, &c, err), 0, "%s", err);
    cr_assert_eq(c->win.n_blocks, 8);
    cr_assert(c->layer_win[0] && !c->layer_win[1]);
    cr_assert_eq(sd_kv_table(c, 0, 1), c->seqs[1].win);
    cr_assert_eq(sd_kv_table(c, 1, 1), c->seqs[1].blocks);
    cr_assert_eq(sd_kv_seq_window(c, 0, 0, 16), 0);
    expect_held(c, 0, 0, 1);
    cr_assert_eq(sd_kv_seq_window(c, 0, 16, 32), 0);   /* positions 0.. still seen */
    expect_held(c, 0, 0, 2);
    cr_assert_eq(sd_kv_seq_window(c, 0, 32, 48), 0);   /* position 32 sees 13..: block 0 too */
    expect_held(c, 0, 0, 3);
    cr_assert_eq(sd_kv_seq_window(c, 0, 48, 49), 0);   /* 48 sees 29..: block 0 given back */
    expect_held(c, 0, 1, 4);
    cr_assert_eq(c->win.n_free, 8 - 3);
    for (int p = 49; p < 200; p++) cr_assert_eq(sd_kv_seq_window(c, 0, p, p + 1), 0);
    expect_held(c, 0, (199 + 1 - 20) / 16, 200 / 16 + 1);
    /* The other sequence gets its full share meanwhile. */
    cr_assert_eq(sd_kv_seq_window(c, 1, 0, 16), 0);
    cr_assert_eq(sd_kv_seq_window(c, 1, 16, 32), 0);
    cr_assert_eq(sd_kv_seq_window(c, 1, 32, 48), 0);
    cr_assert_eq(sd_kv_seq_window(c, 1, 48, 64), 0);
    expect_held(c, 1, 1, 4);
    /* Refused, nothing changed: a pass longer than n_batch; positions the
     * window reads that are gone (jumping back). */
    cr_assert_eq(sd_kv_seq_window(c, 1, 64, 81), -1);
    cr_assert_eq(sd_kv_seq_window(c, 0, 100, 101), -1);
    expect_held(c, 0, 11, 13);
    /* Back to position 0 (a reset session) is fine: nothing before it. */
    cr_assert_eq(sd_kv_seq_window(c, 0, 0, 16), 0);
    expect_held(c, 0, 0, 1);
    sd_kv_seq_release(c, 0);
    sd_kv_seq_release(c, 1);
    expect_held(c, 0, 0, 0);
    cr_assert_eq(c->win.n_free, 8, "unpublished blocks are free again");
    sd_kv_cache_free(c);
}

static void fill(int32_t *t, int n, int seed)
{
    for (int i = 0; i < n; i++) t[i] = seed * 1000 + i;
}

/* Sequence s computes tokens[0..n) in passes of 16, publishing as the
 * engine does. */
static void compute(sd_kv_cache *c, int s, const int32_t *t, int from, int n)
{
    cr_assert_eq(sd_kv_seq_grow(c, s, n), 0);
    for (int p = from; p < n; p += 16) {
        int e = p + 16 < n ? p + 16 : n;
        cr_assert_eq(sd_kv_seq_window(c, s, p, e), 0);
        sd_kv_seq_publish(c, s, t, e);
    }
}

Test(kv_window, prefix_reuse_needs_the_window)
{
    make_fake(2, 8, 20, 2);
    sd_kv_cache *c;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_kv_cache_new(&fake, SD_KV_F32, 256, 2, 16, &c, err), 0, "%s", err);
    int32_t a[100];
    fill(a, 100, 1);
    compute(c, 0, a, 0, 100);
    sd_kv_seq_release(c, 0);
    /* Six full blocks cached; position 96 sees 77..: window blocks 4 and 5,
     * cached too. Two sequences share them. */
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 1, a, 100), 96);
    expect_held(c, 1, 4, 6);
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 0, a, 100), 96);
    cr_assert_eq(c->seqs[0].win[5], c->seqs[1].win[5]);
    cr_assert_eq(c->win.ref[c->seqs[0].win[5]], 2);
    cr_assert_eq(sd_kv_seq_window(c, 1, 96, 100), 0, "the reused window is held");
    sd_kv_seq_release(c, 0);
    sd_kv_seq_release(c, 1);
    /* The first 32: position 32 sees 13..: window blocks 0 and 1. */
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 1, a, 40), 32);
    expect_held(c, 1, 0, 2);
    sd_kv_seq_release(c, 1);
    /* Three window blocks for another sequence (nothing published): the two free ones, then the
     * least recently used cached one, a's block 2 (0 and 1 were just used). */
    for (int p = 0; p < 48; p += 16) cr_assert_eq(sd_kv_seq_window(c, 0, p, p + 16), 0);
    sd_kv_seq_release(c, 0);
    cr_assert_eq(c->win.evictions, 1);
    cr_assert_eq(c->full.evictions, 0);
    /* 70 tokens: four full blocks are cached, but position 64 (window 45..)
     * and 48 (29..) need block 2: reuse stops at two blocks. */
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 1, a, 70), 32);
    expect_held(c, 1, 0, 2);
    cr_assert_eq(c->seqs[1].n_blocks, 2);
    /* The longest prefix's window (blocks 4 and 5) is still there. */
    cr_assert_eq(sd_kv_seq_reuse_prefix(c, 0, a, 100), 96);
    sd_kv_seq_release(c, 0);
    sd_kv_seq_release(c, 1);
    cr_assert_eq(c->win.n_free + c->win.n_lru, 8);
    cr_assert_eq(sd_kv_available(c), 16);
    sd_kv_cache_free(c);
}

/* ---- logits: the window pool against keeping every position ------------- */

/* Every row of a session over tok[0..n): prefill in one call, or one token
 * at a time; with the window pool or (full) keeping every position.
 * *kv_bytes: the session's KV cache. */
static float *session_rows(sd_model *m, sd_kv_type kv, int n_ctx, const int32_t *tok, int n, int one_by_one, int full,
                           uint64_t *kv_bytes)
{
    int nv = sd_model_hparams(m)->n_vocab;
    float *rows = malloc((size_t)n * nv * sizeof *rows);
    cr_assert(rows);
    if (full) setenv("SHOWDOWN_KV_WINDOW", "0", 1);
    char err[SD_ERR_LEN];
    sd_session_params sp = {n_ctx, 2, kv};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    unsetenv("SHOWDOWN_KV_WINDOW");
    if (one_by_one)
        for (int i = 0; i < n; i++) cr_assert_eq(sd_session_eval(s, tok + i, 1, rows + (size_t)i * nv, err), 0, "%s", err);
    else
        cr_assert_eq(sd_session_eval(s, tok, n, rows, err), 0, "%s", err);
    if (kv_bytes) *kv_bytes = sd_session_kv_bytes(s);
    sd_session_free(s);
    return rows;
}

/* The window pool's rows equal the full cache's, bit for bit, and it is smaller. */
static void rows_equal(sd_model *m, sd_kv_type kv, int n_ctx, int n, int one_by_one)
{
    int nv = sd_model_hparams(m)->n_vocab;
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    make_prompt(tok, n, 7, nv);
    uint64_t b_win, b_full;
    float *a = session_rows(m, kv, n_ctx, tok, n, one_by_one, 0, &b_win);
    float *b = session_rows(m, kv, n_ctx, tok, n, one_by_one, 1, &b_full);
    cr_assert_lt(b_win, b_full, "window pool %llu bytes, full %llu", (unsigned long long)b_win,
                 (unsigned long long)b_full);
    for (int p = 0; p < n; p++)
        cr_assert(!memcmp(a + (size_t)p * nv, b + (size_t)p * nv, (size_t)nv * sizeof *a),
                  "kv %d, %s: row %d differs from keeping every position", (int)kv, one_by_one ? "decode" : "prefill", p);
    free(a);
    free(b);
    free(tok);
}

Test(kv_window, session_logits_equal_keeping_every_position, .timeout = 120)
{
    /* tiny: a window of 37 on layer 0 (off any multiple of 8), layer 1 global;
     * 300 positions: the window slides far and past one attention chunk. */
    sd_model *m = load_shared("models/tiny-f32.gguf");
    m->layers[0].swa = 37;
    sd_kv_type kinds[] = {SD_KV_F32, SD_KV_F16, SD_KV_Q8_0};
    int n = sanitized() ? 120 : 300;   /* still three windows under the sanitizers */
    for (int i = 0; i < 3; i++) rows_equal(m, kinds[i], 512, n, 0);
    rows_equal(m, SD_KV_F16, 512, n, 1);
    sd_model_free(m);
}

Test(kv_window, gpt_oss_logits_equal_keeping_every_position, .timeout = 120)
{
    /* Its own window of 128 on the even layer, sinks, YaRN. */
    sd_model *m = load_shared("models/moe-gptoss-q8_0.gguf");
    cr_assert_eq(m->layers[0].swa, 128);
    cr_assert_eq(m->layers[1].swa, 0);
    rows_equal(m, SD_KV_F16, 1024, 400, 0);
    rows_equal(m, SD_KV_F32, 1024, 200, 1);
    sd_model_free(m);
}

Test(kv_window, gemma3_270m_past_its_window, .timeout = 300)
{
    const char *dir = getenv("SHOWDOWN_MODELS");
    char p[512], err[SD_ERR_LEN];
    snprintf(p, sizeof p, "%s/gemma-3-270m-q4_k_m.gguf", dir && *dir ? dir : "build/models");
    if (access(p, R_OK)) cr_skip_test("%s is not fetched (make models)", p);
    sd_model *m;
    cr_assert_eq(sd_model_load(p, &m, err), 0, "%s", err);
    const sd_hparams *hp = sd_model_hparams(m);
    int n_slide = 0;
    for (int l = 0; l < hp->n_layer; l++) n_slide += m->layers[l].swa == 512;
    cr_assert_eq(n_slide, 15);
    /* The reported size at 32k is the formula: 3 layers x 32768 positions +
     * 15 x 37 blocks of 16, one KV head of 256, F16. */
    sd_session_params sp = {32768, 2, SD_KV_F16};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    uint64_t want = 2ull * hp->n_head_kv * hp->head_dim * 2 * (3ull * 32768 + 15ull * 37 * 16);
    cr_assert_eq(sd_session_kv_bytes(s), want, "%llu, formula %llu", (unsigned long long)sd_session_kv_bytes(s),
                 (unsigned long long)want);
    cr_log_info("gemma-3-270m at 32768: KV cache %.1f MiB", sd_session_kv_bytes(s) / 1048576.0);
    sd_session_free(s);
    /* 600 positions (the window is 512): rows equal the full cache's. Not
     * under the sanitizers (two minutes there; the tiny models above run
     * the same code). */
    if (sanitized()) cr_log_info("sanitized build: the 600-position comparison runs in the optimized build");
    else rows_equal(m, SD_KV_F16, 1024, 600, 0);
    sd_model_free(m);
}

/* ---- the serving engine ------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, n;
    int32_t tok[64];
    float lp[64];
    sd_gen_event end;
} collect;

static int on_event(const sd_gen_event *ev, void *user)
{
    collect *c = user;
    pthread_mutex_lock(&c->mu);
    if (ev->kind == SD_EV_TOKEN && c->n < 64) {
        c->tok[c->n] = ev->token;
        c->lp[c->n++] = ev->logprob;
    } else if (ev->kind != SD_EV_TOKEN && ev->kind != SD_EV_PROMPT) {
        c->end = *ev;
        c->done = 1;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void submit(sd_engine *e, const int32_t *prompt, int n, int max_tokens, collect *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    sd_gen_request r = greedy(prompt, n, max_tokens);
    uint64_t id;
    int full;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_engine_submit(e, &r, on_event, c, &id, &full, err), 0, "%s", err);
}

static void wait_done(collect *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->done) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* Greedy tokens of a session that keeps every position: the truth. */
static void greedy_full(sd_model *m, const int32_t *prompt, int n, int n_gen, int32_t *out)
{
    setenv("SHOWDOWN_KV_WINDOW", "0", 1);   /* read when the session makes its cache */
    session_greedy(m, 512, prompt, n, n_gen, out);
    unsetenv("SHOWDOWN_KV_WINDOW");
}

Test(kv_window, engine_concurrent_long_requests_equal_solo, .timeout = 180)
{
    /* tiny (F32 weights: every product batch-invariant) with a window of 37
     * on layer 0; four requests of 60..105 prompt tokens and 40 generated,
     * far past the window, alone and then together: the same tokens and
     * log-probabilities, and the tokens of a session keeping every position. */
    enum { R = 4, G = 40 };
    sd_model *m = load_shared("models/tiny-f32.gguf");
    m->layers[0].swa = 37;
    int nv = sd_model_hparams(m)->n_vocab;
    int32_t prompt[R][105], want[R][G];
    int len[R];
    for (int i = 0; i < R; i++) {
        len[i] = 60 + 15 * i;
        make_prompt(prompt[i], len[i], 20 + i, nv);
        greedy_full(m, prompt[i], len[i], G, want[i]);
    }
    sd_engine *e = start_batched(m, R, 512, 32);
    sd_engine_stats st;
    sd_engine_get_stats(e, &st);
    /* 4 x ((36 + 32 + 14) / 16 + 1) = 24 window blocks for layer 0, 32 for layer 1. */
    cr_assert_eq(st.kv_bytes, 2ull * 2 * 64 * 4 * 16 * (32 + 24), "%llu", (unsigned long long)st.kv_bytes);
    static collect solo[R], many[R];
    for (int i = 0; i < R; i++) {
        submit(e, prompt[i], len[i], G, &solo[i]);
        wait_done(&solo[i]);
    }
    for (int i = 0; i < R; i++) submit(e, prompt[i], len[i], G, &many[i]);
    for (int i = 0; i < R; i++) wait_done(&many[i]);
    for (int i = 0; i < R; i++) {
        cr_assert_eq(solo[i].n, G);
        cr_assert_eq(many[i].n, G);
        for (int k = 0; k < G; k++) {
            cr_assert_eq(solo[i].tok[k], want[i][k], "request %d token %d: %d, full session %d", i, k, solo[i].tok[k],
                         want[i][k]);
            cr_assert_eq(many[i].tok[k], solo[i].tok[k], "request %d token %d", i, k);
            cr_assert_eq(many[i].lp[k], solo[i].lp[k], "request %d token %d: %.9g together, %.9g alone", i, k,
                         many[i].lp[k], solo[i].lp[k]);
        }
    }
    sd_engine_free(e);
    sd_model_free(m);
}

Test(kv_window, engine_preemption_and_prefix_reuse, .timeout = 180)
{
    /* 128 positions (8 blocks) for three requests of 20 + 40 positions (4
     * blocks each): preemptions and recomputation; a window of 8 and steps
     * of 8 tokens (2 window blocks a sequence). Then a prompt that extends
     * an earlier one reuses its blocks. All equal a full session's tokens. */
    enum { R = 3, G = 40 };
    sd_model *m = load_shared("models/tiny-f32.gguf");
    m->layers[0].swa = 8;
    int nv = sd_model_hparams(m)->n_vocab;
    int32_t prompt[R][20], want[R][G];
    for (int i = 0; i < R; i++) {
        make_prompt(prompt[i], 20, 40 + i, nv);
        greedy_full(m, prompt[i], 20, G, want[i]);
    }
    sd_engine *e = start_batched(m, R, 128, 8);
    static collect c[R];
    for (int i = 0; i < R; i++) submit(e, prompt[i], 20, G, &c[i]);
    for (int i = 0; i < R; i++) wait_done(&c[i]);
    sd_engine_stats st;
    sd_engine_get_stats(e, &st);
    cr_assert_gt(st.preemptions, 0, "the pool never ran out");
    for (int i = 0; i < R; i++) {
        cr_assert_eq(c[i].n, G, "request %d: %d tokens (%s)", i, c[i].n, c[i].end.message);
        for (int k = 0; k < G; k++)
            cr_assert_eq(c[i].tok[k], want[i][k], "request %d token %d: %d, full session %d", i, k, c[i].tok[k],
                         want[i][k]);
    }
    /* A prompt, then one that extends it by its 19 first tokens and 11
     * more (59 + 11): A's three full blocks come back, and the window
     * blocks position 48 reads (41..: block 2). */
    int32_t a[40], ext[70], want_a[20], want_ext[8];
    make_prompt(a, 40, 90, nv);
    greedy_full(m, a, 40, 20, want_a);
    collect ca, x;
    submit(e, a, 40, 20, &ca);
    wait_done(&ca);
    for (int k = 0; k < 20; k++) cr_assert_eq(ca.tok[k], want_a[k], "A token %d", k);
    memcpy(ext, a, 40 * sizeof *ext);
    memcpy(ext + 40, want_a, 19 * sizeof *ext);
    make_prompt(ext + 59, 11, 91, nv);
    greedy_full(m, ext, 70, 8, want_ext);
    submit(e, ext, 70, 8, &x);
    wait_done(&x);
    cr_assert_eq(x.end.n_cached, 48);
    for (int k = 0; k < 8; k++) cr_assert_eq(x.tok[k], want_ext[k], "extended prompt token %d", k);
    sd_engine_get_stats(e, &st);
    cr_assert_eq(st.kv_blocks_used, 0);
    sd_engine_free(e);
    sd_model_free(m);
}
