/* Results of a sweep: one JSON object per point with the field names of
 * vLLM's `bench serve` result file (so dashboards that read those read
 * ours), written as a JSON array, JSON lines, CSV (the same fields, in the
 * same order) or a markdown table for people. NAN is null, never 0. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/emit.h"
#include "bench/url.h"

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void dist(json_t *o, const char *name, const sd_url_dist *d)
{
    char k[64];
    snprintf(k, sizeof k, "mean_%s_ms", name);   json_object_set_new(o, k, num(d->mean));
    snprintf(k, sizeof k, "median_%s_ms", name); json_object_set_new(o, k, num(d->median));
    snprintf(k, sizeof k, "std_%s_ms", name);    json_object_set_new(o, k, num(d->std));
    snprintf(k, sizeof k, "p90_%s_ms", name);    json_object_set_new(o, k, num(d->p90));
    snprintf(k, sizeof k, "p99_%s_ms", name);    json_object_set_new(o, k, num(d->p99));
}

void *sd_url_point_json(const sd_url_metrics *m, const sd_url_run_desc *d)
{
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "backend", json_string(strcmp(d->endpoint, "chat") ? "openai" : "openai-chat"));
    json_object_set_new(o, "url", json_string(d->url));
    json_object_set_new(o, "model_id", json_string(d->model));
    json_object_set_new(o, "endpoint", json_string(d->endpoint));
    json_object_set_new(o, "prompts", json_string(d->prompt_source));
    json_object_set_new(o, "num_prompts", json_integer(m->num_prompts));
    /* the sweep point: vLLM writes an infinite rate as the string "inf" */
    json_object_set_new(o, "concurrency", m->concurrency > 0 ? json_integer(m->concurrency) : json_null());
    json_object_set_new(o, "max_concurrency", m->concurrency > 0 ? json_integer(m->concurrency) : json_null());
    json_object_set_new(o, "request_rate", isfinite(m->request_rate) ? json_real(m->request_rate) : json_string("inf"));
    json_object_set_new(o, "burstiness", json_real(m->burstiness));
    json_object_set_new(o, "duration", num(m->duration_s));
    json_object_set_new(o, "completed", json_integer(m->completed));
    json_object_set_new(o, "failed", json_integer(m->failed));
    json_object_set_new(o, "total_input_tokens", json_integer(m->total_input_tokens));
    json_object_set_new(o, "total_output_tokens", json_integer(m->total_output_tokens));
    json_object_set_new(o, "request_throughput", num(m->request_throughput));
    json_object_set_new(o, "request_goodput", num(m->goodput));
    json_object_set_new(o, "goodput", num(m->goodput));
    json_object_set_new(o, "output_throughput", num(m->output_throughput));
    json_object_set_new(o, "total_token_throughput", num(m->total_token_throughput));
    dist(o, "ttft", &m->ttft);
    dist(o, "tpot", &m->tpot);
    dist(o, "itl", &m->itl);
    dist(o, "e2el", &m->e2el);
    json_object_set_new(o, "peak_concurrency", json_integer(m->peak_concurrency));
    /* the server's own account (llama-server / showdown serve "timings"), for cross-checks */
    json_object_set_new(o, "server_timed_requests", json_integer(m->server_timed));
    json_object_set_new(o, "server_output_tokens", m->server_timed ? json_integer(m->server_output_tokens) : json_null());
    json_object_set_new(o, "server_mean_prompt_ms", num(m->server_mean_prompt_ms));
    json_object_set_new(o, "server_mean_ms_per_token", num(m->server_mean_ms_per_token));
    json_object_set_new(o, "energy_j", num(m->energy_j));
    json_object_set_new(o, "tokens_per_j", num(m->tokens_per_j));
    json_object_set_new(o, "energy_boundary", json_string(m->energy_boundary));
    json_t *f = json_array();
    for (int i = 0; i < m->n_reasons; i++)
        json_array_append_new(f, json_pack("{s:s,s:i}", "reason", m->reasons[i], "count", m->reason_count[i]));
    json_object_set_new(o, "failures", f);
    return o;
}

static void csv_value(FILE *f, json_t *v)
{
    if (json_is_null(v)) return;
    if (json_is_integer(v)) fprintf(f, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) fprintf(f, "%.6g", json_real_value(v));
    else if (json_is_string(v)) sd_csv_string(f, json_string_value(v));
    else if (json_is_array(v)) {   /* failures: "reason: count; ..." in one field */
        size_t n = json_array_size(v), len = 1;
        for (size_t i = 0; i < n; i++) len += strlen(json_string_value(json_object_get(json_array_get(v, i), "reason"))) + 32;
        char *s = malloc(len), *p = s;
        if (!s) return;
        *p = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            p += sprintf(p, "%s%s: %lld", i ? "; " : "", json_string_value(json_object_get(e, "reason")),
                         (long long)json_integer_value(json_object_get(e, "count")));
        }
        sd_csv_string(f, s);
        free(s);
    }
}

static void md_ms(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, " %.1f |", v);
    else fputs(" - |", f);
}

static void md_table(FILE *f, const sd_url_metrics *m, int n, const sd_url_run_desc *d)
{
    fputs("| point | completed | failed | req/s | output tok/s | total tok/s | TTFT p50 ms | TTFT p99 ms "
          "| TPOT p50 ms | TPOT p99 ms | ITL p50 ms | E2E p50 ms | goodput req/s | peak conc | tokens/J |\n", f);
    fputs("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n", f);
    for (int i = 0; i < n; i++) {
        const sd_url_metrics *x = &m[i];
        if (x->concurrency > 0) fprintf(f, "| concurrency %d |", x->concurrency);
        else if (isfinite(x->request_rate)) fprintf(f, "| rate %g/s |", x->request_rate);
        else fputs("| rate inf |", f);
        fprintf(f, " %d | %d |", x->completed, x->failed);
        fprintf(f, " %.2f | %.1f | %.1f |", x->request_throughput, x->output_throughput, x->total_token_throughput);
        md_ms(f, x->ttft.median); md_ms(f, x->ttft.p99); md_ms(f, x->tpot.median); md_ms(f, x->tpot.p99);
        md_ms(f, x->itl.median); md_ms(f, x->e2el.median);
        if (isfinite(x->goodput)) fprintf(f, " %.2f |", x->goodput); else fputs(" - |", f);
        fprintf(f, " %d |", x->peak_concurrency);
        if (isfinite(x->tokens_per_j)) fprintf(f, " %.2f |\n", x->tokens_per_j); else fputs(" - |\n", f);
    }
    fprintf(f, "\nserver: ");
    sd_md_cell(f, d->url);
    fputs("  model: ", f);
    sd_md_cell(f, d->model);
    fprintf(f, "  endpoint: %s  prompts: ", d->endpoint);
    sd_md_cell(f, d->prompt_source);
    fprintf(f, "\nenergy: ");
    sd_md_cell(f, n ? m[0].energy_boundary : "");
    fputs("\n", f);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < m[i].n_reasons; k++) {
            fprintf(f, "failed (point %d): %d x ", i + 1, m[i].reason_count[k]);
            sd_md_cell(f, m[i].reasons[k]);
            fputs("\n", f);
        }
}

int sd_url_emit(FILE *f, const char *fmt, const sd_url_metrics *m, int n, const sd_url_run_desc *d)
{
    if (!strcmp(fmt, "md")) { md_table(f, m, n, d); return 0; }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = sd_url_point_json(&m[i], d);
        if (!o) { json_decref(arr); return -1; }
        json_array_append_new(arr, o);
    }
    if (!strcmp(fmt, "json")) {
        json_dumpf(arr, f, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        fputc('\n', f);
    } else if (!strcmp(fmt, "jsonl")) {
        for (int i = 0; i < n; i++) {
            json_dumpf(json_array_get(arr, (size_t)i), f, JSON_COMPACT | JSON_REAL_PRECISION(10));
            fputc('\n', f);
        }
    } else {   /* csv: the JSON fields, in their order */
        json_t *first = json_array_get(arr, 0);
        const char *k;
        json_t *v;
        int c = 0;
        if (first) {
            json_object_foreach(first, k, v) fprintf(f, "%s%s", c++ ? "," : "", k);
            fputc('\n', f);
        }
        for (int i = 0; i < n; i++) {
            c = 0;
            json_object_foreach(json_array_get(arr, (size_t)i), k, v) {
                if (c++) fputc(',', f);
                csv_value(f, v);
            }
            fputc('\n', f);
        }
    }
    json_decref(arr);
    return 0;
}
