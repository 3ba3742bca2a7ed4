/* Chat templates in C: each family written from its reference Jinja template
 * (tests/data/chat/ holds them; tests/test_chat.c compares every family with
 * the text the real template renders). Detection follows the markers of
 * llama.cpp's llm_chat_detect_template, but claims a template only where our
 * rendering matches it: a variant we do not render is SD_CHAT_UNKNOWN, so the
 * caller asks for --chat-template instead of sending a wrong prompt. */
#include "text/chat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/tokenizer.h"
#include "runtime/errf.h"

/* ---- names -------------------------------------------------------------- */

typedef struct { const char *name; sd_chat_template t; } chat_name;
static const chat_name names[] = {
    {"chatml", SD_CHAT_CHATML},   {"llama2", SD_CHAT_LLAMA2},   {"llama3", SD_CHAT_LLAMA3},
    {"llama3.1", SD_CHAT_LLAMA31},
    {"mistral", SD_CHAT_MISTRAL}, {"mistral-tekken", SD_CHAT_MISTRAL_TEKKEN},
    {"gemma", SD_CHAT_GEMMA},     {"phi3", SD_CHAT_PHI3},       {"deepseek", SD_CHAT_DEEPSEEK},
    {"harmony", SD_CHAT_HARMONY},
    /* aliases: llama.cpp's names and the families that use ChatML */
    {"qwen", SD_CHAT_CHATML},     {"smollm", SD_CHAT_CHATML},   {"mistral-v3", SD_CHAT_MISTRAL},
    {"mistral-v3-tekken", SD_CHAT_MISTRAL_TEKKEN},              {"gpt-oss", SD_CHAT_HARMONY},
};
#define N_PRIMARY 10

int sd_chat_by_name(const char *name, sd_chat_template *out)
{
    if (!name) return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name)) { *out = names[i].t; return 0; }
    return -1;
}

const char *sd_chat_name(sd_chat_template t)
{
    for (int i = 0; i < N_PRIMARY; i++)
        if (names[i].t == t) return names[i].name;
    return "unknown";
}

const char *sd_chat_names(void)
{
    return "chatml, llama2, llama3, llama3.1, mistral, mistral-tekken, gemma, phi3, deepseek, harmony";
}

/* ---- detection ---------------------------------------------------------- */

static int has(const char *s, const char *needle) { return strstr(s, needle) != NULL; }

sd_chat_template sd_chat_detect(const char *j)
{
    sd_chat_template t;
    if (!j) return SD_CHAT_UNKNOWN;
    if (!sd_chat_by_name(j, &t)) return t;
    if (has(j, "<|im_start|>"))  /* Phi-4 (<|im_sep|>) and SmolVLM are not ChatML */
        return has(j, "<|im_sep|>") || has(j, "<end_of_utterance>") ? SD_CHAT_UNKNOWN : SD_CHAT_CHATML;
    if (!strncmp(j, "mistral", 7) || has(j, "[INST]")) {
        if (has(j, "[SYSTEM_PROMPT]")) return SD_CHAT_UNKNOWN;             /* Mistral v7: not rendered */
        if (has(j, "[AVAILABLE_TOOLS]")) {
            if (has(j, "\"[INST]\"")) return SD_CHAT_MISTRAL_TEKKEN;
            return has(j, " [INST]") ? SD_CHAT_UNKNOWN : SD_CHAT_MISTRAL;  /* " [INST]": Mistral v1 */
        }
        /* Llama 2 chat: <<SYS>> folded into the first turn, BOS before every
         * [INST], messages stripped. Older [INST] templates without a system
         * prompt (Mistral v0.1/v0.2) render differently: not claimed. */
        return has(j, "<<SYS>>") ? SD_CHAT_LLAMA2 : SD_CHAT_UNKNOWN;
    }
    if (has(j, "<|assistant|>") && has(j, "<|end|>")) return SD_CHAT_PHI3;
    if (has(j, "<start_of_turn>")) return SD_CHAT_GEMMA;
    if (has(j, "### Instruction:") && has(j, "<|EOT|>")) return SD_CHAT_DEEPSEEK;
    if (has(j, "<|start_header_id|>") && has(j, "<|end_header_id|>"))
        return has(j, "Cutting Knowledge Date") ? SD_CHAT_LLAMA31 : SD_CHAT_LLAMA3;
    if (has(j, "<|start|>") && has(j, "<|channel|>")) return SD_CHAT_HARMONY;
    return SD_CHAT_UNKNOWN;
}

const char *sd_chat_end_marker(sd_chat_template t)
{
    switch (t) {
    case SD_CHAT_CHATML: return "<|im_end|>";
    case SD_CHAT_LLAMA3: case SD_CHAT_LLAMA31: return "<|eot_id|>";
    case SD_CHAT_GEMMA: return "<end_of_turn>";
    case SD_CHAT_PHI3: return "<|end|>";
    case SD_CHAT_DEEPSEEK: return "<|EOT|>";
    case SD_CHAT_HARMONY: return "<|return|>";
    default: return NULL;  /* Llama 2, Mistral: the reply ends with EOS */
    }
}

/* ---- rendering ---------------------------------------------------------- */

typedef struct { char *s; size_t n, cap; int oom; } sbuf;

static void put_n(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *g = realloc(b->s, cap);
        if (!g) { b->oom = 1; return; }
        b->s = g;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void put(sbuf *b, const char *s) { put_n(b, s, strlen(s)); }

/* Python's str.strip() / Jinja's trim on ASCII whitespace. */
static void put_trim(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    while (n && strchr(" \t\n\r\v\f", s[n - 1])) n--;
    while (n && strchr(" \t\n\r\v\f", *s)) { s++; n--; }
    put_n(b, s, n);
}

typedef enum { R_SYSTEM, R_USER, R_ASSISTANT } role;

static int is_role(const sd_chat_msg *m, role r)
{
    static const char *const nm[] = {"system", "user", "assistant"};
    return !strcmp(m->role, nm[r]);
}

static void chatml(sbuf *b, const sd_chat_msg *m, int n, int gen)
{
    for (int i = 0; i < n; i++) {
        put(b, "<|im_start|>"); put(b, m[i].role); put(b, "\n"); put(b, m[i].content); put(b, "<|im_end|>\n");
    }
    if (gen) put(b, "<|im_start|>assistant\n");
}

/* meta-llama/Llama-2-*-chat: BOS opens every user turn, the system prompt sits
 * inside the first one, contents are stripped; no generation prompt. */
static void llama2(sbuf *b, const sd_chat_msg *m, int n, const char *sys)
{
    for (int i = 0; i < n; i++) {
        if (is_role(&m[i], R_USER)) {
            put(b, "<s>[INST] ");
            if (i == 0 && sys) {
                /* the template strips '<<SYS>>\n' + system + '\n<</SYS>>\n\n' + content as a whole */
                sbuf c = {0};
                put(&c, "<<SYS>>\n"); put(&c, sys); put(&c, "\n<</SYS>>\n\n"); put(&c, m[i].content);
                if (c.oom) b->oom = 1;
                else put_trim(b, c.s);
                free(c.s);
            } else {
                put_trim(b, m[i].content);
            }
            put(b, " [/INST]");
        } else {
            put(b, " "); put_trim(b, m[i].content); put(b, " </s>");
        }
    }
}

static void llama3_turns(sbuf *b, const sd_chat_msg *m, int n, int gen)
{
    for (int i = 0; i < n; i++) {
        put(b, "<|start_header_id|>"); put(b, m[i].role); put(b, "<|end_header_id|>\n\n");
        put_trim(b, m[i].content); put(b, "<|eot_id|>");
    }
    if (gen) put(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void llama3(sbuf *b, const sd_chat_msg *m, int n, int gen)
{
    put(b, "<|begin_of_text|>");
    llama3_turns(b, m, n, gen);
}

/* Llama 3.1/3.3 without tools: the system block always comes first, with
 * the knowledge cutoff and the template's default date (3.2's template asks
 * strftime_now for today instead: not rendered here). */
static void llama31(sbuf *b, const sd_chat_msg *m, int n, const char *sys, int gen)
{
    put(b, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
           "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
    if (sys) put_trim(b, sys);
    put(b, "<|eot_id|>");
    llama3_turns(b, m, n, gen);
}

/* Mistral v3 (7B v0.3, Mixtral 8x22B) and v3-tekken (Nemo): the system
 * prompt joins the last message when that is a user turn; no generation
 * prompt ("[/INST]" ends the prompt). */
static void mistral(sbuf *b, const sd_chat_msg *m, int n, const char *sys, int tekken)
{
    put(b, "<s>");
    for (int i = 0; i < n; i++) {
        if (is_role(&m[i], R_USER)) {
            put(b, tekken ? "[INST]" : "[INST] ");
            if (i == n - 1 && sys) { put(b, sys); put(b, "\n\n"); }
            put(b, m[i].content);
            put(b, "[/INST]");
        } else if (tekken) {
            put(b, m[i].content); put(b, "</s>");
        } else {
            put(b, " "); put_trim(b, m[i].content); put(b, "</s>");
        }
    }
}

/* Gemma 3: no system role; its text and a blank line open the first user
 * turn (untrimmed; the messages themselves are trimmed). */
static void gemma(sbuf *b, const sd_chat_msg *m, int n, const char *sys, int gen)
{
    put(b, "<bos>");
    for (int i = 0; i < n; i++) {
        put(b, "<start_of_turn>");
        put(b, is_role(&m[i], R_ASSISTANT) ? "model" : m[i].role);
        put(b, "\n");
        if (i == 0 && sys) { put(b, sys); put(b, "\n\n"); }
        put_trim(b, m[i].content);
        put(b, "<end_of_turn>\n");
    }
    if (gen) put(b, "<start_of_turn>model\n");
}

/* Phi-3/3.5: an empty system message is left out; without a generation
 * prompt the text ends with EOS. */
static void phi3(sbuf *b, const sd_chat_msg *m, int n, int gen)
{
    for (int i = 0; i < n; i++) {
        if (is_role(&m[i], R_SYSTEM) && !m[i].content[0]) continue;
        put(b, "<|"); put(b, m[i].role); put(b, "|>\n"); put(b, m[i].content); put(b, "<|end|>\n");
    }
    put(b, gen ? "<|assistant|>\n" : "<|endoftext|>");
}

/* deepseek-coder-*-instruct: its own system text when none is given. */
static void deepseek(sbuf *b, const sd_chat_msg *m, int n, int gen)
{
    int found = 0;
    for (int i = 0; i < n; i++) found |= is_role(&m[i], R_SYSTEM);
    put(b, "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>");
    if (!found)
        put(b, "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek "
               "Company, and you only answer questions related to computer science. For politically sensitive "
               "questions, security and privacy issues, and other non-computer science questions, you will "
               "refuse to answer\n");
    for (int i = 0; i < n; i++) {
        if (is_role(&m[i], R_SYSTEM)) put(b, m[i].content);
        else if (is_role(&m[i], R_USER)) { put(b, "### Instruction:\n"); put(b, m[i].content); put(b, "\n"); }
        else { put(b, "### Response:\n"); put(b, m[i].content); put(b, "\n<|EOT|>\n"); }
    }
    if (gen) put(b, "### Response:\n");
}

/* gpt-oss (harmony): a fixed system header with the date, the caller's
 * system prompt as the developer message, earlier assistant turns on the
 * final channel (their reasoning is dropped, as the template does). */
static void harmony(sbuf *b, const sd_chat_msg *m, int n, const char *sys, int gen, const char *date)
{
    put(b, "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
           "Knowledge cutoff: 2024-06\nCurrent date: ");
    put(b, date);
    put(b, "\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. "
           "Channel must be included for every message.<|end|>");
    if (sys && sys[0]) { put(b, "<|start|>developer<|message|># Instructions\n\n"); put(b, sys); put(b, "\n\n<|end|>"); }
    for (int i = 0; i < n; i++) {
        if (is_role(&m[i], R_USER)) {
            put(b, "<|start|>user<|message|>"); put(b, m[i].content); put(b, "<|end|>");
        } else {
            put(b, "<|start|>assistant<|channel|>final<|message|>"); put(b, m[i].content);
            put(b, i == n - 1 && !gen ? "<|return|>" : "<|end|>");
        }
    }
    if (gen) put(b, "<|start|>assistant");
}

/* Checks the roles against what the family's template accepts. Families
 * whose template takes the system prompt out of the list (sys_first) allow
 * it only first, and want user/assistant turns alternating after it. */
static int check_roles(sd_chat_template t, const sd_chat_msg *m, int n, char *err)
{
    int sys_first = t == SD_CHAT_LLAMA2 || t == SD_CHAT_MISTRAL || t == SD_CHAT_MISTRAL_TEKKEN ||
                    t == SD_CHAT_GEMMA || t == SD_CHAT_HARMONY || t == SD_CHAT_LLAMA31;
    int turn = 0;
    for (int i = 0; i < n; i++) {
        if (!m[i].role || !m[i].content) return sd_errf(err, "chat: message %d has no role or no content", i);
        if (!is_role(&m[i], R_SYSTEM) && !is_role(&m[i], R_USER) && !is_role(&m[i], R_ASSISTANT)) {
            char shown[33];  /* the role as one harmless line */
            size_t k = 0;
            for (; k < 32 && m[i].role[k]; k++) shown[k] = (unsigned char)m[i].role[k] < 0x20 ? '?' : m[i].role[k];
            shown[k] = 0;
            return sd_errf(err, "chat: message %d has role '%s' (system, user and assistant are supported)", i,
                             shown);
        }
        if (!sys_first) continue;
        if (is_role(&m[i], R_SYSTEM)) {
            if (i) return sd_errf(err, "chat: the %s template takes a system message only first", sd_chat_name(t));
            continue;
        }
        if (t == SD_CHAT_HARMONY || t == SD_CHAT_LLAMA31) continue;
        if (is_role(&m[i], R_USER) != (turn % 2 == 0))
            return sd_errf(err, "chat: the %s template wants user and assistant turns alternating, "
                                  "starting with the user", sd_chat_name(t));
        turn++;
    }
    return 0;
}

int sd_chat_apply_opts(sd_chat_template t, const sd_chat_msg *msgs, int n_msgs, int add_generation_prompt,
                       const sd_chat_opts *opts, char **out, char *err)
{
    *out = NULL;
    if (t == SD_CHAT_UNKNOWN || !strcmp(sd_chat_name(t), "unknown"))
        return sd_errf(err, "chat: no template given (one of %s)", sd_chat_names());
    if (n_msgs <= 0 || !msgs) return sd_errf(err, "chat: the conversation is empty");
    if (check_roles(t, msgs, n_msgs, err)) return -1;
    /* the templates that take the system prompt out of the list */
    const char *sys = NULL;
    const sd_chat_msg *m = msgs;
    int n = n_msgs;
    if (is_role(&m[0], R_SYSTEM) && t != SD_CHAT_CHATML && t != SD_CHAT_LLAMA3 && t != SD_CHAT_PHI3 &&
        t != SD_CHAT_DEEPSEEK) {
        sys = m[0].content;
        m++;
        n--;
    }
    char today[16];
    const char *date = opts && opts->date ? opts->date : NULL;
    if (!date) {
        time_t now = time(NULL);
        struct tm tmv;
        strftime(today, sizeof today, "%Y-%m-%d", gmtime_r(&now, &tmv));
        date = today;
    }
    int gen = add_generation_prompt != 0;
    sbuf b = {0};
    put(&b, "");
    switch (t) {
    case SD_CHAT_CHATML: chatml(&b, m, n, gen); break;
    case SD_CHAT_LLAMA2: llama2(&b, m, n, sys); break;
    case SD_CHAT_LLAMA3: llama3(&b, m, n, gen); break;
    case SD_CHAT_LLAMA31: llama31(&b, m, n, sys, gen); break;
    case SD_CHAT_MISTRAL: mistral(&b, m, n, sys, 0); break;
    case SD_CHAT_MISTRAL_TEKKEN: mistral(&b, m, n, sys, 1); break;
    case SD_CHAT_GEMMA: gemma(&b, m, n, sys, gen); break;
    case SD_CHAT_PHI3: phi3(&b, m, n, gen); break;
    case SD_CHAT_DEEPSEEK: deepseek(&b, m, n, gen); break;
    case SD_CHAT_HARMONY: harmony(&b, m, n, sys, gen, date); break;
    default: break;
    }
    if (b.oom) { free(b.s); return sd_errf(err, "chat: out of memory"); }
    *out = b.s;
    return 0;
}

int sd_chat_apply(sd_chat_template t, const sd_chat_msg *msgs, int n_msgs, int add_generation_prompt, char **out,
                  char *err)
{
    return sd_chat_apply_opts(t, msgs, n_msgs, add_generation_prompt, NULL, out, err);
}

/* ---- tokens ------------------------------------------------------------- */

int sd_chat_tokenize(const sd_tokenizer *tok, const char *text, size_t len, int32_t **out, int *n_out, char *err)
{
    if (sd_tokenize_special(tok, text, len, 1, out, n_out, err)) return -1;
    int bos = sd_token_bos(tok);
    if (bos >= 0 && *n_out >= 2 && (*out)[0] == bos && (*out)[1] == bos) {
        memmove(*out, *out + 1, (size_t)(*n_out - 1) * sizeof **out);
        (*n_out)--;
    }
    return 0;
}

int sd_chat_is_end_token(sd_chat_template t, const sd_tokenizer *tok, int32_t id)
{
    if (sd_token_is_eog(tok, id)) return 1;
    const char *mk = sd_chat_end_marker(t);
    if (!mk || id < 0 || id >= tok->n_vocab) return 0;
    return tok->text_len[id] == strlen(mk) && !memcmp(tok->text + tok->text_off[id], mk, tok->text_len[id]);
}
