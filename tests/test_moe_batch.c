/* The router does not depend on the batch (model/ffn_moe.c): one prefill of
 * a prompt chooses, for every token and layer, exactly the experts that
 * feeding the prompt one token at a time chooses, in the same order, and
 * the logits agree (to the last bit where every product is batch-invariant:
 * packed weights, the F32 router, attention by blocks). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "showdown.h"
#include "model/moe.h"
#include "model/session.h"
#include "common.h"

#define N 12

static void check(const char *rel)
{
    char p[512], err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(p, sizeof p, rel), &m, err), 0, "%s", err);
    const sd_hparams *hp = sd_model_hparams(m);
    int nv = hp->n_vocab, per = hp->n_layer * hp->n_expert_used;
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)((i * 7919 + 13) % nv);
    float *batch = malloc((size_t)N * nv * sizeof *batch), *one = malloc((size_t)N * nv * sizeof *one);
    int32_t *ids_b = malloc((size_t)N * per * sizeof *ids_b), *ids_1 = malloc((size_t)N * per * sizeof *ids_1);
    sd_session_params sp = {64, 2, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    cr_assert_eq(sd_session_eval(s, tok, N, batch, err), 0, "%s", err);
    int nt;
    const int32_t *r = sd_moe_ids(&s->f, &nt);
    cr_assert_eq(nt, N);
    memcpy(ids_b, r, (size_t)N * per * sizeof *ids_b);
    sd_session_free(s);
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(sd_session_eval(s, &tok[i], 1, one + (size_t)i * nv, err), 0, "%s", err);
        r = sd_moe_ids(&s->f, &nt);
        cr_assert_eq(nt, 1);
        memcpy(ids_1 + (size_t)i * per, r, (size_t)per * sizeof *ids_1);
    }
    sd_session_free(s);
    for (int i = 0; i < N * per; i++)
        cr_expect_eq(ids_b[i], ids_1[i], "%s: token %d layer %d slot %d: expert %d in the batch, %d alone", rel,
                     i / per, i % per / hp->n_expert_used, i % hp->n_expert_used, ids_b[i], ids_1[i]);
    double worst = 0;
    for (size_t i = 0; i < (size_t)N * nv; i++) worst = fmax(worst, fabs(batch[i] - one[i]) / (1 + fabs(one[i])));
    cr_log_info("%s: worst difference batch vs one at a time %.3g", rel, worst);
    cr_expect_leq(worst, 1e-4, "%s: logits differ by %.3g", rel, worst);
    free(batch); free(one); free(ids_b); free(ids_1);
    sd_model_free(m);
}

Test(moe_batch, qwen3moe_q4_0) { check("models/moe-qwen3moe-q4_0.gguf"); }
Test(moe_batch, gptoss_q8_0) { check("models/moe-gptoss-q8_0.gguf"); }
Test(moe_batch, mixtral_f32) { check("models/moe-mixtral-f32.gguf"); }

/* A mixture of experts on the CPU runs its prefill in passes longer than
 * SD_UBATCH (session.h): a 200-token prompt in one pass gives the logits
 * and the experts that passes of at most 64 tokens give (bit for bit here:
 * packed weights, the F32 router, attention by fixed blocks). */
static void check_long_pass(const char *rel)
{
    enum { LONG = 200 };
    char p[512], err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(p, sizeof p, rel), &m, err), 0, "%s", err);
    const sd_hparams *hp = sd_model_hparams(m);
    int nv = hp->n_vocab, per = hp->n_layer * hp->n_expert_used;
    int32_t tok[LONG];
    for (int i = 0; i < LONG; i++) tok[i] = (int32_t)((i * 7919 + 13) % nv);
    float *one = malloc((size_t)LONG * nv * sizeof *one), *parts = malloc((size_t)LONG * nv * sizeof *parts);
    sd_session_params sp = {256, 2, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    cr_assert_geq(s->ubatch, LONG, "%s: passes of %d tokens", rel, s->ubatch);
    cr_assert_eq(sd_session_eval(s, tok, LONG, one, err), 0, "%s", err);
    int nt;
    const int32_t *r = sd_moe_ids(&s->f, &nt);
    cr_assert_eq(nt, LONG);
    int32_t *ids = malloc((size_t)LONG * per * sizeof *ids);
    memcpy(ids, r, (size_t)LONG * per * sizeof *ids);
    sd_session_reset(s);
    for (int i = 0; i < LONG; i += SD_UBATCH) {
        int c = LONG - i < SD_UBATCH ? LONG - i : SD_UBATCH;
        cr_assert_eq(sd_session_eval(s, tok + i, c, parts + (size_t)i * nv, err), 0, "%s", err);
        r = sd_moe_ids(&s->f, &nt);
        cr_assert_eq(nt, c);
        for (int q = 0; q < c * per; q++)
            cr_expect_eq(ids[(size_t)i * per + q], r[q], "%s: token %d: another expert in a short pass", rel,
                         i + q / per);
    }
    for (size_t i = 0; i < (size_t)LONG * nv; i++)
        cr_expect_eq(one[i], parts[i], "%s: token %zu logit %zu: %.9g in one pass, %.9g in short ones", rel, i / nv,
                     i % nv, one[i], parts[i]);
    sd_session_free(s);
    free(one); free(parts); free(ids);
    sd_model_free(m);
}

Test(moe_batch, long_pass_qwen3moe_q4_0) { check_long_pass("models/moe-qwen3moe-q4_0.gguf"); }
Test(moe_batch, long_pass_gptoss_q8_0) { check_long_pass("models/moe-gptoss-q8_0.gguf"); }
