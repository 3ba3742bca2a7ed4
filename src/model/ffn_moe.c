/* The mixture-of-experts FFN of one layer over a batch of tokens.
 *
 * Decode (one token): the k routed experts' gate and up matrices run as one
 * fused product over the same input, then each chosen expert's down matrix:
 * only those k experts' rows are read. Prefill: the batch's tokens are
 * grouped by expert, and each expert that any token chose runs one product
 * over its tokens (so its weights are read once per batch); experts no
 * token chose are never touched. The steps around the products (gathering
 * the inputs, the activation, adding the outputs back) run on the pool's
 * threads too: on one thread they were ~10 % of a 512-token pass. */
#include <math.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "model/moe.h"

/* Scratch layout in floats (B = max_tok tokens, S = B x k (token, expert) slots). */
typedef struct {
    const sd_weight **wl;   /* 2 x n_expert: the weights of one grouped product */
    float **ol;             /* 2 x n_expert: where each writes */
    int *first, *count;     /* 2 x n_expert: each one's slot rows */
    float *logits;          /* B x n_expert router outputs */
    float *wsel;            /* S routing weights of the chosen experts */
    float *g, *u;           /* S x n_ff: gate and up outputs, slots grouped by expert */
    float *xg;              /* S x n_embd: the slots' inputs, grouped by expert */
    float *y;               /* S x n_embd: expert outputs */
    int32_t *sel;           /* S chosen experts */
    int32_t *ends;          /* n_expert: where each expert's slots end */
    int32_t *slots;         /* S: token * k + j, grouped by expert */
    int32_t *pos;           /* S: where slot token * k + j lies in that order */
    int32_t *rexp;          /* S: the expert of each grouped row */
} moe_scratch;

static size_t rows_r(int max_tok, int k) { return (size_t)max_tok * (size_t)k; }

/* Carves the scratch at base into sc (base NULL: only counts). Returns its floats. */
static size_t layout(const sd_hparams *hp, int max_tok, float *base, moe_scratch *sc)
{
    size_t B = (size_t)max_tok, E = (size_t)hp->n_expert, K = (size_t)hp->n_expert_used, F = (size_t)hp->n_ff_exp;
    size_t D = (size_t)hp->n_embd, R = rows_r(max_tok, hp->n_expert_used), o = 0;
    (void)K;
    size_t P = sizeof(void *) / sizeof(float);   /* floats per pointer; the pointers come first (aligned) */
#define TAKE(field, count) do { if (base) sc->field = (void *)(base + o); o += (count); } while (0)
    TAKE(wl, 2 * E * P);
    TAKE(ol, 2 * E * P);
    TAKE(first, 2 * E);    /* int regions: 4 bytes each, like the floats */
    TAKE(count, 2 * E);
    TAKE(logits, B * E);
    TAKE(wsel, R);
    TAKE(g, R * F);
    TAKE(u, R * F);
    TAKE(xg, R * D);
    TAKE(y, R * D);
    TAKE(sel, R);
    TAKE(ends, E);
    TAKE(slots, R);
    TAKE(pos, R);
    TAKE(rexp, R);
#undef TAKE
    return o;
}

size_t sd_moe_scratch_floats(const sd_model *m, int max_tok)
{
    return m->hp.n_expert ? layout(&m->hp, max_tok, NULL, NULL) : 0;
}

size_t sd_moe_xq_bytes(const sd_model *m, int max_tok)
{
    size_t mx = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const sd_moe *moe = m->layers[il].moe;
        if (!moe) continue;
        int r = (int)rows_r(max_tok, moe->n_used);
        const sd_weight *w[3] = {&moe->router, &moe->gate[0], &moe->down[0]};
        for (int i = 0; i < 3; i++) {
            size_t b = sd_matmul_scratch_bytes(w[i]->type, w[i]->rows, w[i]->cols, r);
            mx = b > mx ? b : mx;
        }
    }
    return mx;
}

/* The router's product when it is F32 (as every MoE file has it): 4 tokens
 * at a time share each weight row's loads, each dot product in 16 float
 * lanes summed in a fixed order at the end, rows split over the pool's
 * threads. Every (row, token) runs the same arithmetic at any batch size,
 * so routing does not depend on the batch. It replaced sd_matmul's F32 dot
 * product (one chain of double adds: 7-9 % of a 512-token prefill). */
typedef struct {
    const sd_weight *w;
    const float *x;
    float *out;
    int n;
} router_job;

#define ROUTER_TOK 4
#define ROUTER_LANES 16

/* 16 float lanes as one value (GCC/Clang vector extensions), so that a
 * quad's 4 x 16 sums stay in registers. No contraction in ISO C mode: a
 * multiply and an add, each rounded, the arithmetic of the scalar lanes
 * this replaced (the same routing, bit for bit). */
typedef float router_v16 __attribute__((vector_size(ROUTER_LANES * sizeof(float))));

static inline router_v16 router_load(const float *p)
{
    router_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Token t's dot product with row a: its lanes acc, the columns past the
 * last whole 16 added lane by lane, then the lanes folded in halves. */
static float router_fold(router_v16 acc, const float *a, const float *x, int64_t c, int64_t cols)
{
    float v[ROUTER_LANES];
    memcpy(v, &acc, sizeof v);
    for (int64_t q = c; q < cols; q++) v[q - c] += a[q] * x[q];
    for (int h = ROUTER_LANES / 2; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) v[l] += v[l + h];
    return v[0];
}

static void router_rows(void *ctx, int i, int nth)
{
    const router_job *j = ctx;
    const sd_weight *w = j->w;
    int64_t cols = w->cols, r0 = w->rows * i / nth, r1 = w->rows * (i + 1) / nth;
    int64_t whole = cols / ROUTER_LANES * ROUTER_LANES;
    for (int t0 = 0; t0 < j->n; t0 += ROUTER_TOK) {
        int nt = j->n - t0 < ROUTER_TOK ? j->n - t0 : ROUTER_TOK;
        const float *x = j->x + (size_t)t0 * cols;
        for (int64_t r = r0; r < r1; r++) {
            const float *a = (const float *)w->data + r * cols;
            router_v16 acc[ROUTER_TOK] = {{0}};
            if (nt == ROUTER_TOK) {
                for (int64_t c = 0; c < whole; c += ROUTER_LANES) {
                    router_v16 av = router_load(a + c);
                    for (int t = 0; t < ROUTER_TOK; t++) acc[t] += av * router_load(x + (size_t)t * cols + c);
                }
            } else {
                for (int64_t c = 0; c < whole; c += ROUTER_LANES) {
                    router_v16 av = router_load(a + c);
                    for (int t = 0; t < nt; t++) acc[t] += av * router_load(x + (size_t)t * cols + c);
                }
            }
            for (int t = 0; t < nt; t++)
                j->out[(size_t)(t0 + t) * w->rows + r] = w->scale * router_fold(acc[t], a, x + (size_t)t * cols, whole, cols);
        }
    }
}

static void router_logits(sd_fwd *f, const sd_weight *w, int n, float *out)
{
    if (w->type != SD_TYPE_F32 || w->packed) {
        sd_matmul(f->pool, w, f->xb, n, out, f->xq);
        return;
    }
    router_job j = {w, f->xb, out, n};
    sd_pool_run(f->pool, router_rows, &j);
}

/* The k best of n scores, best first (ties: the lower index, as a stable sort). */
static void top_k(const float *v, int n, int k, int32_t *out)
{
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            int taken = 0;
            for (int q = 0; q < j; q++) taken |= out[q] == i;
            if (!taken && (best < 0 || v[i] > v[best])) best = i;
        }
        out[j] = best;
    }
}

/* Chooses token t's experts and their weights from its router logits. */
static void route(const sd_moe *moe, float *logit, int32_t *sel, float *w)
{
    int n = moe->n_expert, k = moe->n_used;
    if (moe->router_b)
        for (int i = 0; i < n; i++) logit[i] += moe->router_b[i];
    if (moe->gating == SD_MOE_TOPK_SOFTMAX) {
        top_k(logit, n, k, sel);
        float mx = logit[sel[0]];
        double sum = 0;
        for (int j = 0; j < k; j++) { w[j] = expf(logit[sel[j]] - mx); sum += w[j]; }
        for (int j = 0; j < k; j++) w[j] = (float)(w[j] / sum);
        return;
    }
    sd_softmax(logit, n);
    top_k(logit, n, k, sel);
    double sum = 0;
    for (int j = 0; j < k; j++) sum += logit[sel[j]];
    for (int j = 0; j < k; j++) w[j] = (float)(logit[sel[j]] / sum);
}

/* gate/up biases, then the activation, into g (rows x n_ff). */
static void activate(const sd_moe *moe, int expert, float *g, float *u, int rows)
{
    int f = moe->n_ff;
    for (int r = 0; r < rows; r++) {
        float *gr = g + (size_t)r * f, *ur = u + (size_t)r * f;
        if (moe->b_gate) {
            const float *bg = moe->b_gate + (size_t)expert * f, *bu = moe->b_up + (size_t)expert * f;
            for (int i = 0; i < f; i++) { gr[i] += bg[i]; ur[i] += bu[i]; }
        }
        if (moe->act == SD_MOE_SILU) {
            sd_kernel_swiglu()(gr, ur, f);
            continue;
        }
        for (int i = 0; i < f; i++) {
            float x = fminf(gr[i], 7.0f), y = fminf(fmaxf(ur[i], -7.0f), 7.0f);
            gr[i] = x / (1.0f + expf(-1.702f * x)) * (y + 1.0f);
        }
    }
}

/* x += w * (y + down bias of expert). */
static void add_expert(const sd_moe *moe, int expert, float *x, const float *y, float w, int d)
{
    const float *b = moe->b_down ? moe->b_down + (size_t)expert * d : NULL;
    for (int i = 0; i < d; i++) x[i] += w * (y[i] + (b ? b[i] : 0.0f));
}

/* The steps around the grouped products, split over the pool's threads:
 * gathering the slots' inputs (rows), the activation (rows), adding the
 * expert outputs into each token's state (tokens). */
typedef struct {
    sd_fwd *f;
    const sd_moe *moe;
    const moe_scratch *sc;
    int rows, n, k, d, ff;
} moe_job;

static void gather_band(void *ctx, int i, int nth)
{
    const moe_job *j = ctx;
    for (int r = (int)((int64_t)j->rows * i / nth); r < (int)((int64_t)j->rows * (i + 1) / nth); r++)
        memcpy(j->sc->xg + (size_t)r * j->d, j->f->xb + (size_t)(j->sc->slots[r] / j->k) * j->d,
               (size_t)j->d * sizeof(float));
}

static void activate_band(void *ctx, int i, int nth)
{
    const moe_job *j = ctx;
    for (int r = (int)((int64_t)j->rows * i / nth); r < (int)((int64_t)j->rows * (i + 1) / nth); r++)
        activate(j->moe, j->sc->rexp[r], j->sc->g + (size_t)r * j->ff, j->sc->u + (size_t)r * j->ff, 1);
}

/* Token t's k outputs in the order of their rows, i.e. of their experts,
 * as a loop over the experts added them. */
static void scatter_band(void *ctx, int i, int nth)
{
    const moe_job *j = ctx;
    const moe_scratch *sc = j->sc;
    for (int t = (int)((int64_t)j->n * i / nth); t < (int)((int64_t)j->n * (i + 1) / nth); t++) {
        int32_t p[SD_MOE_MAX_USED];
        for (int q = 0; q < j->k; q++) {
            int32_t v = sc->pos[t * j->k + q];
            int z = q;
            for (; z > 0 && p[z - 1] > v; z--) p[z] = p[z - 1];
            p[z] = v;
        }
        for (int q = 0; q < j->k; q++)
            add_expert(j->moe, sc->rexp[p[q]], j->f->x + (size_t)t * j->d, sc->y + (size_t)p[q] * j->d,
                       sc->wsel[sc->slots[p[q]]], j->d);
    }
}

/* Below this many slots (a few tokens: batched decode) a step stays on the
 * calling thread: a pool run costs a few microseconds, more than the step. */
#define MOE_POOL_SLOTS 64

static void moe_step(sd_fwd *f, sd_pool_fn fn, moe_job *j)
{
    if (j->rows >= MOE_POOL_SLOTS) sd_pool_run(f->pool, fn, j);
    else fn(j, 0, 1);
}

void sd_moe_ffn(sd_fwd *f, int il, int n)
{
    const sd_hparams *hp = &f->m->hp;
    const sd_moe *moe = f->m->layers[il].moe;
    int k = moe->n_used, d = hp->n_embd, ff = moe->n_ff;
    moe_scratch sc = {0};
    layout(hp, f->max_tok, f->moe, &sc);

    router_logits(f, &moe->router, n, sc.logits);
    for (int t = 0; t < n; t++) {
        route(moe, sc.logits + (size_t)t * moe->n_expert, sc.sel + (size_t)t * k, sc.wsel + (size_t)t * k);
        memcpy(f->moe_ids + ((size_t)t * hp->n_layer + il) * k, sc.sel + (size_t)t * k, (size_t)k * sizeof(int32_t));
    }
    f->moe_n = n;

    int nth = sd_pool_size(f->pool);
    if (n == 1) {
        sd_moe_prepare(f->m, f->m->layers[il].moe, sc.sel, k, nth);
        /* The chosen experts' gate and up rows in one pool run over the same input. */
        const sd_weight *w[2 * SD_MOE_MAX_USED];
        float *out[2 * SD_MOE_MAX_USED];
        for (int j = 0; j < k; j++) {
            w[2 * j] = &moe->gate[sc.sel[j]];
            w[2 * j + 1] = &moe->up[sc.sel[j]];
            out[2 * j] = sc.g + (size_t)j * ff;
            out[2 * j + 1] = sc.u + (size_t)j * ff;
        }
        sd_matmul_multi(f->pool, w, 2 * k, f->xb, 1, out, f->xq, NULL, 0);
        /* Then each chosen expert's down rows on its own hidden state, again one pool run. */
        for (int j = 0; j < k; j++) {
            activate(moe, sc.sel[j], sc.g + (size_t)j * ff, sc.u + (size_t)j * ff, 1);
            w[j] = &moe->down[sc.sel[j]];
            out[j] = sc.y + (size_t)j * d;
        }
        sd_matmul_each(f->pool, w, k, sc.g, out, f->xq);
        for (int j = 0; j < k; j++) add_expert(moe, sc.sel[j], f->x, sc.y + (size_t)j * d, sc.wsel[j], d);
        return;
    }

    /* Group the batch's (token, slot) pairs by expert: a counting sort. */
    memset(sc.ends, 0, (size_t)moe->n_expert * sizeof *sc.ends);
    for (int i = 0; i < n * k; i++) sc.ends[sc.sel[i]]++;
    int32_t start = 0;
    for (int e = 0; e < moe->n_expert; e++) { int32_t c = sc.ends[e]; sc.ends[e] = start; start += c; }
    for (int i = 0; i < n * k; i++) {
        int32_t r = sc.ends[sc.sel[i]]++;   /* ends[e]: now e's end */
        sc.slots[r] = i;
        sc.pos[i] = r;
        sc.rexp[r] = sc.sel[i];
    }
    /* The active experts (sel is free now), and their slots' inputs gathered in order. */
    int na = 0;
    for (int e = 0, a = 0; e < moe->n_expert; a = sc.ends[e], e++)
        if (sc.ends[e] > a) sc.sel[na++] = e;
    moe_job job = {f, moe, &sc, n * k, n, k, d, ff};
    moe_step(f, gather_band, &job);
    sd_moe_prepare(f->m, f->m->layers[il].moe, sc.sel, na, nth);
    /* Every active expert's gate and up over its own slots: one pool run. */
    for (int i = 0; i < na; i++) {
        int e = sc.sel[i], a = e ? sc.ends[e - 1] : 0, c = sc.ends[e] - a;
        sc.wl[2 * i] = &moe->gate[e];
        sc.wl[2 * i + 1] = &moe->up[e];
        sc.ol[2 * i] = sc.g + (size_t)a * ff;
        sc.ol[2 * i + 1] = sc.u + (size_t)a * ff;
        sc.first[2 * i] = sc.first[2 * i + 1] = a;
        sc.count[2 * i] = sc.count[2 * i + 1] = c;
    }
    sd_matmul_grouped(f->pool, sc.wl, 2 * na, sc.xg, n * k, sc.first, sc.count, sc.ol, f->xq);
    /* Then every active expert's down over its slots' hidden states: one more. */
    moe_step(f, activate_band, &job);
    for (int i = 0; i < na; i++) {
        int e = sc.sel[i], a = e ? sc.ends[e - 1] : 0, c = sc.ends[e] - a;
        sc.wl[i] = &moe->down[e];
        sc.ol[i] = sc.y + (size_t)a * d;
        sc.first[i] = a;
        sc.count[i] = c;
    }
    sd_matmul_grouped(f->pool, sc.wl, na, sc.g, n * k, sc.first, sc.count, sc.ol, f->xq);
    moe_step(f, scatter_band, &job);
}

const int32_t *sd_moe_ids(const sd_fwd *f, int *n_tok)
{
    if (n_tok) *n_tok = f->moe_n;
    return f->moe_ids;
}
