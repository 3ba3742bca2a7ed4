/* B sequences decoding together (bench/parallel.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/parallel.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/errf.h"

#define PAR_UBATCH 64   /* prefill tokens per pass, as a session's */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct {
    sd_fwd f;
    sd_kv_cache *kv;
    int32_t *tok, *last;
    int *pos, *seq, *out;
    float *logits;
} par_state;

static void state_free(par_state *s)
{
    if (s->f.m) sd_fwd_free(&s->f);
    sd_kv_cache_free(s->kv);
    free(s->tok); free(s->last); free(s->pos); free(s->seq); free(s->out); free(s->logits);
}

/* Prefills every sequence with its own prompt (PAR_UBATCH tokens a pass,
 * sequences after one another) and samples each one's first token. -1 if
 * the KV cache cannot hold a sliding layer's window (not with passes of
 * PAR_UBATCH: model/kv_cache.h). */
static int prefill(par_state *s, const sd_par_row *r, uint64_t *rng)
{
    int nv = s->f.m->hp.n_vocab;
    for (int q = 0; q < r->n_parallel; q++)
        for (int p0 = 0; p0 < r->n_prompt; p0 += PAR_UBATCH) {
            int n = r->n_prompt - p0 < PAR_UBATCH ? r->n_prompt - p0 : PAR_UBATCH;
            for (int i = 0; i < n; i++) {
                s->tok[i] = (int32_t)(rng_next(rng) % (uint64_t)nv);
                s->pos[i] = p0 + i;
                s->seq[i] = q;
            }
            s->out[0] = n - 1;
            if (sd_kv_seq_window(s->kv, q, p0, p0 + n)) return -1;
            sd_batch b = {n, s->tok, s->pos, s->seq, s->out, 1};
            sd_forward_batch(&s->f, &b, s->logits);
            if (p0 + n == r->n_prompt) s->last[q] = argmax(s->logits, nv);
        }
    return 0;
}

/* n_gen steps of one token per sequence; returns the decode time in ms (-1
 * as prefill's). */
static double decode(par_state *s, const sd_par_row *r)
{
    int B = r->n_parallel, nv = s->f.m->hp.n_vocab;
    double t0 = sd_time_ms();
    for (int g = 0; g < r->n_gen; g++) {
        for (int q = 0; q < B; q++) {
            s->tok[q] = s->last[q];
            s->pos[q] = r->n_prompt + g;
            s->seq[q] = q;
            s->out[q] = q;
            if (sd_kv_seq_window(s->kv, q, r->n_prompt + g, r->n_prompt + g + 1)) return -1;
        }
        sd_batch b = {B, s->tok, s->pos, s->seq, s->out, B};
        sd_forward_batch(&s->f, &b, s->logits);
        for (int q = 0; q < B; q++) s->last[q] = argmax(s->logits + (size_t)q * nv, nv);
    }
    return sd_time_ms() - t0;
}

static double mean_sd(const double *x, int n, double *sd)
{
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    *sd = n > 1 ? sqrt(v / (n - 1)) : 0;
    return m;
}

int sd_bench_parallel(sd_model *m, sd_par_row *r, int warmup, uint64_t seed, char *err)
{
    int B = r->n_parallel;
    if (B < 1 || r->n_prompt < 1 || r->n_gen < 1 || r->n_reps < 1 || r->n_reps > SD_PAR_MAX_REPS || r->n_threads < 1)
        return sd_errf(err, "parallel bench: %d sequences, %d prompt and %d generated tokens, %d repetitions: "
                             "each must be at least 1 (repetitions at most %d)",
                        B, r->n_prompt, r->n_gen, r->n_reps, SD_PAR_MAX_REPS);
    int n_pos = r->n_prompt + r->n_gen, max_tok = B > PAR_UBATCH ? B : PAR_UBATCH;
    par_state s = {0};
    int per_seq = (n_pos + SD_KV_BLOCK - 1) / SD_KV_BLOCK * SD_KV_BLOCK;
    if (sd_kv_cache_new(m, r->kv, per_seq * B, B, PAR_UBATCH, &s.kv, err)) return -1;
    s.tok = malloc((size_t)max_tok * sizeof *s.tok);
    s.last = malloc((size_t)B * sizeof *s.last);
    s.pos = malloc((size_t)max_tok * sizeof *s.pos);
    s.seq = malloc((size_t)max_tok * sizeof *s.seq);
    s.out = malloc((size_t)max_tok * sizeof *s.out);
    s.logits = malloc((size_t)B * m->hp.n_vocab * sizeof *s.logits);
    if (!s.tok || !s.last || !s.pos || !s.seq || !s.out || !s.logits) {
        state_free(&s);
        return sd_errf(err, "out of memory for %d sequences", B);
    }
    if (sd_fwd_init(&s.f, m, s.kv, max_tok, r->n_threads, err)) {
        state_free(&s);
        return -1;
    }
    uint64_t rng = seed;
    double step[SD_PAR_MAX_REPS], tps[SD_PAR_MAX_REPS], pps[SD_PAR_MAX_REPS];
    for (int rep = -warmup; rep < r->n_reps; rep++) {
        for (int q = 0; q < B; q++) {
            sd_kv_seq_release(s.kv, q);
            if (sd_kv_seq_grow(s.kv, q, n_pos)) {
                state_free(&s);
                return sd_errf(err, "parallel bench: the KV cache has no room for sequence %d", q);
            }
        }
        double t0 = sd_time_ms();
        int held = prefill(&s, r, &rng);
        double pp = sd_time_ms() - t0, tg = held ? -1 : decode(&s, r);
        if (tg < 0) {
            state_free(&s);
            return sd_errf(err, "parallel bench: the KV cache cannot hold a sliding layer's window");
        }
        if (rep < 0) continue;
        r->pp_ms[rep] = pp;
        r->tg_ms[rep] = tg;
        step[rep] = tg / r->n_gen;
        tps[rep] = 1e3 * B * r->n_gen / tg;
        pps[rep] = 1e3 * B * r->n_prompt / pp;
    }
    double sd;
    r->avg_ts = mean_sd(tps, r->n_reps, &r->stddev_ts);
    r->avg_step_ms = mean_sd(step, r->n_reps, &r->stddev_step_ms);
    r->avg_pp_ts = mean_sd(pps, r->n_reps, &sd);
    state_free(&s);
    return 0;
}
