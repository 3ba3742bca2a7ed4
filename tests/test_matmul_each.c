/* sd_matmul_grouped and sd_matmul_each (one pool run of several weights, each on its own
 * activation row: a mixture of experts' down products at decode) against
 * one sd_matmul per weight, packed and unpacked, on one and two threads. */
#include <criterion/criterion.h>
#include <math.h>

#include "kernels/ops.h"
#include "kernels/pack.h"
#include "tensor/types.h"

static uint64_t rng = 0x1234567;
static float frand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static sd_weight random_weight(uint32_t type, int64_t rows, int64_t cols)
{
    const sd_type_traits *tr = sd_type_get(type);
    sd_weight w = {0};
    w.type = type; w.rows = rows; w.cols = cols; w.scale = 1.0f;
    w.row_bytes = sd_row_bytes(type, cols);
    char *d = malloc((size_t)rows * w.row_bytes);
    float *x = malloc((size_t)cols * sizeof *x);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < cols; i++) x[i] = frand();
        tr->from_float(x, d + (size_t)r * w.row_bytes, cols);
    }
    free(x);
    w.data = d;
    return w;
}

static void check_each(uint32_t type, int packed, int threads)
{
    enum { K = 5, ROWS = 96, COLS = 2304 };   /* 2304 columns: two panels when packed */
    sd_weight w[K];
    const sd_weight *wp[K];
    float *out[K], *want = malloc((size_t)K * ROWS * sizeof *want), *x = malloc((size_t)K * COLS * sizeof *x);
    for (int k = 0; k < K; k++) {
        w[k] = random_weight(type, ROWS, COLS);
        if (packed) sd_weight_pack(&w[k]);
        wp[k] = &w[k];
        out[k] = malloc(ROWS * sizeof(float));
    }
    for (int i = 0; i < K * COLS; i++) x[i] = frand() * 2;
    void *scratch = malloc(sd_matmul_scratch_bytes(type, ROWS, COLS, K) + 64);
    sd_pool *pool = sd_pool_new(threads);
    for (int k = 0; k < K; k++) sd_matmul(pool, &w[k], x + (size_t)k * COLS, 1, want + (size_t)k * ROWS, scratch);
    sd_matmul_each(pool, wp, K, x, out, scratch);
    for (int k = 0; k < K; k++)
        for (int r = 0; r < ROWS; r++)
            cr_expect_float_eq(out[k][r], want[k * ROWS + r], 1e-4f * (1 + fabsf(want[k * ROWS + r])),
                               "%s packed %d threads %d: weight %d row %d: %g vs %g", sd_type_name(type), packed,
                               threads, k, r, out[k][r], want[k * ROWS + r]);
    for (int k = 0; k < K; k++) {
        sd_weight_unpack(&w[k]);
        free((void *)w[k].data);
        free(out[k]);
    }
    sd_pool_free(pool);
    free(scratch); free(want); free(x);
}

Test(matmul_each, q4_0) { check_each(SD_TYPE_Q4_0, 1, 2); check_each(SD_TYPE_Q4_0, 0, 1); }
Test(matmul_each, q8_0) { check_each(SD_TYPE_Q8_0, 1, 1); check_each(SD_TYPE_Q8_0, 0, 2); }
Test(matmul_each, f32) { check_each(SD_TYPE_F32, 0, 2); }

/* Weights over their own groups of activation rows (a MoE prefill's
 * tokens grouped by expert): the same as one sd_matmul per group. */
static void check_grouped(uint32_t type, int packed, int threads)
{
    enum { K = 5, ROWS = 64, COLS = 512 };
    static const int count[K] = {3, 1, 4, 2, 6};
    int first[K], n_rows = 0;
    sd_weight w[K];
    const sd_weight *wp[K];
    float *out[K], *want[K];
    for (int k = 0; k < K; k++) {
        first[k] = n_rows;
        n_rows += count[k];
        w[k] = random_weight(type, ROWS, COLS);
        if (packed) sd_weight_pack(&w[k]);
        wp[k] = &w[k];
        out[k] = malloc((size_t)count[k] * ROWS * sizeof(float));
        want[k] = malloc((size_t)count[k] * ROWS * sizeof(float));
    }
    float *x = malloc((size_t)n_rows * COLS * sizeof *x);
    for (int i = 0; i < n_rows * COLS; i++) x[i] = frand() * 2;
    void *scratch = malloc(sd_matmul_scratch_bytes(type, ROWS, COLS, n_rows) + 64);
    sd_pool *pool = sd_pool_new(threads);
    for (int k = 0; k < K; k++) sd_matmul(pool, &w[k], x + (size_t)first[k] * COLS, count[k], want[k], scratch);
    sd_matmul_grouped(pool, wp, K, x, n_rows, first, count, out, scratch);
    for (int k = 0; k < K; k++)
        for (int i = 0; i < count[k] * ROWS; i++)
            cr_expect_float_eq(out[k][i], want[k][i], 1e-4f * (1 + fabsf(want[k][i])), "%s packed %d: weight %d value %d",
                               sd_type_name(type), packed, k, i);
    for (int k = 0; k < K; k++) {
        sd_weight_unpack(&w[k]);
        free((void *)w[k].data);
        free(out[k]);
        free(want[k]);
    }
    sd_pool_free(pool);
    free(scratch); free(x);
}

Test(matmul_grouped, q4_0) { check_grouped(SD_TYPE_Q4_0, 1, 2); check_grouped(SD_TYPE_Q4_0, 0, 2); }
Test(matmul_grouped, q8_0) { check_grouped(SD_TYPE_Q8_0, 1, 1); check_grouped(SD_TYPE_Q8_0, 0, 1); }
Test(matmul_grouped, f32) { check_grouped(SD_TYPE_F32, 0, 2); }
