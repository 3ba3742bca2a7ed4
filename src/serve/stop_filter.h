/* Generated text on its way to the client: stop strings never reach it, even
 * when split across tokens, and neither do half UTF-8 characters. Text that
 * could still become the start of a stop string, and an incomplete UTF-8
 * sequence at the end, are held back until the next piece decides them.
 * Released text is valid UTF-8 (invalid bytes from the model become U+FFFD). */
#ifndef SD_SERVE_STOP_FILTER_H
#define SD_SERVE_STOP_FILTER_H

#include <stddef.h>

typedef struct {
    const char *const *stops;   /* borrowed */
    int n_stops;
    char *held;                 /* raw bytes not yet released */
    size_t n_held, cap_held;
    char *out;                  /* the last release (sanitized) */
    size_t cap_out;
    size_t raw_released;        /* raw bytes released so far (token offsets compare to it) */
    size_t raw_total;           /* raw bytes pushed so far */
    int stopped;
} sd_stop_filter;

void sd_stop_init(sd_stop_filter *f, const char *const *stops, int n_stops);
void sd_stop_free(sd_stop_filter *f);
/* Adds a piece of generated text. Returns 1 when a stop string has now
 * appeared (the text before it is released, the rest dropped; later pushes
 * release nothing), 0 when not, -1 when out of memory. *out, *n_out: the
 * text that can go to the client now (valid until the next call). */
int sd_stop_push(sd_stop_filter *f, const char *piece, size_t n, const char **out, size_t *n_out);
/* The end of generation: releases what is held (no stop string came). */
int sd_stop_flush(sd_stop_filter *f, const char **out, size_t *n_out);

/* Bytes of s[0..n) to keep back because they may start an incomplete UTF-8
 * sequence that the next bytes complete (0..3). */
size_t sd_utf8_incomplete_tail(const char *s, size_t n);
/* Copies s[0..n) to out (room for 3n bytes), invalid bytes as U+FFFD;
 * returns the length written. */
size_t sd_utf8_sanitize(const char *s, size_t n, char *out);

#endif
