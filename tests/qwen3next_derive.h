/* An independent float64 forward pass of qwen3next files, written from the
 * architecture's definition (Qwen3-Next's gated attention, gated DeltaNet
 * recurrence and shared expert, with the reference fork's choices: L2 norm
 * x / max(|x|, eps), value head h on key head h / (value heads / key heads),
 * beta and alpha grouped per key head in ssm_ba), reading only the GGUF
 * tensors: no model/ or kernels/ code. Shared by test_qwen3next.c and
 * test_qwen3next_ref.c. */
#ifndef SD_TESTS_QWEN3NEXT_DERIVE_H
#define SD_TESTS_QWEN3NEXT_DERIVE_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <unistd.h>

#include "showdown.h"
#include "gguf/gguf.h"
#include "tensor/types.h"
#include "common.h"
#include "f64_tensors.h"

#define MAXK 8

typedef struct {
    gguf_file *g;
    int e, nl, nh, nkv, hd, n_rot, ne, k, ff, nv, interval;
    int d_conv, dk, hk, hv, dv;   /* conv taps, key head size, key heads, value heads, value head size */
    double eps, base;
    f64_tensors t;
} qderiv;

static inline const double *W(qderiv *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const double *w = f64_tensor_v(&d->t, d->g, fmt, ap);
    va_end(ap);
    return w;
}

static inline const double *need(qderiv *d, const char *name, int l)
{
    const double *w = W(d, name, l);
    cr_assert_not_null(w, "missing %s of layer %d", name, l);
    return w;
}

static inline int u32(qderiv *d, const char *sfx, int def)
{
    char key[96], err[SD_ERR_LEN];
    uint32_t v = (uint32_t)def;
    snprintf(key, sizeof key, "qwen3next.%s", sfx);
    gguf_get_u32(d->g, key, &v, err);
    return (int)v;
}

static inline void qd_open(qderiv *d, const char *path)
{
    char err[SD_ERR_LEN];
    memset(d, 0, sizeof *d);
    cr_assert_eq(gguf_open(path, &d->g, err), 0, "%s", err);
    d->e = u32(d, "embedding_length", 0);
    d->nl = u32(d, "block_count", 0);
    d->nh = u32(d, "attention.head_count", 0);
    d->nkv = u32(d, "attention.head_count_kv", 0);
    d->hd = u32(d, "attention.key_length", 0);
    d->n_rot = u32(d, "rope.dimension_count", d->hd);
    d->ne = u32(d, "expert_count", 0);
    d->k = u32(d, "expert_used_count", 0);
    d->ff = u32(d, "expert_feed_forward_length", 0);
    d->interval = u32(d, "full_attention_interval", 4);
    d->d_conv = u32(d, "ssm.conv_kernel", 0);
    d->dk = u32(d, "ssm.state_size", 0);
    d->hk = u32(d, "ssm.group_count", 0);
    d->hv = u32(d, "ssm.time_step_rank", 0);
    d->dv = u32(d, "ssm.inner_size", 0) / d->hv;
    float f = 0;
    gguf_get_f32(d->g, "qwen3next.attention.layer_norm_rms_epsilon", &f, err);
    d->eps = f;
    gguf_get_f32(d->g, "qwen3next.rope.freq_base", &f, err);
    d->base = f;
    d->nv = (int)gguf_find_tensor(d->g, "token_embd.weight")->ne[1];
    cr_assert(d->k > 0 && d->k <= MAXK && d->interval > 0 && d->d_conv > 1 && d->dk > 0);
}

static inline void qd_close(qderiv *d)
{
    f64_tensors_free(&d->t);
    gguf_close(d->g);
}

static inline void matvec(double *o, const double *w, const double *x, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++) s += w[(size_t)r * cols + c] * x[c];
        o[r] = s;
    }
}

static inline double sigm(double x) { return 1 / (1 + exp(-x)); }
static inline double silu(double x) { return x * sigm(x); }

/* NeoX RoPE on the first n_rot values of a head; the rest pass through. */
static inline void rope(const qderiv *d, double *v, int p)
{
    int half = d->n_rot / 2;
    for (int i = 0; i < half; i++) {
        double th = p * pow(d->base, -2.0 * i / d->n_rot), c = cos(th), s = sin(th);
        double x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x0 * s + x1 * c;
    }
}

static inline void l2norm(double *x, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double s = 1 / fmax(sqrt(ss), eps);
    for (int i = 0; i < n; i++) x[i] *= s;
}

/* One sequence's recurrent state and attention cache through the layers. */
typedef struct {
    double *conv;    /* [layer][channel][d_conv - 1] */
    double *S;       /* [layer][value head][dv][dk] */
    double *kc, *vc; /* [layer][position][kv] */
    int n;           /* positions done */
    int32_t *ids;    /* or NULL: the experts chosen, [position][layer][k] */
    double *gap;     /* with ids: router logit of the k-th chosen minus the best unchosen, [position][layer] */
} qseq;

static inline void seq_init(const qderiv *d, qseq *s, int max_pos)
{
    int cd = 2 * d->dk * d->hk + d->dv * d->hv, kvd = d->nkv * d->hd;
    s->conv = calloc((size_t)d->nl * cd * (d->d_conv - 1), sizeof(double));
    s->S = calloc((size_t)d->nl * d->hv * d->dv * d->dk, sizeof(double));
    s->kc = calloc((size_t)d->nl * max_pos * kvd, sizeof(double));
    s->vc = calloc((size_t)d->nl * max_pos * kvd, sizeof(double));
    s->n = 0;
    s->ids = NULL;
    s->gap = NULL;
}

static inline void seq_free(qseq *s) { free(s->conv); free(s->S); free(s->kc); free(s->vc); }

/* Token tok at position s->n of sequence s: its logits (nv doubles). */
static inline void step(qderiv *d, qseq *s, int tok, int max_pos, double *logits)
{
    int e = d->e, hd = d->hd, qd = d->nh * hd, kvd = d->nkv * hd, t = s->n;
    int kd = d->dk * d->hk, vd = d->dv * d->hv, cd = 2 * kd + vd, r = d->hv / d->hk;
    double *x = calloc(e, sizeof *x), *h = calloc(e, sizeof *h), *qg = calloc(2 * qd, sizeof *qg);
    double *att = calloc(qd, sizeof *att), *o = calloc(e > vd ? e : vd, sizeof *o), *sc = calloc(max_pos, sizeof *sc);
    double *mix = calloc(cd, sizeof *mix), *z = calloc(vd, sizeof *z), *ba = calloc(2 * d->hv, sizeof *ba);
    double *core = calloc(vd, sizeof *core), *lg = calloc(d->ne, sizeof *lg), *g = calloc(d->ff * 4, sizeof *g);
    double *u = calloc(d->ff * 4, sizeof *u), *y = calloc(e, sizeof *y);
    const double *emb = W(d, "token_embd.weight"), *out = W(d, "output.weight");
    if (!out) out = emb;
    for (int i = 0; i < e; i++) x[i] = emb[(size_t)tok * e + i];
    for (int l = 0; l < d->nl; l++) {
        rmsnorm(h, x, need(d, "blk.%d.attn_norm.weight", l), e, d->eps);
        if ((l + 1) % d->interval == 0) {
            /* gated attention: per head [query | gate] */
            double *kt = s->kc + ((size_t)l * max_pos + t) * kvd, *vt = s->vc + ((size_t)l * max_pos + t) * kvd;
            matvec(qg, need(d, "blk.%d.attn_q.weight", l), h, 2 * qd, e);
            matvec(kt, need(d, "blk.%d.attn_k.weight", l), h, kvd, e);
            matvec(vt, need(d, "blk.%d.attn_v.weight", l), h, kvd, e);
            const double *qn = need(d, "blk.%d.attn_q_norm.weight", l), *kn = need(d, "blk.%d.attn_k_norm.weight", l);
            for (int hh = 0; hh < d->nkv; hh++) {
                rmsnorm(kt + hh * hd, kt + hh * hd, kn, hd, d->eps);
                rope(d, kt + hh * hd, t);
            }
            for (int hh = 0; hh < d->nh; hh++) {
                double *q = qg + (size_t)hh * 2 * hd, *gate = q + hd;
                rmsnorm(q, q, qn, hd, d->eps);
                rope(d, q, t);
                int kvh = hh / (d->nh / d->nkv);
                double mx = -INFINITY, sum = 0;
                for (int p = 0; p <= t; p++) {
                    const double *kp = s->kc + ((size_t)l * max_pos + p) * kvd + kvh * hd;
                    double a = 0;
                    for (int i = 0; i < hd; i++) a += q[i] * kp[i];
                    sc[p] = a / sqrt(hd);
                    mx = fmax(mx, sc[p]);
                }
                for (int p = 0; p <= t; p++) sum += sc[p] = exp(sc[p] - mx);
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int p = 0; p <= t; p++) a += sc[p] * s->vc[((size_t)l * max_pos + p) * kvd + kvh * hd + i];
                    att[hh * hd + i] = a / sum * sigm(gate[i]);
                }
            }
            matvec(o, need(d, "blk.%d.attn_output.weight", l), att, e, qd);
        } else {
            /* gated DeltaNet */
            matvec(mix, need(d, "blk.%d.attn_qkv.weight", l), h, cd, e);
            matvec(z, need(d, "blk.%d.attn_gate.weight", l), h, vd, e);
            matvec(ba, need(d, "blk.%d.ssm_ba.weight", l), h, 2 * d->hv, e);
            const double *cw = need(d, "blk.%d.ssm_conv1d.weight", l);
            double *cs = s->conv + (size_t)l * cd * (d->d_conv - 1);
            for (int c = 0; c < cd; c++) {
                double *st = cs + (size_t)c * (d->d_conv - 1), a = 0;
                for (int j = 0; j < d->d_conv - 1; j++) a += st[j] * cw[(size_t)c * d->d_conv + j];
                a += mix[c] * cw[(size_t)c * d->d_conv + d->d_conv - 1];
                for (int j = 0; j + 1 < d->d_conv - 1; j++) st[j] = st[j + 1];
                st[d->d_conv - 2] = mix[c];
                mix[c] = silu(a);
            }
            for (int kh = 0; kh < d->hk; kh++) {
                l2norm(mix + kh * d->dk, d->dk, d->eps);
                l2norm(mix + kd + kh * d->dk, d->dk, d->eps);
            }
            const double *dt = need(d, "blk.%d.ssm_dt.bias", l), *A = need(d, "blk.%d.ssm_a", l);
            for (int hh = 0; hh < d->hv; hh++) {
                int grp = hh / r, j = hh % r;
                double beta = sigm(ba[grp * 2 * r + j]), al = ba[grp * 2 * r + r + j] + dt[hh];
                double decay = exp((al > 20 ? al : log1p(exp(al))) * A[hh]);
                const double *q = mix + grp * d->dk, *k = mix + kd + grp * d->dk, *v = mix + 2 * kd + hh * d->dv;
                double *S = s->S + ((size_t)l * d->hv + hh) * d->dv * d->dk;
                for (int i = 0; i < d->dv; i++) {
                    double *row = S + (size_t)i * d->dk, sk = 0;
                    for (int c = 0; c < d->dk; c++) sk += decay * row[c] * k[c];
                    double delta = (v[i] - sk) * beta, oi = 0;
                    for (int c = 0; c < d->dk; c++) {
                        row[c] = decay * row[c] + k[c] * delta;
                        oi += row[c] * q[c] / sqrt(d->dk);
                    }
                    core[hh * d->dv + i] = oi;
                }
                rmsnorm(core + hh * d->dv, core + hh * d->dv, need(d, "blk.%d.ssm_norm.weight", l), d->dv, d->eps);
                for (int i = 0; i < d->dv; i++) core[hh * d->dv + i] *= silu(z[hh * d->dv + i]);
            }
            matvec(o, need(d, "blk.%d.ssm_out.weight", l), core, e, vd);
        }
        for (int i = 0; i < e; i++) x[i] += o[i];
        /* routed experts (softmax, top k, renormalized) and the gated shared expert */
        rmsnorm(h, x, need(d, "blk.%d.post_attention_norm.weight", l), e, d->eps);
        matvec(lg, need(d, "blk.%d.ffn_gate_inp.weight", l), h, d->ne, e);
        int sel[MAXK];
        for (int j = 0; j < d->k; j++) {
            int best = -1;
            for (int i = 0; i < d->ne; i++) {
                int taken = 0;
                for (int q = 0; q < j; q++) taken |= sel[q] == i;
                if (!taken && (best < 0 || lg[i] > lg[best])) best = i;
            }
            sel[j] = best;
        }
        if (s->ids) {
            double next = -INFINITY;
            for (int i = 0; i < d->ne; i++) {
                int taken = 0;
                for (int q = 0; q < d->k; q++) taken |= sel[q] == i;
                if (!taken) next = fmax(next, lg[i]);
            }
            memcpy(s->ids + ((size_t)t * d->nl + l) * d->k, sel, (size_t)d->k * sizeof *sel);
            s->gap[(size_t)t * d->nl + l] = lg[sel[d->k - 1]] - next;
        }
        double wsum = 0, wsel[MAXK];
        for (int j = 0; j < d->k; j++) wsum += wsel[j] = exp(lg[sel[j]] - lg[sel[0]]);
        const double *gw = need(d, "blk.%d.ffn_gate_exps.weight", l), *uw = need(d, "blk.%d.ffn_up_exps.weight", l);
        const double *dw = need(d, "blk.%d.ffn_down_exps.weight", l);
        int ff = d->ff;
        for (int j = 0; j < d->k; j++) {
            int ex = sel[j];
            matvec(g, gw + (size_t)ex * ff * e, h, ff, e);
            matvec(u, uw + (size_t)ex * ff * e, h, ff, e);
            for (int i = 0; i < ff; i++) g[i] = silu(g[i]) * u[i];
            matvec(y, dw + (size_t)ex * e * ff, g, e, ff);
            for (int i = 0; i < e; i++) x[i] += wsel[j] / wsum * y[i];
        }
        const double *sg = W(d, "blk.%d.ffn_gate_inp_shexp.weight", l);
        if (sg) {
            const gguf_tensor *st = gguf_find_tensor(d->g, "blk.0.ffn_gate_shexp.weight");
            int fs = (int)st->ne[1];
            cr_assert_leq(fs, 4 * d->ff);
            matvec(g, need(d, "blk.%d.ffn_gate_shexp.weight", l), h, fs, e);
            matvec(u, need(d, "blk.%d.ffn_up_shexp.weight", l), h, fs, e);
            for (int i = 0; i < fs; i++) g[i] = silu(g[i]) * u[i];
            matvec(y, need(d, "blk.%d.ffn_down_shexp.weight", l), g, e, fs);
            double gs = 0;
            for (int i = 0; i < e; i++) gs += sg[i] * h[i];
            for (int i = 0; i < e; i++) x[i] += sigm(gs) * y[i];
        }
    }
    rmsnorm(h, x, W(d, "output_norm.weight"), e, d->eps);
    matvec(logits, out, h, d->nv, e);
    s->n++;
    free(x); free(h); free(qg); free(att); free(o); free(sc); free(mix); free(z); free(ba); free(core); free(lg);
    free(g); free(u); free(y);
}

/* The shrunk shape the tests synthesize (and the reference logits came from). */
#define QNEXT_SHRUNK "--layers 4 --dim 128 --heads 2 --kv-heads 1 --head-dim 64 --vocab-size 400 --experts 8 " \
                     "--experts-used 2 --expert-ffn 64 --shared-ffn 64 --ssm-state 32 --ssm-groups 2 --ssm-heads 4"

static inline void qnext_synth(char *path, size_t n, const char *type)
{
    char cmd[1024];
    snprintf(path, n, "/tmp/sd-qnext-%d-%s.gguf", (int)getpid(), type);
    snprintf(cmd, sizeof cmd, "%s synth --preset qwen3-next-80b-a3b " QNEXT_SHRUNK " --type %s -t 1 -o %s >/dev/null 2>&1",
             showdown_bin(), type, path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* The derivation's rows for tokens tok[0..n) (nv each, malloc'd); ids and
 * gap (or NULL): room for the routing (qseq's) of n positions. */
static inline double *qnext_derive_routed(const char *path, const int32_t *tok, int n, int *nv, int32_t *ids, double *gap)
{
    qderiv d;
    qd_open(&d, path);
    qseq s;
    seq_init(&d, &s, n);
    s.ids = ids;
    s.gap = gap;
    double *rows = malloc((size_t)n * d.nv * sizeof *rows);
    for (int t = 0; t < n; t++) step(&d, &s, tok[t], n, rows + (size_t)t * d.nv);
    *nv = d.nv;
    seq_free(&s);
    qd_close(&d);
    return rows;
}

static inline double *qnext_derive_rows(const char *path, const int32_t *tok, int n, int *nv)
{
    return qnext_derive_routed(path, tok, n, nv, NULL, NULL);
}

static inline double qnext_rel_l2(const float *a, const double *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) { num += (a[i] - b[i]) * (a[i] - b[i]); den += b[i] * b[i]; }
    return sqrt(num / den);
}

#endif
