/* Perplexity of a model over a text, and optionally its divergence from a
 * base model evaluated on exactly the same windows.
 *
 * Windows (as llama.cpp's perplexity tool): the whole text is tokenized once
 * with BOS and cut into floor(n_tokens / n_ctx) non-overlapping windows of
 * n_ctx tokens; the tail that does not fill a window is not used. Each window
 * is evaluated from an empty cache with its first token replaced by BOS. Only
 * the second half is scored: the predictions made at positions n_ctx/2 ..
 * n_ctx-2, i.e. of tokens n_ctx/2+1 .. n_ctx-1, so every scored token sees at
 * least n_ctx/2 tokens of context (n_ctx - n_ctx/2 - 1 per window). A text of
 * fewer than n_ctx tokens is an error naming the largest -c that would work;
 * llama.cpp asks for 2 windows, we accept one (the uncertainty then comes from
 * the tokens of that one window and says how few there are). */
#ifndef SD_PPL_H
#define SD_PPL_H

#include <stddef.h>
#include <stdint.h>

#include "showdown.h"
#include "eval/kld.h"

#define SD_PPL_MIN_CTX 4

typedef struct {
    int n_ctx;          /* window length in tokens (>= SD_PPL_MIN_CTX) */
    int n_threads;      /* 0: all CPUs */
    sd_kv_type kv_type;
    /* Called after each window with the running perplexity of the model. */
    void (*progress)(void *ud, int done, int total, double ppl);
    void *progress_ud;
    int max_windows;    /* 0: every window of the text; else the first ones only */
} sd_ppl_params;

sd_ppl_params sd_ppl_default_params(void);   /* n_ctx 512, F16 KV cache */

typedef struct {
    int n_ctx, n_windows, n_tokens;   /* n_tokens: whole text, BOS included */
    int64_t n_scored;                 /* tokens scored over all windows */
    double seconds;                   /* evaluation wall time */
    /* The model: mean negative log-likelihood (nats/token) ± its standard
     * error; ppl = exp(nll), ppl_err = ppl * nll_se (first order). */
    double nll, nll_se, ppl, ppl_err;
    /* Filled only with a base model. */
    int has_base;
    double base_nll, base_nll_se, base_ppl, base_ppl_err;
    /* ln(PPL/PPL_base) = mean of the per-token NLL differences, ± its
     * standard error (the pairing removes the text's own variance);
     * ratio = exp(ln_ratio), ratio_err = ratio * ln_ratio_se. */
    double ln_ratio, ln_ratio_se, ratio, ratio_err;
    sd_dist kld;                      /* KL(base || model) per token, nats */
    double top1, top1_se;             /* fraction of tokens with the same argmax */
    /* dp = p_model(correct token) - p_base(correct token). */
    double dp_mean, dp_se, dp_rms, dp_rms_se;
} sd_ppl_result;

/* base may be NULL (perplexity only). The two models must share the
 * vocabulary: same size and the same text for every token. */
int sd_ppl_run(sd_model *m, sd_model *base, const char *text, size_t len, const sd_ppl_params *p,
               sd_ppl_result *out, char *err);

/* The same for n_models models at once against one base, into outs[n_models]:
 * each window of the base is evaluated once, not once per model (the
 * sweep's saving). seconds is the whole run's. Progress reports models[0]. */
int sd_ppl_run_many(sd_model **models, int n_models, sd_model *base, const char *text, size_t len,
                    const sd_ppl_params *p, sd_ppl_result *outs, char *err);

/* 0 when a and b have the same vocabulary, -1 with the first difference. */
int sd_vocab_check(sd_model *a, sd_model *b, char *err);

#endif
