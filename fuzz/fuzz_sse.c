/* libFuzzer target for the streaming response reader of bench --url
 * (src/bench/sse.c, url_chunk.c): the bytes are fed whole and again cut into
 * pieces at fuzzer-chosen points; both feeds must give the same events, and
 * every event's data goes through the OpenAI chunk reader, whose refusals
 * are one line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "bench/sse.h"
#include "bench/url.h"

typedef struct { uint64_t h; int n, chat; } digest;

static int on_event(const char *event, const char *data, size_t len, void *user)
{
    digest *d = user;
    if (strlen(data) > len) abort();   /* data is NUL-terminated at len (it may hold NULs itself) */
    for (const char *p = event; *p; p++) d->h = (d->h ^ (uint8_t)*p) * 1099511628211ull;
    d->h = (d->h ^ 0xff) * 1099511628211ull;
    for (size_t i = 0; i < len; i++) d->h = (d->h ^ (uint8_t)data[i]) * 1099511628211ull;
    d->n++;
    sd_oai_chunk c;
    char err[SD_ERR_LEN] = "";
    if (sd_oai_chunk_parse(event, data, len, d->chat, &c, err) != 0) {
        if (!err[0] || strchr(err, '\n')) abort();
    } else if (c.is_error && strchr(c.error, '\n')) {
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint8_t step = data[0];
    int chat = data[1] & 1;
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    char err[SD_ERR_LEN];
    digest whole = {14695981039346656037ull, 0, chat}, cut = whole;
    sd_sse p;
    sd_sse_init(&p);
    int rc1 = sd_sse_feed(&p, s, n, on_event, &whole, err);
    int pend1 = sd_sse_pending(&p);
    sd_sse_free(&p);
    sd_sse_init(&p);
    int rc2 = 0;
    size_t at = 0, k = 1 + step % 13;
    while (at < n && rc2 == 0) {
        size_t len = n - at < k ? n - at : k;
        rc2 = sd_sse_feed(&p, s + at, len, on_event, &cut, err);
        at += len;
        k = 1 + (k * 7 + step) % 29;
    }
    int pend2 = sd_sse_pending(&p);
    sd_sse_free(&p);
    if (rc1 != rc2 || whole.h != cut.h || whole.n != cut.n || (rc1 == 0 && pend1 != pend2)) abort();
    return 0;
}
