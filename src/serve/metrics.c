/* Prometheus text for /metrics (see metrics.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/energy.h"
#include "serve/metrics.h"

static void hist_init(sd_histogram *h, const double *le)
{
    memset(h, 0, sizeof *h);
    memcpy(h->le, le, sizeof h->le);
}

static void hist_add(sd_histogram *h, double v)
{
    for (int i = 0; i < SD_HIST_BUCKETS; i++)
        if (v <= h->le[i]) { h->count[i]++; break; }
    h->total++;
    h->sum += v;
}

void sd_metrics_init(sd_metrics *m, const char *energy_source)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    static const double ttft[SD_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    static const double itl[SD_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
    hist_init(&m->ttft, ttft);
    hist_init(&m->itl, itl);
    if (energy_source) {
        char err[SD_ERR_LEN];
        m->energy = sd_energy_open(energy_source, 0);
        if (m->energy && (!sd_energy_available(m->energy) || sd_energy_begin(m->energy, err))) {
            sd_energy_close(m->energy);
            m->energy = NULL;
        }
    }
}

void sd_metrics_free(sd_metrics *m)
{
    if (m->energy) sd_energy_close(m->energy);
    pthread_mutex_destroy(&m->mu);
}

void sd_metrics_request(sd_metrics *m, int status)
{
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_status && m->status[i] != status) i++;
    if (i == m->n_status && i < 16) { m->status[i] = status; m->n_status++; }
    if (i < 16) m->by_status[i]++;
    pthread_mutex_unlock(&m->mu);
}

void sd_metrics_ttft(sd_metrics *m, double s)
{
    pthread_mutex_lock(&m->mu);
    hist_add(&m->ttft, s);
    pthread_mutex_unlock(&m->mu);
}

void sd_metrics_itl(sd_metrics *m, double s)
{
    pthread_mutex_lock(&m->mu);
    hist_add(&m->itl, s);
    pthread_mutex_unlock(&m->mu);
}

typedef struct { char *s; size_t n, cap; int oom; } strbuf;

static void put(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(strbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if ((size_t)k < b->cap - b->n) { b->n += (size_t)k; return; }
        size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = cap;
    }
}

static void put_hist(strbuf *b, const char *name, const char *help, const sd_histogram *h)
{
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < SD_HIST_BUCKETS; i++) {
        cum += h->count[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
    }
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)h->total, name,
        h->sum, name, (unsigned long long)h->total);
}

static void put_one(strbuf *b, const char *name, const char *type, const char *help, double v)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

char *sd_metrics_render(sd_metrics *m, const sd_engine_stats *st)
{
    strbuf b = {malloc(4096), 0, 4096, 0};
    if (!b.s) return NULL;
    b.s[0] = 0;
    pthread_mutex_lock(&m->mu);
    put(&b, "# HELP showdown_requests_total HTTP requests answered, by status\n"
            "# TYPE showdown_requests_total counter\n");
    for (int i = 0; i < m->n_status; i++)
        put(&b, "showdown_requests_total{status=\"%d\"} %llu\n", m->status[i], (unsigned long long)m->by_status[i]);
    put_hist(&b, "showdown_time_to_first_token_seconds", "time from a request's arrival to its first generated token",
             &m->ttft);
    put_hist(&b, "showdown_inter_token_latency_seconds", "time between two generated tokens of one request", &m->itl);
    if (m->energy) {
        double j = 0;
        char err[SD_ERR_LEN];
        /* end/begin per scrape: the probe's counter restarts, the total goes on. */
        if (!sd_energy_end(m->energy, &j, err)) m->joules += j;
        sd_energy_begin(m->energy, err);
        put(&b, "# HELP showdown_energy_joules_total energy used since the server started, at the sensor's boundary\n"
                "# TYPE showdown_energy_joules_total counter\nshowdown_energy_joules_total{boundary=\"%s\"} %.3f\n",
            sd_energy_source(m->energy), m->joules);
    }
    pthread_mutex_unlock(&m->mu);
    if (st) {
        put_one(&b, "showdown_prompt_tokens_total", "counter", "prompt tokens submitted", (double)st->prompt_tokens);
        put_one(&b, "showdown_generated_tokens_total", "counter", "tokens generated", (double)st->generated_tokens);
        put_one(&b, "showdown_prefix_cache_hit_tokens_total", "counter", "prompt tokens reused from the prefix cache",
                (double)st->prefix_hit_tokens);
        put_one(&b, "showdown_engine_steps_total", "counter", "batched forward passes", (double)st->steps);
        put_one(&b, "showdown_preemptions_total", "counter",
                "sequences preempted when the KV cache ran out of blocks (recomputed later)", (double)st->preemptions);
        put_one(&b, "showdown_slots", "gauge", "sequences that can generate at once", st->n_slots);
        put_one(&b, "showdown_busy_slots", "gauge", "slots generating now", st->busy_slots);
        put_one(&b, "showdown_queue_depth", "gauge", "requests waiting for a slot", st->queued);
        put_one(&b, "showdown_gpu_layers", "gauge", "layers that run on the GPU", st->gpu_layers);
        put_one(&b, "showdown_gpu_failed", "gauge", "1 after a failed GPU step: requests are refused (503)", st->failed);
        /* the placement line as a label: "vulkan: layers 0-1 on <device>, output on GPU" */
        put(&b, "# HELP showdown_placement_info what runs where\n# TYPE showdown_placement_info gauge\n"
                "showdown_placement_info{placement=\"");
        for (const char *p = st->placement ? st->placement : ""; *p; p++) {
            const char *esc = *p == '"' ? "\\\"" : *p == '\\' ? "\\\\" : *p == '\n' ? "\\n" : NULL;
            if (esc) put(&b, "%s", esc);
            else put(&b, "%c", *p);
        }
        put(&b, "\"} 1\n");
        put_one(&b, "showdown_kv_cache_blocks", "gauge", "KV cache blocks in all", st->kv_blocks);
        put_one(&b, "showdown_kv_cache_blocks_used", "gauge", "KV cache blocks in use", st->kv_blocks_used);
        put_one(&b, "showdown_kv_cache_usage_ratio", "gauge", "fraction of the KV cache in use",
                st->kv_blocks ? (double)st->kv_blocks_used / st->kv_blocks : 0);
        put_one(&b, "showdown_kv_cache_bytes", "gauge", "bytes of the KV cache (sliding-window layers: their windows only)",
                (double)st->kv_bytes);
        put_one(&b, "showdown_state_snapshot_bytes", "gauge",
                "bytes of recurrent state kept at cached prefix ends (models with recurrent layers)",
                (double)st->state_snapshot_bytes);
    }
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}
