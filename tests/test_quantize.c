/* quantize: the tiny F32 model quantized to several formats and recipes loads,
 * runs and stays close to the F32 logits; the recipes pick, tensor by tensor,
 * the formats the independent quantizer picked for the reference files; type
 * names are case-insensitive; and bad targets, quantized sources, unwritable
 * paths and full disks fail with a message and leave nothing. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "gguf/gguf.h"
#include "quant/quantize.h"
#include "quant/recipe.h"
#include "showdown.h"
#include "tensor/scale.h"
#include "tensor/types.h"

static char dir[64];

static void make_dir(void) { cr_assert_eq(tmp_dir_make(dir, sizeof dir), 0); }
static void remove_dir(void) { cr_assert_eq(tmp_dir_remove(dir), 0); }

TestSuite(quantize, .init = make_dir, .fini = remove_dir, .timeout = 300);

static const char *tiny(char *buf, size_t n, const char *fmt)
{
    char rel[64];
    snprintf(rel, sizeof rel, "models/tiny-%s.gguf", fmt);
    return shared_path(buf, n, rel);
}

static int count_files(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

static int quantize(const char *in, const char *out, const char *type, int pure, char *err)
{
    sd_quantize_params p = sd_quantize_default_params();
    p.target = type;
    p.pure = pure;
    p.n_threads = 2;
    return sd_quantize_file(in, out, &p, NULL, err);
}

/* Logits of every position of a fixed prompt. */
static float *logits_of(const char *path, int *n_rows, int *n_vocab)
{
    char err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    sd_session_params sp = sd_session_default_params();
    sp.n_ctx = 64;
    sp.n_threads = 1;
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    int32_t *toks = NULL;
    int n = 0;
    const char *text = "Once upon a time there was a little dog";
    cr_assert_eq(sd_tokenize(sd_model_tokenizer(m), text, strlen(text), 1, &toks, &n, err), 0, "%s", err);
    int nv = sd_model_hparams(m)->n_vocab;
    float *lg = malloc((size_t)n * (size_t)nv * sizeof *lg);
    cr_assert_eq(sd_session_eval(s, toks, n, lg, err), 0, "%s", err);
    for (int i = 0; i < n * nv; i++) cr_assert(isfinite(lg[i]), "%s: logit %d is %f", path, i, lg[i]);
    free(toks);
    sd_session_free(s);
    sd_model_free(m);
    *n_rows = n;
    *n_vocab = nv;
    return lg;
}

static double rel_l2(const float *a, const float *b, int n)
{
    double d = 0, r = 0;
    for (int i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / r);
}

/* Quantizes tiny-f32 to type and checks the result against the F32 logits. */
static double error_of(const char *type)
{
    char in[512], out[128], err[SD_ERR_LEN];
    snprintf(out, sizeof out, "%s/%s.gguf", dir, type);
    cr_assert_eq(quantize(tiny(in, sizeof in, "f32"), out, type, 0, err), 0, "%s", err);
    int nr, nv, nr2, nv2;
    float *ref = logits_of(in, &nr, &nv), *got = logits_of(out, &nr2, &nv2);
    cr_assert(nr == nr2 && nv == nv2);
    double e = rel_l2(got, ref, nr * nv);
    free(ref);
    free(got);
    return e;
}

/* The same distance for the reference quantizer's file of that format. */
static double reference_error_of(const char *type)
{
    char in[512], ref[512];
    int nr, nv, nr2, nv2;
    float *f32 = logits_of(tiny(in, sizeof in, "f32"), &nr, &nv);
    float *q = logits_of(tiny(ref, sizeof ref, type), &nr2, &nv2);
    cr_assert(nr == nr2 && nv == nv2);
    double e = rel_l2(q, f32, nr * nv);
    free(f32);
    free(q);
    return e;
}

Test(quantize, q8_0_is_close_to_f32)
{
    double e = error_of("q8_0"), ref = reference_error_of("q8_0");
    cr_assert(e < 0.1, "relative L2 %g", e);
    cr_assert(e < 1.2 * ref, "ours %g, the reference quantizer's %g", e, ref);
}

Test(quantize, q4_0_and_nvfp4_load_and_run)
{
    double e4 = error_of("q4_0"), env = error_of("nvfp4"), ref4 = reference_error_of("q4_0");
    cr_log_info("Q4_0: relative L2 of the logits %.4f, the reference quantizer's file %.4f", e4, ref4);
    cr_assert(e4 <= ref4, "Q4_0: ours %g costs more than the reference quantizer's %g", e4, ref4);
    cr_assert(env < 0.35, "NVFP4 relative L2 %g", env);
    char out[128], err[SD_ERR_LEN];
    gguf_file *f;
    snprintf(out, sizeof out, "%s/nvfp4.gguf", dir);
    cr_assert_eq(gguf_open(out, &f, err), 0, "%s", err);
    const gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_up.weight");
    cr_assert_eq(t->type, SD_TYPE_NVFP4);
    float s = sd_tensor_scale(f, t);
    cr_assert(s != 1.0f && s > 0, "NVFP4 tensors carry a per-tensor scale (%g)", s);
    uint32_t ft = 0;
    cr_assert_eq(gguf_get_u32(f, "general.file_type", &ft, err), 1);
    cr_assert_eq(ft, SD_FTYPE_NVFP4);
    cr_assert_eq(gguf_find_tensor(f, "blk.0.attn_norm.weight")->type, SD_TYPE_F32, "1-D tensors stay F32");
    gguf_close(f);
}

Test(quantize, q4_k_m_loads_runs_and_copies_metadata)
{
    double e = error_of("q4_k_m"), ref = reference_error_of("q4_k_m");
    cr_assert(e < 0.35, "Q4_K_M relative L2 %g", e);
    cr_assert(e < 1.2 * ref, "ours %g, the reference quantizer's %g", e, ref);
    char in[512], out[128], err[SD_ERR_LEN];
    gguf_file *a, *b;
    snprintf(out, sizeof out, "%s/q4_k_m.gguf", dir);
    cr_assert_eq(gguf_open_header(tiny(in, sizeof in, "f32"), &a, err), 0, "%s", err);
    cr_assert_eq(gguf_open_header(out, &b, err), 0, "%s", err);
    for (uint64_t i = 0; i < a->n_kv; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)a->kv[i].key.len, a->kv[i].key.ptr);
        const gguf_kv *k = gguf_find(b, key);
        cr_assert_not_null(k, "%s was not copied", key);
        cr_assert_eq(k->type, a->kv[i].type);
    }
    uint32_t ft = 0, qv = 0;
    cr_assert_eq(gguf_get_u32(b, "general.file_type", &ft, err), 1);
    cr_assert_eq(ft, 15, "LLAMA_FTYPE_MOSTLY_Q4_K_M");
    cr_assert_eq(gguf_get_u32(b, "general.quantization_version", &qv, err), 1);
    cr_assert_eq(qv, 2);
    gguf_close(a);
    gguf_close(b);
}

/* ---- recipes: the same per-tensor formats as the reference quantizer ----- */

typedef struct { const gguf_file *ref; int n, mismatches; char first[256]; } plan_check;

static void check_tensor(void *ctx, const char *name, const int64_t *ne, uint32_t from, uint32_t to)
{
    plan_check *c = ctx;
    (void)ne;
    (void)from;
    const gguf_tensor *t = gguf_find_tensor(c->ref, name);
    c->n++;
    if (!t || t->type != to) {
        if (!c->mismatches++)
            snprintf(c->first, sizeof c->first, "%s: ours %s, reference %s", name, sd_type_name(to),
                     t ? sd_type_name(t->type) : "missing");
    }
}

Test(quantize, recipes_choose_the_reference_formats)
{
    const char *recipes[] = {"q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k", "q8_0", "q4_0"};
    for (size_t i = 0; i < sizeof recipes / sizeof recipes[0]; i++) {
        char in[512], ref[512], err[SD_ERR_LEN];
        gguf_file *f;
        cr_assert_eq(gguf_open_header(tiny(ref, sizeof ref, recipes[i]), &f, err), 0, "%s", err);
        plan_check c = {f, 0, 0, ""};
        sd_quantize_params p = sd_quantize_default_params();
        p.target = recipes[i];
        cr_assert_eq(sd_quantize_plan(tiny(in, sizeof in, "f32"), &p, check_tensor, &c, err), 0, "%s", err);
        cr_assert_eq(c.n, (int)f->n_tensors);
        cr_assert_eq(c.mismatches, 0, "%s: %d tensors differ, first %s", recipes[i], c.mismatches, c.first);
        gguf_close(f);
    }
}

static void count_types(void *ctx, const char *name, const int64_t *ne, uint32_t from, uint32_t to)
{
    int *counts = ctx;
    (void)name; (void)ne; (void)from;
    counts[to]++;
}

Test(quantize, pure_and_plain_names_use_one_format)
{
    char in[512], err[SD_ERR_LEN];
    int counts[SD_TYPE_COUNT] = {0};
    sd_quantize_params p = sd_quantize_default_params();
    p.target = "Q4_K_m";
    p.pure = 1;
    cr_assert_eq(sd_quantize_plan(tiny(in, sizeof in, "f32"), &p, count_types, counts, err), 0, "%s", err);
    cr_assert_eq(counts[SD_TYPE_Q4_K], 16, "every matrix Q4_K with --pure");
    cr_assert_eq(counts[SD_TYPE_F32], 5, "vectors stay F32");
    memset(counts, 0, sizeof counts);
    p.target = "q4_0";
    p.pure = 0;
    p.keep_output_f16 = 1;
    cr_assert_eq(sd_quantize_plan(in, &p, count_types, counts, err), 0, "%s", err);
    cr_assert_eq(counts[SD_TYPE_Q4_0], 15);
    cr_assert_eq(counts[SD_TYPE_F16], 1, "--keep-output-f16 keeps output.weight in F16");
}

/* Rows of 64 values do not fit K-quant super-blocks: the fallback is used and said. */
static void count_notes(void *ctx, const char *msg)
{
    int *n = ctx;
    if (strstr(msg, "do not fit")) (*n)++;
}

static void ignore(void *ctx, const char *name, const int64_t *ne, uint32_t from, uint32_t to)
{
    (void)ctx; (void)name; (void)ne; (void)from; (void)to;
}

Test(quantize, row_fallback_is_reported)
{
    char in[512], err[SD_ERR_LEN];
    int notes = 0;
    sd_quantize_params p = sd_quantize_default_params();
    p.target = "q4_k";
    p.note = count_notes;
    p.note_ctx = &notes;
    /* stories260K: dim 64, FFN 172 */
    cr_assert_eq(sd_quantize_plan(shared_path(in, sizeof in, "models/stories260K.gguf"), &p, ignore, NULL, err), 0,
                 "%s", err);
    cr_assert(notes > 0, "no fallback note");
}

/* ---- failures --------------------------------------------------------- */

Test(quantize, names_are_case_insensitive)
{
    char in[512], a[128], b[128], err[SD_ERR_LEN];
    snprintf(a, sizeof a, "%s/lower.gguf", dir);
    snprintf(b, sizeof b, "%s/upper.gguf", dir);
    cr_assert_eq(quantize(tiny(in, sizeof in, "f32"), a, "q8_0", 0, err), 0, "%s", err);
    cr_assert_eq(quantize(in, b, "Q8_0", 0, err), 0, "%s", err);
    size_t na = 0, nb = 0;
    void *ba = read_all(a, &na), *bb = read_all(b, &nb);
    cr_assert(ba && bb && na == nb && !memcmp(ba, bb, na), "same bytes whatever the case");
    free(ba);
    free(bb);
    cr_assert_not_null(sd_qrecipe_find("Nvfp4"));
    cr_assert_not_null(sd_qrecipe_find("bf16"));
    cr_assert_null(sd_qrecipe_find("q8_k"), "activation formats are not targets");
}

Test(quantize, unknown_type_lists_the_valid_ones)
{
    char in[512], out[128], err[SD_ERR_LEN] = "";
    snprintf(out, sizeof out, "%s/x.gguf", dir);
    cr_assert_eq(quantize(tiny(in, sizeof in, "f32"), out, "q4_z", 0, err), -1);
    cr_assert(strstr(err, "q4_z") && strstr(err, "Q4_K_M") && strstr(err, "NVFP4"), "%s", err);
    cr_assert_eq(count_files(), 0);
}

Test(quantize, quantized_source_is_refused)
{
    char in[512], out[128], err[SD_ERR_LEN] = "";
    snprintf(out, sizeof out, "%s/x.gguf", dir);
    cr_assert_eq(quantize(tiny(in, sizeof in, "q4_0"), out, "q8_0", 0, err), -1);
    cr_assert(strstr(err, in) && strstr(err, "already quantized"), "%s", err);
    cr_assert_eq(count_files(), 0);
}

/* Requantizing decodes with the source's per-tensor scale: NVFP4 -> Q8_0
 * stays as close to the NVFP4 model as Q8_0 is to F32. */
Test(quantize, requantizing_keeps_the_source_scale)
{
    char in[512], nv[128], q8[128], err[SD_ERR_LEN] = "";
    snprintf(nv, sizeof nv, "%s/nv.gguf", dir);
    snprintf(q8, sizeof q8, "%s/q8.gguf", dir);
    cr_assert_eq(quantize(tiny(in, sizeof in, "f32"), nv, "nvfp4", 0, err), 0, "%s", err);
    cr_assert_eq(quantize(nv, q8, "q8_0", 0, err), -1, "refused without allow_requantize");
    sd_quantize_params p = sd_quantize_default_params();
    p.target = "q8_0";
    p.allow_requantize = 1;
    cr_assert_eq(sd_quantize_file(nv, q8, &p, NULL, err), 0, "%s", err);
    int nr, nvoc, nr2, nv2;
    float *a = logits_of(nv, &nr, &nvoc), *b = logits_of(q8, &nr2, &nv2);
    double e = rel_l2(b, a, nr * nvoc);
    cr_assert(e < 0.05, "Q8_0 of the NVFP4 model: relative L2 %g", e);
    free(a);
    free(b);
}

/* A block of Q4_1 values (16 levels of d from m) requantized to Q5_1 lands
 * exactly on the Q5_1 grid of d/2: requantizing a Q4_1 file loses nothing
 * there (the reference's single factor, range/31, does lose). */
Test(quantize, q4_1_grid_requantizes_to_q5_1_exactly)
{
    const sd_type_traits *q5 = sd_type_get(SD_TYPE_Q5_1), *q4 = sd_type_get(SD_TYPE_Q4_1);
    float x[64], y[64], z[64];
    uint8_t b4[64], b5[64];
    unsigned r = 12345;
    for (int i = 0; i < 64; i++) {
        r = r * 1103515245u + 12345u;
        x[i] = (float)((r >> 16) % 2001) / 1000.0f - 1.0f;   /* -1 .. 1 */
    }
    q4->from_float(x, b4, 64);
    q4->to_float(b4, y, 64);
    q5->from_float(y, b5, 64);
    q5->to_float(b5, z, 64);
    for (int i = 0; i < 64; i++) cr_assert_eq(z[i], y[i], "value %d: %.9g became %.9g", i, y[i], z[i]);
}

Test(quantize, unwritable_output_leaves_nothing)
{
    char in[512], out[128], err[SD_ERR_LEN] = "";
    snprintf(out, sizeof out, "%s/no/such/dir/x.gguf", dir);
    cr_assert_eq(quantize(tiny(in, sizeof in, "f32"), out, "q8_0", 0, err), -1);
    cr_assert(strstr(err, out), "names the output: %s", err);
    cr_assert_eq(count_files(), 0);
}

Test(quantize, full_disk_leaves_nothing)
{
    char in[512], out[128];
    tiny(in, sizeof in, "f32");
    snprintf(out, sizeof out, "%s/full.gguf", dir);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        char err[SD_ERR_LEN] = "";
        struct rlimit rl = {300000, 300000};   /* the Q8_0 file is about 2 MB */
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(10);
        if (quantize(in, out, "q8_0", 0, err) == 0) _exit(11);
        if (!strstr(err, out) || !strstr(err, "too large")) _exit(12);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WEXITSTATUS(st));
    cr_assert_eq(count_files(), 0);
}

static int run_cli(const char *args, char *out, size_t n)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", showdown_bin(), args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(quantize, cli_exit_codes_and_messages)
{
    char in[512], args[1100], out[4096];
    struct stat st;
    if (stat(showdown_bin(), &st)) cr_skip_test("no %s", showdown_bin());
    tiny(in, sizeof in, "f32");
    snprintf(args, sizeof args, "quantize %s %s/ok.gguf Q8_0", in, dir);
    cr_assert_eq(run_cli(args, out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args, "quantize %s %s/bad.gguf nonsense", in, dir);
    cr_assert_eq(run_cli(args, out, sizeof out), 1);
    cr_assert(strstr(out, "error: nonsense") && strstr(out, "valid"), "%s", out);
    snprintf(args, sizeof args, "quantize %s %s/nodir/x.gguf q4_0", in, dir);
    cr_assert_eq(run_cli(args, out, sizeof out), 1);
    cr_assert(strstr(out, "error:") && strstr(out, "nodir/x.gguf"), "%s", out);
    snprintf(args, sizeof args, "quantize %s", in);
    cr_assert_neq(run_cli(args, out, sizeof out), 0, "missing arguments");
    cr_assert_eq(count_files(), 1, "only ok.gguf");
}
