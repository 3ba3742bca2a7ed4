/* The packed MXFP4 kernel at the edges of its E8M0 scales: it scales a
 * block's integer sum by adding e - 128 to the float's exponent where that
 * is exact (every code of the tile in 2..240) and by vscalefps otherwise
 * (kernels/x86/packed_mxfp4_zmm.h). Both paths, each token-tile size and a
 * narrow second panel against the generic vec_dot, within 1e-5 of the
 * sum of the absolute terms (the scales reach 2^-128 and 2^113, where a
 * tolerance around 1 says nothing) plus the spacing of the floats below
 * the normal ones once per block (sums of such floats round to it). */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/pack.h"
#include "tensor/formats.h"
#include "tensor/types.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t next(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

/* One code per row, so that each row's tolerance is at its own scale.
 * Groups 0 and 1 hold codes outside 2..240 at the low and at the high end
 * (the vscalefps path), group 2 only codes inside it, its ends included
 * (the exponent add). Of every five blocks, one is all zero codes, whose
 * sums are 0 (the add must leave them alone); one is a single code 1 (0.5)
 * against an activation quant of +-1, a sum of +-1, the smallest, which
 * codes 0 and 1 would scale below the normal floats; one is all codes 7
 * (6) against activations all equal, the largest sum, 12 * 127 * 32, which
 * code 241 would scale past them. The activations are small, so that sums
 * near 2^119 stay finite. */
static const uint8_t codes[3][7] = {
    {0, 1, 2, 3, 100, 127, 200},
    {127, 150, 200, 239, 240, 241, 238},
    {2, 3, 100, 127, 150, 239, 240},
};

static uint8_t code_of(int64_t r) { return codes[r / SD_PACK_ROWS][r % 7]; }

Test(pack_mxfp4, extreme_scales_match_generic_vec_dot)
{
    sd_packed_fn pk = sd_kernel_packed(SD_TYPE_MXFP4);
    if (!pk) cr_skip_test("no packed MXFP4 kernel on this CPU");
    const sd_type_traits *tr = sd_type_get(SD_TYPE_MXFP4), *xt = sd_type_get(SD_TYPE_Q8_0);
    static const int64_t colss[] = {32, 96, 2112};
    static const int toks[] = {1, 2, 3, 8, 9};
    enum { ROWS = 3 * SD_PACK_ROWS, NT = 9 };
    int tested = 0;
    for (size_t ci = 0; ci < sizeof colss / sizeof colss[0]; ci++) {
        int64_t cols = colss[ci], nb = cols / QK32;
        sd_weight w = {.type = SD_TYPE_MXFP4, .rows = ROWS, .cols = cols, .scale = 1.0f};
        w.row_bytes = sd_row_bytes(SD_TYPE_MXFP4, cols);
        blk_mxfp4 *blk = malloc((size_t)ROWS * w.row_bytes);
        for (int64_t r = 0; r < ROWS; r++)
            for (int64_t b = 0; b < nb; b++) {
                blk_mxfp4 *k = &blk[r * nb + b];
                k->e = code_of(r);
                for (int j = 0; j < 16; j++)
                    k->qs[j] = b % 5 == 2 || b % 5 == 4 ? 0 : b % 5 == 3 ? 0x77 : (uint8_t)next();
                if (b % 5 == 4) k->qs[0] = 1;
            }
        w.data = blk;
        cr_assert_eq(sd_weight_pack(&w), 1, "MXFP4 %lld columns not packed", (long long)cols);

        size_t xr = sd_row_bytes(SD_TYPE_Q8_0, cols);
        float *x = malloc((size_t)cols * NT * sizeof *x), *wf = malloc((size_t)cols * sizeof *wf);
        float *xf = malloc((size_t)cols * sizeof *xf), *out = malloc((size_t)NT * ROWS * sizeof *out);
        char *xq = malloc(NT * xr);
        for (int64_t i = 0; i < cols * NT; i++) {
            x[i] = (float)((int)(next() % 2001) - 1000) * 1e-5f;
            if (i % QK32 == 1 || i % cols / QK32 % 5 == 3) x[i] = 0.01f;   /* the block's largest: scale 0.01 / 127 */
            else if (i % QK32 == 0) x[i] = (next() & 1 ? 0.01f : -0.01f) / 127;
        }
        for (int t = 0; t < NT; t++) xt->from_float(x + t * cols, xq + t * xr, cols);
        float *xd = malloc(sd_pack_act_bytes(cols, NT));
        int32_t *xs = (int32_t *)(xd + NT * nb);
        sd_pack_prep_act(cols, xq, xr, NT, xd, xs);
        for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++) {
            int nt = toks[k];
            for (int z = 0; z < NT * ROWS; z++) out[z] = NAN;
            pk(cols, w.packed, ROWS / SD_PACK_ROWS, 0, ROWS / SD_PACK_ROWS, xq, xr, xd, xs, nt, out, ROWS);
            for (int t = 0; t < nt; t++) {
                xt->to_float(xq + t * xr, xf, cols);
                for (int r = 0; r < ROWS; r++) {
                    const char *row = (const char *)w.data + r * w.row_bytes;
                    tr->to_float(row, wf, cols);
                    double mag = 0;
                    for (int64_t i = 0; i < cols; i++) mag += fabs((double)wf[i] * xf[i]);
                    double ref = tr->vec_dot(cols, row, xq + t * xr), got = out[t * ROWS + r];
                    double tol = 1e-5 * mag + (double)(nb + 2) * FLT_TRUE_MIN;
                    cr_expect(isfinite(got) && fabs(got - ref) <= tol, "%lld columns nt=%d [%d,%d]: %.9g vs %.9g (terms %.3g)",
                              (long long)cols, nt, r, t, ref, got, mag);
                }
            }
            tested++;
        }
        sd_weight_unpack(&w);
        free(blk); free(x); free(wf); free(xf); free(out); free(xq); free(xd);
    }
    cr_assert_eq(tested, 15);
}
