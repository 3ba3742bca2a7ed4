/* Parsing of list/range flag values (see listarg.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "bench/listarg.h"

#define LIST_MAX 4096

static int push(int **vals, int *n, long v, const char *flag, char *err)
{
    if (*n >= LIST_MAX) { snprintf(err, SD_ERR_LEN, "%s: more than %d values", flag, LIST_MAX); return -1; }
    int *nv = realloc(*vals, (size_t)(*n + 1) * sizeof **vals);
    if (!nv) { snprintf(err, SD_ERR_LEN, "out of memory"); return -1; }
    nv[(*n)++] = (int)v;
    *vals = nv;
    return 0;
}

/* A non-negative decimal integer at *p; advances *p. */
static int number(const char **p, long *out)
{
    if (**p < '0' || **p > '9') return -1;
    char *end;
    errno = 0;
    long v = strtol(*p, &end, 10);
    if (errno) return -1;
    *p = end;
    *out = v;
    return 0;
}

static int one_item(const char *flag, const char *item, long lo, long hi, int **vals, int *n, char *err)
{
    const char *p = item;
    long first, last, step = 1;
    char op = '+';
    if (number(&p, &first) != 0) goto bad;
    last = first;
    if (*p == '-') {
        p++;
        if (number(&p, &last) != 0) goto bad;
        if (*p == '+' || *p == '*') {
            op = *p++;
            if (number(&p, &step) != 0) goto bad;
        }
    }
    if (*p) goto bad;
    if (first < lo || last > hi || first > hi || last < lo) {
        snprintf(err, SD_ERR_LEN, "%s: '%s' is outside [%ld, %ld]", flag, item, lo, hi);
        return -1;
    }
    if (last < first) { snprintf(err, SD_ERR_LEN, "%s: range '%s' runs backwards", flag, item); return -1; }
    if ((op == '+' && step < 1) || (op == '*' && (step < 2 || first < 1))) {
        snprintf(err, SD_ERR_LEN, "%s: range '%s' would never end (step must be >= 1, multiplier >= 2 from >= 1)", flag, item);
        return -1;
    }
    /* Stop before a step that would pass last: computing it could overflow. */
    for (long v = first;; v = op == '+' ? v + step : v * step) {
        if (push(vals, n, v, flag, err) != 0) return -1;
        if (op == '+' ? step > last - v : v > last / step) return 0;
    }
bad:
    snprintf(err, SD_ERR_LEN, "%s: cannot read '%s' (expected N, A-B, A-B+STEP or A-B*MULT, comma-separated)", flag, item);
    return -1;
}

int sd_parse_int_list(const char *flag, const char *s, long lo, long hi, int **vals, int *n, char *err)
{
    if (!s || !*s) { snprintf(err, SD_ERR_LEN, "%s: empty value", flag); return -1; }
    char *copy = strdup(s);
    if (!copy) { snprintf(err, SD_ERR_LEN, "out of memory"); return -1; }
    int rc = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item && rc == 0; item = strtok_r(NULL, ",", &save))
        rc = one_item(flag, item, lo, hi, vals, n, err);
    /* strtok_r skips empty items: treat "1,,2" and "1," as mistakes. */
    if (rc == 0 && (strstr(s, ",,") || s[0] == ',' || s[strlen(s) - 1] == ',')) {
        snprintf(err, SD_ERR_LEN, "%s: empty item in '%s'", flag, s);
        rc = -1;
    }
    free(copy);
    return rc;
}

int sd_parse_str_list(const char *flag, const char *s, char ***vals, int *n, char *err)
{
    if (!s || !*s) { snprintf(err, SD_ERR_LEN, "%s: empty value", flag); return -1; }
    for (const char *p = s;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == 0) { snprintf(err, SD_ERR_LEN, "%s: empty item in '%s'", flag, s); return -1; }
        char **nv = realloc(*vals, (size_t)(*n + 1) * sizeof **vals);
        if (!nv || !(nv[*n] = strndup(p, len))) {
            if (nv) *vals = nv;
            snprintf(err, SD_ERR_LEN, "out of memory");
            return -1;
        }
        *vals = nv;
        (*n)++;
        if (!c) break;
        p = c + 1;
    }
    return 0;
}
