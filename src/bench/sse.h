/* Incremental Server-Sent Events parser (the WHATWG event-stream rules):
 * bytes go in as they arrive, split anywhere (even inside a CRLF); each
 * complete event comes out once through a callback. Lines end in LF, CRLF or
 * CR; ':' starts a comment; "data:" lines of one event are joined with '\n';
 * a blank line dispatches. No I/O: a pure state machine, fuzzed by
 * fuzz/fuzz_sse.c. */
#ifndef SD_BENCH_SSE_H
#define SD_BENCH_SSE_H

#include <stddef.h>

#define SD_SSE_MAX_LINE (4u << 20)   /* a longer line is refused, not buffered forever */

typedef struct {
    char *line, *data;
    size_t line_len, line_cap, data_len, data_cap;
    char event[32];
    int after_cr;     /* last byte was CR: a following LF belongs to it */
    int has_data;     /* a data: field was seen in the current event */
} sd_sse;

/* One event: its type ("" when no event: field) and data (NUL-terminated,
 * len bytes). Returns 0 to go on, nonzero to stop the feed. */
typedef int (*sd_sse_event_fn)(const char *event, const char *data, size_t len, void *user);

void sd_sse_init(sd_sse *p);
void sd_sse_free(sd_sse *p);
/* 0: all bytes consumed; 1: the callback stopped it; -1: a line over
 * SD_SSE_MAX_LINE or out of memory (one line in err). */
int sd_sse_feed(sd_sse *p, const char *buf, size_t n, sd_sse_event_fn fn, void *user, char *err);
/* Whether bytes of an event that never got its blank line are held. */
int sd_sse_pending(const sd_sse *p);

#endif
