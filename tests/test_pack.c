/* The 16-row packed layout (kernels/pack.h): its kernels against the generic
 * vec_dot on awkward shapes, and the threaded product over packed weights
 * whose groups are cut by claim boundaries. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/pack.h"
#include "runtime/pool.h"
#include "tensor/types.h"

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static float frand(void)   /* uniform in [-1, 1) */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

/* rows x cols of `type` from random values, some blocks 8x larger. */
static sd_weight random_weight(uint32_t type, int64_t rows, int64_t cols)
{
    const sd_type_traits *tr = sd_type_get(type);
    sd_weight w = {0};
    w.type = type; w.rows = rows; w.cols = cols; w.scale = 1.0f;
    w.row_bytes = sd_row_bytes(type, cols);
    char *d = malloc((size_t)rows * w.row_bytes);
    float *x = malloc((size_t)cols * sizeof *x);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < cols; i++) x[i] = frand() * ((i / 32 + r) % 5 == 0 ? 8.0f : 1.0f);
        tr->from_float(x, d + (size_t)r * w.row_bytes, cols);
    }
    free(x);
    w.data = d;
    return w;
}

static float *random_acts(int64_t cols, int nt)
{
    float *x = malloc((size_t)cols * nt * sizeof *x);
    for (int64_t i = 0; i < cols * nt; i++) x[i] = frand() * 3.0f;
    return x;
}

static void check_close(const char *what, float ref, float got)
{
    cr_expect(fabsf(ref - got) <= 1e-4f * (fabsf(ref) + 1.0f), "%s: %.7g vs %.7g", what, ref, got);
}

/* Every packed kernel of this CPU, direct: groups 1..3 from the first or
 * second, one block to many, one panel to three (the last one narrow, down
 * to one block), token counts that leave every tile remainder. */
Test(pack, kernels_match_generic_vec_dot)
{
    static const uint32_t types[] = {SD_TYPE_Q4_0, SD_TYPE_Q4_1, SD_TYPE_Q8_0, SD_TYPE_NVFP4, SD_TYPE_Q4_K, SD_TYPE_Q6_K, SD_TYPE_MXFP4};
    static const int64_t colss[] = {32, 96, 256, 768, 2112, 2144, 2304, 4160, 4352};
    static const int toks[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 15, 17};   /* each tile of 1-8, and some after a full 8 */
    int tested = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        sd_packed_fn pk = sd_kernel_packed(types[ti]);
        if (!pk) continue;
        const sd_type_traits *tr = sd_type_get(types[ti]), *xt = sd_type_get((uint32_t)tr->vec_dot_type);
        for (size_t ci = 0; ci < sizeof colss / sizeof colss[0]; ci++) {
            int64_t cols = colss[ci], rows = 4 * SD_PACK_ROWS;
            if (cols % sd_pack_block_values(types[ti])) continue;
            sd_weight w = random_weight(types[ti], rows, cols);
            cr_assert_eq(sd_weight_pack(&w), 1, "%s %lld columns not packed", tr->name, (long long)cols);
            size_t xr = sd_row_bytes((uint32_t)tr->vec_dot_type, cols);
            float *x = random_acts(cols, 17), *out = malloc(17 * rows * sizeof *out);
            char *xq = malloc(17 * xr);
            for (int t = 0; t < 17; t++) xt->from_float(x + t * cols, xq + t * xr, cols);
            float *xd = malloc(sd_pack_act_bytes(cols, 17));
            int32_t *xs = (int32_t *)(xd + 17 * (cols / 32));
            if (tr->vec_dot_type == SD_TYPE_Q8_0) sd_pack_prep_act(cols, xq, xr, 17, xd, xs);
            for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++)
                for (int g0 = 0; g0 <= 1; g0++)
                    for (int ng = 1; ng <= 3; ng++) {
                        int nt = toks[k];
                        for (int z = 0; z < 17 * rows; z++) out[z] = NAN;
                        pk(cols, w.packed, rows / SD_PACK_ROWS, g0, ng, xq, xr, xd, xs, nt, out, rows);
                        for (int t = 0; t < nt; t++)
                            for (int r = 0; r < ng * SD_PACK_ROWS; r++) {
                                const char *row = (const char *)w.data + (g0 * SD_PACK_ROWS + r) * w.row_bytes;
                                char what[96];
                                snprintf(what, sizeof what, "%s n=%lld g0=%d ng=%d nt=%d [%d,%d]", tr->name,
                                         (long long)cols, g0, ng, nt, r, t);
                                check_close(what, tr->vec_dot(cols, row, xq + t * xr), out[t * rows + r]);
                            }
                        tested++;
                    }
            sd_weight_unpack(&w);
            free((void *)w.data); free(x); free(out); free(xq); free(xd);
        }
    }
    if (!tested) cr_skip_test("no packed kernels on this CPU");
}

/* A fused product of `fast` (some weights packed) against `plain` on one
 * thread, at 1, 2 and 3 threads, decode and prefill (1, 7, 70 tokens);
 * `fast` is also the next product, so the threads prefetch when done. */
static void check_fused(const sd_weight *const *plain, const sd_weight *const *fast, int n_w, int64_t cols,
                        void *scratch)
{
    static const int toks[] = {1, 7, 70};
    float *x = random_acts(cols, 70);
    sd_pool *one = sd_pool_new(1);
    cr_assert_not_null(one);
    for (int th = 1; th <= 3; th++) {
        sd_pool *pool = sd_pool_new(th);
        cr_assert_not_null(pool);
        for (size_t k = 0; k < 3; k++) {
            int nt = toks[k];
            float *ref[4], *got[4];
            for (int i = 0; i < n_w; i++) {
                ref[i] = malloc((size_t)nt * plain[i]->rows * sizeof(float));
                got[i] = malloc((size_t)nt * plain[i]->rows * sizeof(float));
            }
            sd_matmul_multi(one, plain, n_w, x, nt, ref, scratch, NULL, 0);
            sd_matmul_multi(pool, fast, n_w, x, nt, got, scratch, fast, n_w);
            for (int i = 0; i < n_w; i++) {
                for (int64_t z = 0; z < nt * plain[i]->rows; z++) {
                    char what[96];
                    snprintf(what, sizeof what, "threads %d tokens %d weight %d [%lld]", th, nt, i, (long long)z);
                    check_close(what, ref[i][z], got[i][z]);
                }
                free(ref[i]); free(got[i]);
            }
        }
        sd_pool_free(pool);
    }
    sd_pool_free(one);
    free(x);
}

/* Q/K/V-style fused product: an unpackable weight of 24 rows ahead of packed
 * ones shifts them off the claim grid, so claims cut groups in two; their
 * columns span two panels, the second narrow. */
Test(pack, threaded_product_with_cut_groups)
{
    if (!sd_kernel_packed(SD_TYPE_Q4_0)) cr_skip_test("no packed kernels on this CPU");
    int64_t cols = 2112;   /* two panels, the second narrow */
    sd_weight a = random_weight(SD_TYPE_Q8_0, 24, cols), b = random_weight(SD_TYPE_Q4_0, 80, cols),
              c = random_weight(SD_TYPE_Q8_0, 48, cols), d = random_weight(SD_TYPE_NVFP4, 32, cols);
    cr_assert_eq(sd_weight_pack(&a), 0, "24 rows do not fill groups");
    const sd_weight *plain[4] = {&a, &b, &c, &d};
    sd_weight bp = b, cp = c, dp = d;
    cr_assert_eq(sd_weight_pack(&bp), 1);
    cr_assert_eq(sd_weight_pack(&cp), 1);
    cr_assert_eq(sd_weight_pack(&dp), sd_kernel_packed(SD_TYPE_NVFP4) ? 1 : 0);
    const sd_weight *packed[4] = {&a, &bp, &cp, &dp};
    void *scratch = malloc(sd_matmul_scratch_bytes(SD_TYPE_Q4_0, 80, cols, 70));
    check_fused(plain, packed, 4, cols, scratch);
    sd_weight_unpack(&bp); sd_weight_unpack(&cp); sd_weight_unpack(&dp);
    free((void *)a.data); free((void *)b.data); free((void *)c.data); free((void *)d.data); free(scratch);
}

/* Q4_K packed beside an unpacked Q6_K (both take Q8_K activations, which
 * carry no packed metadata): 24 Q6_K rows shift the Q4_K groups off the
 * claim grid, and 2304 columns make two panels, the second one block. */
Test(pack, q8_k_product_with_cut_groups)
{
    if (!sd_kernel_packed(SD_TYPE_Q4_K)) cr_skip_test("no packed Q4_K kernel on this CPU");
    int64_t cols = 2304;
    sd_weight a = random_weight(SD_TYPE_Q6_K, 24, cols), b = random_weight(SD_TYPE_Q4_K, 80, cols), bp = b;
    cr_assert_eq(sd_weight_pack(&bp), 1);
    const sd_weight *plain[2] = {&a, &b}, *packed[2] = {&a, &bp};
    void *scratch = malloc(sd_matmul_scratch_bytes(SD_TYPE_Q4_K, 80, cols, 70));
    check_fused(plain, packed, 2, cols, scratch);
    sd_weight_unpack(&bp);
    free((void *)a.data); free((void *)b.data); free(scratch);
}

/* At every thread count, more threads than rows included, each row is
 * computed and equals the one-thread product (packed weights where this
 * CPU has the kernels). */
Test(pack, every_row_once_at_many_threads)
{
    int64_t cols = 256;
    sd_weight a = random_weight(SD_TYPE_Q8_0, 24, cols), b = random_weight(SD_TYPE_Q4_0, 1600, cols);
    sd_weight bp = b;
    sd_weight_pack(&bp);
    const sd_weight *plain[2] = {&a, &b}, *fast[2] = {&a, &bp};
    static const int threads[] = {2, 5, 70}, toks[] = {1, 9};
    float *x = random_acts(cols, 9);
    void *scratch = malloc(sd_matmul_scratch_bytes(SD_TYPE_Q4_0, 1600, cols, 9));
    float *ref[2], *got[2];
    for (int i = 0; i < 2; i++) {
        ref[i] = malloc((size_t)9 * plain[i]->rows * sizeof(float));
        got[i] = malloc((size_t)9 * plain[i]->rows * sizeof(float));
    }
    sd_pool *one = sd_pool_new(1);
    cr_assert_not_null(one);
    for (size_t k = 0; k < 2; k++) {
        int nt = toks[k];
        sd_matmul_multi(one, plain, 2, x, nt, ref, scratch, NULL, 0);
        for (size_t ti = 0; ti < 3; ti++) {
            sd_pool *pool = sd_pool_new(threads[ti]);
            cr_assert_not_null(pool);
            for (int i = 0; i < 2; i++)
                for (int64_t z = 0; z < nt * plain[i]->rows; z++) got[i][z] = NAN;
            sd_matmul_multi(pool, fast, 2, x, nt, got, scratch, plain, 2);
            for (int i = 0; i < 2; i++)
                for (int64_t z = 0; z < nt * plain[i]->rows; z++) {
                    char what[96];
                    snprintf(what, sizeof what, "threads %d tokens %d weight %d [%lld]", threads[ti], nt, i,
                             (long long)z);
                    check_close(what, ref[i][z], got[i][z]);
                }
            sd_pool_free(pool);
        }
    }
    sd_pool_free(one);
    for (int i = 0; i < 2; i++) { free(ref[i]); free(got[i]); }
    sd_weight_unpack(&bp);
    free((void *)a.data); free((void *)b.data); free(x); free(scratch);
}

/* Decode over one packed weight of several panels claims (panel, rows)
 * pieces and adds the panels' partial sums afterwards: 3 panels, the last
 * one block wide, at 1, 2, 3 and 70 threads, against the unpacked product. */
Test(pack, decode_claims_within_panels)
{
    static const uint32_t types[] = {SD_TYPE_Q4_0, SD_TYPE_Q4_1, SD_TYPE_Q8_0, SD_TYPE_NVFP4, SD_TYPE_Q4_K, SD_TYPE_Q6_K, SD_TYPE_MXFP4};
    static const int threads[] = {1, 2, 3, 70};
    int64_t rows = 160;
    float *ref = malloc(rows * sizeof *ref), *got = malloc(rows * sizeof *got);
    int tested = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        /* Two full panels and one of a single block (Q4_0, Q8_0: two). */
        int64_t cols = 2 * SD_PACK_PANEL_COLS + (sd_pack_block_values(types[ti]) == 256 ? 256 : 64);
        float *x = random_acts(cols, 1);
        void *scratch = malloc(sd_matmul_scratch_bytes(types[ti], rows, cols, 1));
        sd_weight a = random_weight(types[ti], rows, cols), ap = a;
        if (sd_weight_pack(&ap) != 1) { free((void *)a.data); free(x); free(scratch); continue; }
        sd_pool *one = sd_pool_new(1);
        sd_matmul(one, &a, x, 1, ref, scratch);
        sd_pool_free(one);
        for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
            sd_pool *pool = sd_pool_new(threads[k]);
            cr_assert_not_null(pool);
            for (int64_t r = 0; r < rows; r++) got[r] = NAN;
            /* Itself as the next product: the threads prefetch when done. */
            const sd_weight *self = &ap;
            sd_matmul_multi(pool, &self, 1, x, 1, &got, scratch, &self, 1);
            for (int64_t r = 0; r < rows; r++) {
                char what[96];
                snprintf(what, sizeof what, "%s threads %d row %lld", sd_type_get(types[ti])->name, threads[k],
                         (long long)r);
                check_close(what, ref[r], got[r]);
            }
            sd_pool_free(pool);
            tested++;
        }
        sd_weight_unpack(&ap);
        free((void *)a.data); free(x); free(scratch);
    }
    free(ref); free(got);
    if (!tested) cr_skip_test("no packed kernels on this CPU");
}

/* What a thread prefetches for the next product is the start of its own
 * first claim: inside the weights, and no two threads' alike. At decode a
 * 3-panel packed weight gives thread i panel i's rows; Q/K/V-style weights
 * give thread 0 the first weight's start. */
static void check_first_claims(const char *what, const sd_weight *const *w, int n_w, int n_tok, int nth)
{
    const char *prev_end = NULL;
    for (int i = 0; i < nth; i++) {
        size_t len;
        const char *a = sd_matmul_first_claim(w, n_w, n_tok, nth, i, &len);
        if (!a) { cr_expect_eq(len, 0, "%s: thread %d", what, i); continue; }
        int inside = 0;
        for (int k = 0; k < n_w; k++) {
            const char *base = w[k]->packed ? w[k]->packed : w[k]->data;
            size_t bytes = (size_t)w[k]->rows * w[k]->row_bytes;
            inside |= a >= base && a + len <= base + bytes;
        }
        cr_expect(len > 0 && inside, "%s: thread %d of %d reads outside the weights", what, i, nth);
        cr_expect(!prev_end || a >= prev_end, "%s: thread %d overlaps thread %d", what, i, i - 1);
        prev_end = a + len;
    }
}

Test(pack, first_claims_lie_in_the_weights)
{
    int64_t cols = 4160;
    sd_weight a = random_weight(SD_TYPE_Q8_0, 24, cols), b = random_weight(SD_TYPE_Q4_0, 160, cols), bp = b;
    const sd_weight *plain[2] = {&a, &b}, *packed = &bp;
    static const int threads[] = {1, 2, 3, 70};
    for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
        check_first_claims("plain, decode", plain, 2, 1, threads[k]);
        check_first_claims("plain, prefill", plain, 2, 9, threads[k]);
    }
    size_t len;
    cr_expect_eq(sd_matmul_first_claim(plain, 2, 1, 2, 0, &len), a.data, "thread 0 starts at row 0");
    if (sd_weight_pack(&bp) == 1) {
        for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++)
            check_first_claims("3 panels, decode", &packed, 1, 1, threads[k]);
        /* Two threads: a quarter of the 480 (panel, row) claim rows each,
         * 112 after rounding to groups; thread 1's claim ends with panel 0. */
        size_t row = (size_t)(2048 / 32) * 18;   /* a panel row: 64 Q4_0 blocks */
        const char *t0 = sd_matmul_first_claim(&packed, 1, 1, 2, 0, &len);
        cr_expect_eq(t0, bp.packed);
        cr_expect_eq(len, 112 * row);
        cr_expect_eq(sd_matmul_first_claim(&packed, 1, 1, 2, 1, &len), t0 + 112 * row);
        cr_expect_eq(len, 48 * row);
        sd_weight_unpack(&bp);
    }
    free((void *)a.data); free((void *)b.data);
}

/* SHOWDOWN_REPACK=0 keeps the file's layout (for side-by-side benchmarks). */
Test(pack, repack_can_be_turned_off)
{
    sd_weight w = random_weight(SD_TYPE_Q4_0, 16, 64);
    setenv("SHOWDOWN_REPACK", "0", 1);
    cr_expect_eq(sd_weight_pack(&w), 0);
    cr_expect_null(w.packed);
    unsetenv("SHOWDOWN_REPACK");
    cr_expect_eq(sd_weight_pack(&w), sd_kernel_packed(SD_TYPE_Q4_0) ? 1 : 0);
    sd_weight_unpack(&w);
    free((void *)w.data);
}
