/* The report: four charts from the rows (tokens/s vs threads, vs context
 * depth, vs weight format with the ceiling, tokens per joule) and a footer
 * naming the machine, build and energy boundary. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/report.h"
#include "bench/report_chart.h"

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* "tiny-q4_0" from ".../tiny-q4_0.gguf". */
static void model_label(char *b, size_t n, const sd_report_row *r)
{
    snprintf(b, n, "%s", base_name(r->model));
    char *dot = strstr(b, ".gguf");
    if (dot) *dot = 0;
}

/* Test without its depth: "tg128", "pp512+tg128". */
static void test_kind(char *b, size_t n, const sd_report_row *r)
{
    snprintf(b, n, "%s", r->test);
    char *at = strstr(b, " @ ");
    if (at) *at = 0;
}

typedef struct { int min_depth, max_threads, many_kv; } scope;

static scope find_scope(const sd_report_row *rows, int n)
{
    scope s = {1 << 30, 0, 0};
    for (int i = 0; i < n; i++) {
        if (rows[i].error[0]) continue;
        if (rows[i].n_depth < s.min_depth) s.min_depth = rows[i].n_depth;
        if (rows[i].threads > s.max_threads) s.max_threads = rows[i].threads;
        if (strcmp(rows[i].kv, rows[0].kv)) s.many_kv = 1;
    }
    return s;
}

static void series_name(char *b, size_t n, const sd_report_row *r, const scope *sc, int with_test)
{
    char m[128], t[64];
    model_label(m, sizeof m, r);
    test_kind(t, sizeof t, r);
    if (with_test) snprintf(b, n, "%.80s %.40s%s%s", m, t, sc->many_kv ? " kv " : "", sc->many_kv ? r->kv : "");
    else snprintf(b, n, "%.120s%s%s", m, sc->many_kv ? " kv " : "", sc->many_kv ? r->kv : "");
}

/* Categories sorted numerically: insert them in order before any value. */
static void numeric_cats(chart *c, const sd_report_row *rows, int n, int by_threads, const scope *sc)
{
    int vals[CHART_MAX_CAT], nv = 0;
    for (int i = 0; i < n; i++) {
        const sd_report_row *r = &rows[i];
        if (r->error[0]) continue;
        if (by_threads ? r->n_depth != sc->min_depth : r->threads != sc->max_threads) continue;
        int v = by_threads ? r->threads : r->n_depth, seen = 0;
        for (int k = 0; k < nv; k++) seen |= vals[k] == v;
        if (!seen && nv < CHART_MAX_CAT) vals[nv++] = v;
    }
    for (int a = 1; a < nv; a++)
        for (int b = a; b > 0 && vals[b - 1] > vals[b]; b--) { int t = vals[b]; vals[b] = vals[b - 1]; vals[b - 1] = t; }
    for (int k = 0; k < nv; k++) {
        char name[16];
        snprintf(name, sizeof name, "%d", vals[k]);
        chart_cat(c, name);
    }
}

static void put(chart *c, const char *cat, const char *ser, double y, double sd, double ceil)
{
    int k = chart_cat(c, cat), s = chart_series_idx(c, ser);
    if (k < 0 || s < 0) return;
    c->s[s].y[k] = y;
    c->s[s].sd[k] = sd;
    c->s[s].ceil[k] = ceil;
}

static void build(chart ch[4], const sd_report_row *rows, int n)
{
    scope sc = find_scope(rows, n);
    memset(ch, 0, 4 * sizeof *ch);
    snprintf(ch[0].title, sizeof ch[0].title, "tokens/s vs threads (depth %d)", sc.min_depth);
    snprintf(ch[0].xlabel, sizeof ch[0].xlabel, "threads");
    snprintf(ch[1].title, sizeof ch[1].title, "tokens/s vs context depth (%d threads)", sc.max_threads);
    snprintf(ch[1].xlabel, sizeof ch[1].xlabel, "tokens already in the context");
    snprintf(ch[2].title, sizeof ch[2].title, "tokens/s by weight format (%d threads, depth %d)", sc.max_threads, sc.min_depth);
    snprintf(ch[2].xlabel, sizeof ch[2].xlabel, "test");
    snprintf(ch[3].title, sizeof ch[3].title, "tokens per joule (%d threads, depth %d)", sc.max_threads, sc.min_depth);
    snprintf(ch[3].xlabel, sizeof ch[3].xlabel, "test");
    for (int i = 0; i < 3; i++) snprintf(ch[i].ylabel, sizeof ch[i].ylabel, "tokens/s");
    snprintf(ch[3].ylabel, sizeof ch[3].ylabel, "tokens/J");
    ch[2].bars = ch[3].bars = 1;
    numeric_cats(&ch[0], rows, n, 1, &sc);
    numeric_cats(&ch[1], rows, n, 0, &sc);
    const char *energy = "";
    for (int i = 0; i < n; i++) {
        const sd_report_row *r = &rows[i];
        if (r->error[0] || !isfinite(r->avg_ts)) continue;
        char ser[160], model[160], kind[64], cat[16];
        series_name(ser, sizeof ser, r, &sc, 1);
        series_name(model, sizeof model, r, &sc, 0);
        test_kind(kind, sizeof kind, r);
        if (r->n_depth == sc.min_depth) {
            snprintf(cat, sizeof cat, "%d", r->threads);
            put(&ch[0], cat, ser, r->avg_ts, r->stddev_ts, r->roofline_ts);
        }
        if (r->threads == sc.max_threads) {
            snprintf(cat, sizeof cat, "%d", r->n_depth);
            put(&ch[1], cat, ser, r->avg_ts, r->stddev_ts, r->roofline_ts);
        }
        if (r->threads == sc.max_threads && r->n_depth == sc.min_depth) {
            put(&ch[2], kind, model, r->avg_ts, r->stddev_ts, r->roofline_ts);
            if (isfinite(r->tokens_per_joule)) put(&ch[3], kind, model, r->tokens_per_joule, NAN, NAN);
            else if (!energy[0]) energy = r->energy_source;
        }
    }
    snprintf(ch[3].empty, sizeof ch[3].empty, "no energy measured (%.200s)", energy[0] ? energy : "no rows");
}

void sd_report_svg(FILE *f, const sd_report_row *rows, int n)
{
    chart ch[4];
    build(ch, rows, n);
    const double W = 1240, PW = 620, PH = 390, TOP = 56, H = TOP + 2 * PH + 56;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' viewBox='0 0 %.0f %.0f' "
               "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'>\n", W, H, W, H);
    fprintf(f, "<rect width='100%%' height='100%%' fill='#f6f6f6'/>\n");
    fprintf(f, "<text x='20' y='34' font-size='20' font-weight='bold'>showdown bench report</text>\n");
    int n_ok = 0, n_err = 0;
    for (int i = 0; i < n; i++) rows[i].error[0] ? n_err++ : n_ok++;
    fprintf(f, "<text x='%.0f' y='34' font-size='13' text-anchor='end' fill='#444444'>%d result rows%s</text>\n",
            W - 20, n_ok, n_err ? " (and failed tests, not drawn)" : "");
    for (int i = 0; i < 4; i++) chart_draw(f, &ch[i], (i % 2) * PW, TOP + (i / 2) * PH, PW, PH);
    const sd_report_row *r0 = &rows[0];
    fprintf(f, "<text x='20' y='%.0f' font-size='12' fill='#333333'>cpu: ", H - 32);
    svg_text(f, r0->cpu);
    fputs("; build ", f);
    svg_text(f, r0->commit);
    fputs("; energy: ", f);
    svg_text(f, r0->energy_source);
    fputs("</text>\n", f);
    fprintf(f, "<text x='20' y='%.0f' font-size='12' fill='#333333'>ceiling: decode = bytes per token (weights + KV) "
               "from DRAM, less what the caches can hold (at the cache rate); prefill = multiply-add rate "
               "/ (2 x params); from showdown calibrate</text>\n", H - 14);
    fputs("</svg>\n", f);
}
