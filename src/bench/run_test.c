/* One test: fresh session, warm-up runs, timed repetitions, statistics.
 * Per repetition the session is reset, the depth context is filled (not
 * timed), then the timed region covers the prompt pass and the decode steps;
 * the energy probe brackets exactly that region. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/runner.h"
#include "bench/stats.h"

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Random token ids from a seed (never 0 state: xorshift would stay at 0). */
static void fill_tokens(int32_t *t, int n, int n_vocab, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    if (!s) s = 1;
    for (int i = 0; i < n; i++) t[i] = (int32_t)(rng_next(&s) % (uint64_t)n_vocab);
}

/* Greedy pick: the sampling step TTFT includes. */
static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct { double run_ms, ttft_ms, joules; int have_j; } rep_result;

/* One repetition; returns 0 or -1 with err. */
static int one_rep(sd_session *s, const int32_t *depth_tok, const int32_t *prompt_tok, const int32_t *gen_tok,
                   const sd_bench_row *row, int n_vocab, sd_energy *probe, rep_result *out, char *err)
{
    sd_session_reset(s);
    if (row->n_depth > 0 && sd_session_eval(s, depth_tok, row->n_depth, NULL, err) != 0) return -1;
    volatile int32_t sink = 0;
    char eerr[SD_ERR_LEN];
    out->have_j = probe && sd_energy_begin(probe, eerr) == 0;
    double t0 = sd_time_ms(), t_first = -1;
    if (row->n_prompt > 0 && sd_session_eval(s, prompt_tok, row->n_prompt, NULL, err) != 0) goto fail;
    for (int i = 0; i < row->n_gen; i++) {
        if (sd_session_eval(s, &gen_tok[i], 1, NULL, err) != 0) goto fail;
        sink = argmax(sd_session_logits(s), n_vocab);
        if (i == 0) t_first = sd_time_ms();
    }
    double t1 = sd_time_ms();
    if (out->have_j && sd_energy_end(probe, &out->joules, eerr) != 0) out->have_j = 0;
    out->run_ms = t1 - t0;
    if (t_first < 0) {
        /* prompt only: TTFT still needs the first generated token; time it
         * after the timed region so pp tokens/s is the prompt pass alone. */
        double ta = sd_time_ms();
        if (sd_session_eval(s, &gen_tok[0], 1, NULL, err) != 0) return -1;
        sink = argmax(sd_session_logits(s), n_vocab);
        t_first = t1 + (sd_time_ms() - ta);
    }
    out->ttft_ms = t_first - t0;
    (void)sink;
    return 0;
fail:
    if (out->have_j) { double j; sd_energy_end(probe, &j, eerr); }
    return -1;
}

int sd_bench_run_test(const sd_bench_config *cfg, bench_model *bm, sd_kv_type kv, sd_energy *probe,
                      sd_bench_row *row, rep_hook hook, void *hook_ud)
{
    const sd_hparams *hp = sd_model_hparams(bm->m);
    int n_vocab = hp->n_vocab;
    sd_session_params sp = sd_session_default_params();
    sp.n_ctx = row->n_depth + row->n_prompt + row->n_gen + 1;
    sp.n_threads = row->n_threads;
    sp.kv_type = kv;
    sd_session *s = NULL;
    if (sd_session_new(bm->m, &sp, &s, row->error) != 0) return -1;

    int n_tok = row->n_depth + row->n_prompt + row->n_gen + 1;
    int32_t *tok = malloc((size_t)n_tok * sizeof *tok);
    int reps = cfg->reps, total = cfg->warmup + cfg->reps;
    rep_result *res = calloc((size_t)total, sizeof *res);
    double *tmp = malloc((size_t)(reps > 0 ? reps : 1) * sizeof *tmp);
    int rc = -1;
    if (!tok || !res || !tmp) { snprintf(row->error, SD_ERR_LEN, "out of memory"); goto done; }
    /* Same ids for every repetition of a test: a repetition is a repeat. */
    fill_tokens(tok, n_tok, n_vocab, cfg->seed ^ ((uint64_t)row->n_prompt << 32) ^ (uint64_t)row->n_gen);
    const int32_t *depth_tok = tok, *prompt_tok = tok + row->n_depth, *gen_tok = prompt_tok + row->n_prompt;

    for (int i = 0; i < total; i++) {
        int warm = i < cfg->warmup;
        if (hook) hook(hook_ud, warm ? i + 1 : i - cfg->warmup + 1, warm);
        if (one_rep(s, depth_tok, prompt_tok, gen_tok, row, n_vocab, warm ? NULL : probe, &res[i], row->error) != 0)
            goto done;
    }
    rep_result *timed = res + cfg->warmup;
    int tokens = row->n_prompt + row->n_gen;
    row->n_reps = reps;
    for (int i = 0; i < reps; i++) {
        row->samples_ns[i] = timed[i].run_ms * 1e6;
        row->samples_ts[i] = tokens / (timed[i].run_ms / 1e3);
    }
    row->avg_ns = sd_mean(row->samples_ns, reps);
    row->stddev_ns = sd_stddev(row->samples_ns, reps);
    row->avg_ts = sd_mean(row->samples_ts, reps);
    row->stddev_ts = sd_stddev(row->samples_ts, reps);
    for (int i = 0; i < reps; i++) tmp[i] = timed[i].ttft_ms;
    row->ttft_ms = sd_mean(tmp, reps);
    row->stddev_ttft_ms = sd_stddev(tmp, reps);

    int all_j = probe && sd_energy_available(probe) && reps > 0;
    for (int i = 0; i < reps; i++) all_j &= timed[i].have_j;
    if (all_j) {
        for (int i = 0; i < reps; i++) tmp[i] = timed[i].joules;
        row->energy_j = sd_mean(tmp, reps);
        row->stddev_energy_j = sd_stddev(tmp, reps);
        row->tokens_per_joule = row->energy_j > 0 ? tokens / row->energy_j : NAN;
    } else if (probe && sd_energy_available(probe)) {
        snprintf(row->energy_source, sizeof row->energy_source, "unavailable: a reading of %s failed",
                 sd_energy_source(probe));
    }
    rc = 0;
done:
    free(tok);
    free(res);
    free(tmp);
    sd_session_free(s);
    return rc;
}

int sd_bench_probe(bench_model *bm, int n_threads, bench_probe *out, char *err)
{
    enum { PF = 16 };
    sd_session_params sp = sd_session_default_params();
    sp.n_ctx = 2 * PF + 4;
    sp.n_threads = n_threads;
    sd_session *s = NULL;
    if (sd_session_new(bm->m, &sp, &s, err) != 0) return -1;
    int32_t tok[PF];
    fill_tokens(tok, PF, sd_model_hparams(bm->m)->n_vocab, 1);
    int rc = -1;
    if (sd_session_eval(s, tok, 1, NULL, err) != 0) goto done;   /* first touch of the weights */
    double t0 = sd_time_ms();
    if (sd_session_eval(s, tok, 1, NULL, err) != 0) goto done;
    double t1 = sd_time_ms();
    if (sd_session_eval(s, tok, PF, NULL, err) != 0) goto done;
    double t2 = sd_time_ms();
    out->dec_s = (t1 - t0) / 1e3;
    out->pf_s = (t2 - t1) / 1e3 / PF;
    out->size_bytes = (double)sd_model_weight_bytes(bm->m);
    rc = 0;
done:
    sd_session_free(s);
    return rc;
}
