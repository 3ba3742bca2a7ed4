/* Perplexity and KL divergence over windows of a text (see ppl.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/ppl.h"
#include "runtime/errf.h"

sd_ppl_params sd_ppl_default_params(void)
{
    sd_ppl_params p = {512, 0, SD_KV_F16, NULL, NULL, 0};
    return p;
}

int sd_vocab_check(sd_model *a, sd_model *b, char *err)
{
    const sd_tokenizer *ta = sd_model_tokenizer(a), *tb = sd_model_tokenizer(b);
    int na = sd_tokenizer_n_vocab(ta), nb = sd_tokenizer_n_vocab(tb);
    if (na != nb || sd_model_hparams(a)->n_vocab != sd_model_hparams(b)->n_vocab)
        return sd_errf(err, "%s and %s do not share a vocabulary (%d vs %d tokens)", sd_model_path(b),
                        sd_model_path(a), nb, na);
    if (sd_token_bos(ta) != sd_token_bos(tb))
        return sd_errf(err, "%s and %s do not share a vocabulary (BOS is token %d vs %d)", sd_model_path(b),
                        sd_model_path(a), sd_token_bos(tb), sd_token_bos(ta));
    for (int i = 0; i < na; i++) {
        size_t la, lb;
        const char *pa = sd_token_piece(ta, i, &la), *pb = sd_token_piece(tb, i, &lb);
        if (la != lb || memcmp(pa, pb, la))
            return sd_errf(err, "%s and %s do not share a vocabulary (token %d differs)", sd_model_path(b),
                            sd_model_path(a), i);
    }
    return 0;
}

/* What one model of a run keeps: its session and its per-token arrays. */
typedef struct {
    sd_session *s;
    double *nll, *nll_b, *kld, *dp;   /* per scored token */
    int64_t n_same;
    double sum_nll;
} ppl_model;

/* Everything one run allocates, freed in one place. */
typedef struct {
    ppl_model *m;
    int n_m;
    sd_session *sb;
    int32_t *tokens, *win;
    float *logits, *logits_b;
    double *lp, *lp_b;
} ppl_bufs;

static void bufs_free(ppl_bufs *b)
{
    for (int i = 0; b->m && i < b->n_m; i++) {
        ppl_model *pm = &b->m[i];
        sd_session_free(pm->s);
        free(pm->nll); free(pm->nll_b); free(pm->kld); free(pm->dp);
    }
    free(b->m);
    sd_session_free(b->sb);
    free(b->tokens); free(b->win);
    free(b->logits); free(b->logits_b);
    free(b->lp); free(b->lp_b);
}

/* Statistics over the per-token arrays once every window is scored. */
static void summarize(ppl_model *b, int64_t n, int64_t n_same, int has_base, sd_ppl_result *r)
{
    r->n_scored = n;
    sd_mean_se(b->nll, n, &r->nll, &r->nll_se);
    r->ppl = exp(r->nll);
    r->ppl_err = r->ppl * r->nll_se;
    if (!has_base) return;

    sd_mean_se(b->nll_b, n, &r->base_nll, &r->base_nll_se);
    r->base_ppl = exp(r->base_nll);
    r->base_ppl_err = r->base_ppl * r->base_nll_se;
    /* The NLL arrays are done with: reuse them for the paired differences
     * and for dp^2. */
    for (int64_t i = 0; i < n; i++) b->nll_b[i] = b->nll[i] - b->nll_b[i];
    sd_mean_se(b->nll_b, n, &r->ln_ratio, &r->ln_ratio_se);
    r->ratio = exp(r->ln_ratio);
    r->ratio_err = r->ratio * r->ln_ratio_se;

    sd_mean_se(b->dp, n, &r->dp_mean, &r->dp_se);
    for (int64_t i = 0; i < n; i++) b->nll[i] = b->dp[i] * b->dp[i];
    double ms, ms_se;
    sd_mean_se(b->nll, n, &ms, &ms_se);
    r->dp_rms = sqrt(ms);
    r->dp_rms_se = r->dp_rms > 0 ? 0.5 / r->dp_rms * ms_se : 0;   /* d sqrt(x) = dx / (2 sqrt x) */

    r->top1 = (double)n_same / (double)n;
    r->top1_se = n > 1 ? sqrt(r->top1 * (1 - r->top1) / (double)(n - 1)) : 0;
    sd_dist_of(b->kld, n, &r->kld);
}

static int new_session(sd_model *m, const sd_ppl_params *p, sd_session **s, char *err)
{
    sd_session_params sp = sd_session_default_params();
    sp.n_ctx = p->n_ctx;
    sp.n_threads = p->n_threads;
    sp.kv_type = p->kv_type;
    return sd_session_new(m, &sp, s, err);
}

int sd_ppl_run(sd_model *m, sd_model *base, const char *text, size_t len, const sd_ppl_params *p,
               sd_ppl_result *out, char *err)
{
    return sd_ppl_run_many(&m, 1, base, text, len, p, out, err);
}

/* Per-token arrays of one model (the base ones only with a base). */
static int model_bufs(ppl_model *pm, int64_t n_scored, int has_base)
{
    size_t bytes = (size_t)n_scored * sizeof(double);
    pm->nll = malloc(bytes);
    if (!pm->nll) return -1;
    if (!has_base) return 0;
    pm->nll_b = malloc(bytes);
    pm->kld = malloc(bytes);
    pm->dp = malloc(bytes);
    return pm->nll_b && pm->kld && pm->dp ? 0 : -1;
}

int sd_ppl_run_many(sd_model **models, int n_models, sd_model *base, const char *text, size_t len,
                    const sd_ppl_params *p, sd_ppl_result *outs, char *err)
{
    sd_ppl_params d = sd_ppl_default_params();
    if (!p) p = &d;
    if (n_models < 1) return sd_errf(err, "no model to measure");
    memset(outs, 0, (size_t)n_models * sizeof *outs);
    if (p->n_ctx < SD_PPL_MIN_CTX)
        return sd_errf(err, "context of %d tokens is too short for perplexity (at least %d)", p->n_ctx,
                        SD_PPL_MIN_CTX);
    for (int i = 0; i < n_models; i++) {
        if (base && sd_vocab_check(models[i], base, err)) return -1;
        if (i && sd_vocab_check(models[i], models[0], err)) return -1;
    }

    ppl_bufs b = {0};
    int n_tok = 0, rc = -1;
    sd_tokenizer *tok = sd_model_tokenizer(models[0]);
    if (sd_tokenize(tok, text, len, 1, &b.tokens, &n_tok, err)) goto done;
    const int n_ctx = p->n_ctx, nv = sd_model_hparams(models[0])->n_vocab;
    if (n_tok < n_ctx) {
        sd_errf(err, "the text is %d tokens, fewer than one window of %d (-c); use -c %d or less", n_tok,
                 n_ctx, n_tok);
        goto done;
    }
    int n_win = n_tok / n_ctx;
    if (p->max_windows > 0 && n_win > p->max_windows) n_win = p->max_windows;
    const int first = n_ctx / 2, per_win = n_ctx - first - 1;
    const int64_t n_scored = (int64_t)n_win * per_win;

    b.m = calloc((size_t)n_models, sizeof *b.m);
    if (!b.m) { sd_errf(err, "out of memory"); goto done; }
    b.n_m = n_models;
    for (int i = 0; i < n_models; i++)
        if (new_session(models[i], p, &b.m[i].s, err)) goto done;
    if (base && new_session(base, p, &b.sb, err)) goto done;
    size_t row = (size_t)n_ctx * (size_t)nv;
    b.win = malloc((size_t)n_ctx * sizeof *b.win);
    b.logits = malloc(row * sizeof *b.logits);
    b.lp = malloc((size_t)nv * sizeof *b.lp);
    int oom = !b.win || !b.logits || !b.lp;
    if (base) {
        b.logits_b = malloc(row * sizeof *b.logits_b);
        b.lp_b = malloc((size_t)nv * sizeof *b.lp_b);
        oom |= !b.logits_b || !b.lp_b;
    }
    for (int i = 0; i < n_models && !oom; i++) oom |= model_bufs(&b.m[i], n_scored, base != NULL) != 0;
    if (oom) { sd_errf(err, "out of memory for %d windows of %d tokens", n_win, n_ctx); goto done; }

    const int bos = sd_token_bos(tok);
    double t0 = sd_time_ms();
    for (int w = 0; w < n_win; w++) {
        memcpy(b.win, b.tokens + (size_t)w * n_ctx, (size_t)n_ctx * sizeof *b.win);
        if (bos >= 0) b.win[0] = bos;   /* every window starts like a fresh text */
        if (base) {
            /* the base runs once per window, whatever the number of models */
            sd_session_reset(b.sb);
            if (sd_session_eval(b.sb, b.win, n_ctx, b.logits_b, err)) goto done;
        }
        for (int mi = 0; mi < n_models; mi++) {
            ppl_model *pm = &b.m[mi];
            sd_session_reset(pm->s);
            if (sd_session_eval(pm->s, b.win, n_ctx, b.logits, err)) goto done;
            int64_t k = (int64_t)w * per_win;
            for (int i = first; i < n_ctx - 1; i++, k++) {
                int target = b.win[i + 1];
                int am = sd_log_softmax(b.logits + (size_t)i * nv, nv, b.lp);
                pm->nll[k] = -b.lp[target];
                pm->sum_nll += pm->nll[k];
                if (!base) continue;
                int ab = sd_log_softmax(b.logits_b + (size_t)i * nv, nv, b.lp_b);
                pm->nll_b[k] = -b.lp_b[target];
                pm->kld[k] = sd_kld_row(b.lp_b, b.lp, nv);
                pm->dp[k] = exp(b.lp[target]) - exp(b.lp_b[target]);
                pm->n_same += am == ab;
            }
        }
        if (p->progress)
            p->progress(p->progress_ud, w + 1, n_win, exp(b.m[0].sum_nll / (double)((int64_t)(w + 1) * per_win)));
    }
    double secs = (sd_time_ms() - t0) / 1000.0;
    for (int mi = 0; mi < n_models; mi++) {
        sd_ppl_result *out = &outs[mi];
        out->n_ctx = n_ctx;
        out->n_windows = n_win;
        out->n_tokens = n_tok;
        out->has_base = base != NULL;
        out->seconds = secs;
        summarize(&b.m[mi], n_scored, b.m[mi].n_same, base != NULL, out);
    }
    rc = 0;
done:
    bufs_free(&b);
    return rc;
}
