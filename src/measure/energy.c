/* The energy probe core: picks a backend, runs the sampling thread, and turns
 * power readings into joules (trapezoids between samples). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "showdown.h"
#include "measure/energy.h"

struct sd_energy {
    sd_energy_backend *b;
    char source[SD_ERR_LEN + 16];
    int interval_ms;
    pthread_t thread;
    int running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    /* power integration state (is_power backends) */
    double last_w, last_t_ms, joules;
    int failed;
    char fail_msg[SD_ERR_LEN];
};

sd_energy *sd_energy_open(const char *which, int interval_ms)
{
    sd_energy *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    char why[SD_ERR_LEN] = "no readable sensor";
    int rc = -1;
    if (!which || !strcmp(which, "auto")) {
#ifdef __APPLE__
        rc = sd_energy_powermetrics_open(&e->b, why);
#else
        rc = sd_energy_rapl_open("package", &e->b, why);
#endif
    } else if (!strcmp(which, "rapl")) {
        rc = sd_energy_rapl_open("package", &e->b, why);
    } else if (!strncmp(which, "rapl:", 5)) {
        rc = sd_energy_rapl_open(which + 5, &e->b, why);
    } else if (!strcmp(which, "nvml")) {
        rc = sd_energy_nvml_open(&e->b, why);
    } else if (!strcmp(which, "powermetrics")) {
        rc = sd_energy_powermetrics_open(&e->b, why);
    } else if (!strcmp(which, "none")) {
        snprintf(why, sizeof why, "energy measurement turned off (--energy none)");
    } else {
        snprintf(why, sizeof why, "unknown energy probe '%s'", which);
    }
    if (rc == 0) {
        snprintf(e->source, sizeof e->source, "%s", e->b->source);
        e->interval_ms = interval_ms ? interval_ms : e->b->default_interval_ms;
    } else {
        e->b = NULL;
        snprintf(e->source, sizeof e->source, "unavailable: %s", why);
    }
    return e;
}

int sd_energy_available(const sd_energy *e) { return e && e->b; }
const char *sd_energy_source(const sd_energy *e) { return e ? e->source : "unavailable: no probe"; }

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One sample; called with e->mu held. */
static void take_sample(sd_energy *e)
{
    char err[SD_ERR_LEN];
    double v;
    if (e->failed) return;
    if (e->b->sample(e->b, &v, err) != 0) {
        e->failed = 1;
        snprintf(e->fail_msg, sizeof e->fail_msg, "%s", err);
        return;
    }
    if (e->b->is_power) {
        double t = now_ms();
        e->joules += 0.5 * (v + e->last_w) * (t - e->last_t_ms) / 1e3;
        e->last_w = v;
        e->last_t_ms = t;
    } else {
        e->joules = v;
    }
}

static void *sampler(void *arg)
{
    sd_energy *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = ts.tv_nsec + (long long)e->interval_ms * 1000000LL;
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&e->cv, &e->mu, &ts);
        if (!e->stop) take_sample(e);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int sd_energy_begin(sd_energy *e, char *err)
{
    if (!sd_energy_available(e)) { snprintf(err, SD_ERR_LEN, "%.500s", sd_energy_source(e)); return -1; }
    if (e->running) { snprintf(err, SD_ERR_LEN, "energy probe already running"); return -1; }
    if (e->b->begin(e->b, err) != 0) return -1;
    e->failed = 0;
    e->joules = 0;
    e->stop = 0;
    if (e->b->is_power) {
        double w;
        if (e->b->sample(e->b, &w, err) != 0) return -1;
        e->last_w = w;
        e->last_t_ms = now_ms();
    }
    if (e->interval_ms > 0 && pthread_create(&e->thread, NULL, sampler, e) == 0) e->running = 1;
    return 0;
}

int sd_energy_end(sd_energy *e, double *joules, char *err)
{
    if (!sd_energy_available(e)) { snprintf(err, SD_ERR_LEN, "%.500s", sd_energy_source(e)); return -1; }
    if (e->running) {
        pthread_mutex_lock(&e->mu);
        e->stop = 1;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        e->running = 0;
    }
    pthread_mutex_lock(&e->mu);
    take_sample(e);
    pthread_mutex_unlock(&e->mu);
    if (e->failed) { snprintf(err, SD_ERR_LEN, "%s", e->fail_msg); return -1; }
    *joules = e->joules;
    return 0;
}

void sd_energy_close(sd_energy *e)
{
    if (!e) return;
    if (e->running) {
        double j;
        char err[SD_ERR_LEN];
        sd_energy_end(e, &j, err);
    }
    if (e->b && e->b->close) e->b->close(e->b);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
