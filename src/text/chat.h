/* Chat templates: the conversation formats of the model families, applied in
 * C (no Jinja). A GGUF file's tokenizer.chat_template (Jinja text) is
 * recognized by the markers it contains, the way llama.cpp's built-in
 * detection does; --chat-template NAME overrides. Shared by `run --chat` and
 * the server. */
#ifndef SD_TEXT_CHAT_H
#define SD_TEXT_CHAT_H

#include <stddef.h>

#include "showdown.h"

typedef enum {
    SD_CHAT_UNKNOWN = 0,
    SD_CHAT_CHATML,      /* also Qwen, SmolLM */
    SD_CHAT_LLAMA2,
    SD_CHAT_LLAMA3,
    SD_CHAT_MISTRAL,
    SD_CHAT_GEMMA,
    SD_CHAT_PHI3,
    SD_CHAT_DEEPSEEK,
    SD_CHAT_HARMONY,     /* gpt-oss */
    SD_CHAT_MISTRAL_TEKKEN, /* Mistral Nemo and later: [INST] without spaces */
    SD_CHAT_LLAMA31         /* Llama 3.1-3.3: a system block with the knowledge-cutoff and date lines */
} sd_chat_template;

typedef struct {
    const char *role;      /* "system", "user", "assistant" (others are refused) */
    const char *content;
} sd_chat_msg;

/* The family a Jinja template belongs to; SD_CHAT_UNKNOWN when none matches. */
sd_chat_template sd_chat_detect(const char *jinja);
/* By name ("chatml", "llama2", "llama3", "llama3.1", "mistral", "mistral-tekken",
 * "gemma", "phi3", "deepseek", "harmony"; llama.cpp's names "mistral-v3",
 * "mistral-v3-tekken", "gpt-oss" and "qwen", "smollm" too); -1 for an
 * unknown name. */
int sd_chat_by_name(const char *name, sd_chat_template *out);
const char *sd_chat_name(sd_chat_template t);
/* A comma-separated list of the names, for messages. */
const char *sd_chat_names(void);

/* Renders the conversation, with the assistant's generation prompt when
 * add_generation_prompt. *out is malloc'd (the caller frees it). Fails with
 * a message for an unknown role or an empty conversation. */
int sd_chat_apply(sd_chat_template t, const sd_chat_msg *msgs, int n_msgs, int add_generation_prompt, char **out,
                  char *err);

/* What a template needs besides the messages. */
typedef struct {
    const char *date;    /* "YYYY-MM-DD" for harmony's system header; NULL: today (UTC) */
} sd_chat_opts;
int sd_chat_apply_opts(sd_chat_template t, const sd_chat_msg *msgs, int n_msgs, int add_generation_prompt,
                       const sd_chat_opts *opts, char **out, char *err);

/* The rendered text includes the beginning-of-text token where the family's
 * template writes it ("<s>", "<bos>", "<|begin_of_text|>"). Tokenizes such a
 * text: control tokens parsed, and the vocabulary's BOS added in front when
 * it asks for one and the text does not already start with it (no double
 * BOS). *out: malloc'd. */
int sd_chat_tokenize(const sd_tokenizer *tok, const char *text, size_t len, int32_t **out, int *n_out, char *err);

/* The text that ends an assistant turn in this template ("<|im_end|>",
 * "<end_of_turn>", "<|eot_id|>", ...), or NULL when EOS alone does. */
const char *sd_chat_end_marker(sd_chat_template t);

/* Whether generation stops at this token: the vocabulary's end of generation
 * (sd_token_is_eog), or a token whose text is the template's end marker (for
 * files whose vocabulary does not flag it). */
int sd_chat_is_end_token(sd_chat_template t, const sd_tokenizer *tok, int32_t id);

#endif
