/* What the serving-engine suites (test_engine.c, test_kv_window.c) share: a
 * shared model loaded, deterministic prompts, greedy requests, an engine
 * with F32 KV on two threads, and sd_session's greedy tokens, the truth a
 * request must match. */
#ifndef SD_TESTS_ENGINE_FIXTURE_H
#define SD_TESTS_ENGINE_FIXTURE_H

#include <criterion/criterion.h>
#include <string.h>

#include "showdown.h"
#include "serve/engine.h"
#include "common.h"

/* A model under ../shared, failing the test if it does not load. */
static inline sd_model *load_shared(const char *rel)
{
    char p[512], err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(p, sizeof p, rel), &m, err), 0, "%s", err);
    return m;
}

/* Deterministic test prompts: varied ids inside the vocabulary. */
static inline void make_prompt(int32_t *p, int n, int seed, int nv)
{
    for (int i = 0; i < n; i++) p[i] = (int32_t)(1 + (seed * 131 + i * 37 + i * i * 7) % (nv - 1));
}

/* A greedy request for max_tokens tokens, end-of-text ignored. */
static inline sd_gen_request greedy(const int32_t *prompt, int n, int max_tokens)
{
    sd_gen_request r;
    memset(&r, 0, sizeof r);
    r.prompt = prompt;
    r.n_prompt = n;
    r.max_tokens = max_tokens;
    r.sampling = sd_sampler_default_params();
    r.sampling.temp = 0;
    r.ignore_eos = 1;
    return r;
}

/* An engine of slots sequences of n_ctx positions with F32 KV on two
 * threads, the rest of *p as given. */
static inline sd_engine *start_with(sd_model *m, sd_engine_params *p, int slots, int n_ctx)
{
    p->n_slots = slots;
    p->n_ctx = n_ctx;
    p->n_threads = 2;
    p->kv_type = SD_KV_F32;
    sd_engine *e;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_engine_new(m, p, &e, err), 0, "%s", err);
    return e;
}

/* The same with n_batch tokens a step (0: the default). */
static inline sd_engine *start_batched(sd_model *m, int slots, int n_ctx, int n_batch)
{
    sd_engine_params p = sd_engine_default_params();
    p.n_batch = n_batch;
    return start_with(m, &p, slots, n_ctx);
}

/* Greedy decoding with an sd_session of n_ctx positions: n_gen tokens. */
static inline void session_greedy(sd_model *m, int n_ctx, const int32_t *prompt, int n, int n_gen, int32_t *out)
{
    char err[SD_ERR_LEN];
    sd_session_params sp = {n_ctx, 2, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    cr_assert_eq(sd_session_eval(s, prompt, n, NULL, err), 0, "%s", err);
    sd_sampler_params g = sd_sampler_default_params();
    g.temp = 0;
    sd_sampler *smp = sd_sampler_new(&g, sd_model_hparams(m)->n_vocab);
    for (int i = 0; i < n_gen; i++) {
        out[i] = sd_sample(smp, sd_session_logits(s));
        if (i + 1 < n_gen) cr_assert_eq(sd_session_eval(s, &out[i], 1, NULL, err), 0, "%s", err);
    }
    sd_sampler_free(smp);
    sd_session_free(s);
}

#endif
