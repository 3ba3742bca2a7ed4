/* Generic transformer operations and the threaded matrix product. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/pack.h"
#include "tensor/types.h"

void sd_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    /* Eight partial sums: one chain of dependent double adds was ~0.8 ns
     * per value, 100 us per layer at a 64-token prefill. */
    double part[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) part[j] += (double)x[i + j] * x[i + j];
    for (; i < n; i++) part[0] += (double)x[i] * x[i];
    double ss = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    float s = 1.0f / sqrtf((float)(ss / n) + eps);
    for (i = 0; i < n; i++) out[i] = x[i] * s * w[i];
}

void sd_softmax(float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - mx); sum += x[i]; }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static void rotate_heads(float *v, int n_heads, int head_dim, int neox, int i, float c, float s)
{
    int half = head_dim / 2, a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    for (int h = 0; h < n_heads; h++) {
        float *hv = v + (size_t)h * head_dim;
        float x0 = hv[a], x1 = hv[b];
        hv[a] = x0 * c - x1 * s;
        hv[b] = x0 * s + x1 * c;
    }
}

void sd_rope(float *q, int n_q, float *k, int n_k, int head_dim, int pos, float base, float scale, int neox,
             const float *freq_factors)
{
    sd_rope_ext(q, n_q, k, n_k, head_dim, pos, base, scale, neox, freq_factors, NULL);
}

/* The pair index at which a frequency turns n_rot times over n_ctx_orig positions. */
static float yarn_corr_dim(int head_dim, int n_ctx_orig, float n_rot, float base)
{
    return (float)head_dim * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

void sd_rope_yarn_init(sd_rope_yarn *y, int head_dim, float base, float factor, int n_ctx_orig, float beta_fast,
                       float beta_slow)
{
    float lo = floorf(yarn_corr_dim(head_dim, n_ctx_orig, beta_fast, base));
    float hi = ceilf(yarn_corr_dim(head_dim, n_ctx_orig, beta_slow, base));
    y->corr_lo = lo > 0 ? lo : 0;
    y->corr_hi = hi < (float)(head_dim - 1) ? hi : (float)(head_dim - 1);
    y->freq_scale = 1.0f / factor;
    y->mscale = 1.0f + 0.1f * logf(factor);
}

void sd_rope_ext(float *q, int n_q, float *k, int n_k, int head_dim, int pos, float base, float scale, int neox,
                 const float *freq_factors, const sd_rope_yarn *yarn)
{
    int half = head_dim / 2;
    float p = yarn ? (float)pos : (float)pos / scale;
    for (int i = 0; i < half; i++) {
        float theta = p * powf(base, -2.0f * (float)i / (float)head_dim), m = 1.0f;
        if (freq_factors) theta /= freq_factors[i];
        if (yarn) {
            float r = ((float)i - yarn->corr_lo) / fmaxf(0.001f, yarn->corr_hi - yarn->corr_lo);
            float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, r));   /* 1: keep the original angle */
            theta = theta * yarn->freq_scale * (1.0f - ramp) + theta * ramp;
            m = yarn->mscale;
        }
        float c = cosf(theta) * m, s = sinf(theta) * m;
        rotate_heads(q, n_q, head_dim, neox, i, c, s);
        rotate_heads(k, n_k, head_dim, neox, i, c, s);
    }
}

/* Where the packed kernels' activation metadata goes: after the encoded
 * rows, 64-byte aligned. */
static size_t act_meta_offset(size_t xq_row, int n_tok) { return (xq_row * (size_t)n_tok + 63) / 64 * 64; }

/* Panels of a packed weight of `type` with `cols` columns (0: not packable). */
static int64_t pack_panels(unsigned type, int64_t cols)
{
    int64_t bv = sd_pack_block_values(type);
    if (!bv) return 0;
    int64_t pb = sd_pack_panel_blocks((int)bv);
    return (cols / bv + pb - 1) / pb;
}

/* Bytes of the packed kernels' metadata beside activations of type act:
 * the Q8_0 kernels read per-block scales and sums there; Q4_K's read
 * its Q8_K activations as they are. */
static size_t meta_bytes(unsigned act, int64_t cols, int n_tok)
{
    return act == SD_TYPE_Q8_0 ? sd_pack_act_bytes(cols, n_tok) : 0;
}

/* Where a decode product's later panels put their partial sums: after the
 * activation metadata, 64-byte aligned. */
static size_t part_offset(unsigned act, size_t xq_row, int64_t cols, int n_tok)
{
    return (act_meta_offset(xq_row, n_tok) + meta_bytes(act, cols, n_tok) + 63) / 64 * 64;
}

size_t sd_matmul_scratch_bytes(unsigned type, long long rows, long long cols, int n_tok)
{
    const sd_type_traits *tr = sd_type_get(type);
    if (!tr) return 0;
    unsigned act = (unsigned)tr->vec_dot_type;
    size_t xq_row = sd_row_bytes(act, cols);
    if (act != SD_TYPE_Q8_0 && !sd_pack_block_values(type)) return xq_row * (size_t)n_tok;
    int64_t np = pack_panels(type, cols);
    return part_offset(act, xq_row, cols, n_tok) + (np > 1 ? (size_t)(np - 1) * (size_t)rows * sizeof(float) : 0);
}

/* Weights run as one job only when all take the same activations. */
static int fusable(const sd_weight *const *w, int n_w)
{
    const sd_type_traits *t0 = sd_type_get(w[0]->type);
    for (int k = 1; k < n_w; k++)
        if (sd_type_get(w[k]->type)->vec_dot_type != t0->vec_dot_type || w[k]->cols != w[0]->cols) return 0;
    return 1;
}

/* Whether a job over these weights carries the packed kernels' metadata. */
static int needs_meta(const sd_weight *const *w, int n_w)
{
    int packed = 0;
    for (int k = 0; k < n_w; k++) packed |= w[k]->packed != NULL;
    return packed && sd_type_get(w[0]->type)->vec_dot_type == SD_TYPE_Q8_0;
}

/* How a product's rows are claimed. Thread i's first claim is fixed, rows
 * [i * first, (i + 1) * first), so the thread can prefetch its start before
 * the run (prefetch_step); the rest go out from a shared counter. At decode
 * a single packed weight of several panels is claimed as (panel, rows)
 * pieces, claim row v being row v % rows of panel v / rows, so each claim is
 * one stream (a claim across all panels restarted the stream once per
 * panel; log entry 20). */
typedef struct {
    int64_t total;              /* claim rows: rows of all weights, or rows x panels */
    int64_t min_chunk;          /* smallest claim in rows, a multiple of SD_PACK_ROWS */
    int64_t first;              /* the size of each thread's fixed first claim */
    int panels;                 /* > 1: claims over (panel, row) of the one packed weight */
} claim_plan;

/* Tile kernels pay off once a weight block is reused by a few tokens. */
#define GEMM_MIN_TOKENS 2

/* Guided: a claim takes 1/(2 * threads) of what is left, down to min_chunk,
 * so there are few claims (one contended atomic each) while the last ones
 * are small and the threads finish within a few microseconds of each other. */
static int64_t claim_size(const claim_plan *c, int64_t b0, int nth)
{
    int64_t n = (c->total - b0) / (2 * nth) / SD_PACK_ROWS * SD_PACK_ROWS;
    return n < c->min_chunk ? c->min_chunk : n;
}

static claim_plan plan_claims(const sd_weight *const *w, int n_w, int n_tok, int nth)
{
    claim_plan c = {0};
    for (int k = 0; k < n_w; k++) c.total += w[k]->rows;
    /* The smallest claim: at prefill a few panels, so the tiles keep their
     * per-call activation setup; at decode ~32 KiB of weights (a couple of
     * microseconds of streaming, against ~0.1 us for the atomic). */
    int64_t mc = n_tok >= GEMM_MIN_TOKENS ? 64 : (int64_t)(32768 / w[0]->row_bytes) / SD_PACK_ROWS * SD_PACK_ROWS;
    c.min_chunk = mc < SD_PACK_ROWS ? SD_PACK_ROWS : mc;
    int64_t np = n_w == 1 && n_tok == 1 && w[0]->packed ? pack_panels(w[0]->type, w[0]->cols) : 0;
    if (np > 1) {
        c.panels = (int)np;
        c.total = w[0]->rows * np;
    }
    c.first = claim_size(&c, 0, nth);
    return c;
}

/* Several weights that read the same activations (Q, K, V; gate, up) run as
 * one job over their concatenated rows: one activation encoding, one pool
 * run, and the threads split the total so they finish together. */
typedef struct {
    const sd_weight *const *w;
    float *const *out;
    int n_w;
    claim_plan c;
    const void *xq;
    size_t xq_row;
    const float *xd;            /* packed kernels' activation metadata, or NULL */
    const int32_t *xs;
    int n_tok;
    int nth;                    /* threads sharing the job */
    const int *first, *count;   /* set: weight k takes its own activation rows
                                   [first[k], first[k] + count[k]) (sd_matmul_grouped) */
    _Atomic int64_t next;       /* first row not yet claimed */
    float *part;                /* the sums of panels 1.. (panel 0 goes to out) */
} matmul_job;

/* Tokens per pass when a claim cuts a packed group (a stack buffer). */
#define PART_TOKENS 64

/* Rows r0..r1 of a packed weight: whole groups straight into out, a group
 * cut by a claim boundary through a small buffer. */
static void packed_rows(const matmul_job *j, const sd_weight *w, float *out, int64_t r0, int64_t r1)
{
    sd_packed_fn pk = sd_kernel_packed(w->type);
    int64_t n_groups = w->rows / SD_PACK_ROWS;
    while (r0 < r1) {
        int64_t g = r0 / SD_PACK_ROWS, gend = (g + 1) * SD_PACK_ROWS;
        if (r0 % SD_PACK_ROWS == 0 && gend <= r1) {
            int ng = (int)((r1 - r0) / SD_PACK_ROWS);
            pk(w->cols, w->packed, n_groups, g, ng, j->xq, j->xq_row, j->xd, j->xs, j->n_tok, out + r0,
               (size_t)w->rows);
            r0 += (int64_t)ng * SD_PACK_ROWS;
            continue;
        }
        float tmp[PART_TOKENS * SD_PACK_ROWS];
        int64_t e = gend < r1 ? gend : r1;
        for (int t0 = 0; t0 < j->n_tok; t0 += PART_TOKENS) {
            int nt = j->n_tok - t0 < PART_TOKENS ? j->n_tok - t0 : PART_TOKENS;
            size_t nb = (size_t)(w->cols / 32);
            pk(w->cols, w->packed, n_groups, g, 1, (const char *)j->xq + (size_t)t0 * j->xq_row, j->xq_row,
               j->xd ? j->xd + t0 * nb : NULL, j->xs ? j->xs + 2 * t0 * nb : NULL, nt, tmp, SD_PACK_ROWS);
            for (int t = 0; t < nt; t++)
                for (int64_t r = r0; r < e; r++)
                    out[(size_t)(t0 + t) * w->rows + r] = tmp[t * SD_PACK_ROWS + r - g * SD_PACK_ROWS];
        }
        r0 = e;
    }
}

static void matmul_rows(const matmul_job *j, const sd_weight *w, float *out, int64_t r0, int64_t r1)
{
    if (w->packed) {
        packed_rows(j, w, out, r0, r1);
        if (w->scale != 1.0f)
            for (int t = 0; t < j->n_tok; t++)
                for (int64_t r = r0; r < r1; r++) out[(size_t)t * w->rows + r] *= w->scale;
        return;
    }
    sd_gemm_fn gemm = j->n_tok >= GEMM_MIN_TOKENS ? sd_kernel_gemm(w->type) : NULL;
    const char *base = (const char *)w->data;
    if (gemm) {
        gemm(w->cols, base + (size_t)r0 * w->row_bytes, w->row_bytes, (int)(r1 - r0), j->xq, j->xq_row, j->n_tok,
             out + r0, (size_t)w->rows);
        if (w->scale != 1.0f)
            for (int t = 0; t < j->n_tok; t++)
                for (int64_t r = r0; r < r1; r++) out[(size_t)t * w->rows + r] *= w->scale;
        return;
    }
    sd_vec_dot_fn dot = sd_kernel_vec_dot(w->type);
    for (int64_t r = r0; r < r1; r++) {
        const char *row = base + (size_t)r * w->row_bytes;
        for (int t = 0; t < j->n_tok; t++)
            out[(size_t)t * w->rows + r] = w->scale * dot(w->cols, row, (const char *)j->xq + (size_t)t * j->xq_row);
    }
}

/* Claims rows [b0, *b1) after the fixed first claims; -1 when none are left. */
static int64_t claim(matmul_job *j, int64_t *b1)
{
    int64_t b0 = atomic_load_explicit(&j->next, memory_order_relaxed);
    for (;;) {
        if (b0 >= j->c.total) return -1;
        int64_t n = claim_size(&j->c, b0, j->nth);
        if (atomic_compare_exchange_weak_explicit(&j->next, &b0, b0 + n, memory_order_relaxed, memory_order_relaxed)) {
            *b1 = b0 + n < j->c.total ? b0 + n : j->c.total;
            return b0;
        }
    }
}

/* Panel p of a packed weight as a weight of its own (a packed matrix of the
 * panel's width); *xb: where it starts in the activations, in 32 columns. */
static sd_weight panel_view(const sd_weight *w, int64_t p, int64_t *xb)
{
    int64_t bv = sd_pack_block_values(w->type), nb = w->cols / bv, pb = sd_pack_panel_blocks((int)bv);
    int64_t p0 = p * pb, pw = nb - p0 < pb ? nb - p0 : pb;
    size_t block_bytes = w->row_bytes / (size_t)nb;
    sd_weight view = *w;
    view.cols = pw * bv;
    view.row_bytes = (size_t)pw * block_bytes;
    view.packed = (char *)w->packed + sd_pack_tile_offset(w->rows / SD_PACK_ROWS, nb, pb, 0, p0) * SD_PACK_ROWS *
                                          block_bytes;
    *xb = p0 * bv / 32;
    return view;
}

/* Panel p's rows r0..r1 of the one packed weight: panel 0 writes the
 * output rows, later panels their partial sums. */
static void panel_rows(const matmul_job *j, int64_t p, int64_t r0, int64_t r1)
{
    const sd_weight *w = j->w[0];
    int64_t xb;
    sd_weight view = panel_view(w, p, &xb);
    matmul_job jv = *j;
    jv.xq = (const char *)j->xq + sd_row_bytes((unsigned)sd_type_get(w->type)->vec_dot_type, xb * 32);
    if (j->xd) {
        jv.xd = j->xd + xb;
        jv.xs = j->xs + 2 * xb;
    }
    matmul_rows(&jv, &view, p == 0 ? j->out[0] : j->part + (size_t)(p - 1) * w->rows, r0, r1);
}

/* Claim rows [b0, b1): of the one weight's panels, or of the concatenated weights. */
static void claim_rows(const matmul_job *j, int64_t b0, int64_t b1)
{
    if (j->c.panels > 1) {
        int64_t rows = j->w[0]->rows;
        for (int64_t v = b0; v < b1;) {
            int64_t p = v / rows, r0 = v % rows, r1 = r0 + (b1 - v) < rows ? r0 + (b1 - v) : rows;
            panel_rows(j, p, r0, r1);
            v += r1 - r0;
        }
        return;
    }
    int64_t off = 0;
    for (int k = 0; k < j->n_w && off < b1; k++) {
        const sd_weight *w = j->w[k];
        int64_t lo = b0 - off, hi = b1 - off;
        if (lo < w->rows && hi > 0 && j->first) {
            matmul_job jk = *j;   /* weight k's own activation rows */
            size_t nb = (size_t)(w->cols / 32), t0 = (size_t)j->first[k];
            jk.xq = (const char *)j->xq + t0 * j->xq_row;
            jk.n_tok = j->count[k];
            if (j->xd) {
                jk.xd = j->xd + t0 * nb;
                jk.xs = j->xs + 2 * t0 * nb;
            }
            matmul_rows(&jk, w, j->out[k], lo > 0 ? lo : 0, hi < w->rows ? hi : w->rows);
        } else if (lo < w->rows && hi > 0) {
            matmul_rows(j, w, j->out[k], lo > 0 ? lo : 0, hi < w->rows ? hi : w->rows);
        }
        off += w->rows;
    }
}

/* Each thread does its fixed first claim, then claims chunks until none are
 * left, so a thread the OS preempts does not hold the others back; chunk
 * boundaries fall on whole groups of packed rows and tile panels. */
static void matmul_band(void *ctx, int i, int n)
{
    matmul_job *j = ctx;
    (void)n;
    int64_t b0 = (int64_t)i * j->c.first, b1;
    if (b0 < j->c.total) claim_rows(j, b0, b0 + j->c.first < j->c.total ? b0 + j->c.first : j->c.total);
    while ((b0 = claim(j, &b1)) >= 0) claim_rows(j, b0, b1);
}

/* The weights of the product after this one, for prefetching. */
#define PREFETCH_WEIGHTS 3
typedef struct {
    const sd_weight *w[PREFETCH_WEIGHTS];
    int n_w, n_tok;
} prefetch_ctx;

/* Up to this much of a thread's next first claim is prefetched, this much
 * per step: about L2-sized, and a step short enough (~0.15 us) that the
 * calling thread stops prefetching soon after the run's last worker is done. */
#define PREFETCH_BYTES (256 * 1024)
#define PREFETCH_STEP 4096

/* Where claim rows [v, v1) begin in memory, and how many bytes of them follow
 * contiguously from there (those of the first weight, or the first panel). */
static const char *claim_bytes(const sd_weight *const *w, int n_w, const claim_plan *c, int64_t v, int64_t v1,
                               size_t *len)
{
    int64_t p = 0;
    const sd_weight *wk = w[0];
    if (c->panels > 1) {
        p = v / wk->rows;
        v -= p * wk->rows;
        v1 = v1 - p * wk->rows < wk->rows ? v1 - p * wk->rows : wk->rows;
    } else {
        for (int k = 0; k + 1 < n_w && v >= w[k]->rows; k++) {
            v -= w[k]->rows;
            v1 -= w[k]->rows;
            wk = w[k + 1];
        }
        v1 = v1 < wk->rows ? v1 : wk->rows;
    }
    if (!wk->packed) {
        *len = (size_t)(v1 - v) * wk->row_bytes;
        return (const char *)wk->data + (size_t)v * wk->row_bytes;
    }
    int64_t xb;
    sd_weight view = panel_view(wk, p, &xb);   /* rows of a panel lie in one piece */
    *len = (size_t)(v1 - v) * view.row_bytes;
    return (const char *)view.packed + (size_t)v * view.row_bytes;
}

const void *sd_matmul_first_claim(const sd_weight *const *w, int n_w, int n_tok, int nth, int i, size_t *len)
{
    claim_plan c = plan_claims(w, n_w, n_tok, nth);
    int64_t v = (int64_t)i * c.first;
    *len = 0;
    if (v >= c.total) return NULL;
    return claim_bytes(w, n_w, &c, v, v + c.first < c.total ? v + c.first : c.total, len);
}

/* Idle work at decode: prefetch the start of this thread's first claim in
 * the next product, so memory keeps streaming while the threads wait for
 * each other and the caller works alone (norms, attention, encoding), and
 * the next product starts from cache instead of restarting a stream. */
static int prefetch_step(const void *ctx, int i, int n, int step)
{
    const prefetch_ctx *pc = ctx;
    size_t len, off = (size_t)step * PREFETCH_STEP;
    const char *a = sd_matmul_first_claim(pc->w, pc->n_w, pc->n_tok, n, i, &len);
    if (len > PREFETCH_BYTES) len = PREFETCH_BYTES;
    size_t end = off + PREFETCH_STEP < len ? off + PREFETCH_STEP : len;
    for (size_t o = off; o < end; o += 64) __builtin_prefetch(a + o, 0, 2);
    return end < len;
}

/* The activations in the weights' vec_dot_type, and the packed kernels'
 * per-block metadata beside them, for tokens [t0, t1). */
typedef struct {
    const float *x;
    int64_t cols;
    sd_from_float_fn enc;       /* NULL: F32 activations are used as they are */
    char *xq;
    size_t xq_row;
    float *xd;                  /* NULL unless a weight is packed */
    int32_t *xs;
    int n_tok;
} encode_job;

static void encode_rows(const encode_job *e, int t0, int t1)
{
    if (!e->enc || t0 >= t1) return;
    for (int t = t0; t < t1; t++) e->enc(e->x + (size_t)t * e->cols, e->xq + (size_t)t * e->xq_row, e->cols);
    size_t nb = (size_t)(e->cols / 32);
    if (e->xd)
        sd_pack_prep_act(e->cols, e->xq + (size_t)t0 * e->xq_row, e->xq_row, t1 - t0, e->xd + (size_t)t0 * nb,
                         e->xs + 2 * (size_t)t0 * nb);
}

static void encode_band(void *ctx, int i, int n)
{
    const encode_job *e = ctx;
    encode_rows(e, (int)((int64_t)e->n_tok * i / n), (int)((int64_t)e->n_tok * (i + 1) / n));
}

/* Below this many tokens per thread the encoding stays on the calling
 * thread: a pool run costs a few microseconds, a token's encoding less. At
 * a 64-token prefill it was 70-110 us per product on one thread. */
#define PARALLEL_ENCODE_TOKENS 4

/* One pool run of n_w fused products over n_tok shared activation rows, or
 * (first, count set) each weight over its own rows of the n_rows encoded. */
static void matmul_run(sd_pool *pool, const sd_weight *const *w, int n_w, const float *x, int n_rows, int n_tok,
                       const int *row0, const int *count, float *const *out, void *scratch,
                       const sd_weight *const *next, int n_next)
{
    const sd_type_traits *t0 = sd_type_get(w[0]->type);
    matmul_job j = {.w = w, .out = out, .n_w = n_w, .n_tok = n_tok, .nth = sd_pool_size(pool), .first = row0,
                    .count = count};
    j.c = plan_claims(w, n_w, n_tok, j.nth);
    encode_job e = {x, w[0]->cols, NULL, scratch, sd_row_bytes((unsigned)t0->vec_dot_type, w[0]->cols), NULL, NULL,
                    n_rows};
    if (t0->vec_dot_type != SD_TYPE_F32) e.enc = sd_kernel_quantize_act((unsigned)t0->vec_dot_type);
    if (needs_meta(w, n_w)) {
        e.xd = (float *)((char *)scratch + act_meta_offset(e.xq_row, n_rows));
        e.xs = (int32_t *)(e.xd + (size_t)(w[0]->cols / 32) * n_rows);
    }
    if (e.enc && j.nth > 1 && n_rows >= PARALLEL_ENCODE_TOKENS * j.nth) sd_pool_run(pool, encode_band, &e);
    else encode_rows(&e, 0, n_rows);
    j.xq = e.enc ? (const void *)e.xq : (const void *)x;
    j.xq_row = e.xq_row;
    j.xd = e.xd;
    j.xs = e.xs;
    if (j.c.panels > 1)
        j.part = (float *)((char *)scratch + part_offset((unsigned)t0->vec_dot_type, e.xq_row, w[0]->cols, n_tok));
    int64_t claimed = (int64_t)j.nth * j.c.first;
    atomic_init(&j.next, claimed < j.c.total ? claimed : j.c.total);
    /* Prefetching pays at decode, where the products stream from memory; the
     * next product's weights that fuse are the ones its first claims read. */
    int hint = next && n_next >= 1 && n_next <= PREFETCH_WEIGHTS;
    prefetch_ctx pc = {.n_w = hint ? (fusable(next, n_next) ? n_next : 1) : 0, .n_tok = n_tok};
    for (int k = 0; k < pc.n_w; k++) pc.w[k] = next[k];
    if (n_tok == 1 && pc.n_w) sd_pool_run_idle(pool, matmul_band, &j, prefetch_step, &pc, sizeof pc);
    else sd_pool_run(pool, matmul_band, &j);
    for (int64_t p = 1; p < j.c.panels; p++)
        for (int64_t r = 0; r < w[0]->rows; r++) out[0][r] += j.part[(p - 1) * w[0]->rows + r];
}

void sd_matmul_multi(sd_pool *pool, const sd_weight *const *w, int n_w, const float *x, int n_tok, float *const *out,
                     void *scratch, const sd_weight *const *next, int n_next)
{
    if (!fusable(w, n_w)) {
        for (int i = 0; i < n_w; i++)
            sd_matmul_multi(pool, &w[i], 1, x, n_tok, &out[i], scratch, i + 1 < n_w ? &w[i + 1] : next,
                            i + 1 < n_w ? 1 : n_next);
        return;
    }
    matmul_run(pool, w, n_w, x, n_tok, n_tok, NULL, NULL, out, scratch, next, n_next);
}

void sd_matmul_grouped(sd_pool *pool, const sd_weight *const *w, int n_w, const float *x, int n_rows,
                       const int *first, const int *count, float *const *out, void *scratch)
{
    if (n_w < 1) return;
    if (n_w == 1 || !fusable(w, n_w)) {   /* (one weight: sd_matmul_multi's panel claims) */
        for (int k = 0; k < n_w; k++)
            sd_matmul_multi(pool, &w[k], 1, x + (size_t)first[k] * w[0]->cols, count[k], &out[k], scratch, NULL, 0);
        return;
    }
    /* Claims sized as at prefill once a weight has several tokens. */
    int most = 1;
    for (int k = 0; k < n_w; k++) most = count[k] > most ? count[k] : most;
    matmul_run(pool, w, n_w, x, n_rows, most, first, count, out, scratch, NULL, 0);
}

void sd_matmul_each(sd_pool *pool, const sd_weight *const *w, int n_w, const float *x, float *const *out,
                    void *scratch)
{
    enum { MAX_EACH = 64 };
    int first[MAX_EACH], count[MAX_EACH];
    for (int k0 = 0; k0 < n_w; k0 += MAX_EACH) {
        int nk = n_w - k0 < MAX_EACH ? n_w - k0 : MAX_EACH;
        for (int k = 0; k < nk; k++) { first[k] = k; count[k] = 1; }
        sd_matmul_grouped(pool, w + k0, nk, x + (size_t)k0 * w[0]->cols, nk, first, count, out + k0, scratch);
    }
}

void sd_matmul(sd_pool *pool, const sd_weight *w, const float *x, int n_tok, float *out, void *scratch)
{
    sd_matmul_multi(pool, &w, 1, x, n_tok, &out, scratch, NULL, 0);
}
