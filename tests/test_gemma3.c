/* Gemma 3 on a small model written here (random F32 weights, the stories
 * vocabulary of tiny-f32.gguf): our logits of every position against a
 * direct float64 transcription of the architecture (model/arch_gemma3.h),
 * with a window short enough to slide; the same transcription with the layer
 * rule or the window wrong must disagree, so the check can tell. Also
 * Gemma's gated GELU, and gemma3 files the loader must refuse. The real
 * Gemma 3 270M against the reference engine is in test_real_models.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "kernels/geglu.h"
#include "model/model.h"
#include "tensor/types.h"
#include "common.h"

enum { E = 128, NH = 4, NKV = 2, HD = 64, FF = 192, NL = 7, SWA = 4, NTOK = 10 };
#define EPS 1e-6f
#define BASE_GLOBAL 1000000.0f

static char dir[64];
static void make_dir(void) { cr_assert_eq(tmp_dir_make(dir, sizeof dir), 0); }
static void remove_dir(void) { cr_assert_eq(tmp_dir_remove(dir), 0); }
TestSuite(gemma3, .init = make_dir, .fini = remove_dir);

/* ---- the model's weights, deterministic ----------------------------------- */

typedef struct { char name[64]; int64_t ne[2]; int nd; float *w; } tensor;
typedef struct { tensor t[16 * NL + 4]; int n; int nv; uint64_t rng; } weights;

static float urand(weights *W)
{
    W->rng = W->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((W->rng >> 40) & 0xffffff) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* A tensor of cols x rows: values c * uniform(-1, 1) + offset. */
static float *add(weights *W, const char *name, int64_t cols, int64_t rows, float c, float offset)
{
    tensor *t = &W->t[W->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->nd = rows > 1 ? 2 : 1;
    t->w = malloc((size_t)(cols * rows) * sizeof *t->w);
    for (int64_t i = 0; i < cols * rows; i++) t->w[i] = offset + c * urand(W);
    return t->w;
}

static const float *find(const weights *W, const char *name)
{
    for (int i = 0; i < W->n; i++)
        if (!strcmp(W->t[i].name, name)) return W->t[i].w;
    cr_assert_fail("no tensor %s", name);
    return NULL;
}

static const float *lw(const weights *W, int il, const char *sfx)
{
    char n[64];
    snprintf(n, sizeof n, "blk.%d.%s", il, sfx);
    return find(W, n);
}

static void make_weights(weights *W, int nv)
{
    memset(W, 0, sizeof *W);
    W->rng = 12345;
    W->nv = nv;
    add(W, "token_embd.weight", E, nv, 0.5f, 0);
    add(W, "output_norm.weight", E, 1, 0.2f, 1);
    for (int il = 0; il < NL; il++) {
        static const struct { const char *sfx; int64_t cols, rows; float c, off; } L[] = {
            {"attn_norm.weight", E, 1, 0.2f, 1}, {"attn_q.weight", E, NH * HD, 0.15f, 0},
            {"attn_k.weight", E, NKV * HD, 0.15f, 0}, {"attn_v.weight", E, NKV * HD, 0.15f, 0},
            {"attn_q_norm.weight", HD, 1, 0.2f, 1}, {"attn_k_norm.weight", HD, 1, 0.2f, 1},
            {"attn_output.weight", NH * HD, E, 0.1f, 0}, {"post_attention_norm.weight", E, 1, 0.2f, 1},
            {"ffn_norm.weight", E, 1, 0.2f, 1}, {"ffn_gate.weight", E, FF, 0.15f, 0},
            {"ffn_up.weight", E, FF, 0.15f, 0}, {"ffn_down.weight", FF, E, 0.1f, 0},
            {"post_ffw_norm.weight", E, 1, 0.2f, 1}};
        for (size_t k = 0; k < sizeof L / sizeof L[0]; k++) {
            char n[64];
            snprintf(n, sizeof n, "blk.%d.%s", il, L[k].sfx);
            add(W, n, L[k].cols, L[k].rows, L[k].c, L[k].off);
        }
    }
}

static void free_weights(weights *W)
{
    for (int i = 0; i < W->n; i++) free(W->t[i].w);
}

/* Writes the model; skip: a tensor name left out; value_len: attention.value_length. */
static const char *write_model(const weights *W, const char *file, const char *skip, uint32_t value_len)
{
    static char path[128];
    char err[SD_ERR_LEN], vp[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    gguf_file *vocab;
    cr_assert_eq(gguf_open(shared_path(vp, sizeof vp, "models/tiny-f32.gguf"), &vocab, err), 0, "%s", err);
    gguf_writer *w = gguf_writer_new();
    cr_assert_not_null(w);
    for (uint64_t i = 0; i < vocab->n_kv; i++)
        if (!strncmp(vocab->kv[i].key.ptr, "tokenizer.", 10)) cr_assert_eq(gguf_writer_copy_kv(w, &vocab->kv[i]), 0);
    gguf_writer_set_str(w, "general.architecture", "gemma3");
    gguf_writer_set_u32(w, "gemma3.context_length", 512);
    gguf_writer_set_u32(w, "gemma3.embedding_length", E);
    gguf_writer_set_u32(w, "gemma3.block_count", NL);
    gguf_writer_set_u32(w, "gemma3.feed_forward_length", FF);
    gguf_writer_set_u32(w, "gemma3.attention.head_count", NH);
    gguf_writer_set_u32(w, "gemma3.attention.head_count_kv", NKV);
    gguf_writer_set_u32(w, "gemma3.attention.key_length", HD);
    gguf_writer_set_u32(w, "gemma3.attention.value_length", value_len);
    gguf_writer_set_u32(w, "gemma3.attention.sliding_window", SWA);
    gguf_writer_set_f32(w, "gemma3.attention.layer_norm_rms_epsilon", EPS);
    gguf_writer_set_f32(w, "gemma3.rope.freq_base", BASE_GLOBAL);
    for (int i = 0; i < W->n; i++)
        if (!skip || strcmp(skip, W->t[i].name))
            cr_assert_eq(gguf_writer_add_tensor(w, W->t[i].name, SD_TYPE_F32, W->t[i].nd, W->t[i].ne, err), 0, "%s", err);
    cr_assert_eq(gguf_writer_begin(w, path, err), 0, "%s", err);
    for (int i = 0; i < W->n; i++)
        if (!skip || strcmp(skip, W->t[i].name))
            cr_assert_eq(gguf_writer_write(w, W->t[i].w, (size_t)(W->t[i].ne[0] * W->t[i].ne[1]) * 4, err), 0, "%s", err);
    cr_assert_eq(gguf_writer_finish(w, err), 0, "%s", err);
    gguf_writer_free(w);
    gguf_close(vocab);
    return path;
}

/* ---- the architecture, transcribed directly (float64) ------------------ */

typedef struct { int sliding_rule, window; } variant;   /* 1, 1: Gemma 3 as specified */

static void rmsnorm(double *y, const double *x, const float *w, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + EPS);
    for (int i = 0; i < n; i++) y[i] = x[i] * s * w[i];
}

/* y[rows] = W[rows x cols] x */
static void matvec(double *y, const float *W, const double *x, int cols, int rows)
{
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++) s += (double)W[(size_t)r * cols + c] * x[c];
        y[r] = s;
    }
}

static void rope_neox(double *x, int pos, double base)
{
    for (int i = 0; i < HD / 2; i++) {
        double th = pos * pow(base, -2.0 * i / HD), c = cos(th), s = sin(th);
        double a = x[i], b = x[i + HD / 2];
        x[i] = a * c - b * s;
        x[i + HD / 2] = a * s + b * c;
    }
}

static double gelu(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * x * (1 + 0.044715 * x * x))); }

/* logits[NTOK][nv] for tokens, one position after another. */
static double *transcribe(const weights *W, const int32_t *tok, variant v)
{
    int nv = W->nv;
    static double K[NL][NTOK][NKV * HD], V[NL][NTOK][NKV * HD];
    double *out = malloc((size_t)NTOK * nv * sizeof *out);
    double x[E], h[E], q[NH * HD], k[NKV * HD], vv[NKV * HD], att[NH * HD], o[E], g[FF], u[FF];
    const float *emb = find(W, "token_embd.weight");
    for (int p = 0; p < NTOK; p++) {
        for (int i = 0; i < E; i++) x[i] = emb[(size_t)tok[p] * E + i] * sqrt((double)E);
        for (int il = 0; il < NL; il++) {
            int sliding = v.sliding_rule ? il % 6 < 5 : 0;
            double base = sliding ? 10000.0 : BASE_GLOBAL;
            rmsnorm(h, x, lw(W, il, "attn_norm.weight"), E);
            matvec(q, lw(W, il, "attn_q.weight"), h, E, NH * HD);
            matvec(k, lw(W, il, "attn_k.weight"), h, E, NKV * HD);
            matvec(vv, lw(W, il, "attn_v.weight"), h, E, NKV * HD);
            for (int hh = 0; hh < NH; hh++) {
                rmsnorm(q + hh * HD, q + hh * HD, lw(W, il, "attn_q_norm.weight"), HD);
                rope_neox(q + hh * HD, p, base);
            }
            for (int hh = 0; hh < NKV; hh++) {
                rmsnorm(k + hh * HD, k + hh * HD, lw(W, il, "attn_k_norm.weight"), HD);
                rope_neox(k + hh * HD, p, base);
            }
            memcpy(K[il][p], k, sizeof k);
            memcpy(V[il][p], vv, sizeof vv);
            int first = sliding && v.window && p >= SWA ? p - SWA + 1 : 0;
            for (int hh = 0; hh < NH; hh++) {
                int kvh = hh / (NH / NKV);
                double s[NTOK], mx = -INFINITY, sum = 0;
                for (int j = first; j <= p; j++) {
                    s[j] = 0;
                    for (int i = 0; i < HD; i++) s[j] += q[hh * HD + i] * K[il][j][kvh * HD + i];
                    s[j] /= sqrt((double)HD);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = first; j <= p; j++) sum += s[j] = exp(s[j] - mx);
                for (int i = 0; i < HD; i++) {
                    double a = 0;
                    for (int j = first; j <= p; j++) a += s[j] / sum * V[il][j][kvh * HD + i];
                    att[hh * HD + i] = a;
                }
            }
            matvec(o, lw(W, il, "attn_output.weight"), att, NH * HD, E);
            rmsnorm(o, o, lw(W, il, "post_attention_norm.weight"), E);
            for (int i = 0; i < E; i++) x[i] += o[i];
            rmsnorm(h, x, lw(W, il, "ffn_norm.weight"), E);
            matvec(g, lw(W, il, "ffn_gate.weight"), h, E, FF);
            matvec(u, lw(W, il, "ffn_up.weight"), h, E, FF);
            for (int i = 0; i < FF; i++) g[i] = gelu(g[i]) * u[i];
            matvec(o, lw(W, il, "ffn_down.weight"), g, FF, E);
            rmsnorm(o, o, lw(W, il, "post_ffw_norm.weight"), E);
            for (int i = 0; i < E; i++) x[i] += o[i];
        }
        rmsnorm(h, x, find(W, "output_norm.weight"), E);
        matvec(out + (size_t)p * nv, emb, h, E, nv);
    }
    return out;
}

static double rel_l2(const float *a, const double *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        s += b[i] * b[i];
    }
    return sqrt(d / s);
}

Test(gemma3, forward_matches_the_transcription, .timeout = 60)
{
    char err[SD_ERR_LEN];
    weights W;
    make_weights(&W, 512);
    const char *path = write_model(&W, "g3.gguf", NULL, HD);
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    cr_assert_eq(sd_model_hparams(m)->arch, SD_ARCH_GEMMA3);
    for (int il = 0; il < NL; il++) {   /* 0-4 slide with base 10000; 5 is global; 6 slides */
        int sliding = il != 5;
        cr_expect_eq(m->layers[il].swa, sliding ? SWA : 0, "layer %d", il);
        cr_expect_float_eq(m->layers[il].rope_base, sliding ? 10000.0f : BASE_GLOBAL, 1e-3, "layer %d", il);
    }
    int32_t tok[NTOK];
    for (int i = 0; i < NTOK; i++) tok[i] = 3 + (i * 37) % 500;
    sd_session_params p = {64, 2, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &p, &s, err), 0, "%s", err);
    float *rows = malloc((size_t)NTOK * 512 * sizeof *rows);
    cr_assert_eq(sd_session_eval(s, tok, NTOK, rows, err), 0, "%s", err);

    double *want = transcribe(&W, tok, (variant){1, 1});
    double e = rel_l2(rows, want, (size_t)NTOK * 512);
    /* GELU goes through F16 (geglu.h): ~1e-3 relative per activation */
    cr_log_info("gemma3 transcription: logits relative L2 %.2e", e);
    cr_expect_lt(e, 5e-3, "relative L2 %.3e against the transcription", e);
    /* The check can tell: all layers global, or no window, is far off. */
    double *no_rule = transcribe(&W, tok, (variant){0, 1}), *no_window = transcribe(&W, tok, (variant){1, 0});
    double e1 = rel_l2(rows, no_rule, (size_t)NTOK * 512), e2 = rel_l2(rows, no_window, (size_t)NTOK * 512);
    cr_expect_gt(e1, 10 * e, "without the sliding-layer rule: %.3e", e1);
    cr_expect_gt(e2, 10 * e, "without the window: %.3e", e2);
    free(want);
    free(no_rule);
    free(no_window);
    free(rows);
    sd_session_free(s);
    sd_model_free(m);
    free_weights(&W);
}

Test(gemma3, incomplete_files_refused)
{
    char err[SD_ERR_LEN];
    weights W;
    make_weights(&W, 512);
    sd_model *m = NULL;
    const char *path = write_model(&W, "no-post-norm.gguf", "blk.3.post_ffw_norm.weight", HD);
    cr_assert_eq(sd_model_load(path, &m, err), -1);
    cr_expect(strstr(err, "no-post-norm.gguf") && strstr(err, "blk.3.post_ffw_norm.weight"), "%s", err);
    path = write_model(&W, "no-q-norm.gguf", "blk.0.attn_q_norm.weight", HD);
    cr_assert_eq(sd_model_load(path, &m, err), -1);
    cr_expect(strstr(err, "blk.0.attn_q_norm.weight"), "%s", err);
    path = write_model(&W, "value-length.gguf", NULL, HD / 2);
    cr_assert_eq(sd_model_load(path, &m, err), -1);
    cr_expect(strstr(err, "value_length"), "%s", err);
    cr_assert_null(m);
    free_weights(&W);
}

Test(gemma3, gated_gelu)
{
    /* GELU's tanh form at F16 precision, 0 below -10, the identity above 10 */
    static const float xs[] = {-12, -10.5f, -3, -1, -0.25f, 0, 0.001f, 0.5f, 1, 2.5f, 7, 10.5f, 30};
    int n = (int)(sizeof xs / sizeof xs[0]);
    float g[16], u[16];
    for (int i = 0; i < n; i++) { g[i] = xs[i]; u[i] = i % 2 ? 2.0f : -0.5f; }
    sd_geglu(g, u, n);
    for (int i = 0; i < n; i++) {
        double x = xs[i], want = (x <= -10 ? 0 : x >= 10 ? x : gelu(x)) * u[i];
        cr_expect(fabs(g[i] - want) <= 2e-3 * fabs(want) + 1e-6, "x=%g: %g, want %g", x, g[i], want);
    }
    cr_expect_float_eq(g[8] / u[8], 0.841192f, 1e-3);   /* GELU(1) */
}
