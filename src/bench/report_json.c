/* A small JSON reader for flat objects, enough for our own result rows and
 * strict enough to reject what is not JSON. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "bench/report.h"

static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static void put_utf8(char *out, size_t *k, size_t cap, unsigned cp)
{
    char b[4];
    int n;
    if (cp < 0x80) { b[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = (char)(0xC0 | cp >> 6); b[1] = (char)(0x80 | (cp & 63)); n = 2; }
    else { b[0] = (char)(0xE0 | cp >> 12); b[1] = (char)(0x80 | ((cp >> 6) & 63)); b[2] = (char)(0x80 | (cp & 63)); n = 3; }
    for (int i = 0; i < n; i++)
        if (*k + 1 < cap) out[(*k)++] = b[i];
}

/* A string at p (at the opening quote) into out; returns the end or NULL. */
static const char *string(const char *p, char *out, size_t cap)
{
    size_t k = 0;
    p++;
    while (*p && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            p++;
            char e = *p;
            if (e == 'u') {
                unsigned cp = 0;
                for (int i = 1; i <= 4; i++) {
                    char h = p[i];
                    int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (v < 0) return NULL;
                    cp = cp * 16 + (unsigned)v;
                }
                put_utf8(out, &k, cap, cp);
                p += 5;
                continue;
            }
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *hit = e ? strchr(from, e) : NULL;
            if (!hit) return NULL;
            if (k + 1 < cap) out[k++] = to[hit - from];
            p++;
            continue;
        }
        if (k + 1 < cap) out[k++] = (char)c;
        p++;
    }
    out[k] = 0;
    return *p == '"' ? p + 1 : NULL;
}

/* The key as an error message may show it: one line, no terminal escapes. */
static const char *shown(const char *key)
{
    static char buf[201];
    size_t i = 0;
    for (; key[i] && i < sizeof buf - 1; i++) buf[i] = (unsigned char)key[i] < 0x20 || key[i] == 0x7f ? '?' : key[i];
    buf[i] = 0;
    return buf;
}

long sd_json_object(const char *s, sd_json_field_fn fn, void *ud, char *err)
{
    const char *p = ws(s);
    static char key[256], str[1024];
    if (*p != '{') { snprintf(err, SD_ERR_LEN, "expected a JSON object"); return -1; }
    p = ws(p + 1);
    if (*p == '}') return (long)(p + 1 - s);
    for (;;) {
        if (*p != '"' || !(p = string(p, key, sizeof key))) { snprintf(err, SD_ERR_LEN, "expected a key string"); return -1; }
        p = ws(p);
        if (*p != ':') { snprintf(err, SD_ERR_LEN, "expected ':' after \"%.200s\"", shown(key)); return -1; }
        p = ws(p + 1);
        if (*p == '"') {
            if (!(p = string(p, str, sizeof str))) { snprintf(err, SD_ERR_LEN, "bad string for \"%.200s\"", shown(key)); return -1; }
            fn(ud, key, str, NAN, 0);
        } else if (!strncmp(p, "null", 4)) { p += 4; fn(ud, key, NULL, NAN, 1); }
        else if (!strncmp(p, "true", 4)) { p += 4; fn(ud, key, NULL, 1, 0); }
        else if (!strncmp(p, "false", 5)) { p += 5; fn(ud, key, NULL, 0, 0); }
        else if (*p == '[') {
            /* arrays of numbers: skipped (the report uses the summaries) */
            p = ws(p + 1);
            while (*p && *p != ']') {
                char *end;
                strtod(p, &end);
                if (end == p) { snprintf(err, SD_ERR_LEN, "bad array for \"%.200s\"", shown(key)); return -1; }
                p = ws(end);
                if (*p == ',') p = ws(p + 1);
            }
            if (*p != ']') { snprintf(err, SD_ERR_LEN, "unterminated array"); return -1; }
            p++;
        } else {
            char *end;
            double v = strtod(p, &end);
            if (end == p || !(*p == '-' || (*p >= '0' && *p <= '9'))) {
                snprintf(err, SD_ERR_LEN, "bad value for \"%.200s\"", shown(key));
                return -1;
            }
            p = end;
            fn(ud, key, NULL, v, 0);
        }
        p = ws(p);
        if (*p == ',') { p = ws(p + 1); continue; }
        if (*p == '}') return (long)(p + 1 - s);
        snprintf(err, SD_ERR_LEN, "expected ',' or '}' after \"%.200s\"", shown(key));
        return -1;
    }
}
