/* qwen3next end to end against the reference fork (ik_llama.cpp 8337e4cd):
 * its logits on small synthesized files (tests/data/qwen3next/README.md),
 * each file regenerated here by the same `showdown synth` command and
 * checked to be byte-identical to the one the fork ran (FNV-1a of the file).
 * The fork's rows are checked against the float64 derivation
 * (qwen3next_derive.h) too, so a fork that went wrong would show. */
#include <criterion/criterion.h>
#include <math.h>
#include <unistd.h>

#include "showdown.h"
#include "eval/logits_file.h"
#include "qwen3next_derive.h"

static uint64_t fnv1a(const char *path)
{
    size_t n;
    unsigned char *b = read_all(path, &n);
    cr_assert_not_null(b, "cannot read %s", path);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    free(b);
    return h;
}

/* fork_tol: the fork's rows against the derivation (F32 weights: the
 * fork's F16 KV cache and its own rounding; quantized: also its 8-bit
 * activations). tol: ours, one token at a time and as one batch, against
 * the fork's rows. */
static void check(const char *fmt, uint64_t want_hash, double fork_tol, double tol)
{
    char path[128], rp[256], err[SD_ERR_LEN];
    qnext_synth(path, sizeof path, fmt);
    uint64_t h = fnv1a(path);
    cr_assert_eq(h, want_hash, "%s: synth output changed (%016llx); regenerate tests/data/qwen3next (README.md there)",
                 fmt, (unsigned long long)h);
    snprintf(rp, sizeof rp, "tests/data/qwen3next/qwen3next-%s.ref", fmt);
    sd_logits_file rf;
    cr_assert_eq(sd_logits_file_read(rp, &rf, err), 0, "%s", err);
    int n = (int)(rf.n_prompt + rf.n_gen), nv;
    double *want = qnext_derive_rows(path, rf.prompt, n, &nv);
    cr_assert_eq(nv, (int)rf.n_vocab);
    double fork0 = qnext_rel_l2(rf.logits, want, nv), fork = 0;
    for (int i = 0; i < n; i++) fork = fmax(fork, qnext_rel_l2(rf.logits + (size_t)i * nv, want + (size_t)i * nv, nv));

    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    double worst[2] = {0, 0};
    for (int batch = 0; batch < 2; batch++) {
        sd_session_params p = {64, 2, SD_KV_F32};
        sd_session *s;
        cr_assert_eq(sd_session_new(m, &p, &s, err), 0, "%s", err);
        float *rows = malloc((size_t)n * nv * sizeof *rows);
        if (batch) cr_assert_eq(sd_session_eval(s, rf.prompt, n, rows, err), 0, "%s", err);
        else
            for (int i = 0; i < n; i++)
                cr_assert_eq(sd_session_eval(s, &rf.prompt[i], 1, rows + (size_t)i * nv, err), 0, "%s", err);
        for (int i = 0; i < n; i++)
            worst[batch] = fmax(worst[batch], sd_rel_l2(rows + (size_t)i * nv, rf.logits + (size_t)i * nv, nv));
        free(rows);
        sd_session_free(s);
    }
    cr_log_info("qwen3next-%s: fork vs float64 derivation row 0 %.2e, worst of %d rows %.2e (limit %.0e); ours vs "
                "the fork: %.2e one by one, %.2e batched (limit %.0e)", fmt, fork0, n, fork, fork_tol, worst[0],
                worst[1], tol);
    cr_expect_leq(fork, fork_tol, "the fork's rows disagree with the derivation: %.3e", fork);
    cr_expect_leq(worst[0], tol, "ours vs the fork, one by one: %.3e", worst[0]);
    cr_expect_leq(worst[1], tol, "ours vs the fork, batched: %.3e", worst[1]);
    free(want);
    sd_model_free(m);
    sd_logits_file_free(&rf);
    unlink(path);
}

/* Measured (fork vs derivation / ours vs fork): F32 6.8e-5 / 6.8e-5 (the
 * fork's F16 KV cache); Q8_0 1.4e-2 / 1.8e-2 and Q4_0 1.7e-2 / 2.3e-2 (8-bit
 * activations on both sides, rounded differently). */
Test(qwen3next_ref, f32) { check("f32", 0x37452fc8cb65397cull, 2e-4, 2e-4); }
Test(qwen3next_ref, q8_0) { check("q8_0", 0xa5e76656cbf4b469ull, 3e-2, 3e-2); }
Test(qwen3next_ref, q4_0) { check("q4_0", 0xd8873e1d68fd463full, 4e-2, 4e-2); }
