/* Server-Sent Events, one byte at a time through a line buffer: simple, and
 * the cost is nothing next to the network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "bench/sse.h"

void sd_sse_init(sd_sse *p) { memset(p, 0, sizeof *p); }

void sd_sse_free(sd_sse *p)
{
    free(p->line);
    free(p->data);
    memset(p, 0, sizeof *p);
}

static int grow(char **b, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *nb = realloc(*b, c);
    if (!nb) return -1;
    *b = nb;
    *cap = c;
    return 0;
}

/* One complete line (without its end). */
static int on_line(sd_sse *p, sd_sse_event_fn fn, void *user, char *err)
{
    const char *l = p->line;
    size_t n = p->line_len;
    if (n == 0) {   /* blank line: dispatch */
        int rc = 0;
        if (p->has_data) {
            size_t dl = p->data_len;
            if (dl && p->data[dl - 1] == '\n') dl--;   /* the last data line's separator */
            p->data[dl] = 0;
            rc = fn(p->event, p->data, dl, user) ? 1 : 0;
        }
        p->data_len = 0;
        p->has_data = 0;
        p->event[0] = 0;
        return rc;
    }
    if (l[0] == ':') return 0;   /* comment (keep-alive) */
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vl = (size_t)(l + n - v);
    if (vl && *v == ' ') { v++; vl--; }
    if (fl == 4 && !memcmp(l, "data", 4)) {
        if (grow(&p->data, &p->data_cap, p->data_len + vl + 2) != 0) {
            snprintf(err, SD_ERR_LEN, "out of memory buffering an event");
            return -1;
        }
        memcpy(p->data + p->data_len, v, vl);
        p->data_len += vl;
        p->data[p->data_len++] = '\n';
        p->data[p->data_len] = 0;
        if (p->data_len > SD_SSE_MAX_LINE) {
            snprintf(err, SD_ERR_LEN, "an event's data is over %u bytes", SD_SSE_MAX_LINE);
            return -1;
        }
        p->has_data = 1;
    } else if (fl == 5 && !memcmp(l, "event", 5)) {
        if (vl >= sizeof p->event) vl = sizeof p->event - 1;
        memcpy(p->event, v, vl);
        p->event[vl] = 0;
    }
    /* id:, retry: and unknown fields do not matter to a benchmark */
    return 0;
}

int sd_sse_feed(sd_sse *p, const char *buf, size_t n, sd_sse_event_fn fn, void *user, char *err)
{
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\n' && p->after_cr) { p->after_cr = 0; continue; }
        p->after_cr = c == '\r';
        if (c == '\n' || c == '\r') {
            int rc = on_line(p, fn, user, err);
            p->line_len = 0;
            if (rc) return rc;
            continue;
        }
        if (p->line_len >= SD_SSE_MAX_LINE) {
            snprintf(err, SD_ERR_LEN, "a line of the event stream is over %u bytes", SD_SSE_MAX_LINE);
            return -1;
        }
        if (grow(&p->line, &p->line_cap, p->line_len + 1) != 0) {
            snprintf(err, SD_ERR_LEN, "out of memory buffering a line of the event stream");
            return -1;
        }
        p->line[p->line_len++] = c;
    }
    return 0;
}

int sd_sse_pending(const sd_sse *p) { return p->line_len > 0 || p->has_data; }
