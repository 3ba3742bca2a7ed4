/* Which matrix products give a token the same bits whatever the batch it
 * shares (docs/ARCHITECTURE.md, determinism): each weight format of the
 * tiny models, n_tok = 1, 2, 3, 5, 8, 16, against the row computed alone. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "showdown.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "common.h"

/* Worst relative difference of any token's row at any batch size against
 * the same token alone. */
static double worst_batch_diff(const char *rel, int which)
{
    char p[512], err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(p, sizeof p, rel), &m, err), 0, "%s", err);
    sd_model_prepare(m, 1);   /* the weights as a forward pass has them */
    const sd_weight *w = which == 0 ? &m->layers[0].wq : which == 1 ? &m->layers[0].w_down : &m->output;
    int rows = (int)w->rows, cols = (int)w->cols, T = 16;
    float *x = malloc((size_t)T * cols * sizeof *x), *solo = malloc((size_t)T * rows * sizeof *solo);
    float *out = malloc((size_t)T * rows * sizeof *out);
    void *scratch = malloc(sd_matmul_scratch_bytes(w->type, rows, cols, T) + 64);
    sd_pool *pool = sd_pool_new(2);
    for (int i = 0; i < T * cols; i++) x[i] = sinf((float)i * 0.37f) * (1 + (i % 7));
    for (int t = 0; t < T; t++) sd_matmul(pool, w, x + (size_t)t * cols, 1, solo + (size_t)t * rows, scratch);
    double worst = 0;
    const int sizes[] = {2, 3, 5, 8, 16};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        sd_matmul(pool, w, x, sizes[k], out, scratch);
        for (int i = 0; i < sizes[k] * rows; i++) {
            double d = fabs((double)out[i] - solo[i]) / (fabs((double)solo[i]) + 1e-3);
            worst = d > worst ? d : worst;
        }
    }
    sd_pool_free(pool);
    free(x); free(solo); free(out); free(scratch);
    sd_model_free(m);
    return worst;
}

/* Packed weights (kernels/pack.h) and F32 use one kernel at every batch
 * size: exact. The others switch from the row-by-row dot product (one
 * token) to a tiled product (two or more) that sums in another order. */
static void report(const char *rel)
{
    char p[512], err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(p, sizeof p, rel), &m, err), 0, "%s", err);
    sd_model_prepare(m, 1);   /* what the first forward pass packs */
    const sd_weight *ws[3] = {&m->layers[0].wq, &m->layers[0].w_down, &m->output};
    int exact[3];
    for (int i = 0; i < 3; i++) exact[i] = ws[i]->packed != NULL || ws[i]->type == 0 /* F32 */;
    sd_model_free(m);
    for (int which = 0; which < 3; which++) {
        double d = worst_batch_diff(rel, which);
        cr_log_info("%s %s: worst relative difference batched vs alone %.3g%s", rel,
                    which == 0 ? "attn_q" : which == 1 ? "ffn_down" : "output", d, exact[which] ? " (exact)" : "");
        if (exact[which]) cr_expect_eq(d, 0.0, "%s matrix %d: %.3g", rel, which, d);
        else cr_expect_leq(d, 1e-3, "%s matrix %d: %.3g", rel, which, d);
    }
}

Test(batch_invariance, f32) { report("models/tiny-f32.gguf"); }
Test(batch_invariance, q8_0) { report("models/tiny-q8_0.gguf"); }
Test(batch_invariance, q4_0) { report("models/tiny-q4_0.gguf"); }
Test(batch_invariance, q4_k_m) { report("models/tiny-q4_k_m.gguf"); }
Test(batch_invariance, f16) { report("models/tiny-f16.gguf"); }
Test(batch_invariance, bf16) { report("models/tiny-bf16.gguf"); }
Test(batch_invariance, q6_k) { report("models/tiny-q6_k.gguf"); }
Test(batch_invariance, q5_k_m) { report("models/tiny-q5_k_m.gguf"); }
Test(batch_invariance, q2_k) { report("models/tiny-q2_k.gguf"); }
Test(batch_invariance, q3_k_m) { report("models/tiny-q3_k_m.gguf"); }
