/* Weights repacked at load time for the matrix-vector kernels.
 *
 * Q4_0 and Q8_0 rows store each 32-value block as an f16 scale followed by
 * its quants, so a kernel reading one row at a time converts one scalar
 * scale per 32 values and can use only a quarter of a 512-bit register per
 * block. The packed layout interleaves SD_PACK_ROWS = 16 rows instead: per
 * group of 16 rows and per block, a tile of
 *     the 16 rows' scales, then nq chunks of 64 bytes,
 * where chunk j holds bytes 4j..4j+3 of every row's quants (row r at byte
 * 4r) and nq = quant bytes per block / 4 (Q4_0 and Q4_1: 4, Q8_0 and
 * NVFP4: 8, Q4_K: 32). One vpdpbusd of a chunk against one broadcast activation quad
 * advances 16 rows at once, and 16 scales convert with one instruction. The
 * scales are Q4_0/Q8_0's f16 (row r at byte 2r), Q4_1's f16 d then m
 * (row r's at bytes 2r and 32 + 2r), MXFP4's E8M0 byte (row r at
 * byte r), NVFP4's four UE4M3
 * sub-block codes per 64-value block (code k of row r at byte 16k + r), or
 * Q4_K's d, dmin and 12 scale bytes per 256-value super-block, in 2-byte
 * units (unit k of row r at byte 32k + 2r). Q4_K's scale bytes and Q6_K's
 * quants are re-encoded on the way (same sizes; pack.c, x86/packed_zmm.h).
 *
 * Wide matrices are cut into panels of SD_PACK_PANEL_COLS = 2048 columns
 * (the last panel may be narrower), stored one after another:
 *     panel p, then group g, then block b within the panel.
 * The kernels sum the panels into each output row. In one piece, a group of
 * a 2048 x 8192 matrix is 72 KiB, more than L1 holds beside its activation
 * row: such matrices streamed from DRAM at 19-21 GB/s on one thread, against
 * 26 in 2048-column panels (docs/BENCHMARKS.md, log entry 15).
 * Within a panel, groups follow each other: the copy has the same size as
 * the original, so it costs no extra memory once the mapped original is
 * dropped. */
#ifndef SD_PACK_H
#define SD_PACK_H

#include <stdint.h>

#include "tensor/weight.h"

#define SD_PACK_ROWS 16
#define SD_PACK_PANEL_COLS 2048

/* Blocks per panel for blocks of `values` columns. */
static inline int64_t sd_pack_panel_blocks(int values) { return SD_PACK_PANEL_COLS / values; }

/* Index, in tiles, of group g's block b in a packed matrix of n_groups
 * groups, nb blocks per row and pb blocks per panel: the panels before b's
 * are full. */
static inline size_t sd_pack_tile_offset(int64_t n_groups, int64_t nb, int64_t pb, int64_t g, int64_t b)
{
    int64_t p0 = b / pb * pb;
    int64_t width = nb - p0 < pb ? nb - p0 : pb;
    return (size_t)(p0 * n_groups + g * width + (b - p0));
}

/* Columns per block of a packable format (32, 64 for NVFP4, 256 for Q4_K); 0 for others. */
int sd_pack_block_values(uint32_t type);

/* Repacks w into w->packed when this CPU has a kernel for its layout, its
 * rows fill whole groups, and SHOWDOWN_REPACK is not 0. Returns 1 if packed,
 * 0 if left as it is, -1 when out of memory. */
int sd_weight_pack(sd_weight *w);
void sd_weight_unpack(sd_weight *w);   /* frees w->packed */
/* sd_weight_pack over n weights on up to n_threads threads, which share
 * them in pieces of whole groups (the copy is bound by page clearing and
 * memory, so it scales with cores). Returns how
 * many were packed; a weight that could not be (out of memory) stays as it
 * is. done(w, ctx), if set, is called once for each weight packed. */
int sd_weights_pack(sd_weight *const *ws, int n, int n_threads, void (*done)(const sd_weight *, void *), void *ctx);
/* Whether packing is enabled (SHOWDOWN_REPACK unset or not "0"). */
int sd_pack_enabled(void);

/* Bytes of per-token activation metadata the packed kernels of formats with
 * Q8_0 activations need beside them: per Q8_0 block, xd (f32 scale) and xs
 * (the int32 sums of its two halves of 16 quants: NVFP4 scales every 16
 * values). Q4_K's kernel reads its Q8_K activations' own sums instead. */
size_t sd_pack_act_bytes(int64_t cols, int n_tok);
/* Fills xd[t * nb + b] and xs[2 * (t * nb + b) + h] from n_tok Q8_0 rows. */
void sd_pack_prep_act(int64_t cols, const void *xq, size_t x_stride, int n_tok, float *xd, int32_t *xs);

#endif
