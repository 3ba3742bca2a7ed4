/* Chat templates: every family against the exact text its reference Jinja
 * template renders for one conversation (tests/data/chat/ holds the
 * templates; scripts/chat-template-expected.py rendered the strings below
 * with jinja2 the way transformers does), detection on real template texts,
 * and `showdown run --chat` on SmolLM2 against the reference engine. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common.h"
#include "eval/logits_file.h"
#include "gguf/gguf.h"
#include "showdown.h"
#include "text/chat.h"
#include "text/tokenizer.h"

static const sd_chat_msg conv[] = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello"},
    {"assistant", "  Hi there  "},
    {"user", "What is the capital of France?"},
};

static char *template_text(const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "tests/data/chat/%s", file);
    size_t n = 0;
    char *b = read_all(path, &n);
    cr_assert_not_null(b, "cannot read %s", path);
    char *s = malloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    free(b);
    return s;
}

/* The family renders the template's text exactly, and the template's own
 * Jinja text is detected as that family. */
static void expect_render(sd_chat_template t, const char *file, const char *expected)
{
    char err[SD_ERR_LEN], *out = NULL;
    sd_chat_opts o = {.date = "2025-08-05"};
    cr_assert_eq(sd_chat_apply_opts(t, conv, 4, 1, &o, &out, err), 0, "%s", err);
    cr_expect_str_eq(out, expected, "%s renders\n%s", sd_chat_name(t), out);
    free(out);
    char *j = template_text(file);
    cr_expect_eq(sd_chat_detect(j), t, "%s detected as %s", file, sd_chat_name(sd_chat_detect(j)));
    free(j);
}

/* smollm2-135m-instruct.jinja */
Test(chat_render, chatml)
{
    expect_render(SD_CHAT_CHATML, "smollm2-135m-instruct.jinja",
        "<|im_start|>system\n"
        "You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n"
        "Hello<|im_end|>\n"
        "<|im_start|>assistant\n"
        "  Hi there  <|im_end|>\n"
        "<|im_start|>user\n"
        "What is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n");
}

/* qwen2.5-7b-instruct.jinja */
Test(chat_render, chatml_qwen)
{
    expect_render(SD_CHAT_CHATML, "qwen2.5-7b-instruct.jinja",
        "<|im_start|>system\n"
        "You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n"
        "Hello<|im_end|>\n"
        "<|im_start|>assistant\n"
        "  Hi there  <|im_end|>\n"
        "<|im_start|>user\n"
        "What is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n");
}

/* llama-2-13b-chat.jinja */
Test(chat_render, llama2)
{
    expect_render(SD_CHAT_LLAMA2, "llama-2-13b-chat.jinja",
        "<s>[INST] <<SYS>>\n"
        "You are a helpful assistant.\n"
        "<</SYS>>\n"
        "\n"
        "Hello [/INST] Hi there </s><s>[INST] What is the capital of France? [/INST]");
}

/* llama-3-8b-instruct.jinja */
Test(chat_render, llama3)
{
    expect_render(SD_CHAT_LLAMA3, "llama-3-8b-instruct.jinja",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
        "\n"
        "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
        "\n"
        "Hello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\n"
        "Hi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
        "\n"
        "What is the capital of France?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\n");
}

/* llama-3.1-8b-instruct.jinja */
Test(chat_render, llama31)
{
    expect_render(SD_CHAT_LLAMA31, "llama-3.1-8b-instruct.jinja",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
        "\n"
        "Cutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n"
        "\n"
        "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
        "\n"
        "Hello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\n"
        "Hi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
        "\n"
        "What is the capital of France?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\n");
}

/* mistral-7b-instruct-v0.3.jinja */
Test(chat_render, mistral)
{
    expect_render(SD_CHAT_MISTRAL, "mistral-7b-instruct-v0.3.jinja",
        "<s>[INST] Hello[/INST] Hi there</s>[INST] You are a helpful assistant.\n"
        "\n"
        "What is the capital of France?[/INST]");
}

/* mistral-nemo-instruct-2407.jinja */
Test(chat_render, mistral_tekken)
{
    expect_render(SD_CHAT_MISTRAL_TEKKEN, "mistral-nemo-instruct-2407.jinja",
        "<s>[INST]Hello[/INST]  Hi there  </s>[INST]You are a helpful assistant.\n"
        "\n"
        "What is the capital of France?[/INST]");
}

/* gemma-3-4b-it.jinja */
Test(chat_render, gemma)
{
    expect_render(SD_CHAT_GEMMA, "gemma-3-4b-it.jinja",
        "<bos><start_of_turn>user\n"
        "You are a helpful assistant.\n"
        "\n"
        "Hello<end_of_turn>\n"
        "<start_of_turn>model\n"
        "Hi there<end_of_turn>\n"
        "<start_of_turn>user\n"
        "What is the capital of France?<end_of_turn>\n"
        "<start_of_turn>model\n");
}

/* phi-3.5-mini-instruct.jinja */
Test(chat_render, phi3)
{
    expect_render(SD_CHAT_PHI3, "phi-3.5-mini-instruct.jinja",
        "<|system|>\n"
        "You are a helpful assistant.<|end|>\n"
        "<|user|>\n"
        "Hello<|end|>\n"
        "<|assistant|>\n"
        "  Hi there  <|end|>\n"
        "<|user|>\n"
        "What is the capital of France?<|end|>\n"
        "<|assistant|>\n");
}

/* deepseek-coder-33b-instruct.jinja */
Test(chat_render, deepseek)
{
    expect_render(SD_CHAT_DEEPSEEK, "deepseek-coder-33b-instruct.jinja",
        "<｜begin▁of▁sentence｜>You are a helpful assistant.### Instruction:\n"
        "Hello\n"
        "### Response:\n"
        "  Hi there  \n"
        "<|EOT|>\n"
        "### Instruction:\n"
        "What is the capital of France?\n"
        "### Response:\n");
}

/* gpt-oss-120b.jinja */
Test(chat_render, harmony)
{
    expect_render(SD_CHAT_HARMONY, "gpt-oss-120b.jinja",
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\n"
        "Current date: 2025-08-05\n"
        "\n"
        "Reasoning: medium\n"
        "\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|><|start|>developer<|message|># Instructions\n"
        "\n"
        "You are a helpful assistant.\n"
        "\n"
        "<|end|><|start|>user<|message|>Hello<|end|><|start|>assistant<|channel|>final<|message|>  Hi there  <|end|><|start|>user<|message|>What is the capital of France?<|end|><|start|>assistant");
}

/* ---- detection of other real templates ---------------------------------- */

Test(chat_detect, real_templates)
{
    static const struct { const char *file; sd_chat_template t; } rows[] = {
        {"llama-3.3-70b-instruct.jinja", SD_CHAT_LLAMA31},
        {"gemma-2-2b-it.jinja", SD_CHAT_GEMMA},
        /* DeepSeek V3/R1's format is not rendered: not claimed */
        {"deepseek-r1-distill-qwen-32b.jinja", SD_CHAT_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *j = template_text(rows[i].file);
        cr_expect_eq(sd_chat_detect(j), rows[i].t, "%s: %s", rows[i].file, sd_chat_name(sd_chat_detect(j)));
        free(j);
    }
    /* mistralai/Mistral-7B-Instruct-v0.2 (no system prompt, spaces around
     * [INST]): a variant we do not render, so not claimed */
    cr_expect_eq(sd_chat_detect("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                                "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
                                "'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}"),
                 SD_CHAT_UNKNOWN);
    /* phi-4 uses <|im_start|> but is not ChatML */
    cr_expect_eq(sd_chat_detect("{{'<|im_start|>user<|im_sep|>' + message['content'] + '<|im_end|>'}}"),
                 SD_CHAT_UNKNOWN);
    cr_expect_eq(sd_chat_detect("{{ messages }}"), SD_CHAT_UNKNOWN);
    cr_expect_eq(sd_chat_detect(NULL), SD_CHAT_UNKNOWN);
    cr_expect_eq(sd_chat_detect("gemma"), SD_CHAT_GEMMA);  /* a bare name, as llama.cpp accepts */
}

Test(chat_detect, names)
{
    sd_chat_template t;
    const char *list = sd_chat_names();
    for (sd_chat_template k = SD_CHAT_CHATML; k <= SD_CHAT_LLAMA31; k++) {
        cr_assert_eq(sd_chat_by_name(sd_chat_name(k), &t), 0, "%d", k);
        cr_expect_eq(t, k);
        cr_expect_not_null(strstr(list, sd_chat_name(k)));
    }
    cr_expect_eq(sd_chat_by_name("gpt-oss", &t), 0);
    cr_expect_eq(t, SD_CHAT_HARMONY);
    cr_expect_eq(sd_chat_by_name("qwen", &t), 0);
    cr_expect_eq(t, SD_CHAT_CHATML);
    cr_expect_eq(sd_chat_by_name("vicuna", &t), -1);
    cr_expect_eq(sd_chat_by_name(NULL, &t), -1);
}

/* ---- rules -------------------------------------------------------------- */

Test(chat_rules, generation_prompt_and_end_markers)
{
    char err[SD_ERR_LEN], *out;
    sd_chat_msg u[] = {{"user", "Hi"}};
    cr_assert_eq(sd_chat_apply(SD_CHAT_CHATML, u, 1, 0, &out, err), 0, "%s", err);
    cr_expect_str_eq(out, "<|im_start|>user\nHi<|im_end|>\n");
    free(out);
    cr_assert_eq(sd_chat_apply(SD_CHAT_GEMMA, u, 1, 0, &out, err), 0, "%s", err);
    cr_expect_str_eq(out, "<bos><start_of_turn>user\nHi<end_of_turn>\n");
    free(out);
    /* Phi-3.5's template ends with EOS when no reply is asked for */
    /* Llama 3.1 writes its system block (dates, empty prompt) even without a system message */
    cr_assert_eq(sd_chat_apply(SD_CHAT_LLAMA31, u, 1, 1, &out, err), 0, "%s", err);
    cr_expect_str_eq(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                          "December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>"
                          "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    free(out);
    cr_assert_eq(sd_chat_apply(SD_CHAT_PHI3, u, 1, 0, &out, err), 0, "%s", err);
    cr_expect_str_eq(out, "<|user|>\nHi<|end|>\n<|endoftext|>");
    free(out);
    /* harmony: a final assistant turn without a generation prompt ends with <|return|> */
    sd_chat_msg ua[] = {{"user", "Hi"}, {"assistant", "Yo"}};
    sd_chat_opts o = {.date = "2025-08-05"};
    cr_assert_eq(sd_chat_apply_opts(SD_CHAT_HARMONY, ua, 2, 0, &o, &out, err), 0, "%s", err);
    const char *tail = "<|start|>assistant<|channel|>final<|message|>Yo<|return|>";
    cr_expect_str_eq(out + strlen(out) - strlen(tail), tail);
    free(out);
    cr_expect_str_eq(sd_chat_end_marker(SD_CHAT_CHATML), "<|im_end|>");
    cr_expect_str_eq(sd_chat_end_marker(SD_CHAT_GEMMA), "<end_of_turn>");
    cr_expect_str_eq(sd_chat_end_marker(SD_CHAT_LLAMA3), "<|eot_id|>");
    cr_expect_null(sd_chat_end_marker(SD_CHAT_LLAMA2));
}

Test(chat_rules, refusals)
{
    char err[SD_ERR_LEN], *out = (char *)1;
    sd_chat_msg tool[] = {{"tool", "x"}};
    cr_expect_eq(sd_chat_apply(SD_CHAT_CHATML, tool, 1, 1, &out, err), -1);
    cr_expect_null(out);
    cr_expect_not_null(strstr(err, "tool"), "%s", err);
    cr_expect_eq(sd_chat_apply(SD_CHAT_CHATML, conv, 0, 1, &out, err), -1);
    cr_expect_not_null(strstr(err, "empty"), "%s", err);
    cr_expect_eq(sd_chat_apply(SD_CHAT_UNKNOWN, conv, 4, 1, &out, err), -1);
    /* a system message after the first: refused where the template takes it out of the list */
    sd_chat_msg late[] = {{"user", "a"}, {"system", "b"}};
    cr_expect_eq(sd_chat_apply(SD_CHAT_GEMMA, late, 2, 1, &out, err), -1);
    cr_expect_not_null(strstr(err, "system"), "%s", err);
    cr_expect_eq(sd_chat_apply(SD_CHAT_CHATML, late, 2, 1, &out, err), 0, "%s", err);
    free(out);
    /* Llama 2 and Mistral raise on turns that do not alternate */
    sd_chat_msg uu[] = {{"user", "a"}, {"user", "b"}};
    cr_expect_eq(sd_chat_apply(SD_CHAT_LLAMA2, uu, 2, 1, &out, err), -1);
    cr_expect_not_null(strstr(err, "alternat"), "%s", err);
    cr_expect_eq(sd_chat_apply(SD_CHAT_MISTRAL, uu, 2, 1, &out, err), -1);
}

/* ---- with the real models ------------------------------------------------ */

static int model_path(char *buf, size_t n, const char *file)
{
    const char *dir = getenv("SHOWDOWN_MODELS");
    snprintf(buf, n, "%s/%s", dir ? dir : "build/models", file);
    FILE *f = fopen(buf, "rb");
    if (!f) return -1;
    fclose(f);
    return 0;
}

static sd_tokenizer *vocab_of(const char *file)
{
    char path[512], err[SD_ERR_LEN];
    if (model_path(path, sizeof path, file)) return NULL;
    gguf_file *f;
    sd_tokenizer *t = NULL;
    cr_assert_eq(gguf_open_header(path, &f, err), 0, "%s", err);
    cr_assert_eq(sd_tokenizer_from_gguf(f, &t, err), 0, "%s", err);
    gguf_close(f);
    return t;
}

/* SmolLM2's own template (in the GGUF file) is ChatML, and the rendered
 * prompt tokenizes to the reference engine's tokens for it. */
Test(chat_model, smollm2_template_and_tokens)
{
    char path[512], err[SD_ERR_LEN], ref[512];
    if (model_path(path, sizeof path, "smollm2-135m-instruct-q4_1.gguf"))
        cr_skip_test("SmolLM2 not fetched (make models, or SHOWDOWN_MODELS)");
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    const char *j = sd_model_chat_template(m);
    cr_assert_not_null(j);
    char *own = template_text("smollm2-135m-instruct.jinja");
    cr_expect_str_eq(j, own);
    free(own);
    cr_expect_eq(sd_chat_detect(j), SD_CHAT_CHATML);

    sd_chat_msg c[] = {{"system", "You are a helpful assistant."}, {"user", "What is the capital of France?"}};
    char *text;
    int32_t *toks;
    int n;
    cr_assert_eq(sd_chat_apply(SD_CHAT_CHATML, c, 2, 1, &text, err), 0, "%s", err);
    cr_assert_eq(sd_chat_tokenize(sd_model_tokenizer(m), text, strlen(text), &toks, &n, err), 0, "%s", err);
    sd_logits_file rf;
    cr_assert_eq(sd_logits_file_read(shared_path(ref, sizeof ref, "reference/smollm2-chat.ref"), &rf, err), 0, "%s",
                 err);
    cr_assert_eq(n, (int)rf.n_prompt);
    for (int i = 0; i < n; i++) cr_expect_eq(toks[i], rf.prompt[i], "token %d: %d vs %d", i, toks[i], rf.prompt[i]);
    /* the end of the turn is an end token for the generator */
    cr_expect(sd_chat_is_end_token(SD_CHAT_CHATML, sd_model_tokenizer(m), 2));  /* <|im_end|> */
    cr_expect(!sd_chat_is_end_token(SD_CHAT_CHATML, sd_model_tokenizer(m), 1)); /* <|im_start|> */
    sd_logits_file_free(&rf);
    free(toks);
    free(text);
    sd_model_free(m);
}

/* Gemma's template writes <bos> and its vocabulary adds BOS too: the prompt
 * starts with exactly one, then <start_of_turn> as one token. */
Test(chat_model, gemma_single_bos)
{
    sd_tokenizer *t = vocab_of("gemma-3-270m-q4_k_m.gguf");
    if (!t) cr_skip_test("Gemma 3 not fetched (make models, or SHOWDOWN_MODELS)");
    char err[SD_ERR_LEN], *text;
    int32_t *toks;
    int n;
    sd_chat_msg c[] = {{"user", "Hi"}};
    cr_assert_eq(sd_chat_apply(SD_CHAT_GEMMA, c, 1, 1, &text, err), 0, "%s", err);
    cr_assert_eq(sd_chat_tokenize(t, text, strlen(text), &toks, &n, err), 0, "%s", err);
    cr_assert_gt(n, 3);
    cr_expect_eq(toks[0], sd_token_bos(t));
    cr_expect_neq(toks[1], sd_token_bos(t));
    cr_expect_eq(toks[1], sd_strmap_get(&t->vocab, "<start_of_turn>", 15));
    free(toks);
    free(text);
    sd_tokenizer_free(t);
}

/* ---- showdown run --chat ------------------------------------------------- */

static int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* One turn, greedy: the prompt tokens and the first 4 tokens of the reply
 * are the reference engine's, and a longer reply stops at <|im_end|>. */
Test(chat_cli, smollm2_matches_reference, .timeout = 300)
{
    char path[512], ref[512], cmd[2048], out[8192], err[SD_ERR_LEN], dir[64];
    if (model_path(path, sizeof path, "smollm2-135m-instruct-q4_1.gguf"))
        cr_skip_test("SmolLM2 not fetched (make models, or SHOWDOWN_MODELS)");
    cr_assert_eq(tmp_dir_make(dir, sizeof dir), 0);
    snprintf(cmd, sizeof cmd,
             "%s run --chat -m '%s' --system 'You are a helpful assistant.' -p 'What is the capital of France?' "
             "--temp 0 -n 4 -t 2 -ctk f32 --logits-out %s/chat.ref 2>/dev/null",
             showdown_bin(), path, dir);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "%s", out);
    sd_logits_file got, rf;
    char gp[128];
    snprintf(gp, sizeof gp, "%s/chat.ref", dir);
    cr_assert_eq(sd_logits_file_read(gp, &got, err), 0, "%s", err);
    cr_assert_eq(sd_logits_file_read(shared_path(ref, sizeof ref, "reference/smollm2-chat.ref"), &rf, err), 0, "%s",
                 err);
    cr_assert_eq(got.n_prompt, rf.n_prompt);
    for (int i = 0; i < (int)rf.n_prompt; i++) cr_expect_eq(got.prompt[i], rf.prompt[i], "prompt token %d", i);
    cr_assert_eq(got.n_gen, rf.n_gen);
    for (int i = 0; i < (int)rf.n_gen; i++) cr_expect_eq(got.gen[i], rf.gen[i], "greedy token %d", i);
    sd_logits_file_free(&got);
    sd_logits_file_free(&rf);

    snprintf(cmd, sizeof cmd,
             "%s run --chat -m '%s' --system 'You are a helpful assistant.' -p 'What is the capital of France?' "
             "--temp 0 -n 48 -t 2 2>&1",
             showdown_bin(), path);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "%s", out);
    cr_expect_not_null(strstr(out, "stopped at the end of the turn"), "%s", out);
    cr_expect_not_null(strstr(out, "Paris"), "%s", out);
    cr_expect_null(strstr(out, "<|im_end|>"), "%s", out);
    tmp_dir_remove(dir);
}

/* Two scripted turns: the second evaluates only what the cache lacks (the
 * first turn's prompt and reply stay cached). */
Test(chat_cli, smollm2_multi_turn_reuses_cache, .timeout = 300)
{
    char path[512], cmd[2048], out[8192];
    if (model_path(path, sizeof path, "smollm2-135m-instruct-q4_1.gguf"))
        cr_skip_test("SmolLM2 not fetched (make models, or SHOWDOWN_MODELS)");
    snprintf(cmd, sizeof cmd,
             "printf 'What is the capital of France?\\nAnd of Germany?\\n' | %s run --chat -i -m '%s' "
             "--system 'You are a helpful assistant.' --temp 0 -n 24 -t 2 2>&1 >/dev/null",
             showdown_bin(), path);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "%s", out);
    int n1, c1, g1, n2, c2;
    const char *a = strstr(out, "[prompt ");
    cr_assert_not_null(a, "%s", out);
    cr_assert_eq(sscanf(a, "[prompt %d new tokens (%d cached), %*f tokens/s | generated %d", &n1, &c1, &g1), 3, "%s",
                 out);
    const char *b = strstr(a + 1, "[prompt ");
    cr_assert_not_null(b, "%s", out);
    cr_assert_eq(sscanf(b, "[prompt %d new tokens (%d cached)", &n2, &c2), 2, "%s", out);
    cr_expect_eq(n1, 27);
    cr_expect_eq(c1, 0);
    cr_expect_eq(c2, n1 + g1, "second turn reuses %d tokens, the first turn left %d", c2, n1 + g1);
    cr_expect_lt(n2, 20, "second turn evaluated %d tokens", n2);
}

/* The Gemma 3 package is the pre-trained base model: no template in it. */
Test(chat_cli, no_template_is_one_clear_line)
{
    char path[512], cmd[2048], out[4096];
    if (model_path(path, sizeof path, "gemma-3-270m-q4_k_m.gguf"))
        cr_skip_test("Gemma 3 not fetched (make models, or SHOWDOWN_MODELS)");
    snprintf(cmd, sizeof cmd, "%s run --chat -m '%s' -p hi 2>&1", showdown_bin(), path);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 1, "%s", out);
    cr_expect_not_null(strstr(out, "has no chat template"), "%s", out);
    cr_expect_not_null(strstr(out, "--chat-template NAME"), "%s", out);
    cr_expect_not_null(strstr(out, "chatml"), "%s", out);
    cr_expect_not_null(strstr(out, "not instruction-tuned"), "%s", out);
    cr_expect_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s", out);
}

Test(chat_cli, bad_flags)
{
    char model[512], cmd[2048], out[4096];
    shared_path(model, sizeof model, "models/tiny-q8_0.gguf");
    snprintf(cmd, sizeof cmd, "%s run --chat --chat-template vicuna -m '%s' -p hi 2>&1", showdown_bin(), model);
    cr_expect_eq(run_cmd(cmd, out, sizeof out), 1, "%s", out);
    cr_expect_not_null(strstr(out, "unknown template 'vicuna'"), "%s", out);
    cr_expect_not_null(strstr(out, "harmony"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s run --system hi -m '%s' -p hi 2>&1", showdown_bin(), model);
    cr_expect_eq(run_cmd(cmd, out, sizeof out), 1, "%s", out);
    cr_expect_not_null(strstr(out, "need --chat"), "%s", out);
}

/* Control tokens in the text become their ids only when asked for, with the
 * SentencePiece space prefix after them as llama.cpp adds it; and no double
 * BOS when the text starts with one (the shared SentencePiece vocabulary). */
Test(chat_tokens, special_tokens_parsed_on_request)
{
    char path[512], err[SD_ERR_LEN];
    gguf_file *f;
    sd_tokenizer *t;
    cr_assert_eq(gguf_open(shared_path(path, sizeof path, "models/vocab-llama-spm.gguf"), &f, err), 0, "%s", err);
    cr_assert_eq(sd_tokenizer_from_gguf(f, &t, err), 0, "%s", err);
    gguf_close(f);
    int32_t *a, *b, *c;
    int na, nb, nc;
    cr_assert_eq(sd_tokenize_special(t, "<s>Hello world", 14, 0, &a, &na, err), 0, "%s", err);
    cr_assert_eq(na, 3);
    cr_expect_eq(a[0], 1);
    cr_expect_eq(a[1], 15043);
    cr_expect_eq(a[2], 3186);
    cr_assert_eq(sd_tokenize(t, "<s>Hello world", 14, 0, &b, &nb, err), 0, "%s", err);
    cr_expect_gt(nb, 3);
    cr_expect_neq(b[0], 1);
    cr_assert_eq(sd_chat_tokenize(t, "<s>Hello world", 14, &c, &nc, err), 0, "%s", err);
    cr_assert_eq(nc, 3);
    cr_expect_eq(c[0], 1);
    cr_expect_eq(c[1], 15043);
    free(a); free(b); free(c);
    sd_tokenizer_free(t);
}
