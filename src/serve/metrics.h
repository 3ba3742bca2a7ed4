/* The server's counters for GET /metrics (Prometheus text format): requests
 * by status, TTFT and inter-token latency histograms, and energy where a
 * sensor is readable; the engine's gauges and token counters are read from
 * sd_engine_get_stats at each scrape. Thread-safe. */
#ifndef SD_SERVE_METRICS_H
#define SD_SERVE_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "serve/engine.h"

#define SD_HIST_BUCKETS 12

typedef struct {
    double le[SD_HIST_BUCKETS];      /* upper bounds in seconds, ascending */
    uint64_t count[SD_HIST_BUCKETS]; /* per bucket (not cumulative); +Inf is total - sum */
    uint64_t total;
    double sum;
} sd_histogram;

typedef struct sd_energy sd_energy;

typedef struct {
    pthread_mutex_t mu;
    int n_status;
    int status[16];
    uint64_t by_status[16];
    sd_histogram ttft, itl;
    sd_energy *energy;   /* NULL: not measured */
    double joules;
} sd_metrics;

/* energy_source: "auto", "none", ... (measure/energy.h); NULL for none. */
void sd_metrics_init(sd_metrics *m, const char *energy_source);
void sd_metrics_free(sd_metrics *m);
void sd_metrics_request(sd_metrics *m, int status);
void sd_metrics_ttft(sd_metrics *m, double seconds);
void sd_metrics_itl(sd_metrics *m, double seconds);
/* The exposition text (malloc'd), NULL when out of memory. st: NULL while loading. */
char *sd_metrics_render(sd_metrics *m, const sd_engine_stats *st);

#endif
