/* End-to-end: our logits against the independent engine's on every shared
 * model whose formats we compute, fed the reference's own token sequence. */
#include <criterion/criterion.h>
#include <math.h>

#include "showdown.h"
#include "eval/logits_file.h"
#include "common.h"

/* Evaluates prompt ++ greedy tokens one by one (as the reference did) and
 * returns the worst relative L2 error over the rows; also checks that our
 * argmax of each row agrees with the reference's greedy choice. */
static double worst_row_error(const char *model, const char *ref, sd_kv_type kv, int batch)
{
    char mp[512], rp[512], err[SD_ERR_LEN];
    sd_logits_file rf;
    cr_assert_eq(sd_logits_file_read(shared_path(rp, sizeof rp, ref), &rf, err), 0, "%s", err);
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(mp, sizeof mp, model), &m, err), 0, "%s", err);
    cr_assert_eq(sd_model_hparams(m)->n_vocab, (int)rf.n_vocab);
    sd_session_params p = {256, 2, kv};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &p, &s, err), 0, "%s", err);
    int n = (int)(rf.n_prompt + rf.n_gen), nv = (int)rf.n_vocab;
    float *rows = malloc((size_t)n * nv * sizeof *rows);
    if (batch) {
        /* The whole sequence as one batch: the prefill path. */
        cr_assert_eq(sd_session_eval(s, rf.prompt, n, rows, err), 0, "%s", err);
    } else {
        for (int i = 0; i < n; i++)
            cr_assert_eq(sd_session_eval(s, &rf.prompt[i], 1, rows + (size_t)i * nv, err), 0, "%s", err);
    }
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double e = sd_rel_l2(rows + (size_t)i * nv, rf.logits + (size_t)i * nv, nv);
        cr_assert(isfinite(e), "row %d not finite", i);
        worst = e > worst ? e : worst;
    }
    free(rows);
    sd_session_free(s);
    sd_model_free(m);
    sd_logits_file_free(&rf);
    return worst;
}

#define REF_TEST(name, model, ref, tol)                                                      \
    Test(model_ref, name) {                                                                  \
        double e = worst_row_error(model, ref, SD_KV_F32, 0);                                \
        cr_log_info("%s: worst relative L2 %.2e (limit %.0e)", model, e, tol);             \
        cr_expect_leq(e, tol, "%s: worst relative L2 %.3e > %.0e", model, e, tol);         \
    }

REF_TEST(f32, "models/tiny-f32.gguf", "reference/tiny-f32.ref", 1e-3)
REF_TEST(f16, "models/tiny-f16.gguf", "reference/tiny-f16.ref", 3e-3)
REF_TEST(bf16, "models/tiny-bf16.gguf", "reference/tiny-bf16.ref", 1e-2)
REF_TEST(q8_0, "models/tiny-q8_0.gguf", "reference/tiny-q8_0.ref", 4e-2)
REF_TEST(q4_0, "models/tiny-q4_0.gguf", "reference/tiny-q4_0.ref", 4e-2)
REF_TEST(q2_k, "models/tiny-q2_k.gguf", "reference/tiny-q2_k.ref", 4e-2)
REF_TEST(q3_k_m, "models/tiny-q3_k_m.gguf", "reference/tiny-q3_k_m.ref", 4e-2)
REF_TEST(q4_k_m, "models/tiny-q4_k_m.gguf", "reference/tiny-q4_k_m.ref", 4e-2)
REF_TEST(q5_k_m, "models/tiny-q5_k_m.gguf", "reference/tiny-q5_k_m.ref", 4e-2)
REF_TEST(q6_k, "models/tiny-q6_k.gguf", "reference/tiny-q6_k.ref", 4e-2)
REF_TEST(stories_once, "models/stories260K.gguf", "reference/stories260K-once.ref", 1e-3)
REF_TEST(stories_dog, "models/stories260K.gguf", "reference/stories260K-dog.ref", 1e-3)

Test(model_ref, batched_prefill_matches_reference)
{
    double e = worst_row_error("models/stories260K.gguf", "reference/stories260K-once.ref", SD_KV_F32, 1);
    cr_expect_leq(e, 1e-3, "batched: %.3e", e);
}

Test(model_ref, f16_kv_cache_stays_close)
{
    double e = worst_row_error("models/tiny-f32.gguf", "reference/tiny-f32.ref", SD_KV_F16, 0);
    cr_expect_leq(e, 3e-3, "f16 kv: %.3e", e);
}
