/* Sliding-window attention (gemma3's local layers) and attention sinks
 * (gpt-oss) against a plain computation written out here: the tiny F32
 * model with a window on one layer and sinks on both, over more positions
 * than one attention chunk, so windows, masks and chunk folding all run. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "showdown.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "common.h"

static void matvec(const sd_weight *w, const float *x, float *y)
{
    cr_assert_eq(w->type, 0, "the plain reference reads F32 weights");
    for (int64_t r = 0; r < w->rows; r++) {
        const float *row = (const float *)((const char *)w->data + (size_t)r * w->row_bytes);
        double s = 0;
        for (int64_t c = 0; c < w->cols; c++) s += (double)row[c] * x[c];
        y[r] = (float)s * w->scale;
    }
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float k = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) o[i] = x[i] * k * w[i];
}

/* Logits of every position of tokens, one token at a time, every sum in double. */
static void plain_forward(const sd_model *m, const int32_t *tok, int n, float *logits)
{
    const sd_hparams *hp = &m->hp;
    int e = hp->n_embd, hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv, ff = hp->n_ff, L = hp->n_layer;
    int group = nh / nkv, qd = nh * hd, kvd = nkv * hd;
    float *K = malloc((size_t)L * n * kvd * sizeof *K), *V = malloc((size_t)L * n * kvd * sizeof *V);
    float *x = malloc(e * sizeof *x), *xb = malloc((qd > e ? qd : e) * sizeof *xb), *q = malloc(qd * sizeof *q);
    float *o = malloc(qd * sizeof *o), *g = malloc(ff * sizeof *g), *u = malloc(ff * sizeof *u);
    float *t = malloc(e * sizeof *t);
    double *s = malloc((size_t)n * sizeof *s);
    for (int p = 0; p < n; p++) {
        const float *er = (const float *)((const char *)m->tok_embd.data + (size_t)tok[p] * m->tok_embd.row_bytes);
        for (int i = 0; i < e; i++) x[i] = er[i] * m->tok_embd.scale;
        for (int l = 0; l < L; l++) {
            const sd_layer *ly = &m->layers[l];
            float *k = K + ((size_t)l * n + p) * kvd, *v = V + ((size_t)l * n + p) * kvd;
            rmsnorm(xb, x, ly->attn_norm, e, hp->norm_eps);
            matvec(&ly->wq, xb, q);
            matvec(&ly->wk, xb, k);
            matvec(&ly->wv, xb, v);
            sd_rope(q, nh, k, nkv, hd, p, ly->rope_base, hp->rope_scale, hp->rope_neox, m->rope_freq_factors);
            int lo = ly->swa > 0 && p + 1 > ly->swa ? p + 1 - ly->swa : 0;
            for (int h = 0; h < nh; h++) {
                int kh = h / group;
                double mx = -INFINITY, z = 0;
                for (int j = lo; j <= p; j++) {
                    const float *kj = K + ((size_t)l * n + j) * kvd + (size_t)kh * hd;
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += (double)q[h * hd + i] * kj[i];
                    s[j] = d / sqrt((double)hd);
                    mx = s[j] > mx ? s[j] : mx;
                }
                if (ly->attn_sinks && ly->attn_sinks[h] > mx) mx = ly->attn_sinks[h];
                for (int j = lo; j <= p; j++) z += exp(s[j] - mx);
                if (ly->attn_sinks) z += exp(ly->attn_sinks[h] - mx);   /* in the denominator only */
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int j = lo; j <= p; j++) a += exp(s[j] - mx) * V[((size_t)l * n + j) * kvd + (size_t)kh * hd + i];
                    o[h * hd + i] = (float)(a / z);
                }
            }
            matvec(&ly->wo, o, t);
            for (int i = 0; i < e; i++) x[i] += t[i];
            rmsnorm(xb, x, ly->ffn_norm, e, hp->norm_eps);
            matvec(&ly->w_gate, xb, g);
            matvec(&ly->w_up, xb, u);
            for (int i = 0; i < ff; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
            matvec(&ly->w_down, g, t);
            for (int i = 0; i < e; i++) x[i] += t[i];
        }
        rmsnorm(xb, x, m->output_norm, e, hp->norm_eps);
        matvec(&m->output, xb, logits + (size_t)p * hp->n_vocab);
    }
    free(K); free(V); free(x); free(xb); free(q); free(o); free(g); free(u); free(t); free(s);
}

/* Worst relative L2 error of our rows against the plain computation's. */
static double compare(sd_model *m, int n, int batch)
{
    int nv = m->hp.n_vocab;
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    for (int i = 0; i < n; i++) tok[i] = (int32_t)(1 + (i * 53 + i * i * 3) % (nv - 1));
    float *want = malloc((size_t)n * nv * sizeof *want), *got = malloc((size_t)n * nv * sizeof *got);
    plain_forward(m, tok, n, want);
    char err[SD_ERR_LEN];
    sd_session_params sp = {512, 2, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    if (batch) cr_assert_eq(sd_session_eval(s, tok, n, got, err), 0, "%s", err);
    else
        for (int i = 0; i < n; i++) cr_assert_eq(sd_session_eval(s, tok + i, 1, got + (size_t)i * nv, err), 0, "%s", err);
    double worst = 0;
    for (int p = 0; p < n; p++) {
        double d = 0, w = 0;
        for (int i = 0; i < nv; i++) {
            double a = got[(size_t)p * nv + i], b = want[(size_t)p * nv + i];
            d += (a - b) * (a - b);
            w += b * b;
        }
        double r = sqrt(d / w);
        worst = r > worst ? r : worst;
    }
    sd_session_free(s);
    free(tok); free(want); free(got);
    return worst;
}

/* sd_session's last row after the same tokens compare() uses. */
static float *last_row(sd_model *m, int n)
{
    int nv = m->hp.n_vocab;
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    for (int i = 0; i < n; i++) tok[i] = (int32_t)(1 + (i * 53 + i * i * 3) % (nv - 1));
    char err[SD_ERR_LEN];
    sd_session_params sp = {512, 2, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    cr_assert_eq(sd_session_eval(s, tok, n, NULL, err), 0, "%s", err);
    float *row = malloc((size_t)nv * sizeof *row);
    memcpy(row, sd_session_logits(s), (size_t)nv * sizeof *row);
    sd_session_free(s);
    free(tok);
    return row;
}

static sd_model *load_tiny(void)
{
    char p[512], err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(p, sizeof p, "models/tiny-f32.gguf"), &m, err), 0, "%s", err);
    return m;
}

static void add_sinks(sd_model *m, int l)
{
    int nh = m->hp.n_head;
    m->layers[l].attn_sinks = malloc((size_t)nh * sizeof(float));   /* freed by sd_model_free */
    for (int h = 0; h < nh; h++) m->layers[l].attn_sinks[h] = (float)h * 1.5f - 1.0f;
}

/* 300 positions: past one attention chunk (256). */
#define N_POS 300

Test(attention_variants, plain_attention_agrees, .timeout = 120)
{
    sd_model *m = load_tiny();
    double e = compare(m, N_POS, 1);
    cr_log_info("plain: worst relative L2 %.2e", e);
    cr_assert_leq(e, 1e-4, "%.3e", e);
    sd_model_free(m);
}

Test(attention_variants, sliding_window, .timeout = 120)
{
    sd_model *m = load_tiny();
    m->layers[0].swa = 37;    /* window starts off any multiple of 8 */
    m->layers[1].swa = 270;   /* a window that spans two chunks */
    double eb = compare(m, N_POS, 1), ed = compare(m, N_POS, 0);
    cr_log_info("window: worst relative L2 %.2e (prefill), %.2e (decode)", eb, ed);
    cr_assert_leq(eb, 1e-4, "%.3e", eb);
    cr_assert_leq(ed, 1e-4, "%.3e", ed);
    /* And the window matters: the last row moves by far more than the error. */
    float *a = last_row(m, N_POS);
    m->layers[0].swa = m->layers[1].swa = 0;
    float *b = last_row(m, N_POS);
    double d = 0, w = 0;
    for (int i = 0; i < m->hp.n_vocab; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        w += (double)b[i] * b[i];
    }
    cr_assert_geq(sqrt(d / w), 1e-2, "window changed the logits by %.2e only", sqrt(d / w));
    free(a);
    free(b);
    sd_model_free(m);
}

Test(attention_variants, sinks, .timeout = 120)
{
    sd_model *m = load_tiny();
    add_sinks(m, 0);
    add_sinks(m, 1);
    m->layers[1].swa = 20;
    double eb = compare(m, N_POS, 1), ed = compare(m, N_POS, 0);
    cr_log_info("sinks: worst relative L2 %.2e (prefill), %.2e (decode)", eb, ed);
    cr_assert_leq(eb, 1e-4, "%.3e", eb);
    cr_assert_leq(ed, 1e-4, "%.3e", ed);
    sd_model_free(m);
}
