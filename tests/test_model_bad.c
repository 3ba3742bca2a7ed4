/* Models that parse as GGUF but make no sense as models, and the CLI's
 * answers to bad input. Each hostile model is a real shared file with one
 * field patched in place and written to a temporary copy. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "showdown.h"
#include "eval/logits_file.h"
#include "plan/plan.h"
#include "common.h"
#include "gguf_patch.h"

static unsigned char *orig;
static size_t orig_len;

static void load_orig(void)
{
    char p[512];
    orig = read_all(shared_path(p, sizeof p, "models/tiny-f32.gguf"), &orig_len);
    cr_assert_not_null(orig, "cannot read %s", p);
}

static const char *write_tmp(const unsigned char *b, size_t n)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/sd-bad-%d.gguf", (int)getpid());
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
    return path;
}

/* Sets the u32 value of a metadata key and expects the load to fail with needle. */
static void expect_kv_rejected(const char *key, uint32_t value, const char *needle)
{
    load_orig();
    size_t at = gguf_find_str(orig, orig_len, key);
    uint32_t type;
    memcpy(&type, orig + at, 4);
    cr_assert_eq(type, 4, "%s is not u32 in the fixture", key);
    memcpy(orig + at + 4, &value, 4);
    const char *path = write_tmp(orig, orig_len);
    char err[SD_ERR_LEN] = "";
    sd_model *m = NULL;
    cr_assert_eq(sd_model_load(path, &m, err), -1, "%s = %u was accepted", key, value);
    cr_assert(strstr(err, path) == err, "message should start with the file: %s", err);
    cr_assert(strstr(err, needle), "expected '%s' in: %s", needle, err);
    unlink(path);
    free(orig);
}

Test(model_bad, zero_heads) { expect_kv_rejected("llama.attention.head_count", 0, "zero attention heads"); }
Test(model_bad, kv_heads_do_not_divide) { expect_kv_rejected("llama.attention.head_count_kv", 3, "do not divide"); }
Test(model_bad, more_layers_than_tensors) { expect_kv_rejected("llama.block_count", 1000, "tensors"); }
/* Half a billion layers: the loader refuses it, and so does the planner's
 * header reader, whose cost model once walked them all (a fuzzer hang). */
Test(model_bad, absurd_layer_count)
{
    expect_kv_rejected("llama.block_count", 0x20000001u, "layers is absurd");
    load_orig();
    size_t at = gguf_find_str(orig, orig_len, "llama.block_count");
    uint32_t value = 0x20000001u;
    memcpy(orig + at + 4, &value, 4);
    const char *path = write_tmp(orig, orig_len);
    char err[SD_ERR_LEN] = "";
    sd_gguf_model g;
    cr_assert_eq(sd_shape_from_gguf(path, &g, err), -1, "the planner accepted %u layers", value);
    cr_assert(strstr(err, path) == err && strstr(err, "layers is absurd"), "%s", err);
    unlink(path);
    free(orig);
}
Test(model_bad, wrong_embedding_size) { expect_kv_rejected("llama.embedding_length", 128, "rotary"); }
Test(model_bad, wrong_ffn_size) { expect_kv_rejected("llama.feed_forward_length", 700, "shape"); }

static void expect_rename_rejected(const char *from, const char *to, const char *needle)
{
    load_orig();
    size_t at = gguf_find_str(orig, orig_len, from);
    cr_assert_eq(strlen(from), strlen(to));
    memcpy(orig + at - strlen(from), to, strlen(to));
    const char *path = write_tmp(orig, orig_len);
    char err[SD_ERR_LEN] = "";
    sd_model *m = NULL;
    cr_assert_eq(sd_model_load(path, &m, err), -1);
    cr_assert(strstr(err, needle), "expected '%s' in: %s", needle, err);
    unlink(path);
    free(orig);
}

Test(model_bad, missing_tensor) { expect_rename_rejected("blk.1.ffn_up.weight", "blk.1.ffn_uX.weight", "missing tensor blk.1.ffn_up.weight"); }
Test(model_bad, duplicate_tensor) { expect_rename_rejected("blk.1.ffn_up.weight", "blk.0.ffn_up.weight", "duplicate tensor"); }

Test(model_bad, vocabulary_only_file_is_not_a_model)
{
    char p[512], err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(p, sizeof p, "models/vocab-llama-spm.gguf"), &m, err), -1);
    cr_assert(strstr(err, "not a model") || strstr(err, "missing"), "%s", err);
}

Test(model_bad, token_out_of_range)
{
    char p[512], err[SD_ERR_LEN];
    sd_model *m;
    sd_session *s;
    cr_assert_eq(sd_model_load(shared_path(p, sizeof p, "models/stories260K.gguf"), &m, err), 0, "%s", err);
    sd_session_params sp = {32, 1, SD_KV_F32};
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    int32_t bad[2] = {1, 512};
    cr_assert_eq(sd_session_eval(s, bad, 2, NULL, err), -1);
    cr_assert(strstr(err, "token id 512 out of range"), "%s", err);
    int32_t neg = -1;
    cr_assert_eq(sd_session_eval(s, &neg, 1, NULL, err), -1);
    int32_t many[40] = {0};
    cr_assert_eq(sd_session_eval(s, many, 33, NULL, err), -1);
    cr_assert(strstr(err, "context full"), "%s", err);
    sd_session_free(s);
    sd_model_free(m);
}

/* Runs the CLI; returns its exit status, stdout and stderr in the buffers. */
static int run_cli(const char *args, char *out, size_t on, char *errb, size_t en)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s >/tmp/sd-cli-%d.out 2>/tmp/sd-cli-%d.err", showdown_bin(), args, (int)getpid(),
             (int)getpid());
    int st = system(cmd);
    char p[64];
    snprintf(p, sizeof p, "/tmp/sd-cli-%d.out", (int)getpid());
    size_t n = 0;
    char *b = read_all(p, &n);
    snprintf(out, on, "%.*s", (int)n, b ? b : "");
    free(b);
    unlink(p);
    snprintf(p, sizeof p, "/tmp/sd-cli-%d.err", (int)getpid());
    b = read_all(p, &n);
    snprintf(errb, en, "%.*s", (int)n, b ? b : "");
    free(b);
    unlink(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(cli, stories260k_continues_the_reference_text)
{
    char args[1024], p[512], out[4096], errb[4096];
    snprintf(args, sizeof args, "run -m %s -p 'Once upon a time' -n 40 --temp 0 -t 1",
             shared_path(p, sizeof p, "models/stories260K.gguf"));
    cr_assert_eq(run_cli(args, out, sizeof out, errb, sizeof errb), 0, "%s", errb);
    const char *want = ", there was a little girl named Lily. She loved to play outside in the park. "
                       "One day, she saw a big, red ball.";
    cr_assert(!strncmp(out, want, strlen(want)), "got: %s", out);
}

Test(cli, bad_input_gets_one_clear_error)
{
    char out[4096], errb[4096], args[1024], p[512];
    cr_assert_eq(run_cli("run -m /nonexistent.gguf -p hi", out, sizeof out, errb, sizeof errb), 1);
    cr_assert(strstr(errb, "error: /nonexistent.gguf: cannot open"), "%s", errb);
    cr_assert_eq(run_cli("run --bogus", out, sizeof out, errb, sizeof errb), 1);
    cr_assert(strstr(errb, "error: "), "%s", errb);
    snprintf(args, sizeof args, "run -m %s -n -5", shared_path(p, sizeof p, "models/stories260K.gguf"));
    cr_assert_eq(run_cli(args, out, sizeof out, errb, sizeof errb), 1);
    cr_assert(strstr(errb, "error: -n"), "%s", errb);
    cr_assert_eq(run_cli("nosuchcommand", out, sizeof out, errb, sizeof errb), 1);
    cr_assert(strstr(errb, "unknown command"), "%s", errb);
}

Test(cli, help_and_info)
{
    char out[8192], errb[4096], args[1024], p[512];
    cr_assert_eq(run_cli("--help", out, sizeof out, errb, sizeof errb), 0);
    cr_assert(strstr(out, "run") && strstr(out, "info"), "%s", out);
    cr_assert_eq(run_cli("run --help", out, sizeof out, errb, sizeof errb), 0);
    cr_assert(strstr(out, "--logits-out"), "%s", out);
    snprintf(args, sizeof args, "info %s", shared_path(p, sizeof p, "models/tiny-q4_k_m.gguf"));
    cr_assert_eq(run_cli(args, out, sizeof out, errb, sizeof errb), 0, "%s", errb);
    cr_assert(strstr(out, "architecture   llama"), "%s", out);
    cr_assert(strstr(out, "Q4_K"), "%s", out);
    cr_assert(strstr(out, "layers         2"), "%s", out);
}

/* `run --logits-out` against every reference file: same tokens, rows close. */
static void compare_cli_with_ref(const char *model, const char *ref, const char *prompt, double tol)
{
    char out[8192], errb[4096], args[1024], p[512], rp[512], err[SD_ERR_LEN], lp[64];
    sd_logits_file want, got;
    cr_assert_eq(sd_logits_file_read(shared_path(rp, sizeof rp, ref), &want, err), 0, "%s", err);
    snprintf(lp, sizeof lp, "/tmp/sd-logits-%d.bin", (int)getpid());
    snprintf(args, sizeof args, "run -m %s -p '%s' -n %u --temp 0 -ctk f32 -t 2 --logits-out %s",
             shared_path(p, sizeof p, model), prompt, want.n_gen, lp);
    cr_assert_eq(run_cli(args, out, sizeof out, errb, sizeof errb), 0, "%s", errb);
    cr_assert_eq(sd_logits_file_read(lp, &got, err), 0, "%s", err);
    unlink(lp);
    cr_assert_eq(got.n_vocab, want.n_vocab);
    cr_assert_eq(got.n_prompt, want.n_prompt);
    for (uint32_t i = 0; i < want.n_prompt; i++) cr_assert_eq(got.prompt[i], want.prompt[i], "prompt token %u", i);
    /* Greedy choices may part ways only where the reference's top two are a near tie. */
    uint32_t n = got.n_gen < want.n_gen ? got.n_gen : want.n_gen;
    uint32_t same = 0;
    while (same < n && got.gen[same] == want.gen[same]) same++;
    if (same < want.n_gen) {
        cr_assert_lt(same, got.n_gen, "%s: stopped early after %u tokens", model, same);
        const float *row = want.logits + (size_t)(want.n_prompt - 1 + same) * want.n_vocab;
        float gap = row[want.gen[same]] - row[got.gen[same]];
        cr_expect_lt(gap, 1e-2f, "%s: token %u differs (%d vs reference %d) by a logit gap of %g", model, same,
                     got.gen[same], want.gen[same], gap);
        cr_log_info("%s: near tie at token %u (gap %g); rows compared up to it", model, same, gap);
    }
    double worst = 0;
    for (uint32_t r = 0; r < want.n_prompt + same; r++) {
        double e = sd_rel_l2(got.logits + (size_t)r * got.n_vocab, want.logits + (size_t)r * want.n_vocab, want.n_vocab);
        worst = e > worst ? e : worst;
    }
    cr_expect_leq(worst, tol, "%s: worst row relative L2 %.3e > %.0e", model, worst, tol);
    sd_logits_file_free(&want);
    sd_logits_file_free(&got);
}

Test(cli_ref, stories_once) { compare_cli_with_ref("models/stories260K.gguf", "reference/stories260K-once.ref", "Once upon a time", 1e-3); }
Test(cli_ref, stories_dog) { compare_cli_with_ref("models/stories260K.gguf", "reference/stories260K-dog.ref", "The little dog", 1e-3); }
Test(cli_ref, tiny_f32) { compare_cli_with_ref("models/tiny-f32.gguf", "reference/tiny-f32.ref", "Once upon a time", 1e-3); }
Test(cli_ref, tiny_f16) { compare_cli_with_ref("models/tiny-f16.gguf", "reference/tiny-f16.ref", "Once upon a time", 3e-3); }
Test(cli_ref, tiny_bf16) { compare_cli_with_ref("models/tiny-bf16.gguf", "reference/tiny-bf16.ref", "Once upon a time", 1e-2); }
Test(cli_ref, tiny_q8_0) { compare_cli_with_ref("models/tiny-q8_0.gguf", "reference/tiny-q8_0.ref", "Once upon a time", 4e-2); }
Test(cli_ref, tiny_q4_0) { compare_cli_with_ref("models/tiny-q4_0.gguf", "reference/tiny-q4_0.ref", "Once upon a time", 4e-2); }
