/* libFuzzer target for the server's request parser (src/serve/api_request.c):
 * any bytes give a request whose fields are in range, or one 400 error whose
 * JSON object parses back. Stop strings from accepted requests then filter
 * the request's own text in fuzzer-chosen pieces: nothing released may
 * contain a stop string or be invalid UTF-8. First byte: completions/chat
 * and the piece size. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "serve/api.h"
#include "serve/stop_filter.h"

static void check_filter(const sd_api_request *r, const char *text, size_t n, size_t step)
{
    sd_stop_filter f;
    sd_stop_init(&f, (const char *const *)r->stop, r->n_stop);
    char *all = malloc(3 * n + 1);
    if (!all) abort();
    size_t at = 0;
    int hit = 0;
    for (size_t i = 0; i < n && !hit; i += step) {
        const char *o;
        size_t k;
        hit = sd_stop_push(&f, text + i, i + step <= n ? step : n - i, &o, &k);
        if (hit < 0) abort();
        memcpy(all + at, o, k);
        at += k;
    }
    if (!hit) {
        const char *o;
        size_t k;
        if (sd_stop_flush(&f, &o, &k)) abort();
        memcpy(all + at, o, k);
        at += k;
    }
    if (!sd_utf8_valid(all, at)) abort();
    for (int s = 0; s < r->n_stop; s++)
        if (memmem(all, at, r->stop[s], strlen(r->stop[s]))) abort();
    sd_stop_free(&f);
    free(all);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) return 0;
    sd_api_kind kind = data[0] & 1 ? SD_API_CHAT : SD_API_COMPLETION;
    size_t step = 1 + (data[0] >> 1 & 7);
    sd_api_request r;
    sd_api_error e;
    if (sd_api_parse_request((const char *)data + 1, size - 1, kind, &r, &e) == 0) {
        if (r.n_stop < 0 || r.n_stop > SD_API_MAX_STOP || r.max_tokens < -1) abort();
        if (r.top_logprobs < 0 || r.top_logprobs > SD_API_MAX_TOP_LOGPROBS) abort();
        if (kind == SD_API_COMPLETION && !r.prompt_is_tokens && (!r.prompt || !r.prompt_len)) abort();
        if (kind == SD_API_CHAT && r.n_msgs < 1) abort();
        for (int i = 0; i < r.n_stop; i++)
            if (!r.stop[i][0] || !sd_utf8_valid(r.stop[i], strlen(r.stop[i]))) abort();
        if (r.prompt) check_filter(&r, r.prompt, r.prompt_len, step);
        for (int i = 0; i < r.n_msgs; i++) check_filter(&r, r.msgs[i].content, strlen(r.msgs[i].content), step);
        sd_api_request_free(&r);
    } else {
        if (e.status != 400 && e.status != 500) abort();
        if (!e.message[0] || strchr(e.message, '\n')) abort();
        char *s = sd_api_error_json(&e);
        json_error_t je;
        json_t *o = s ? json_loads(s, 0, &je) : NULL;
        if (!o || !json_is_string(json_object_get(json_object_get(o, "error"), "message"))) abort();
        json_decref(o);
        free(s);
    }
    return 0;
}
