/* One weight product on the GPU against the CPU's sd_matmul on the same
 * random inputs, for the GPU product tests (test_gpu.c: the matvec kernel;
 * test_gpu_coopmat.c: the cooperative-matrix kernel). Include after
 * criterion, showdown.h, gpu/vk.h, kernels/ops.h, runtime/pool.h,
 * tensor/types.h and common.h; each includer gets its own generator. */
#ifndef SD_TESTS_GPU_PRODUCT_H
#define SD_TESTS_GPU_PRODUCT_H

#include <stdint.h>
#include <stdlib.h>

static uint64_t gpu_rng = 88172645463325252ull;
static float frand(void)
{
    gpu_rng ^= gpu_rng << 13; gpu_rng ^= gpu_rng >> 7; gpu_rng ^= gpu_rng << 17;
    return (float)((gpu_rng >> 40) / 16777216.0 * 2.0 - 1.0);
}

/* Which GPU entry computes the product: the matvec/auto path of
 * sd_vk_matvec_once, or sd_vk_product_once on an SD_VK_PATH_*. */
#define GPU_VIA_MATVEC (-1)

/* rows x cols weights of the type, n_tok tokens; every token's row is
 * expected within tol relative L2 of the CPU's; returns the worst. */
static double gpu_product_vs_cpu(uint32_t type, int rows, int cols, int n_tok, int via, double tol)
{
    size_t rb = sd_row_bytes(type, cols);
    cr_assert(rb, "%s: %d columns", sd_type_name(type), cols);
    float *src = malloc((size_t)rows * cols * sizeof *src), *x = malloc((size_t)n_tok * cols * sizeof *x);
    float *want = malloc((size_t)n_tok * rows * sizeof *want), *got = malloc((size_t)n_tok * rows * sizeof *got);
    void *data = malloc((size_t)rows * rb);
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) src[i] = frand();
    for (int64_t i = 0; i < (int64_t)n_tok * cols; i++) x[i] = frand() * 3;
    sd_weight w = {data, type, rows, cols, rb, 1.0f, NULL};
    w.scale = sd_quantize_tensor(type, src, data, rows, cols);
    cr_assert(w.scale > 0);
    sd_pool *pool = sd_pool_new(1);
    void *scratch = malloc(sd_matmul_scratch_bytes(type, rows, cols, n_tok) + 64);
    sd_matmul(pool, &w, x, n_tok, want, scratch);
    char err[SD_ERR_LEN];
    int rc = via == GPU_VIA_MATVEC ? sd_vk_matvec_once(0, &w, x, n_tok, got, err)
                                   : sd_vk_product_once(0, &w, x, n_tok, via, got, err);
    cr_assert_eq(rc, 0, "%s", err);
    double worst = 0;
    for (int t = 0; t < n_tok; t++) {
        double e = sd_rel_l2(got + (size_t)t * rows, want + (size_t)t * rows, rows);
        cr_expect_leq(e, tol, "%s %dx%d, token %d of %d: relative L2 %.2e", sd_type_name(type), rows, cols, t, n_tok,
                      e);
        if (!(e <= worst)) worst = e;
    }
    free(src); free(x); free(want); free(got); free(data); free(scratch);
    sd_pool_free(pool);
    return worst;
}

#endif
