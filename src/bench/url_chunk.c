/* One event of an OpenAI streaming response, read with jansson. The shapes:
 *   {"choices":[{"text":"..."}]}                     completions
 *   {"choices":[{"delta":{"content":"..."}}]}        chat
 *   {"choices":[], "usage":{"prompt_tokens":..}}    stream_options.include_usage
 *   {"error":{"message":"..."}}                      vLLM / llama-server mid-stream errors
 *   {..., "timings":{"prompt_ms":..,"predicted_n":..}} llama-server / showdown serve, last chunk
 *   [DONE]                                           the end */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "bench/url.h"

static size_t str_len(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_length(v) : 0;
}

static void error_text(json_t *e, char *out, size_t n)
{
    json_t *msg = json_is_object(e) ? json_object_get(e, "message") : e;
    if (json_is_string(msg)) snprintf(out, n, "%s", json_string_value(msg));
    else snprintf(out, n, "error event without a message");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

int sd_oai_chunk_parse(const char *event, const char *data, size_t n, int chat, sd_oai_chunk *c, char *err)
{
    memset(c, 0, sizeof *c);
    if (n == 6 && !memcmp(data, "[DONE]", 6)) { c->done = 1; return 0; }
    json_error_t je;
    json_t *root = json_loadb(data, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    int is_error_event = event && !strcmp(event, "error");
    if (!root || !json_is_object(root)) {
        json_decref(root);
        if (is_error_event) {   /* a plain-text error event is still an error */
            c->is_error = 1;
            snprintf(c->error, sizeof c->error, "%.*s", (int)(n < 150 ? n : 150), data);
            for (char *p = c->error; *p; p++)
                if ((unsigned char)*p < 32) *p = ' ';
            return 0;
        }
        snprintf(err, SD_ERR_LEN, "malformed JSON in the stream: %.200s", root ? "not an object" : je.text);
        for (char *p = err; *p; p++)   /* jansson quotes the bad bytes: keep it one line */
            if ((unsigned char)*p < 32) *p = ' ';
        return -1;
    }
    json_t *e = json_object_get(root, "error");
    if ((e && !json_is_null(e)) || is_error_event) {
        c->is_error = 1;
        error_text(e ? e : root, c->error, sizeof c->error);
    }
    json_t *choices = json_object_get(root, "choices");
    json_t *ch0 = json_is_array(choices) ? json_array_get(choices, 0) : NULL;
    if (json_is_object(ch0)) {
        if (chat) {
            json_t *d = json_object_get(ch0, "delta");
            if (json_is_object(d)) c->content_len = str_len(d, "content") + str_len(d, "reasoning_content");
        } else {
            c->content_len = str_len(ch0, "text");
        }
    }
    json_t *u = json_object_get(root, "usage");
    if (json_is_object(u)) {
        json_t *pt = json_object_get(u, "prompt_tokens"), *ct = json_object_get(u, "completion_tokens");
        if (json_is_integer(pt) && json_is_integer(ct) && json_integer_value(pt) >= 0 && json_integer_value(ct) >= 0) {
            c->has_usage = 1;
            c->prompt_tokens = (long)json_integer_value(pt);
            c->completion_tokens = (long)json_integer_value(ct);
        }
    }
    json_t *t = json_object_get(root, "timings");
    if (json_is_object(t)) {
        json_t *pm = json_object_get(t, "prompt_ms"), *dm = json_object_get(t, "predicted_ms");
        json_t *pn = json_object_get(t, "prompt_n"), *dn = json_object_get(t, "predicted_n");
        if (json_is_number(pm) && json_is_number(dm) && json_is_integer(dn)) {
            c->has_timings = 1;
            c->prompt_ms = json_number_value(pm);
            c->predicted_ms = json_number_value(dm);
            c->prompt_n = json_is_integer(pn) ? (long)json_integer_value(pn) : -1;
            c->predicted_n = (long)json_integer_value(dn);
        }
    }
    json_decref(root);
    return 0;
}
