/* The 16-row packed layout of Q4_0, Q4_1, Q8_0, NVFP4, MXFP4, Q4_K and Q6_K weights (see pack.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/dispatch.h"
#include "kernels/pack.h"
#include "tensor/formats.h"
#include "tensor/types.h"

int sd_pack_enabled(void)
{
    const char *e = getenv("SHOWDOWN_REPACK");
    return !(e && !strcmp(e, "0"));
}

/* One row per packable format: a block of `values` columns is `units`
 * scale units of `unit` bytes, at byte scale_at of the block, and `quant`
 * bytes of quants, the rest of the block in order. In a tile the scale
 * units go unit-major (unit k of row r at (16k + r) * unit), then the
 * quants in 64-byte chunks (bytes 4j..4j+3 of row r at 64j + 4r). */
typedef struct {
    uint32_t type;
    int values, unit, units, quant, scale_at;
} pack_format;

static const pack_format pack_formats[] = {
    {SD_TYPE_Q4_0, 32, 2, 1, sizeof(((blk_q4_0 *)0)->qs), 0},
    {SD_TYPE_Q8_0, 32, 2, 1, sizeof(((blk_q8_0 *)0)->qs), 0},
    {SD_TYPE_Q4_1, 32, 2, 2, sizeof(((blk_q4_1 *)0)->qs), 0},   /* d, then m */
    {SD_TYPE_NVFP4, QKNV, 1, 4, sizeof(((blk_nvfp4 *)0)->qs), 0},
    {SD_TYPE_MXFP4, QK32, 1, 1, sizeof(((blk_mxfp4 *)0)->qs), 0},   /* E8M0 scale byte, then 16 */
    /* d, dmin, then the 12 scale bytes (re-encoded: q4_k_recode) as 6 pairs */
    {SD_TYPE_Q4_K, QKK, 2, 8, sizeof(((blk_q4_k *)0)->qs), 0},
    /* ql and qh are the quants; the 16 scale bytes and d's two bytes behind them, as 18 units */
    {SD_TYPE_Q6_K, QKK, 1, 18, 192, 192},
};

/* The largest block above (Q6_K's), for the tile buffer. */
#define PACK_MAX_BLOCK sizeof(blk_q6_k)

/* Q4_K's 8 six-bit scales s and mins m, re-encoded in the same 12 bytes so
 * that the kernel takes them out with a few operations for all 16 rows:
 * byte i < 8 is s_i with m_i's top two bits above it (bits 6-7), byte 8 + j
 * holds the low nibbles of m_j (bits 0-3) and m_{j+4} (bits 4-7). The
 * format's own order puts s_4..s_7 and m_4..m_7 together from two places
 * each. d and dmin stay in front. */
static void q4_k_recode(const char *blk, char *out)
{
    const uint8_t *q = ((const blk_q4_k *)blk)->scales;
    uint8_t *e = (uint8_t *)out + 4;
    memcpy(out, blk, 4);
    /* the format: s_j = q[j] & 63, m_j = q[j + 4] & 63, s_{j+4} = q[j + 8]
     * & 15 | (q[j] >> 6) << 4, m_{j+4} = q[j + 8] >> 4 | (q[j + 4] >> 6) << 4 */
    for (int j = 0; j < 4; j++) {
        e[j] = (uint8_t)((q[j] & 0x3f) | (q[j + 4] & 0x30) << 2);
        e[j + 4] = (uint8_t)((q[j + 8] & 0x0f) | (q[j] & 0xc0) >> 2 | (q[j + 4] & 0xc0));
        e[j + 8] = (uint8_t)((q[j + 4] & 0x0f) | (q[j + 8] & 0xf0));
    }
}

/* Q6_K's four 6-bit levels v_k (k < 4) at values 128n + l + 32k of half n
 * (l < 32), held by ql bytes 64n + l and 64n + 32 + l and qh byte 32n + l
 * as nibbles and 2-bit pieces, re-encoded in the same three bytes so that
 * three of them come out with one AND: v_0, v_1, v_2 in the low 6 bits of
 * the three, v_3 in their top 2 bits (bits 0-1, 2-3, 4-5 of it in that
 * order). The kernel's unpacking went from 13 operations per 4 chunks to 9. */
static void q6_k_recode(const char *blk, char *out)
{
    const blk_q6_k *b = (const blk_q6_k *)blk;
    uint8_t *o = (uint8_t *)out;
    /* v_0 = l1 & 15 | (h & 3) << 4, v_1 = l2 & 15 | (h & 12) << 2, v_2 =
     * l1 >> 4 | (h & 48), v_3 = l2 >> 4 | (h >> 6) << 4; byte loops the
     * compiler vectorizes (this runs over every Q6_K block at packing) */
    for (int n = 0; n < 2; n++) {
        const uint8_t *l1 = b->ql + 64 * n, *l2 = l1 + 32, *h = b->qh + 32 * n;
        uint8_t *a = o + 64 * n, *c = o + sizeof b->ql + 32 * n;
        for (int l = 0; l < 32; l++) {
            a[l] = (uint8_t)((l1[l] & 0x0f) | (h[l] & 0x03) << 4 | (l2[l] & 0x30) << 2);
            a[32 + l] = (uint8_t)((l2[l] & 0x0f) | (h[l] & 0x0c) << 2 | (l2[l] & 0xc0));
            c[l] = (uint8_t)(l1[l] >> 4 | (h[l] & 0xf0));
        }
    }
}

static const pack_format *pack_format_of(uint32_t type)
{
    for (size_t i = 0; i < sizeof pack_formats / sizeof pack_formats[0]; i++)
        if (pack_formats[i].type == type) return &pack_formats[i];
    return NULL;
}

int sd_pack_block_values(uint32_t type)
{
    const pack_format *f = pack_format_of(type);
    return f ? f->values : 0;
}

static size_t pack_map_bytes(const sd_weight *w)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return ((size_t)w->rows * w->row_bytes + pg - 1) / pg * pg;
}

/* Anonymous memory for a packed copy, its pages mapped up front: on the VMs
 * we measure on a page fault per 4 KiB page cost ~25 us, i.e. seconds per
 * GB of weights, and populating takes a few percent of that. With
 * populate = 0 the pages are left for the packing threads to populate, each
 * its own ranges (pack_populate). Not in huge pages: with MADV_HUGEPAGE,
 * decode measured ~10 % slower here (1.1B shape, 2 threads: 56-59 against
 * 64-65 tok/s, alternating runs). */
static char *pack_map(size_t bytes, int populate)
{
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0),
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* madvise over the pages that [a, a + len) touches. */
static int advise_range(const void *a, size_t len, int advice)
{
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), lo = (uintptr_t)a / pg * pg;
    uintptr_t hi = ((uintptr_t)a + len + pg - 1) / pg * pg;
    return hi > lo ? madvise((void *)lo, hi - lo, advice) : 0;
}

/* Whether this kernel populates writable ranges on request (Linux 5.14+);
 * elsewhere a copy is populated whole when it is mapped. */
static int populate_write_works(void)
{
#ifdef MADV_POPULATE_WRITE
    static atomic_int known;   /* 0: not asked yet, 1: yes, 2: no */
    int k = atomic_load(&known);
    if (!k) {
        char *p = pack_map((size_t)sysconf(_SC_PAGESIZE), 0);
        k = p && madvise(p, (size_t)sysconf(_SC_PAGESIZE), MADV_POPULATE_WRITE) == 0 ? 1 : 2;
        if (p) munmap(p, (size_t)sysconf(_SC_PAGESIZE));
        atomic_store(&known, k);
    }
    return k == 1;
#else
    return 0;
#endif
}

/* The geometry of w's packed copy, or 0 when w is not packed here. */
typedef struct {
    const pack_format *f;
    size_t sb, bb, nb, tile, pb;
    int64_t n_groups;
} pack_geom;

static int pack_geom_of(const sd_weight *w, pack_geom *pg)
{
    const pack_format *f = pack_format_of(w->type);
    if (!f || w->packed || !sd_pack_enabled() || !sd_kernel_packed(w->type)) return 0;
    if (w->rows <= 0 || w->rows % SD_PACK_ROWS || w->cols <= 0 || w->cols % f->values) return 0;
    pg->f = f;
    pg->sb = (size_t)f->unit * f->units;
    pg->bb = pg->sb + (size_t)f->quant;
    pg->nb = (size_t)w->cols / f->values;
    if (w->row_bytes != pg->nb * pg->bb || pg->bb > PACK_MAX_BLOCK) return 0;
    pg->tile = SD_PACK_ROWS * pg->bb;
    pg->pb = (size_t)sd_pack_panel_blocks(f->values);
    pg->n_groups = w->rows / SD_PACK_ROWS;
    return 1;
}

/* Groups [g0, g1) of w into dst: their source rows prefaulted (from the
 * page cache, in one call where the kernel can: Linux 5.14+), and with
 * populate, their tiles' pages in dst (one range per panel). */
static void pack_groups(const sd_weight *w, const pack_geom *pg, char *dst, int64_t g0, int64_t g1, int populate)
{
    const pack_format *f = pg->f;
    const char *src = w->data;
#ifdef MADV_POPULATE_READ
    advise_range(src + (size_t)g0 * SD_PACK_ROWS * w->row_bytes, (size_t)(g1 - g0) * SD_PACK_ROWS * w->row_bytes,
                 MADV_POPULATE_READ);
#endif
#ifdef MADV_POPULATE_WRITE
    if (populate)
        for (size_t p0 = 0; p0 < pg->nb; p0 += pg->pb) {
            size_t width = pg->nb - p0 < pg->pb ? pg->nb - p0 : pg->pb;
            advise_range(dst + sd_pack_tile_offset(pg->n_groups, (int64_t)pg->nb, (int64_t)pg->pb, g0, (int64_t)p0) * pg->tile,
                         (size_t)(g1 - g0) * width * pg->tile, MADV_POPULATE_WRITE);
        }
#else
    (void)populate;
#endif
    /* Each tile is assembled in L1 and written out whole: scattered 4-byte
     * stores straight into fresh memory ran at ~0.5 GB/s. */
    _Alignas(64) char t[SD_PACK_ROWS * PACK_MAX_BLOCK];
    char *tq = t + pg->sb * SD_PACK_ROWS;
    for (int64_t g = g0; g < g1; g++)
        for (size_t b = 0; b < pg->nb; b++) {
            for (int r = 0; r < SD_PACK_ROWS; r++) {
                const char *blk = src + (size_t)(g * SD_PACK_ROWS + r) * w->row_bytes + b * pg->bb;
                const char *sc = blk + f->scale_at, *q = f->scale_at ? blk : blk + pg->sb;
                char recoded[sizeof(((blk_q6_k *)0)->ql) + sizeof(((blk_q6_k *)0)->qh)];
                if (w->type == SD_TYPE_Q4_K) {
                    q4_k_recode(blk, recoded);
                    sc = recoded;
                } else if (w->type == SD_TYPE_Q6_K) {
                    q6_k_recode(blk, recoded);
                    q = recoded;
                }
                for (int k = 0; k < f->units; k++)
                    memcpy(t + (size_t)(16 * k + r) * f->unit, sc + k * f->unit, f->unit);
                for (int j = 0; j < f->quant / 4; j++) memcpy(tq + 64 * j + 4 * r, q + 4 * j, 4);
            }
            memcpy(dst + sd_pack_tile_offset(pg->n_groups, (int64_t)pg->nb, (int64_t)pg->pb, g, (int64_t)b) * pg->tile, t,
                   pg->tile);
        }
}

int sd_weight_pack(sd_weight *w)
{
    pack_geom pg;
    if (!pack_geom_of(w, &pg)) return 0;
    char *dst = pack_map(pack_map_bytes(w), 1);
    if (!dst) return -1;
    pack_groups(w, &pg, dst, 0, pg.n_groups, 0);
    w->packed = dst;
    return 1;
}

void sd_weight_unpack(sd_weight *w)
{
    if (w->packed) munmap(w->packed, pack_map_bytes(w));
    w->packed = NULL;
}

/* Several weights packed by several threads in pieces of about
 * PACK_PIECE_BYTES (whole groups), claimed in order from one counter: a
 * model's output matrix alone is a third to a half of its dense weights,
 * and packed by one thread while the others packed the rest, it held the
 * first forward pass up (matrices were the unit before). A copy's pages
 * are populated by the threads that fill them, piece by piece. */
#define PACK_PIECE_BYTES (4u << 20)

typedef struct {
    sd_weight *const *ws;
    int n;
    char **dst;                 /* per weight: its copy, NULL when not packed */
    pack_geom *geom;
    int64_t *first, *per;       /* per weight: its first piece, groups per piece */
    atomic_int *left;           /* per weight: pieces not yet done */
    int64_t pieces;
    int populate;
    _Atomic int64_t next;
    atomic_int packed;
    void (*done)(const sd_weight *, void *);
    void *ctx;
    pthread_mutex_t mu;         /* serializes done() */
} pack_job;

static void *pack_worker(void *arg)
{
    pack_job *j = arg;
    for (int64_t v; (v = atomic_fetch_add(&j->next, 1)) < j->pieces;) {
        int i = 0;
        while (i + 1 < j->n && j->first[i + 1] <= v) i++;
        int64_t g0 = (v - j->first[i]) * j->per[i], g1 = g0 + j->per[i];
        if (g1 > j->geom[i].n_groups) g1 = j->geom[i].n_groups;
        pack_groups(j->ws[i], &j->geom[i], j->dst[i], g0, g1, j->populate);
        if (atomic_fetch_sub(&j->left[i], 1) != 1) continue;
        j->ws[i]->packed = j->dst[i];   /* its last piece: the copy is whole */
        atomic_fetch_add(&j->packed, 1);
        if (j->done) {
            pthread_mutex_lock(&j->mu);
            j->done(j->ws[i], j->ctx);
            pthread_mutex_unlock(&j->mu);
        }
    }
    return NULL;
}

int sd_weights_pack(sd_weight *const *ws, int n, int n_threads, void (*done)(const sd_weight *, void *), void *ctx)
{
    if (n <= 0) return 0;
    pack_job j = {.ws = ws, .n = n, .done = done, .ctx = ctx, .mu = PTHREAD_MUTEX_INITIALIZER};
    j.dst = calloc((size_t)n, sizeof *j.dst);
    j.geom = calloc((size_t)n, sizeof *j.geom);
    j.first = calloc((size_t)n + 1, sizeof *j.first);
    j.per = calloc((size_t)n, sizeof *j.per);
    j.left = calloc((size_t)n, sizeof *j.left);
    if (!j.dst || !j.geom || !j.first || !j.per || !j.left) {
        /* one at a time, as sd_weight_pack does */
        int packed = 0;
        for (int i = 0; i < n; i++)
            if (sd_weight_pack(ws[i]) > 0) {
                packed++;
                if (done) done(ws[i], ctx);
            }
        free(j.dst); free(j.geom); free(j.first); free(j.per); free(j.left);
        return packed;
    }
    j.populate = populate_write_works();
    for (int i = 0; i < n; i++) {
        j.first[i] = j.pieces;
        /* out of memory leaves a matrix unpacked: only slower */
        if (!pack_geom_of(ws[i], &j.geom[i]) || !(j.dst[i] = pack_map(pack_map_bytes(ws[i]), !j.populate))) continue;
        size_t gbytes = (size_t)SD_PACK_ROWS * ws[i]->row_bytes;
        j.per[i] = gbytes >= PACK_PIECE_BYTES ? 1 : (int64_t)(PACK_PIECE_BYTES / gbytes);
        int64_t np = (j.geom[i].n_groups + j.per[i] - 1) / j.per[i];
        atomic_init(&j.left[i], (int)np);
        j.pieces += np;
    }
    j.first[n] = j.pieces;
    atomic_init(&j.next, 0);
    atomic_init(&j.packed, 0);
    enum { MAX_THREADS = 64 };
    pthread_t th[MAX_THREADS];
    int started = 0;
    int64_t most = j.pieces < MAX_THREADS ? j.pieces : MAX_THREADS;
    if (n_threads > most) n_threads = (int)most;
    while (started + 1 < n_threads && !pthread_create(&th[started], NULL, pack_worker, &j)) started++;
    pack_worker(&j);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(j.dst); free(j.geom); free(j.first); free(j.per); free(j.left);
    return atomic_load(&j.packed);
}

size_t sd_pack_act_bytes(int64_t cols, int n_tok)
{
    return (size_t)(cols / 32) * (size_t)n_tok * (sizeof(float) + 2 * sizeof(int32_t));
}

void sd_pack_prep_act(int64_t cols, const void *xq, size_t x_stride, int n_tok, float *xd, int32_t *xs)
{
    int64_t nb = cols / 32;
    for (int t = 0; t < n_tok; t++) {
        const blk_q8_0 *x = (const blk_q8_0 *)((const char *)xq + (size_t)t * x_stride);
        for (int64_t b = 0; b < nb; b++) {
            /* Two plain loops (not s[i / 16]) so the compiler vectorizes them:
             * 47 ns a block the other way, 3 us per 2048 columns. */
            int32_t s0 = 0, s1 = 0;
            for (int i = 0; i < 16; i++) s0 += x[b].qs[i];
            for (int i = 16; i < 32; i++) s1 += x[b].qs[i];
            xd[t * nb + b] = sd_f16_to_f32(x[b].d);
            xs[2 * (t * nb + b)] = s0;
            xs[2 * (t * nb + b) + 1] = s1;
        }
    }
}
