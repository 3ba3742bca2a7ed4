/* OpenAI request bodies -> sd_api_request (see api.h). jansson does the JSON
 * (it refuses invalid UTF-8, NUL in strings and nesting past its depth
 * limit); this file checks every field's type and range. Unknown fields are
 * ignored, as OpenAI's own server does; null means absent. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/api.h"
#include "serve/stop_filter.h"

int sd_api_fail(sd_api_error *e, int status, const char *type, const char *param, const char *code,
                const char *fmt, ...)
{
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type ? type : "invalid_request_error");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    char raw[SD_ERR_LEN], clean[3 * SD_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* One line of valid UTF-8, whatever the message quotes (jansson's error
     * text quotes the offending token, which may hold a newline or be cut). */
    size_t n = sd_utf8_sanitize(raw, strlen(raw), clean);
    if (n > sizeof e->message - 1) {
        n = sizeof e->message - 1;
        while (n && (clean[n] & 0xc0) == 0x80) n--;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)clean[i] < 0x20 || clean[i] == 0x7f) clean[i] = ' ';
    memcpy(e->message, clean, n);
    e->message[n] = 0;
    return -1;
}

static int bad(sd_api_error *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(sd_api_error *e, const char *param, const char *fmt, ...)
{
    char msg[SD_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sd_api_fail(e, 400, "invalid_request_error", param, NULL, "%s", msg);
}

/* The field, or NULL when absent or null. */
static json_t *field(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return v && !json_is_null(v) ? v : NULL;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

static int get_bool(json_t *o, const char *k, int *out, sd_api_error *e)
{
    json_t *v = field(o, k);
    if (!v) return 0;
    if (!json_is_boolean(v)) return bad(e, k, "'%s' must be a boolean", k);
    *out = json_is_true(v);
    return 0;
}

static int get_int(json_t *o, const char *k, long long lo, long long hi, long long *out, sd_api_error *e)
{
    json_t *v = field(o, k);
    if (!v) return 0;
    if (!json_is_integer(v)) return bad(e, k, "'%s' must be an integer", k);
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return bad(e, k, "'%s' is %lld, must be in [%lld, %lld]", k, x, lo, hi);
    *out = x;
    return 0;
}

static int get_num(json_t *o, const char *k, double lo, double hi, float *out, sd_api_error *e)
{
    json_t *v = field(o, k);
    if (!v) return 0;
    if (!json_is_number(v)) return bad(e, k, "'%s' must be a number", k);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi) return bad(e, k, "'%s' is %g, must be in [%g, %g]", k, x, lo, hi);
    *out = (float)x;
    return 0;
}

/* Fields the server does not implement: present (and not a harmless value) -> 400. */
static int refuse_unsupported(json_t *o, sd_api_error *e)
{
    static const char *fields[] = {"tools", "tool_choice", "functions", "function_call", "suffix", "best_of"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = field(o, fields[i]);
        if (v && !(json_is_array(v) && json_array_size(v) == 0) && !(json_is_integer(v) && json_integer_value(v) == 1))
            return bad(e, fields[i], "'%s' is not supported by this server", fields[i]);
    }
    json_t *rf = field(o, "response_format");
    if (rf) {
        json_t *t = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
        if (!json_is_string(t) || strcmp(json_string_value(t), "text"))
            return bad(e, "response_format", "'response_format' other than {\"type\":\"text\"} is not supported by this server");
    }
    json_t *lb = field(o, "logit_bias");
    if (lb && !(json_is_object(lb) && json_object_size(lb) == 0))
        return bad(e, "logit_bias", "'logit_bias' is not supported by this server");
    long long n = 1;
    if (get_int(o, "n", 1, 1 << 20, &n, e)) return -1;
    if (n != 1) return bad(e, "n", "'n' > 1 is not supported by this server (send separate requests)");
    return 0;
}

static int parse_stop(json_t *o, sd_api_request *r, sd_api_error *e)
{
    json_t *v = field(o, "stop");
    if (!v) return 0;
    json_t *one[1] = {v};
    size_t n = 1;
    json_t **items = one;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > SD_API_MAX_STOP) return bad(e, "stop", "'stop' has %zu strings, at most %d", n, SD_API_MAX_STOP);
        items = NULL;
    } else if (!json_is_string(v)) {
        return bad(e, "stop", "'stop' must be a string or an array of strings");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = items ? items[i] : json_array_get(v, i);
        if (!json_is_string(s)) return bad(e, "stop", "'stop' must be a string or an array of strings");
        size_t len = json_string_length(s);
        if (len > SD_API_MAX_STOP_LEN)
            return bad(e, "stop", "a stop string has %zu bytes, at most %d", len, SD_API_MAX_STOP_LEN);
        if (!len) continue;   /* an empty stop string would stop before anything */
        if (!(r->stop[r->n_stop] = dup_n(json_string_value(s), len)))
            return sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        r->n_stop++;
    }
    return 0;
}

static int parse_prompt(json_t *o, sd_api_request *r, sd_api_error *e)
{
    json_t *v = field(o, "prompt");
    if (!v) return bad(e, "prompt", "'prompt' is required");
    if (json_is_array(v) && json_array_size(v) == 1 && json_is_string(json_array_get(v, 0)))
        v = json_array_get(v, 0);   /* a batch of one prompt */
    if (json_is_string(v)) {
        r->prompt_len = json_string_length(v);
        if (!r->prompt_len) return bad(e, "prompt", "'prompt' is empty");
        if (!(r->prompt = dup_n(json_string_value(v), r->prompt_len)))
            return sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return 0;
    }
    if (!json_is_array(v)) return bad(e, "prompt", "'prompt' must be a string or an array of token ids");
    size_t n = json_array_size(v);
    if (!n) return bad(e, "prompt", "'prompt' is empty");
    if (json_is_string(json_array_get(v, 0)) || json_is_array(json_array_get(v, 0)))
        return bad(e, "prompt", "a batch of several prompts is not supported by this server (send separate requests)");
    if (n > (1u << 24)) return bad(e, "prompt", "'prompt' has %zu tokens", n);
    if (!(r->prompt_tokens = malloc(n * sizeof *r->prompt_tokens)))
        return sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(v, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
            return bad(e, "prompt", "'prompt' token %zu is not a token id (a non-negative integer)", i);
        r->prompt_tokens[i] = (int32_t)json_integer_value(t);
    }
    r->n_prompt_tokens = (int)n;
    r->prompt_is_tokens = 1;
    return 0;
}

/* content: a string, or an array of parts of which the "text" ones are joined. */
static int parse_content(json_t *c, size_t i, char **out, sd_api_error *e)
{
    char param[48];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!c) { *out = dup_n("", 0); return *out ? 0 : sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory"); }
    if (json_is_string(c)) {
        *out = dup_n(json_string_value(c), json_string_length(c));
        return *out ? 0 : sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (!json_is_array(c)) return bad(e, param, "'%s' must be a string or an array of text parts", param);
    size_t total = 0;
    for (size_t k = 0; k < json_array_size(c); k++) {
        json_t *p = json_array_get(c, k), *t = json_is_object(p) ? json_object_get(p, "type") : NULL;
        json_t *tx = json_is_object(p) ? json_object_get(p, "text") : NULL;
        if (!json_is_string(t) || strcmp(json_string_value(t), "text") || !json_is_string(tx))
            return bad(e, param, "'%s' part %zu is not a {\"type\":\"text\",\"text\":...} part (only text is supported)",
                       param, k);
        total += json_string_length(tx);
    }
    if (!(*out = malloc(total + 1))) return sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t at = 0;
    for (size_t k = 0; k < json_array_size(c); k++) {
        json_t *tx = json_object_get(json_array_get(c, k), "text");
        memcpy(*out + at, json_string_value(tx), json_string_length(tx));
        at += json_string_length(tx);
    }
    (*out)[at] = 0;
    return 0;
}

static int parse_messages(json_t *o, sd_api_request *r, sd_api_error *e)
{
    json_t *v = field(o, "messages");
    if (!v) return bad(e, "messages", "'messages' is required");
    if (!json_is_array(v)) return bad(e, "messages", "'messages' must be an array of {role, content} objects");
    size_t n = json_array_size(v);
    if (!n) return bad(e, "messages", "'messages' is empty");
    if (n > 65536) return bad(e, "messages", "'messages' has %zu entries", n);
    if (!(r->msgs = calloc(n, sizeof *r->msgs))) return sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(v, i);
        char param[48];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) return bad(e, param, "'%s' must be an object with role and content", param);
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role)) return bad(e, param, "'%s.role' must be a string", param);
        const char *rs = json_string_value(role);
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "developer"))
            return bad(e, param, "'%s.role' is '%.40s': only system, user and assistant are supported", param, rs);
        if (!strcmp(rs, "developer")) rs = "system";   /* OpenAI's newer name for it */
        r->n_msgs = (int)i + 1;
        if (!(r->msgs[i].role = dup_n(rs, strlen(rs)))) return sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        if (parse_content(field(m, "content"), i, &r->msgs[i].content, e)) return -1;
    }
    return 0;
}

static int parse_fields(json_t *o, sd_api_kind kind, sd_api_request *r, sd_api_error *e)
{
    if (refuse_unsupported(o, e)) return -1;
    json_t *model = field(o, "model");
    if (model) {
        if (!json_is_string(model)) return bad(e, "model", "'model' must be a string");
        if (!(r->model = dup_n(json_string_value(model), json_string_length(model))))
            return sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (kind == SD_API_CHAT ? parse_messages(o, r, e) : parse_prompt(o, r, e)) return -1;
    long long x = -1;
    if (get_int(o, "max_tokens", -(1ll << 40), 1 << 30, &x, e)) return -1;
    if (get_int(o, "max_completion_tokens", -(1ll << 40), 1 << 30, &x, e)) return -1;
    if (x < -1 || (x == -1 && (field(o, "max_tokens") || field(o, "max_completion_tokens"))))
        return bad(e, field(o, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
                   "'max_tokens' is %lld, must be >= 0", x);
    r->max_tokens = (int)x;
    if (get_num(o, "temperature", 0, 100, &r->sampling.temp, e) || get_num(o, "top_p", 0, 1, &r->sampling.top_p, e) ||
        get_num(o, "min_p", 0, 1, &r->sampling.min_p, e) ||
        get_num(o, "presence_penalty", -2, 2, &r->presence_penalty, e) ||
        get_num(o, "frequency_penalty", -2, 2, &r->frequency_penalty, e))
        return -1;
    x = 0;
    if (get_int(o, "top_k", -1, 1 << 20, &x, e)) return -1;
    r->sampling.top_k = (int)x;
    json_t *seed = field(o, "seed");
    if (seed) {
        if (!json_is_integer(seed)) return bad(e, "seed", "'seed' must be an integer");
        r->sampling.seed = (uint64_t)json_integer_value(seed);
        r->has_seed = 1;
    }
    if (parse_stop(o, r, e)) return -1;
    if (kind == SD_API_CHAT) {
        if (get_bool(o, "logprobs", &r->logprobs, e)) return -1;
        x = 0;
        if (get_int(o, "top_logprobs", 0, SD_API_MAX_TOP_LOGPROBS, &x, e)) return -1;
        r->top_logprobs = (int)x;
        if (r->top_logprobs && !r->logprobs)
            return bad(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    } else {
        x = -1;
        if (get_int(o, "logprobs", 0, SD_API_MAX_TOP_LOGPROBS, &x, e)) return -1;
        r->logprobs = (int)x;
        if (get_bool(o, "echo", &r->echo, e)) return -1;
    }
    if (get_bool(o, "ignore_eos", &r->ignore_eos, e) || get_bool(o, "stream", &r->stream, e)) return -1;
    json_t *so = field(o, "stream_options");
    if (so) {
        if (!json_is_object(so)) return bad(e, "stream_options", "'stream_options' must be an object");
        if (get_bool(so, "include_usage", &r->include_usage, e)) return -1;
    }
    return 0;
}

int sd_api_parse_request(const char *body, size_t len, sd_api_kind kind, sd_api_request *out, sd_api_error *e)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->max_tokens = -1;
    out->logprobs = kind == SD_API_CHAT ? 0 : -1;
    out->sampling = sd_sampler_default_params();
    out->sampling.temp = 1.0f;   /* OpenAI's defaults: temperature 1, no top-k/top-p/min-p */
    out->sampling.top_k = 0;
    out->sampling.top_p = 1.0f;
    out->sampling.min_p = 0.0f;
    if (!sd_utf8_valid(body, len)) return bad(e, NULL, "the request body is not valid UTF-8");
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) return bad(e, NULL, "the request body is not valid JSON: %.200s (line %d, column %d)", je.text, je.line, je.column);
    int rc = json_is_object(o) ? parse_fields(o, kind, out, e) : bad(e, NULL, "the request body must be a JSON object");
    json_decref(o);
    if (rc) sd_api_request_free(out);
    return rc;
}

void sd_api_request_free(sd_api_request *r)
{
    free(r->model);
    free(r->prompt);
    free(r->prompt_tokens);
    for (int i = 0; i < r->n_msgs; i++) { free(r->msgs[i].role); free(r->msgs[i].content); }
    free(r->msgs);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    sd_api_kind k = r->kind;
    memset(r, 0, sizeof *r);
    r->kind = k;
}

int sd_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k;
        unsigned cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) { k = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { k = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { k = 3; cp = c & 0x07; }
        else return 0;
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += k + 1;
    }
    return 1;
}
