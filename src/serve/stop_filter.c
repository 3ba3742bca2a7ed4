/* Stop strings and UTF-8 holdback for streamed text (see stop_filter.h). */
#include <stdlib.h>
#include <string.h>

#include "serve/stop_filter.h"

void sd_stop_init(sd_stop_filter *f, const char *const *stops, int n_stops)
{
    memset(f, 0, sizeof *f);
    f->stops = stops;
    f->n_stops = n_stops;
}

void sd_stop_free(sd_stop_filter *f)
{
    free(f->held);
    free(f->out);
    memset(f, 0, sizeof *f);
}

/* Length of a lead byte's sequence (1 for ASCII and invalid bytes). */
static size_t seq_len(unsigned char c)
{
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) return 3;
    if (c >= 0xf0 && c <= 0xf4) return 4;
    return 1;
}

size_t sd_utf8_incomplete_tail(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    /* Walk back over at most 3 continuation bytes to a lead byte. */
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xc0) == 0x80) continue;
        size_t need = seq_len(c);
        return need > back ? back : 0;
    }
    return 0;
}

/* Length of the valid sequence at s (1..4), 0 when invalid. */
static size_t valid_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k = seq_len((unsigned char)c);
    if (k == 1 || k > left) return 0;
    unsigned cp = c & (k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[j] & 0x3f);
    }
    if ((k == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return k;
}

size_t sd_utf8_sanitize(const char *str, size_t n, char *out)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = valid_seq(s + i, n - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    return o;
}

/* Releases held[0..n): sanitized into f->out, the rest moved to the front. */
static int release(sd_stop_filter *f, size_t n, const char **out, size_t *n_out)
{
    if (f->cap_out < 3 * n + 1) {
        char *p = realloc(f->out, 3 * n + 1);
        if (!p) return -1;
        f->out = p;
        f->cap_out = 3 * n + 1;
    }
    *n_out = sd_utf8_sanitize(f->held, n, f->out);
    *out = f->out;
    f->raw_released += n;
    memmove(f->held, f->held + n, f->n_held - n);
    f->n_held -= n;
    return 0;
}

/* Longest suffix of held that is a proper prefix of some stop string. */
static size_t stop_prefix_tail(const sd_stop_filter *f)
{
    size_t best = 0;
    for (int s = 0; s < f->n_stops; s++) {
        size_t sl = strlen(f->stops[s]);
        if (!sl) continue;
        size_t max = sl - 1 < f->n_held ? sl - 1 : f->n_held;
        for (size_t k = max; k > best; k--)
            if (!memcmp(f->held + f->n_held - k, f->stops[s], k)) { best = k; break; }
    }
    return best;
}

int sd_stop_push(sd_stop_filter *f, const char *piece, size_t n, const char **out, size_t *n_out)
{
    *out = "";
    *n_out = 0;
    if (f->stopped) return 1;
    if (f->n_held + n + 1 > f->cap_held) {
        size_t cap = (f->n_held + n + 1) * 2;
        char *p = realloc(f->held, cap);
        if (!p) return -1;
        f->held = p;
        f->cap_held = cap;
    }
    memcpy(f->held + f->n_held, piece, n);
    f->n_held += n;
    f->raw_total += n;
    /* The earliest stop string wins. */
    size_t first = (size_t)-1;
    for (int s = 0; s < f->n_stops; s++) {
        size_t sl = strlen(f->stops[s]);
        if (!sl || sl > f->n_held) continue;
        for (size_t at = 0; at + sl <= f->n_held && at < first; at++)
            if (!memcmp(f->held + at, f->stops[s], sl)) { first = at; break; }
    }
    if (first != (size_t)-1) {
        f->stopped = 1;
        if (release(f, first, out, n_out)) return -1;
        f->n_held = 0;
        return 1;
    }
    size_t keep = stop_prefix_tail(f);
    size_t utf = sd_utf8_incomplete_tail(f->held, f->n_held);
    if (utf > keep) keep = utf;
    return release(f, f->n_held - keep, out, n_out);
}

int sd_stop_flush(sd_stop_filter *f, const char **out, size_t *n_out)
{
    *out = "";
    *n_out = 0;
    if (f->stopped || !f->n_held) return 0;
    return release(f, f->n_held, out, n_out);
}
