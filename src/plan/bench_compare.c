/* Reads the JSONL rows `showdown bench -o jsonl` writes, for `plan --hw this
 * --compare`. Only the flat fields plan needs are read; a line without them is
 * an error naming the line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "plan/plan.h"

/* Points at the value of "key" in a flat JSON object line, or NULL. */
static const char *find_value(const char *line, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = strchr(line, '"'); p; p = strchr(p + 1, '"')) {
        if (strncmp(p + 1, key, kl) || p[1 + kl] != '"') continue;
        const char *q = p + 2 + kl;
        while (*q == ' ' || *q == '\t') q++;
        if (*q != ':') continue;
        q++;
        while (*q == ' ' || *q == '\t') q++;
        return q;
    }
    return NULL;
}

static int get_num(const char *line, const char *key, double *out)
{
    const char *v = find_value(line, key);
    if (!v) return -1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || errno) return -1;
    *out = x;
    return 0;
}

static int get_str(const char *line, const char *key, char *out, size_t n)
{
    const char *v = find_value(line, key);
    if (!v || *v != '"') return -1;
    size_t k = 0;
    for (v++; *v && *v != '"'; v++) {
        char c = *v;
        if (c == '\\' && v[1]) {   /* keep escaped quotes and slashes; others are rare in paths */
            v++;
            c = *v == 'n' ? '\n' : *v == 't' ? '\t' : *v;
        }
        if (k + 1 < n) out[k++] = c;
    }
    if (*v != '"') return -1;
    out[k] = 0;
    return 0;
}

int sd_bench_jsonl_read(const char *path, sd_bench_row **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    FILE *fp = fopen(path, "r");
    if (!fp) { snprintf(err, SD_ERR_LEN, "%s: cannot open bench results", path); return -1; }
    char line[8192];
    int cap = 0, lineno = 0;
    sd_bench_row *rows = NULL;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\n' || *p == '\r' || !*p) continue;
        sd_bench_row r;
        memset(&r, 0, sizeof r);
        double np, ng, nt, ts;
        if (*p != '{' || get_str(p, "model_filename", r.model_filename, sizeof r.model_filename) ||
            get_num(p, "n_prompt", &np) || get_num(p, "n_gen", &ng) || get_num(p, "avg_ts", &ts) ||
            get_num(p, "n_threads", &nt) || !(np >= 0 && np <= 1e7) || !(ng >= 0 && ng <= 1e7) ||
            !(nt >= 0 && nt <= 1e5) || !(ts >= 0)) {   /* written so nan fails: (int)nan is undefined */
            snprintf(err, SD_ERR_LEN,
                     "%s:%d: not a bench row (needs model_filename, n_prompt, n_gen, avg_ts, n_threads)", path, lineno);
            free(rows);
            fclose(fp);
            return -1;
        }
        r.n_prompt = (int)np;
        r.n_gen = (int)ng;
        r.n_threads = (int)nt;
        r.avg_ts = ts;
        double nd;
        if (!get_num(p, "n_depth", &nd) && nd >= 0 && nd < 1e7) r.n_depth = (int)nd;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            sd_bench_row *nr = realloc(rows, (size_t)cap * sizeof *nr);
            if (!nr) { free(rows); fclose(fp); snprintf(err, SD_ERR_LEN, "%s: out of memory", path); return -1; }
            rows = nr;
        }
        rows[(*n)++] = r;
    }
    int read_errno = ferror(fp) ? (errno ? errno : EIO) : 0;   /* a directory opens, then fails to read */
    fclose(fp);
    if (read_errno) { free(rows); *n = 0; snprintf(err, SD_ERR_LEN, "%s: cannot read: %s", path, strerror(read_errno)); return -1; }
    if (!*n) { snprintf(err, SD_ERR_LEN, "%s: no bench rows", path); return -1; }
    *out = rows;
    return 0;
}
