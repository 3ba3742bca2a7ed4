/* The cooperative-matrix prefill product (matmul_coop.comp) against the CPU,
 * on a device with VK_KHR_cooperative_matrix; skipped, saying why, on any
 * other (Debian bookworm's lavapipe, Mesa 22.3, has none; Mesa 26.1's does:
 * 8x8x8 F16 tiles, subgroup 8).
 *
 * Tolerance: 4e-3 relative L2 per token row for one product. The kernel
 * rounds both operands to F16 (11 significant bits) where the CPU multiplies
 * the weights' exact values with its encoded activations exactly (integer
 * dot products, F32 for F32/F16/BF16): each product term carries up to two
 * F16 roundings (2^-11 relative each, random in sign), so over a row the
 * relative L2 error sits near 2^-11 * sqrt(2) / sqrt(3) ~ 4e-4 (uniform
 * rounding), measured 2e-4 .. 1e-3 over every format here; F16 weights with
 * F16 activations are exact operands (measured ~1e-7). A wrong tile or element
 * is off by ~1.
 * A forward pass's 40 prompt rows (tiny models, every layer and the head on
 * the GPU): 3e-2 relative L2 each, and at least 36 of 40 rows picking the
 * CPU's token. Measured on Mesa 26.1's lavapipe: worst 1.3e-2 (Q8_0) and
 * 1.8e-2 (Q4_K_M), mean 1.2e-2 and 1.6e-2, 39 and 37 of 40 rows; the tiled
 * kernel's rows on the same models sit at a mean of 1.5e-4. The random tiny
 * models amplify the products' 4e-4 through their layers; the rows that
 * differ are near-ties of the random logits. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "showdown.h"
#include "eval/logits_file.h"
#include "gpu/backend.h"
#include "gpu/vk.h"
#include "kernels/ops.h"
#include "runtime/pool.h"
#include "tensor/types.h"
#include "common.h"

#define PRODUCT_TOL 4e-3
#define PROMPT_TOL 3e-2

/* Skips unless device 0 takes the cooperative-matrix path. */
static void need_coop(void)
{
    sd_gpu_device_info info[4];
    char err[SD_ERR_LEN] = "";
    if (sd_gpu_vulkan.list(info, 4, err) == 0) cr_skip_test("no Vulkan device: %s", err);
    sd_vk_coop c;
    cr_assert_eq(sd_vk_coop_info(0, &c, err), 0, "%s", err);
    if (!c.on) cr_skip_test("no cooperative-matrix path on %s: %s", info[0].name, c.off);
}

#include "gpu_product.h"

static double check_product(uint32_t type, int rows, int cols, int n_tok)
{
    return gpu_product_vs_cpu(type, rows, cols, n_tok, SD_VK_PATH_COOP, PRODUCT_TOL);
}

/* 17 tokens (the fewest the forward pass sends to a matrix kernel), 33 and
 * 67 (partial token tiles of any configuration up to 16 x 16, whose
 * workgroups take 32 or 64 tokens), rows 37 and 131 (partial row tiles,
 * several workgroups), columns an odd number of 32-column steps for the
 * 32- and 64-value blocks, 3 blocks of 256 for the K-quants, and 97 for
 * F32/F16/BF16 (a partial last step). */
static void check_format(uint32_t type)
{
    need_coop();
    int blk = type == SD_TYPE_F32 || type == SD_TYPE_F16 || type == SD_TYPE_BF16 ? 1
            : sd_row_bytes(type, 32) ? 32 : sd_row_bytes(type, 64) ? 64 : 256;
    int cols = blk == 1 ? 97 : blk * (blk == 256 ? 3 : 7);
    double e = check_product(type, 37, cols, 17);
    double e2 = check_product(type, 131, cols, 33);
    double e3 = check_product(type, 67, cols, 67);
    cr_log_info("%s: worst relative L2 %.2e %.2e %.2e", sd_type_name(type), e, e2, e3);
}

#define COOP_TEST(name, type) Test(gpu_coopmat, product_##name) { check_format(type); }
COOP_TEST(f32, SD_TYPE_F32)
COOP_TEST(f16, SD_TYPE_F16)
COOP_TEST(bf16, SD_TYPE_BF16)
COOP_TEST(q8_0, SD_TYPE_Q8_0)
COOP_TEST(q4_0, SD_TYPE_Q4_0)
COOP_TEST(q4_1, SD_TYPE_Q4_1)
COOP_TEST(q5_0, SD_TYPE_Q5_0)
COOP_TEST(q5_1, SD_TYPE_Q5_1)
COOP_TEST(q2_k, SD_TYPE_Q2_K)
COOP_TEST(q3_k, SD_TYPE_Q3_K)
COOP_TEST(q4_k, SD_TYPE_Q4_K)
COOP_TEST(q5_k, SD_TYPE_Q5_K)
COOP_TEST(q6_k, SD_TYPE_Q6_K)
COOP_TEST(mxfp4, SD_TYPE_MXFP4)
COOP_TEST(nvfp4, SD_TYPE_NVFP4)
COOP_TEST(iq4_nl, SD_TYPE_IQ4_NL)

/* F16 weights with F16-rounded activations: both operands are already F16,
 * so only the summation order differs from the CPU. */
Test(gpu_coopmat, f16_operands_are_exact)
{
    need_coop();
    double e = check_product(SD_TYPE_F16, 67, 256, 40);
    cr_expect_leq(e, 1e-5, "F16: relative L2 %.2e", e);
}

/* A forward pass whose prompt (40 tokens, one batch) goes through the coop
 * kernel in every layer and the output head, against the CPU's rows; the
 * placement line says which prefill kernel runs. */
static void forward(const char *model_rel, const char *want_placement)
{
    need_coop();
    char mp[512], err[SD_ERR_LEN];
    shared_path(mp, sizeof mp, model_rel);
    int32_t toks[40];
    for (int i = 0; i < 40; i++) toks[i] = 1 + (i * 37) % 200;
    float *rows[2];
    int nv = 0;
    for (int gpu = 0; gpu < 2; gpu++) {
        sd_model *m;
        cr_assert_eq(sd_model_load(mp, &m, err), 0, "%s", err);
        if (gpu) {
            sd_offload_params op = {99, 0, 64, SD_KV_F32, NULL, NULL};
            cr_assert_eq(sd_model_offload(m, &op, err), 0, "%s", err);
            cr_expect(strstr(sd_model_placement(m), want_placement), "placement '%s', expected '%s'",
                      sd_model_placement(m), want_placement);
        }
        nv = sd_model_hparams(m)->n_vocab;
        sd_session_params p = {64, 2, SD_KV_F32};
        sd_session *s;
        cr_assert_eq(sd_session_new(m, &p, &s, err), 0, "%s", err);
        rows[gpu] = malloc((size_t)40 * nv * sizeof(float));
        cr_assert_eq(sd_session_eval(s, toks, 40, rows[gpu], err), 0, "%s", err);
        sd_session_free(s);
        sd_model_free(m);
    }
    double worst = 0, sum = 0;
    int same = 0;
    for (int i = 0; i < 40; i++) {
        const float *g = rows[1] + (size_t)i * nv, *c = rows[0] + (size_t)i * nv;
        double e = sd_rel_l2(g, c, nv);
        cr_expect_leq(e, PROMPT_TOL, "%s row %d: relative L2 %.2e", model_rel, i, e);
        if (e > worst) worst = e;
        sum += e;
        int ag = 0, ac = 0;
        for (int j = 1; j < nv; j++) { if (g[j] > g[ag]) ag = j; if (c[j] > c[ac]) ac = j; }
        same += ag == ac;
    }
    cr_log_info("%s: prompt rows, relative L2 worst %.2e mean %.2e, same argmax %d of 40", model_rel, worst, sum / 40,
                same);
    cr_expect_geq(same, 36, "%s: %d of 40 rows pick the CPU's token", model_rel, same);
    free(rows[0]); free(rows[1]);
}

Test(gpu_coopmat, forward_q8_0) { forward("models/tiny-q8_0.gguf", "; prefill on cooperative matrices ("); }
Test(gpu_coopmat, forward_q4_k_m) { forward("models/tiny-q4_k_m.gguf", "; prefill on cooperative matrices ("); }

/* A self-check that finds a mismatch (injected on the first) turns the path
 * off for the device with one notice in the placement line, and prefill
 * takes the tiled kernel: the same rows as the CPU's. */
Test(gpu_coopmat, failed_self_check_disables_the_path)
{
    setenv("SHOWDOWN_VK_FAIL", "coop:1", 1);
    forward("models/tiny-q8_0.gguf", "; cooperative-matrix prefill disabled (its self-check on Q8_0 weights differs "
                                     "from the tiled kernel by 1); the plain tiled kernel runs");
}

/* Forced onto a device whose check failed, the coop product is an error
 * line, not a silent fallback. */
Test(gpu_coopmat, forced_after_failed_check_is_an_error)
{
    need_coop();
    setenv("SHOWDOWN_VK_FAIL", "coop:1", 1);
    int rows = 40, cols = 64, n_tok = 20;
    size_t rb = sd_row_bytes(SD_TYPE_Q8_0, cols);
    float *src = malloc((size_t)rows * cols * sizeof *src), *x = malloc((size_t)n_tok * cols * sizeof *x);
    float *y = malloc((size_t)n_tok * rows * sizeof *y);
    void *data = malloc((size_t)rows * rb);
    for (int i = 0; i < rows * cols; i++) src[i] = frand();
    for (int i = 0; i < n_tok * cols; i++) x[i] = frand();
    sd_weight w = {data, SD_TYPE_Q8_0, rows, cols, rb, 1.0f, NULL};
    w.scale = sd_quantize_tensor(SD_TYPE_Q8_0, src, data, rows, cols);
    char err[SD_ERR_LEN] = "";
    cr_expect_neq(sd_vk_product_once(0, &w, x, n_tok, SD_VK_PATH_COOP, y, err), 0);
    cr_expect(strstr(err, "no cooperative-matrix kernel for Q8_0") && strstr(err, "self-check on Q8_0"), "%s", err);
    free(src); free(x); free(y); free(data);
}
