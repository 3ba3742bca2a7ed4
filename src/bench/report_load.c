/* Reading a results file for `report`: JSON lines or one JSON array, every
 * row stamped with our bench_schema. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "bench/bench.h"
#include "bench/report.h"

typedef struct { sd_report_row *r; int schema_ok, have_ts; } row_ctx;

static void field(void *ud, const char *key, const char *str, double num, int is_null)
{
    row_ctx *c = ud;
    sd_report_row *r = c->r;
#define S(k, dst) if (!strcmp(key, k)) { if (str) snprintf(dst, sizeof dst, "%s", str); return; }
#define N(k, dst) if (!strcmp(key, k)) { dst = is_null || str ? NAN : num; return; }
/* out-of-range counts (1e300, -nan) read as 0: converting them to int is undefined */
#define I(k, dst) if (!strcmp(key, k)) { dst = is_null || str || !(fabs(num) < 1e9) ? 0 : (int)num; return; }
    if (!strcmp(key, "bench_schema")) { c->schema_ok = str && !strcmp(str, SD_BENCH_SCHEMA); return; }
    if (!strcmp(key, "avg_ts")) c->have_ts = 1;
    S("model_filename", r->model) S("model_type", r->type) S("type_k", r->kv) S("test", r->test)
    S("energy_source", r->energy_source) S("cpu_info", r->cpu) S("build_commit", r->commit) S("error", r->error)
    I("n_threads", r->threads) I("n_prompt", r->n_prompt) I("n_gen", r->n_gen) I("n_depth", r->n_depth)
    I("n_reps", r->n_reps)
    N("avg_ts", r->avg_ts) N("stddev_ts", r->stddev_ts) N("roofline_ts", r->roofline_ts)
    N("tokens_per_joule", r->tokens_per_joule) N("energy_j", r->energy_j)
#undef S
#undef N
#undef I
}

int sd_report_load(const char *path, sd_report_row **rows, int *n, char *err)
{
    *rows = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, SD_ERR_LEN, "%.400s: cannot open", path); return -1; }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (size_t r; buf && (r = fread(buf + len, 1, cap - len, f)) > 0;) {
        len += r;
        if (len == cap) { char *nb = realloc(buf, 2 * cap + 1); if (!nb) { free(buf); buf = NULL; break; } buf = nb; cap *= 2; }
    }
    int read_errno = ferror(f) ? (errno ? errno : EIO) : 0;   /* a directory opens, then fails to read */
    fclose(f);
    if (read_errno) { free(buf); snprintf(err, SD_ERR_LEN, "%.400s: cannot read: %s", path, strerror(read_errno)); return -1; }
    if (!buf) { snprintf(err, SD_ERR_LEN, "%.400s: out of memory", path); return -1; }
    buf[len] = 0;
    if (memchr(buf, 0, len)) { free(buf); snprintf(err, SD_ERR_LEN, "%.400s: binary data: not a showdown bench results file", path); return -1; }

    const char *p = buf;
    int line = 1, array = 0, rc = 0;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') line += *p++ == '\n';
    if (*p == '[') { array = 1; p++; }
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || (array && *p == ',')) line += *p++ == '\n';
        if (!*p || (array && *p == ']')) break;
        sd_report_row *nr = realloc(*rows, (size_t)(*n + 1) * sizeof **rows);
        if (!nr) { snprintf(err, SD_ERR_LEN, "%.400s: out of memory", path); rc = -1; break; }
        *rows = nr;
        sd_report_row *r = &nr[*n];
        memset(r, 0, sizeof *r);
        r->avg_ts = r->stddev_ts = r->roofline_ts = r->tokens_per_joule = r->energy_j = NAN;
        row_ctx c = {r, 0, 0};
        char jerr[SD_ERR_LEN];
        long used = sd_json_object(p, field, &c, jerr);
        if (used < 0) {
            snprintf(err, SD_ERR_LEN, "%.300s:%d: not a showdown bench results file (%.150s)", path, line, jerr);
            rc = -1;
            break;
        }
        if (!c.schema_ok || !c.have_ts || !r->model[0]) {
            snprintf(err, SD_ERR_LEN, "%.300s:%d: not a showdown bench row (no bench_schema \"%s\"; "
                     "make one with showdown bench -o jsonl)", path, line, SD_BENCH_SCHEMA);
            rc = -1;
            break;
        }
        for (const char *q = p; q < p + used; q++) line += *q == '\n';
        p += used;
        (*n)++;
    }
    if (rc == 0 && array && *p != ']') { snprintf(err, SD_ERR_LEN, "%.400s: unterminated JSON array", path); rc = -1; }
    if (rc == 0 && *n == 0) { snprintf(err, SD_ERR_LEN, "%.400s: no result rows", path); rc = -1; }
    free(buf);
    if (rc != 0) { free(*rows); *rows = NULL; *n = 0; }
    return rc;
}
