/* The serving engine with GPU layers, on whatever Vulkan device the loader
 * finds (lavapipe here): the batched step over several sequences (decode
 * tokens and prompt chunks at their own positions, a shared prefix block, a
 * released sequence's blocks reused) against the same steps on the CPU; the
 * engine's greedy tokens with every layer and with a split against the CPU
 * engine's, through chunked prefill, the prefix cache and preemption (and
 * with Gemma 3's sliding windows and gpt-oss's sinks); the
 * HTTP server with -ngl 99 against the CPU server; and a lost device mid-step
 * (SHOWDOWN_VK_FAIL=submit:N) giving error objects, then 503s, never a
 * crash. Skipped, saying why, without a device. Speed on lavapipe means
 * nothing: these check results only. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "showdown.h"
#include "eval/logits_file.h"
#include "gpu/backend.h"
#include "gpu/vk_paged.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/offload.h"
#include "serve/engine.h"
#include "common.h"
#include "engine_fixture.h"
#include "serve_client.h"

TestSuite(gpu_serve, .fini = server_kill, .timeout = 240);

static void need_device(void)
{
    sd_gpu_device_info info[4];
    char err[SD_ERR_LEN] = "";
    if (sd_gpu_vulkan.list(info, 4, err) == 0) cr_skip_test("no Vulkan device: %s", err);
}

/* ---- the paged step's metadata (no device needed) ----------------------- */

/* Positions, each token's table offset, each sequence's table once, as far
 * as its furthest position in the step; every word the shaders would index
 * the cache with is checked first. */
Test(gpu_serve, paged_metadata_layout_and_checks)
{
    int t0[] = {4, 9, 2}, t1[] = {0, 7}, t2[] = {5, -1};
    const int *tabs[] = {t0, t1, t2};
    /* sequence 1 decodes at 20; sequence 0 prefills 15..17 (crossing into its second block) */
    int pos[] = {20, 15, 16, 17}, seq[] = {1, 0, 0, 0};
    sd_gpu_step s = {0};
    s.n_tok = 4; s.pos_of = pos; s.seq = seq; s.tables = tabs; s.n_seqs = 3; s.block = 16;
    uint32_t m[64];
    char err[SD_ERR_LEN];
    long w = sd_vk_paged_meta(&s, 10, m, 64, err);
    cr_assert_eq(w, 8 + 2 + 2, "%s", err);
    uint32_t want[] = {20, 15, 16, 17, 8, 10, 10, 10, 0, 7, 4, 9};
    for (int i = 0; i < 12; i++) cr_expect_eq(m[i], want[i], "word %d: %u, not %u", i, m[i], want[i]);
    cr_expect_eq(sd_vk_paged_words(64, 4, 10), 2 * 64 + 4 * 10);
    cr_expect_eq(sd_vk_paged_words(2, 4, 10), 2 * 2 + 2 * 10, "no more sequences than tokens");

    cr_expect_eq(sd_vk_paged_meta(&s, 8, m, 64, err), -1, "block 9 of a pool of 8");
    cr_expect(strstr(err, "not one of the pool's 8"), "%s", err);
    cr_expect_eq(sd_vk_paged_meta(&s, 10, m, 11, err), -1, "11 words cannot hold it");
    int pos2[] = {20}, seq2[] = {2};
    s.n_tok = 1; s.pos_of = pos2; s.seq = seq2;
    cr_expect_eq(sd_vk_paged_meta(&s, 10, m, 64, err), -1, "position 20 of sequence 2 is in no block (-1)");
    seq2[0] = 3;
    cr_expect_eq(sd_vk_paged_meta(&s, 10, m, 64, err), -1, "sequence 3 of 3");
    seq2[0] = 0; pos2[0] = -1;
    cr_expect_eq(sd_vk_paged_meta(&s, 10, m, 64, err), -1, "a negative position");
}

/* ---- the batched step ------------------------------------------------- */

enum { POS = 256, SEQS = 3, BATCH = 64 };

typedef struct {
    sd_model *m;
    sd_kv_cache *kv;
    sd_fwd f;
    float *logits;
} side;

/* A model (ngl layers offloaded, 0: none), a cache of SEQS sequences and the
 * engine's forward state over it, as sd_engine_new makes them. */
static void side_new(side *s, const char *rel, int ngl, sd_kv_type kv)
{
    char err[SD_ERR_LEN];
    s->m = load_shared(rel);
    if (ngl) {
        sd_offload_params op = {ngl, 0, POS, kv, NULL, NULL};
        cr_assert_eq(sd_model_offload(s->m, &op, err), 0, "%s", err);
        cr_assert_gt(sd_model_gpu_layers(s->m), 0, "%s", sd_model_placement(s->m));
    }
    cr_assert_eq(sd_kv_cache_new(s->m, kv, POS, SEQS, BATCH, &s->kv, err), 0, "%s", err);
    cr_assert_eq(sd_fwd_init(&s->f, s->m, s->kv, BATCH, 2, err), 0, "%s", err);
    cr_assert_eq(sd_offload_engine_new(&s->f, BATCH, err), 0, "%s", err);
    cr_assert_eq(s->f.gpu != NULL, ngl != 0);
    s->logits = malloc((size_t)BATCH * sd_model_hparams(s->m)->n_vocab * sizeof(float));
}

static void side_free(side *s)
{
    sd_offload_engine_free(&s->f);
    sd_fwd_free(&s->f);
    sd_kv_cache_free(s->kv);
    sd_model_free(s->m);
    free(s->logits);
}

/* One batch being built: runs of tokens of one sequence each. */
typedef struct {
    int32_t tok[BATCH];
    int pos[BATCH], seq[BATCH], out[BATCH];
    int n, n_out;
} batch;

/* Positions [p0, p0 + n) of sequence q (tokens from toks), the rows whose
 * logits are wanted: the last, or all of them. */
static void add_run(batch *b, const int32_t *toks, int q, int p0, int n, int all_rows)
{
    for (int k = 0; k < n; k++) {
        b->tok[b->n] = toks[p0 + k];
        b->pos[b->n] = p0 + k;
        b->seq[b->n] = q;
        if (all_rows || k == n - 1) b->out[b->n_out++] = b->n;
        b->n++;
    }
}

/* Runs b on both sides (each cache already holds the blocks b writes) and
 * compares every row asked for. */
static void run_both(side *cpu, side *gpu, const batch *b, double tol, const char *what)
{
    sd_batch sb = {b->n, b->tok, b->pos, b->seq, b->out, b->n_out};
    int nv = sd_model_hparams(cpu->m)->n_vocab;
    sd_forward_batch(&cpu->f, &sb, cpu->logits);
    sd_forward_batch(&gpu->f, &sb, gpu->logits);
    cr_assert(!gpu->f.gpu_err || !gpu->f.gpu_err[0], "%s: %s", what, gpu->f.gpu_err);
    for (int i = 0; i < b->n_out; i++) {
        const float *c = cpu->logits + (size_t)i * nv, *g = gpu->logits + (size_t)i * nv;
        double e = sd_rel_l2(g, c, nv);
        int t = b->out[i];
        cr_expect_leq(e, tol, "%s: row of sequence %d at position %d: relative L2 %.2e", what, b->seq[t], b->pos[t], e);
    }
}

static void grow_both(side *cpu, side *gpu, int q, int n_pos)
{
    cr_assert_eq(sd_kv_seq_grow(cpu->kv, q, n_pos), 0);
    cr_assert_eq(sd_kv_seq_grow(gpu->kv, q, n_pos), 0);
}

static void batched_step_vs_cpu(const char *rel, int ngl, sd_kv_type kv, double tol)
{
    need_device();
    side cpu, gpu;
    side_new(&cpu, rel, 0, kv);
    side_new(&gpu, rel, ngl, kv);
    int nv = sd_model_hparams(cpu.m)->n_vocab;
    int32_t toks[SEQS][96], fresh[16];
    for (int q = 0; q < SEQS; q++) make_prompt(toks[q], 96, 7 + q, nv);
    memcpy(toks[2], toks[0], 16 * sizeof(int32_t));   /* sequence 2 begins with sequence 0's first block */
    make_prompt(fresh, 16, 99, nv);

    /* 1: two prompts, one chunk each */
    batch b = {0};
    grow_both(&cpu, &gpu, 0, 20);
    grow_both(&cpu, &gpu, 1, 5);
    add_run(&b, toks[0], 0, 0, 20, 1);
    add_run(&b, toks[1], 1, 0, 5, 0);
    run_both(&cpu, &gpu, &b, tol, "step 1 (two prompts)");
    sd_kv_seq_publish(cpu.kv, 0, toks[0], 20);
    sd_kv_seq_publish(gpu.kv, 0, toks[0], 20);

    /* 2: a decode token, a prompt's next chunk, and a prompt that reuses
     * sequence 0's published block (its keys only on the device) */
    cr_assert_eq(sd_kv_seq_reuse_prefix(cpu.kv, 2, toks[2], 30), 16);
    cr_assert_eq(sd_kv_seq_reuse_prefix(gpu.kv, 2, toks[2], 30), 16);
    cr_assert_eq(gpu.kv->seqs[2].blocks[0], gpu.kv->seqs[0].blocks[0], "the prefix block is shared");
    grow_both(&cpu, &gpu, 0, 21);
    grow_both(&cpu, &gpu, 1, 35);
    grow_both(&cpu, &gpu, 2, 30);
    memset(&b, 0, sizeof b);
    add_run(&b, toks[0], 0, 20, 1, 0);
    add_run(&b, toks[1], 1, 5, 30, 0);
    add_run(&b, toks[2], 2, 16, 14, 1);
    run_both(&cpu, &gpu, &b, tol, "step 2 (decode, chunk, prefix reuse)");

    /* 3: sequence 1 ends; a new prompt takes its blocks back (their old keys
     * must not leak into it) beside two decode tokens */
    sd_kv_seq_release(cpu.kv, 1);
    sd_kv_seq_release(gpu.kv, 1);
    grow_both(&cpu, &gpu, 0, 22);
    grow_both(&cpu, &gpu, 2, 31);
    grow_both(&cpu, &gpu, 1, 16);
    memset(&b, 0, sizeof b);
    add_run(&b, toks[0], 0, 21, 1, 0);
    add_run(&b, fresh, 1, 0, 16, 1);
    add_run(&b, toks[2], 2, 30, 1, 0);
    run_both(&cpu, &gpu, &b, tol, "step 3 (released blocks reused)");

    /* 4: decode only, each sequence at its own position */
    for (int k = 0; k < 3; k++) {
        grow_both(&cpu, &gpu, 0, 23 + k);
        grow_both(&cpu, &gpu, 1, 17 + k);
        grow_both(&cpu, &gpu, 2, 32 + k);
        memset(&b, 0, sizeof b);
        add_run(&b, toks[2], 2, 31 + k, 1, 0);
        add_run(&b, toks[0], 0, 22 + k, 1, 0);
        add_run(&b, toks[1], 1, 16 + k, 1, 0);
        run_both(&cpu, &gpu, &b, tol, "decode steps");
    }
    side_free(&cpu);
    side_free(&gpu);
}

/* F32 weights and keys: only the summation order differs (tests/test_gpu.c:
 * 1e-4 for a step's rows); an F16 cache (the server's default) rounds keys,
 * values and queries to F16 on both sides, but the sums before the
 * rounding differ in the last bits (1.3e-4 seen: test_gpu.c's F16 1e-3). Q4_K_M: an 8-bit
 * activation step may round the other way and move a row by ~1e-2
 * (test_gpu.c's 3e-2). */
Test(gpu_serve, batched_step_all_layers_f32) { batched_step_vs_cpu("models/tiny-f32.gguf", 99, SD_KV_F32, 1e-4); }
Test(gpu_serve, batched_step_split_f32) { batched_step_vs_cpu("models/tiny-f32.gguf", 1, SD_KV_F32, 1e-4); }
Test(gpu_serve, batched_step_f16_cache) { batched_step_vs_cpu("models/tiny-f32.gguf", 99, SD_KV_F16, 1e-3); }
Test(gpu_serve, batched_step_all_layers_q4_k_m) {
    batched_step_vs_cpu("models/tiny-q4_k_m.gguf", 99, SD_KV_F32, 3e-2);
}

/* ---- the engine ------------------------------------------------------- */

enum { MAXTOK = 64 };

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, n, n_prompt;
    int32_t tok[MAXTOK];
    float lp[MAXTOK], prompt_lp[MAXTOK];
    sd_gen_event end;
} collect;

static int on_event(const sd_gen_event *ev, void *user)
{
    collect *c = user;
    pthread_mutex_lock(&c->mu);
    if (ev->kind == SD_EV_PROMPT && c->n_prompt < MAXTOK) c->prompt_lp[c->n_prompt++] = ev->logprob;
    if (ev->kind == SD_EV_TOKEN && c->n < MAXTOK) {
        c->lp[c->n] = ev->logprob;
        c->tok[c->n++] = ev->token;
    }
    if (ev->kind == SD_EV_DONE) {
        c->end = *ev;
        c->done = 1;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

enum { NREQ = 5 };

/* NREQ greedy requests submitted at once to an engine of `slots` slots over
 * n_ctx positions, n_batch tokens a step; their tokens into out. */
static void engine_run(sd_model *m, int slots, int n_ctx, int n_batch, int32_t prompts[NREQ][48], const int *len,
                       int n_gen, int prompt_logprobs, collect *out, sd_engine_stats *st)
{
    sd_engine *e = start_batched(m, slots, n_ctx, n_batch);
    for (int i = 0; i < NREQ; i++) {
        memset(&out[i], 0, sizeof out[i]);
        pthread_mutex_init(&out[i].mu, NULL);
        pthread_cond_init(&out[i].cv, NULL);
        sd_gen_request r = greedy(prompts[i], len[i], n_gen);
        r.prompt_logprobs = prompt_logprobs && (i == 2 || i == 4);   /* every prompt row through the output head */
        uint64_t id;
        int full;
        char err[SD_ERR_LEN];
        cr_assert_eq(sd_engine_submit(e, &r, on_event, &out[i], &id, &full, err), 0, "%s", err);
    }
    for (int i = 0; i < NREQ; i++) {
        pthread_mutex_lock(&out[i].mu);
        while (!out[i].done) pthread_cond_wait(&out[i].cv, &out[i].mu);
        pthread_mutex_unlock(&out[i].mu);
        cr_assert_eq(out[i].end.finish, SD_FINISH_LENGTH, "request %d: %s", i, out[i].end.message);
    }
    sd_engine_get_stats(e, st);
    sd_engine_free(e);
}

/* The same requests through a CPU engine and one with ngl GPU layers:
 * identical greedy tokens. Prompts 1 and 3 share their first 16 tokens
 * (the prefix cache); n_ctx 64 (4 blocks) for 3 slots forces preemption. */
/* A model under ../shared, or a file at an absolute path (synthesized). */
static sd_model *load_any(const char *rel)
{
    char err[SD_ERR_LEN];
    sd_model *m;
    if (rel[0] != '/') return load_shared(rel);
    cr_assert_eq(sd_model_load(rel, &m, err), 0, "%s", err);
    return m;
}

static void engine_vs_cpu(const char *rel, int ngl, int n_ctx, int want_preempt, int prompt_logprobs)
{
    need_device();
    char err[SD_ERR_LEN];
    sd_model *mc = load_any(rel), *mg = load_any(rel);
    sd_offload_params op = {ngl, 0, n_ctx, SD_KV_F32, NULL, NULL};
    cr_assert_eq(sd_model_offload(mg, &op, err), 0, "%s", err);
    cr_assert_gt(sd_model_gpu_layers(mg), 0, "%s", sd_model_placement(mg));
    int nv = sd_model_hparams(mc)->n_vocab;
    int32_t prompts[NREQ][48];
    int len[NREQ] = {9, 23, 40, 17, 5};
    if (want_preempt) { len[1] = 12; len[2] = 14; len[3] = 17; }
    for (int i = 0; i < NREQ; i++) make_prompt(prompts[i], 48, 20 + i, nv);
    memcpy(prompts[3], prompts[1], 16 * sizeof(int32_t));
    int n_gen = want_preempt ? 20 : 10;
    collect *c = calloc(NREQ, sizeof *c), *g = calloc(NREQ, sizeof *g);
    sd_engine_stats sc, sg;
    engine_run(mc, 3, n_ctx, 16, prompts, len, n_gen, prompt_logprobs, c, &sc);
    engine_run(mg, 3, n_ctx, 16, prompts, len, n_gen, prompt_logprobs, g, &sg);
    for (int i = 0; i < NREQ; i++) {
        cr_assert_eq(g[i].n, n_gen, "request %d: %d tokens", i, g[i].n);
        for (int k = 0; k < n_gen; k++) {
            cr_assert_eq(g[i].tok[k], c[i].tok[k], "request %d token %d: GPU %d, CPU %d", i, k, g[i].tok[k],
                         c[i].tok[k]);
            cr_expect(fabsf(g[i].lp[k] - c[i].lp[k]) <= 2e-3, "request %d token %d: log-probability %g, CPU %g", i, k,
                      g[i].lp[k], c[i].lp[k]);
        }
        cr_assert_eq(g[i].n_prompt, c[i].n_prompt, "request %d: prompt log-probabilities", i);
        for (int k = 0; k < g[i].n_prompt; k++)
            cr_expect(fabsf(g[i].prompt_lp[k] - c[i].prompt_lp[k]) <= 2e-3,
                      "request %d prompt token %d: log-probability %g, CPU %g", i, k, g[i].prompt_lp[k],
                      c[i].prompt_lp[k]);
    }
    if (prompt_logprobs) cr_expect_eq(g[2].n_prompt, len[2], "prompt log-probabilities asked and not given");
    cr_expect_eq(sg.gpu_layers, sd_model_gpu_layers(mg));
    cr_expect(!sg.failed, "%s", sg.failure);
    cr_expect_eq(sg.kv_blocks_used, 0, "every block back after the requests");
    if (want_preempt) cr_expect_gt(sg.preemptions, 0, "the pool never ran out: preemption untested");
    else cr_expect_gt(sg.prefix_hit_tokens, 0, "no prefix reuse: the shared block untested");
    cr_log_info("%s -ngl %d: %llu steps, %llu preemptions, %llu prefix tokens", rel, ngl,
                (unsigned long long)sg.steps, (unsigned long long)sg.preemptions,
                (unsigned long long)sg.prefix_hit_tokens);
    free(c);
    free(g);
    sd_model_free(mc);
    sd_model_free(mg);
}

/* Log-probabilities (generated tokens', and prompt positions' for requests
 * 2 and 4 in the first test: every row of a prompt chunk through the GPU's
 * output head) within test_engine.c's 2e-3. */
Test(gpu_serve, engine_all_layers_equals_cpu) { engine_vs_cpu("models/tiny-f32.gguf", 99, 256, 0, 1); }
Test(gpu_serve, engine_split_equals_cpu_q8_0) { engine_vs_cpu("models/tiny-q8_0.gguf", 1, 256, 0, 0); }
Test(gpu_serve, engine_preemption_equals_cpu) { engine_vs_cpu("models/tiny-f32.gguf", 99, 64, 1, 0); }

/* The paged attention's sliding windows (a tiny gemma3: window 8, which the
 * prompts and decode slide past; the CPU engine keeps those layers in its
 * window pool, the GPU reads the full tables) and sinks (gpt-oss's tiny MoE
 * file, YaRN too), with every layer on the GPU. */
Test(gpu_serve, engine_gemma3_windows_equals_cpu)
{
    need_device();
    char dir[64], path[128], cmd[512];
    cr_assert_eq(tmp_dir_make(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/g3.gguf", dir);
    snprintf(cmd, sizeof cmd, "%s synth --preset tiny --arch gemma3 --layers 6 --type F32 -o %s >/dev/null 2>&1",
             showdown_bin(), path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    engine_vs_cpu(path, 99, 256, 0, 1);
    tmp_dir_remove(dir);
}
Test(gpu_serve, engine_gptoss_sinks_equals_cpu) { engine_vs_cpu("models/moe-gptoss-f32.gguf", 99, 256, 0, 0); }

/* ---- over HTTP -------------------------------------------------------- */

static const char *tiny_f32(char *buf, size_t n) { return shared_path(buf, n, "models/tiny-f32.gguf"); }

enum { NHTTP = 4 };

/* 4 requests at once to a server started with args: their texts. */
static void four_texts(const char *const *args, char **texts, char **log)
{
    char mp[512];
    server_try_start(tiny_f32(mp, sizeof mp), args, NULL);
    static const char *prompts[NHTTP] = {"Once upon a time", "The dog", "Lily wanted to", "One day, a big"};
    char bodies[NHTTP][256];
    for (int i = 0; i < NHTTP; i++)
        snprintf(bodies[i], sizeof bodies[i], "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0}", prompts[i],
                 8 + 2 * i);
    completions_together(&bodies[0][0], sizeof bodies[0], NHTTP, 180, "length", texts);
    *log = slurp(srv.log);
    cr_assert_eq(server_stop(SIGTERM, 10000, NULL), 0);
}

Test(gpu_serve, http_four_concurrent_equal_cpu_server)
{
    need_device();
    const char *cpu_args[] = {"-np", "4", "-c", "256", NULL};
    const char *gpu_args[] = {"-np", "4", "-c", "256", "-ngl", "99", "--metrics", NULL};
    char *cpu[NHTTP], *gpu[NHTTP], *log_c, *log_g;
    four_texts(cpu_args, cpu, &log_c);
    four_texts(gpu_args, gpu, &log_g);
    for (int i = 0; i < NHTTP; i++) {
        cr_expect(strlen(cpu[i]) > 0, "request %d: empty text", i);
        cr_expect_str_eq(gpu[i], cpu[i], "request %d: GPU '%s', CPU '%s'", i, gpu[i], cpu[i]);
        free(cpu[i]);
        free(gpu[i]);
    }
    /* the ready line says where the layers run */
    cr_expect(log_c && strstr(log_c, "every layer on the CPU"), "%s", log_c);
    cr_expect(log_g && strstr(log_g, "layers 0-1 on the GPU (vulkan)"), "%s", log_g);
    cr_expect(log_g && strstr(log_g, "vulkan: layers 0-1 on "), "%s", log_g);
    free(log_c);
    free(log_g);
}

Test(gpu_serve, metrics_name_the_gpu_layers)
{
    need_device();
    char mp[512];
    const char *args[] = {"-np", "2", "-c", "128", "-ngl", "1", "--metrics", NULL};
    server_try_start(tiny_f32(mp, sizeof mp), args, NULL);
    cr_expect_eq(metric("showdown_gpu_layers"), 1);
    cr_expect_eq(metric("showdown_gpu_failed"), 0);
    reply r;
    http("GET", "/metrics", NULL, &r);
    cr_expect(r.data && strstr(r.data, "showdown_placement_info{placement=\"vulkan: layers 1-1 on ") &&
                  strstr(r.data, ", output on CPU\"} 1"), "%s", r.data);
    free(r.data);
}

/* A device too small at start: the Nth device allocation fails in the
 * weights (1) or in the engine's KV pool (23: tiny-f32's first layer's keys)
 * or its step scratch (36: the last). One error line naming device memory
 * and the server exits before it is ready: never a crash, never a server
 * that says it is ready and cannot run. */
Test(gpu_serve, device_oom_at_start_is_one_error)
{
    need_device();
    char mp[512], env[32];
    const int at[] = {1, 23, 36};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        snprintf(env, sizeof env, "alloc:%d", at[i]);
        setenv("SHOWDOWN_VK_FAIL", env, 1);
        const char *argv[] = {showdown_bin(), "serve", "-m", tiny_f32(mp, sizeof mp), "--port", "0", "-np", "2", "-c",
                              "128", "-t", "1", "-ngl", "99", NULL};
        serve_child c = {0};
        int rc = serve_child_start(&c, argv);
        unsetenv("SHOWDOWN_VK_FAIL");
        char *log = slurp(c.log);
        cr_expect_eq(rc, -1, "%s: the server did not exit: %s", env, log ? log : "");
        int errors = 0;
        for (const char *p = log; p && (p = strstr(p, "error: ")); p++) errors++;
        cr_expect_eq(errors, 1, "%s: %s", env, log ? log : "");
        cr_expect(log && strstr(log, "out of device memory") && !strstr(log, "listening on"), "%s: %s", env,
                  log ? log : "");
        /* past the weights, the placement was printed: the engine's allocation failed */
        cr_expect_eq(log && strstr(log, "vulkan: layers 0-1 on ") != NULL, at[i] > 1, "%s: %s", env, log ? log : "");
        free(log);
        serve_child_kill(&c);
    }
}

/* The third step's submission fails as a lost device: every request in
 * flight gets an error object (plain: a 500; streamed: an error event), the
 * server keeps running and answers 503 from then on, /health included, and
 * stops cleanly. */
Test(gpu_serve, lost_device_gives_error_objects_then_503)
{
    need_device();
    char mp[512];
    setenv("SHOWDOWN_VK_FAIL", "submit:3", 1);
    const char *args[] = {"-np", "4", "-c", "256", "-ngl", "99", "--metrics", NULL};
    server_try_start(tiny_f32(mp, sizeof mp), args, NULL);
    unsetenv("SHOWDOWN_VK_FAIL");
    CURLM *m = curl_multi_init();
    reply rs[NHTTP];
    CURL *cs[NHTTP];
    struct curl_slist *hs[NHTTP];
    char bodies[NHTTP][256];
    for (int i = 0; i < NHTTP; i++) {
        snprintf(bodies[i], sizeof bodies[i], "{\"prompt\":\"Once upon a time %d\",\"max_tokens\":30,\"temperature\":0%s}",
                 i, i % 2 ? ",\"stream\":true" : "");
        memset(&rs[i], 0, sizeof rs[i]);
        cs[i] = easy("POST", "/v1/completions", bodies[i], strlen(bodies[i]), NULL, &rs[i], &hs[i]);
        curl_multi_add_handle(m, cs[i]);
    }
    int running = 1;
    for (double until = sd_time_ms() + 120000; running && sd_time_ms() < until;) {
        curl_multi_perform(m, &running);
        if (running) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    cr_assert_eq(running, 0, "the requests did not end in 120 s");
    int lost = 0;   /* requests in flight at the loss (the others came after it) */
    for (int i = 0; i < NHTTP; i++) {
        curl_easy_getinfo(cs[i], CURLINFO_RESPONSE_CODE, &rs[i].status);
        if (i % 2 && rs[i].status == 200) {
            /* streamed: the chunks so far, then one error event, no [DONE] */
            const char *ev = rs[i].data ? strstr(rs[i].data, "data: {\"error\":") : NULL;
            cr_expect(ev && strstr(ev, "device lost") && !strstr(ev, "[DONE]"), "request %d: %s", i, rs[i].data);
            lost++;
        } else if (rs[i].status == 500) {
            assert_error(&rs[i], 500, "device lost");
            lost++;
        } else {
            assert_error(&rs[i], 503, "the GPU failed");   /* arrived after the loss */
        }
        free(rs[i].data);
        curl_multi_remove_handle(m, cs[i]);
        curl_easy_cleanup(cs[i]);
        curl_slist_free_all(hs[i]);
    }
    curl_multi_cleanup(m);
    cr_expect_gt(lost, 0, "no request was in flight at the loss");
    cr_log_info("%d of %d requests in flight at the loss", lost, NHTTP);
    reply r;
    http("POST", "/v1/completions", "{\"prompt\":\"hello\",\"max_tokens\":4}", &r);
    assert_error(&r, 503, "the GPU failed");
    free(r.data);
    http("GET", "/health", NULL, &r);
    assert_error(&r, 503, "device lost");
    free(r.data);
    cr_expect_eq(metric("showdown_gpu_failed"), 1);
    cr_expect_eq(server_stop(SIGTERM, 10000, NULL), 0, "the server did not stop cleanly");
}
