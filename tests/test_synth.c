/* synth: the tiny shape in every architecture loads and runs, the file is a
 * function of the seed alone (not of the thread count), quantized types and
 * copied vocabularies work, the big presets have their real shapes (checked
 * through sparse header-only files, never written in full), and the CLI's
 * errors leave nothing behind. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "gguf/gguf.h"
#include "model/synth.h"
#include "showdown.h"
#include "tensor/scale.h"
#include "tensor/types.h"
#include "text/tokenizer.h"

static char dir[64];

static void make_dir(void) { cr_assert_eq(tmp_dir_make(dir, sizeof dir), 0); }
static void remove_dir(void) { cr_assert_eq(tmp_dir_remove(dir), 0); }

TestSuite(synth, .init = make_dir, .fini = remove_dir, .timeout = 120);

static const char *tmp(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

static void synth_to(const char *path, const char *preset, const char *arch, const char *type, uint64_t seed,
                     int threads)
{
    char err[SD_ERR_LEN];
    sd_synth_params p = sd_synth_default_params();
    p.shape = *sd_synth_preset(preset);
    if (arch) cr_assert_eq(sd_synth_set_arch(&p.shape, arch), 0);
    p.type = type;
    p.seed = seed;
    p.n_threads = threads;
    cr_assert_eq(sd_synth_write(&p, path, err), 0, "%s", err);
}

/* Loads, checks the shape, evaluates a few tokens; returns the model. */
static void load_and_run(const char *path, const char *arch, int n_vocab)
{
    char err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    const sd_hparams *hp = sd_model_hparams(m);
    cr_assert_str_eq(hp->arch_name, arch);
    cr_assert_eq(hp->n_vocab, n_vocab);
    sd_session_params sp = sd_session_default_params();
    sp.n_ctx = 64;
    sp.n_threads = 1;
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    int32_t *toks = NULL;
    int n = 0;
    const char *text = "Once upon a time, there was a tiny model.";
    cr_assert_eq(sd_tokenize(sd_model_tokenizer(m), text, strlen(text), 1, &toks, &n, err), 0, "%s", err);
    cr_assert(n > 3, "%d tokens", n);
    cr_assert_eq(sd_session_eval(s, toks, n, NULL, err), 0, "%s", err);
    const float *lg = sd_session_logits(s);
    double sum2 = 0;
    for (int i = 0; i < hp->n_vocab; i++) {
        cr_assert(isfinite(lg[i]), "logit %d is %f", i, lg[i]);
        sum2 += (double)lg[i] * lg[i];
    }
    cr_assert(sum2 > 0, "all logits are zero");
    free(toks);
    sd_session_free(s);
    sd_model_free(m);
}

Test(synth, tiny_llama_loads_and_runs)
{
    char p[128];
    synth_to(tmp(p, sizeof p, "llama.gguf"), "tiny", NULL, "F32", 1, 2);
    load_and_run(p, "llama", 512);
}

Test(synth, tiny_qwen2_has_biases_and_runs)
{
    char p[128], err[SD_ERR_LEN];
    synth_to(tmp(p, sizeof p, "qwen2.gguf"), "tiny", "qwen2", "F16", 1, 2);
    gguf_file *f;
    cr_assert_eq(gguf_open_header(p, &f, err), 0, "%s", err);
    const gguf_tensor *b = gguf_find_tensor(f, "blk.1.attn_q.bias");
    cr_assert_not_null(b);
    cr_assert_eq(b->type, SD_TYPE_F32, "vectors stay F32");
    cr_assert_eq(b->ne[0], 128);
    cr_assert_not_null(gguf_find_tensor(f, "blk.0.attn_v.bias"));
    gguf_close(f);
    load_and_run(p, "qwen2", 512);
}

Test(synth, tiny_qwen3_has_qk_norms_and_runs)
{
    char p[128], err[SD_ERR_LEN];
    synth_to(tmp(p, sizeof p, "qwen3.gguf"), "tiny", "qwen3", "BF16", 1, 2);
    gguf_file *f;
    cr_assert_eq(gguf_open_header(p, &f, err), 0, "%s", err);
    const gguf_tensor *n = gguf_find_tensor(f, "blk.0.attn_k_norm.weight");
    cr_assert(n && n->ne[0] == 32 && n->type == SD_TYPE_F32);
    uint32_t kl = 0;
    cr_assert_eq(gguf_get_u32(f, "qwen3.attention.key_length", &kl, err), 1);
    cr_assert_eq(kl, 32);
    gguf_close(f);
    load_and_run(p, "qwen3", 512);
}

Test(synth, quantized_types_load_and_run)
{
    const char *types[] = {"Q8_0", "q4_0", "q4_k_m", "nvfp4", "q2_k"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char p[128], name[32];
        snprintf(name, sizeof name, "%s.gguf", types[i]);
        synth_to(tmp(p, sizeof p, name), "tiny", NULL, types[i], 3, 2);
        load_and_run(p, "llama", 512);
    }
    /* NVFP4 tensors carry their per-tensor scale */
    char p[128], err[SD_ERR_LEN];
    gguf_file *f;
    cr_assert_eq(gguf_open_header(tmp(p, sizeof p, "nvfp4.gguf"), &f, err), 0, "%s", err);
    const gguf_tensor *t = gguf_find_tensor(f, "blk.0.attn_q.weight");
    cr_assert_eq(t->type, SD_TYPE_NVFP4);
    float sc = sd_tensor_scale(f, t);
    cr_assert(sc > 0 && sc < 1e-3f, "scale %g", sc);
    gguf_close(f);
}

/* Dequantized pooled weights keep the generator's spread (sigma 0.02). */
Test(synth, quantized_weights_have_the_right_spread)
{
    char p[128], err[SD_ERR_LEN];
    synth_to(tmp(p, sizeof p, "q8.gguf"), "tiny", NULL, "Q8_0", 5, 2);
    gguf_file *f;
    cr_assert_eq(gguf_open(p, &f, err), 0, "%s", err);
    const gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_gate.weight");
    float *v = malloc(t->n_elements * sizeof *v);
    sd_type_get(t->type)->to_float(t->data, v, (int64_t)t->n_elements);
    double s2 = 0, mean = 0;
    for (uint64_t i = 0; i < t->n_elements; i++) { mean += v[i]; s2 += (double)v[i] * v[i]; }
    mean /= (double)t->n_elements;
    double sd = sqrt(s2 / (double)t->n_elements);
    cr_assert(fabs(mean) < 0.002, "mean %g", mean);
    cr_assert(sd > 0.017 && sd < 0.023, "sigma %g", sd);
    free(v);
    gguf_close(f);
}

static void *slurp(const char *path, size_t *n)
{
    void *b = read_all(path, n);
    cr_assert_not_null(b, "%s", path);
    return b;
}

Test(synth, same_seed_same_bytes_whatever_the_threads)
{
    char a[128], b[128], c[128], d[128];
    synth_to(tmp(a, sizeof a, "a.gguf"), "tiny", NULL, "F16", 7, 1);
    synth_to(tmp(b, sizeof b, "b.gguf"), "tiny", NULL, "F16", 7, 2);
    synth_to(tmp(c, sizeof c, "c.gguf"), "tiny", NULL, "F16", 8, 2);
    synth_to(tmp(d, sizeof d, "d.gguf"), "tiny", NULL, "q4_0", 7, 1);
    size_t na, nb, nc;
    void *ba = slurp(a, &na), *bb = slurp(b, &nb), *bc = slurp(c, &nc);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(ba, bb, na), 0, "1 and 2 threads give the same file");
    cr_assert_eq(na, nc);
    cr_assert_neq(memcmp(ba, bc, na), 0, "another seed gives other weights");
    free(ba); free(bb); free(bc);
    /* quantized (pooled) files too */
    char e[128];
    synth_to(tmp(e, sizeof e, "e.gguf"), "tiny", NULL, "q4_0", 7, 2);
    size_t nd, ne;
    void *bd = slurp(d, &nd), *be = slurp(e, &ne);
    cr_assert(nd == ne && !memcmp(bd, be, nd), "pooled blocks are deterministic too");
    free(bd); free(be);
}

Test(synth, synthesized_vocabulary_tokenizes_and_round_trips)
{
    char p[128], err[SD_ERR_LEN];
    synth_to(tmp(p, sizeof p, "v.gguf"), "tiny", NULL, "F32", 1, 1);
    sd_model *m;
    cr_assert_eq(sd_model_load(p, &m, err), 0, "%s", err);
    sd_tokenizer *t = sd_model_tokenizer(m);
    cr_assert_eq(sd_tokenizer_n_vocab(t), 512);
    cr_assert_eq(sd_token_bos(t), 510);
    cr_assert_eq(sd_token_eos(t), 511);
    const char *text = "Hello, world! The tea is hot.\n\xc3\xa9t\xc3\xa9";
    int32_t *toks = NULL;
    int n = 0;
    cr_assert_eq(sd_tokenize(t, text, strlen(text), 0, &toks, &n, err), 0, "%s", err);
    cr_assert(n < (int)strlen(text), "merges shorten the text: %d tokens for %zu bytes", n, strlen(text));
    char out[256] = "";
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *piece = sd_token_piece(t, toks[i], &len);
        memcpy(out + o, piece, len);
        o += len;
    }
    out[o] = 0;
    cr_assert_str_eq(out, text, "pieces rebuild the text");
    free(toks);
    sd_model_free(m);
}

Test(synth, vocabulary_copied_from_a_file_sets_the_size)
{
    char p[128], v[512], err[SD_ERR_LEN];
    sd_synth_params sp = sd_synth_default_params();
    sp.shape = *sd_synth_preset("tiny");
    sp.type = "Q8_0";
    sp.vocab_path = shared_path(v, sizeof v, "models/vocab-llama-spm.gguf");
    cr_assert_eq(sd_synth_write(&sp, tmp(p, sizeof p, "spm.gguf"), err), 0, "%s", err);
    sd_model *m;
    cr_assert_eq(sd_model_load(p, &m, err), 0, "%s", err);
    cr_assert_eq(sd_model_hparams(m)->n_vocab, 32000);
    cr_assert_eq(sd_model_tokenizer(m)->kind, SD_TOK_SPM);
    sd_model_free(m);
    load_and_run(p, "llama", 32000);
}

/* ---- the presets' real shapes ------------------------------------------- */

Test(synth, preset_table_has_the_real_shapes)
{
    struct { const char *name, *arch; int embd, layer, head, kv, hd, ff, vocab, tied; float rope; } want[] = {
        {"llama-3.2-1b", "llama", 2048, 16, 32, 8, 64, 8192, 128256, 1, 500000},
        {"llama-3.1-8b", "llama", 4096, 32, 32, 8, 128, 14336, 128256, 0, 500000},
        {"llama-3.3-70b", "llama", 8192, 80, 64, 8, 128, 28672, 128256, 0, 500000},
        {"qwen3-8b", "qwen3", 4096, 36, 32, 8, 128, 12288, 151936, 0, 1000000},
        {"qwen2.5-1.5b", "qwen2", 1536, 28, 12, 2, 128, 8960, 151936, 1, 1000000},
        {"mistral-7b", "llama", 4096, 32, 32, 8, 128, 14336, 32768, 0, 1000000},
        {"bench-1.1b", "llama", 2048, 16, 32, 8, 64, 8192, 32000, 0, 10000},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const sd_synth_shape *s = sd_synth_preset(want[i].name);
        cr_assert_not_null(s, "%s", want[i].name);
        cr_assert_str_eq(s->arch, want[i].arch);
        cr_assert(s->n_embd == want[i].embd && s->n_layer == want[i].layer && s->n_head == want[i].head &&
                      s->n_head_kv == want[i].kv && s->head_dim == want[i].hd && s->n_ff == want[i].ff &&
                      s->n_vocab == want[i].vocab && s->tied == want[i].tied && s->rope_base == want[i].rope,
                  "%s has the wrong shape", want[i].name);
    }
    /* parameter counts people quote */
    cr_assert(fabs((double)sd_synth_n_params(sd_synth_preset("llama-3.1-8b")) / 1e9 - 8.03) < 0.01);
    cr_assert(fabs((double)sd_synth_n_params(sd_synth_preset("llama-3.3-70b")) / 1e9 - 70.55) < 0.01);
    cr_assert(fabs((double)sd_synth_n_params(sd_synth_preset("qwen3-8b")) / 1e9 - 8.19) < 0.01);
    cr_assert(fabs((double)sd_synth_n_params(sd_synth_preset("llama-3.2-1b")) / 1e9 - 1.24) < 0.01);
    char err[SD_ERR_LEN];
    for (int i = 0; i < sd_synth_n_presets(); i++)
        cr_assert_eq(sd_synth_check(sd_synth_preset_at(i), err), 0, "%s: %s", sd_synth_preset_at(i)->name, err);
    cr_assert_null(sd_synth_preset("llama-9"));
}

static gguf_file *header_of(const char *preset, const char *type)
{
    char p[128], err[SD_ERR_LEN];
    sd_synth_params sp = sd_synth_default_params();
    sp.shape = *sd_synth_preset(preset);
    sp.type = type;
    sp.header_only = 1;
    snprintf(p, sizeof p, "%s/%s.gguf", dir, preset);
    cr_assert_eq(sd_synth_write(&sp, p, err), 0, "%s", err);
    gguf_file *f;
    cr_assert_eq(gguf_open_header(p, &f, err), 0, "%s", err);
    return f;
}

static void expect_u32(const gguf_file *f, const char *key, uint32_t want)
{
    char err[SD_ERR_LEN];
    uint32_t v = 0;
    cr_assert_eq(gguf_get_u32(f, key, &v, err), 1, "%s missing", key);
    cr_assert_eq(v, want, "%s = %u, want %u", key, v, want);
}

static void expect_tensor(const gguf_file *f, const char *name, int64_t ne0, int64_t ne1, uint32_t type)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    cr_assert_not_null(t, "%s missing", name);
    cr_assert(t->ne[0] == ne0 && t->ne[1] == ne1, "%s is [%lld, %lld]", name, (long long)t->ne[0],
              (long long)t->ne[1]);
    cr_assert_eq(t->type, type, "%s is %s", name, sd_type_name(t->type));
}

Test(synth, llama_70b_header_has_the_real_shape)
{
    gguf_file *f = header_of("llama-3.3-70b", "Q4_K_M");
    expect_u32(f, "llama.block_count", 80);
    expect_u32(f, "llama.embedding_length", 8192);
    expect_u32(f, "llama.attention.head_count", 64);
    expect_u32(f, "llama.attention.head_count_kv", 8);
    expect_u32(f, "llama.feed_forward_length", 28672);
    expect_u32(f, "general.file_type", 15);
    float base = 0;
    char err[SD_ERR_LEN];
    cr_assert_eq(gguf_get_f32(f, "llama.rope.freq_base", &base, err), 1);
    cr_assert_eq(base, 500000.0f);
    cr_assert_eq(f->n_tensors, 2 + 1 + 80 * 9 + 1);
    expect_tensor(f, "token_embd.weight", 8192, 128256, SD_TYPE_Q4_K);
    expect_tensor(f, "output.weight", 8192, 128256, SD_TYPE_Q6_K);
    expect_tensor(f, "blk.79.ffn_down.weight", 28672, 8192, SD_TYPE_Q6_K);
    expect_tensor(f, "blk.40.attn_v.weight", 8192, 1024, SD_TYPE_Q5_K);  /* the 70B bump */
    expect_tensor(f, "rope_freqs.weight", 64, 1, SD_TYPE_F32);
    cr_assert(f->file_size > 39e9 && f->file_size < 44e9, "%llu bytes", (unsigned long long)f->file_size);
    gguf_close(f);
}

Test(synth, tied_and_qwen_headers_have_their_tensors)
{
    gguf_file *f = header_of("llama-3.2-1b", "F16");
    cr_assert_null(gguf_find_tensor(f, "output.weight"), "llama 3.2 1B ties its embeddings");
    expect_tensor(f, "token_embd.weight", 2048, 128256, SD_TYPE_F16);
    expect_u32(f, "llama.vocab_size", 128256);
    gguf_close(f);

    f = header_of("qwen3-8b", "BF16");
    expect_u32(f, "qwen3.attention.key_length", 128);
    expect_u32(f, "qwen3.block_count", 36);
    expect_tensor(f, "blk.35.attn_q.weight", 4096, 4096, SD_TYPE_BF16);
    expect_tensor(f, "blk.0.attn_q_norm.weight", 128, 1, SD_TYPE_F32);
    expect_tensor(f, "output.weight", 4096, 151936, SD_TYPE_BF16);
    gguf_close(f);

    f = header_of("qwen2.5-1.5b", "Q8_0");
    expect_tensor(f, "blk.27.attn_k.bias", 256, 1, SD_TYPE_F32);
    expect_tensor(f, "blk.0.attn_k.weight", 1536, 256, SD_TYPE_Q8_0);
    cr_assert_null(gguf_find_tensor(f, "output.weight"));
    gguf_close(f);
}

/* ---- the command line --------------------------------------------------- */

static int run_cli(const char *args, char *out, size_t n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", showdown_bin(), args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(synth, cli_writes_a_model_and_rejects_bad_input)
{
    char args[512], out[4096], p[128];
    struct stat st;
    if (stat(showdown_bin(), &st)) cr_skip_test("no %s", showdown_bin());
    snprintf(args, sizeof args, "synth --preset tiny --arch qwen3 --layers 3 --seed 9 -o %s",
             tmp(p, sizeof p, "c.gguf"));
    cr_assert_eq(run_cli(args, out, sizeof out), 0, "%s", out);
    load_and_run(p, "qwen3", 512);

    cr_assert_neq(run_cli("synth --preset nope -o x.gguf", out, sizeof out), 0);
    cr_assert(strstr(out, "error:") && strstr(out, "nope"), "%s", out);
    cr_assert_neq(run_cli("synth --type q9_9 -o x.gguf", out, sizeof out), 0);
    cr_assert(strstr(out, "q9_9") && strstr(out, "Q4_K_M"), "lists the valid types: %s", out);
    cr_assert_neq(run_cli("synth --heads 5 --kv-heads 2 --dim 640 -o x.gguf", out, sizeof out), 0);
    cr_assert(strstr(out, "divide"), "%s", out);
    snprintf(args, sizeof args, "synth -o %s/missing/x.gguf", dir);
    cr_assert_neq(run_cli(args, out, sizeof out), 0);
    cr_assert(strstr(out, "missing/x.gguf"), "names the file: %s", out);
}

/* Every preset, as `synth --preset NAME --type q4_0 --layers 1 --vocab-size 512`
 * would write it: the real layer shapes (width, heads, head size, FFN, biases,
 * norms, rope), one layer and a small vocabulary so the test stays in seconds,
 * must load and run. Under the sanitizers only the presets up to ~2B. */
Test(synth, every_preset_loads_and_runs_at_q4_0, .timeout = 300)
{
    for (int i = 0; i < sd_synth_n_presets(); i++) {
        const sd_synth_shape *shape = sd_synth_preset_at(i);
        if (sanitized() && shape->n_embd > 2048) continue;
        char p[160], err[SD_ERR_LEN];
        snprintf(p, sizeof p, "%s/preset-%s.gguf", dir, shape->name);
        sd_synth_params sp = sd_synth_default_params();
        sp.shape = *shape;
        sp.shape.n_layer = 1;
        sp.shape.n_vocab = 512;
        sp.type = "q4_0";
        sp.n_threads = 2;
        cr_assert_eq(sd_synth_write(&sp, p, err), 0, "%s: %s", shape->name, err);
        load_and_run(p, shape->arch, 512);
        unlink(p);
    }
}
