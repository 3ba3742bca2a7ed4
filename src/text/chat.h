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
    SD_CHAT_HARMONY      /* gpt-oss */
} sd_chat_template;

typedef struct {
    const char *role;      /* "system", "user", "assistant" (others are refused) */
    const char *content;
} sd_chat_msg;

/* The family a Jinja template belongs to; SD_CHAT_UNKNOWN when none matches. */
sd_chat_template sd_chat_detect(const char *jinja);
/* By name ("chatml", "llama2", "llama3", "mistral", "gemma", "phi3",
 * "deepseek", "harmony"); -1 for an unknown name. */
int sd_chat_by_name(const char *name, sd_chat_template *out);
const char *sd_chat_name(sd_chat_template t);
/* A comma-separated list of the names, for messages. */
const char *sd_chat_names(void);

/* Renders the conversation, with the assistant's generation prompt when
 * add_generation_prompt. *out is malloc'd (the caller frees it). Fails with
 * a message for an unknown role or an empty conversation. */
int sd_chat_apply(sd_chat_template t, const sd_chat_msg *msgs, int n_msgs, int add_generation_prompt, char **out,
                  char *err);

/* The text that ends an assistant turn in this template ("<|im_end|>",
 * "<end_of_turn>", "<|eot_id|>", ...), or NULL when EOS alone does. */
const char *sd_chat_end_marker(sd_chat_template t);

#endif
