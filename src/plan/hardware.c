/* Device profiles: data/hardware.tsv rows, the "Nx" multi-GPU prefix, and the
 * `this` profile built from the calibrate cache. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "showdown.h"
#include "measure/calibrate.h"
#include "plan/plan.h"

enum { HW_FIELDS = 18 };

double sd_link_gbps(const char *link)
{
    /* Per lane, one direction, after line coding: gen3 8 GT/s 128b/130b ... */
    static const double lane[] = {0, 0.25, 0.5, 0.985, 1.969, 3.938, 7.877};
    int gen, lanes;
    char tail;
    if (!link || sscanf(link, "pcie%dx%d%c", &gen, &lanes, &tail) != 2) return 0;
    if (gen < 1 || gen > 6 || lanes < 1 || lanes > 32) return 0;
    return lane[gen] * lanes;
}

static int parse_num(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= 0) || isinf(v)) return -1;   /* refuses nan and inf too */
    *out = v;
    return 0;
}

static int parse_row(char *line, sd_hw *h, char *why, size_t why_n)
{
    char *f[HW_FIELDS];
    int n = 0;
    for (char *p = line; n < HW_FIELDS; n++) {
        f[n] = p;
        char *tab = strchr(p, '\t');
        if (!tab) { n++; break; }
        *tab = 0;
        p = tab + 1;
    }
    if (n != HW_FIELDS) { snprintf(why, why_n, "expected %d tab-separated fields, got %d", HW_FIELDS, n); return -1; }
    memset(h, 0, sizeof *h);
    h->count = 1;
    snprintf(h->id, sizeof h->id, "%s", f[0]);
    snprintf(h->name, sizeof h->name, "%s", f[1]);
    if (!strcmp(f[2], "gpu")) h->kind = SD_HW_GPU;
    else if (!strcmp(f[2], "soc")) h->kind = SD_HW_SOC;
    else if (!strcmp(f[2], "cpu")) h->kind = SD_HW_CPU;
    else { snprintf(why, why_n, "kind '%s' is not gpu, soc or cpu", f[2]); return -1; }
    snprintf(h->family, sizeof h->family, "%s", f[3]);
    if (!sd_eff_for(h->family)) { snprintf(why, why_n, "unknown family '%s'", f[3]); return -1; }
    double *num[] = {&h->mem_gib, &h->usable_gib, &h->bw_gbps};
    for (int i = 0; i < 3; i++)
        if (parse_num(f[4 + i], num[i])) { snprintf(why, why_n, "field %d '%s' is not a number", 5 + i, f[4 + i]); return -1; }
    snprintf(h->link, sizeof h->link, "%s", f[7]);
    h->link_gbps = sd_link_gbps(h->link);
    double *num2[] = {&h->tflops_f16, &h->tops_int8, &h->tflops_fp8, &h->tflops_fp4, &h->load_w, &h->idle_w};
    for (int i = 0; i < 6; i++)
        if (parse_num(f[8 + i], num2[i])) { snprintf(why, why_n, "field %d '%s' is not a number", 9 + i, f[8 + i]); return -1; }
    double cores;
    if (parse_num(f[14], &cores) || cores > 100000) { snprintf(why, why_n, "cores '%s' is not a count", f[14]); return -1; }
    h->cores = (int)cores;
    snprintf(h->isa, sizeof h->isa, "%s", f[15]);
    snprintf(h->host, sizeof h->host, "%s", f[16]);
    snprintf(h->source, sizeof h->source, "%s", f[17]);
    if (!h->id[0] || strlen(h->source) < 8) { snprintf(why, why_n, "row '%s' has no source", h->id); return -1; }
    if (h->bw_gbps <= 0 || h->mem_gib <= 0 || h->usable_gib <= 0 || h->usable_gib > h->mem_gib) {
        snprintf(why, why_n, "row '%s': capacity and bandwidth must be positive, usable <= installed", h->id);
        return -1;
    }
    if (h->kind == SD_HW_GPU && h->link_gbps <= 0) { snprintf(why, why_n, "row '%s': a discrete GPU needs a pcieGxL link", h->id); return -1; }
    return 0;
}

int sd_hw_load(const char *path, sd_hw_table *t, char *err)
{
    memset(t, 0, sizeof *t);
    FILE *fp = fopen(path, "r");
    if (!fp) { snprintf(err, SD_ERR_LEN, "%s: cannot open hardware profiles", path); return -1; }
    char line[4096];
    int lineno = 0, cap = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            snprintf(err, SD_ERR_LEN, "%s:%d: line too long", path, lineno);
            goto fail;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len || line[0] == '#') continue;
        if (t->n == cap) {
            cap = cap ? cap * 2 : 32;
            sd_hw *r = realloc(t->rows, (size_t)cap * sizeof *r);
            if (!r) { snprintf(err, SD_ERR_LEN, "%s: out of memory", path); goto fail; }
            t->rows = r;
        }
        char why[256];
        if (parse_row(line, &t->rows[t->n], why, sizeof why)) {
            snprintf(err, SD_ERR_LEN, "%s:%d: %s", path, lineno, why);
            goto fail;
        }
        t->n++;
    }
    if (ferror(fp)) {   /* a directory opens, then fails to read */
        snprintf(err, SD_ERR_LEN, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
        goto fail;
    }
    fclose(fp);
    if (!t->n) { snprintf(err, SD_ERR_LEN, "%s: no hardware rows", path); sd_hw_free(t); return -1; }
    return 0;
fail:
    fclose(fp);
    sd_hw_free(t);
    return -1;
}

void sd_hw_free(sd_hw_table *t)
{
    free(t->rows);
    t->rows = NULL;
    t->n = 0;
}

static int exists(const char *p) { return access(p, R_OK) == 0; }

const char *sd_hw_default_path(char *buf, size_t n)
{
    const char *env = getenv("SHOWDOWN_HARDWARE");
    if (env && *env) { snprintf(buf, n, "%s", env); return buf; }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;   /* build/showdown -> build; data/ sits one level up */
            snprintf(buf, n, "%s/../data/hardware.tsv", exe);
            if (exists(buf)) return buf;
            snprintf(buf, n, "%s/../../data/hardware.tsv", exe);   /* build/tests/run_tests */
            if (exists(buf)) return buf;
        }
    }
    snprintf(buf, n, "data/hardware.tsv");
    return exists(buf) ? buf : NULL;
}

void sd_hw_list(const sd_hw_table *t, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < t->n && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", t->rows[i].id);
    if (used < n) snprintf(buf + used, n - used, "%sthis", t->n ? ", " : "");
}

int sd_hw_find(const sd_hw_table *t, const char *id, sd_hw *out, char *err)
{
    if (!id || !*id) { snprintf(err, SD_ERR_LEN, "empty hardware id"); return -1; }
    if (!strcmp(id, "this")) {
        char path[1024];
        return sd_hw_this(sd_calib_path(path, sizeof path), 0, out, err);
    }
    /* "2xrtx-4090": identical GPUs with the layers split between them. */
    int count = 1;
    const char *base = id;
    if (id[0] >= '2' && id[0] <= '8' && id[1] == 'x' && id[2]) { count = id[0] - '0'; base = id + 2; }
    for (int i = 0; i < t->n; i++) {
        if (strcasecmp(t->rows[i].id, base)) continue;
        *out = t->rows[i];
        if (count > 1) {
            if (out->kind != SD_HW_GPU) {
                snprintf(err, SD_ERR_LEN, "'%s': only discrete GPUs can be multiplied", id);
                return -1;
            }
            out->count = count;
            out->mem_gib *= count;
            out->usable_gib *= count;
            out->load_w *= count;
            out->idle_w *= count;
            snprintf(out->id, sizeof out->id, "%s", id);
            char name[96];
            snprintf(name, sizeof name, "%dx %.70s (layer split)", count, t->rows[i].name);
            snprintf(out->name, sizeof out->name, "%s", name);
        }
        return 0;
    }
    char list[2048];
    sd_hw_list(t, list, sizeof list);
    snprintf(err, SD_ERR_LEN, "unknown hardware '%.32s'; valid ids (prefix 2x..8x for several GPUs): %.400s", id, list);
    return -1;
}

int sd_hw_this(const char *calib_path, int threads, sd_hw *out, char *err)
{
    sd_calibration c;
    char why[SD_ERR_LEN];
    if (!calib_path || sd_calib_load(&c, calib_path, why)) {
        snprintf(err, SD_ERR_LEN, "no calibration profile for this machine (%s); run `showdown calibrate` first",
                 calib_path ? calib_path : "no path");
        return -1;
    }
    memset(out, 0, sizeof *out);
    out->count = 1;
    snprintf(out->id, sizeof out->id, "this");
    snprintf(out->name, sizeof out->name, "%.80s (this machine)", c.cpu_model[0] ? c.cpu_model : "CPU");
    out->kind = SD_HW_CPU;
    snprintf(out->family, sizeof out->family, "cpu");
    double bw = 0;
    int maxt = c.max_threads < SD_CALIB_MAX_THREADS ? c.max_threads : SD_CALIB_MAX_THREADS;
    if (threads > 0 && threads <= maxt) bw = c.bw_gbps[threads];
    else
        for (int i = 1; i <= maxt; i++)
            if (c.bw_gbps[i] > bw) bw = c.bw_gbps[i];
    if (!(bw > 0)) {
        snprintf(err, SD_ERR_LEN, "%s: calibration profile has no bandwidth; run `showdown calibrate` again", calib_path);
        return -1;
    }
    out->bw_gbps = bw;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    out->mem_gib = pages > 0 && psz > 0 ? (double)pages * (double)psz / (1 << 30) : 16;
    out->usable_gib = out->mem_gib * 0.85;   /* leave the OS and page cache some room */
    snprintf(out->link, sizeof out->link, "-");
    out->tflops_f16 = (c.gflops_bf16 > 0 ? c.gflops_bf16 : c.gflops_f32) / 1000.0;
    out->tops_int8 = c.gops_int8 / 1000.0;
    out->cores = c.n_cpus;
    snprintf(out->isa, sizeof out->isa, "%s", c.isa);
    snprintf(out->host, sizeof out->host, "-");
    snprintf(out->source, sizeof out->source,
             "showdown calibrate profile %s (measured at unix time %lld; power not measured there)",
             calib_path, c.measured_unix);
    return 0;
}
