/* The OpenAI-compatible request side of `showdown serve`: a request body
 * (untrusted JSON bytes) becomes an sd_api_request or an OpenAI error object
 * {"error":{"message","type","param","code"}} with its HTTP status. Parsing
 * is a pure function of the bytes (fuzzed: fuzz/fuzz_serve_request.c); what
 * needs the model (tokenizing, the model name, the vocabulary range) is
 * checked by the HTTP side. */
#ifndef SD_SERVE_API_H
#define SD_SERVE_API_H

#include <stddef.h>
#include <stdint.h>

#include "showdown.h"

typedef struct {
    int status;              /* HTTP status: 400, 401, 404, 405, 413, 500, 501, 503 */
    char type[32];           /* "invalid_request_error", "authentication_error", ... */
    char param[48];          /* the offending field, "" for none (null in JSON) */
    char code[32];           /* "" for none (null in JSON) */
    char message[SD_ERR_LEN];
} sd_api_error;

/* Fills e; returns -1 (for `return sd_api_fail(...)`). param and code may be NULL. */
int sd_api_fail(sd_api_error *e, int status, const char *type, const char *param, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The error object as compact JSON (malloc'd), NULL when out of memory. */
char *sd_api_error_json(const sd_api_error *e);

typedef enum { SD_API_COMPLETION = 0, SD_API_CHAT = 1 } sd_api_kind;

#define SD_API_MAX_STOP 16          /* stop strings per request */
#define SD_API_MAX_STOP_LEN 256     /* bytes per stop string */
#define SD_API_MAX_TOP_LOGPROBS 20  /* = SD_ENGINE_MAX_TOP */

typedef struct {
    char *role, *content;    /* content: the text parts joined */
} sd_api_msg;

typedef struct {
    sd_api_kind kind;
    char *model;             /* NULL when absent */
    /* completions: the prompt as text, or as token ids (prompt_is_tokens) */
    char *prompt;
    size_t prompt_len;
    int32_t *prompt_tokens;
    int n_prompt_tokens, prompt_is_tokens;
    /* chat */
    sd_api_msg *msgs;
    int n_msgs;
    int max_tokens;          /* -1: absent (completions default 16, chat until the context is full) */
    sd_sampler_params sampling;
    int has_seed;
    float presence_penalty, frequency_penalty;
    char *stop[SD_API_MAX_STOP];
    int n_stop;
    int logprobs;            /* chat: the flag; completions: how many top log-probabilities (0..20), -1 absent */
    int top_logprobs;        /* chat: 0..20 */
    int echo;                /* completions: the prompt (and its log-probabilities) in front of the text */
    int ignore_eos, stream, include_usage;
} sd_api_request;

/* Parses a request body for kind. 0 with *out filled (free it with
 * sd_api_request_free), or -1 with e filled (status 400) and *out empty. */
int sd_api_parse_request(const char *body, size_t len, sd_api_kind kind, sd_api_request *out, sd_api_error *e);
void sd_api_request_free(sd_api_request *r);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
int sd_utf8_valid(const char *s, size_t n);

#endif
