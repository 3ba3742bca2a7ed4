/* macOS SoC energy through powermetrics (needs root). A reader thread follows
 * `powermetrics -i 100 --samplers cpu_power,gpu_power` and adds up
 * "Combined Power" x "elapsed" per sample, so the backend is a counter.
 * Elsewhere the probe reports itself unavailable. */
#include <stdio.h>
#include <string.h>

#include "showdown.h"
#include "measure/energy.h"

#ifndef __APPLE__

int sd_energy_powermetrics_open(sd_energy_backend **out, char *why)
{
    (void)out;
    snprintf(why, SD_ERR_LEN, "no readable sensor (powermetrics exists on macOS only)");
    return -1;
}

#else

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    FILE *pipe;
    pthread_t reader;
    pthread_mutex_t mu;
    double total_j, begin_j, pending_ms;
    int done;
} pm_state;

/* powermetrics prints, per sample, a header with "(104.52ms elapsed)" and then
 * "Combined Power (CPU + GPU + ANE): 1234 mW". */
static void *pm_read(void *arg)
{
    pm_state *s = arg;
    char line[512];
    while (fgets(line, sizeof line, s->pipe)) {
        double v;
        char *p;
        if ((p = strstr(line, "ms elapsed")) != NULL) {
            while (p > line && (p[-1] == '.' || (p[-1] >= '0' && p[-1] <= '9'))) p--;
            if (sscanf(p, "%lf", &v) == 1) s->pending_ms = v;
        } else if ((p = strstr(line, "Combined Power")) != NULL && (p = strchr(p, ':')) != NULL &&
                   sscanf(p + 1, "%lf", &v) == 1) {
            pthread_mutex_lock(&s->mu);
            s->total_j += v / 1e3 * s->pending_ms / 1e3;
            pthread_mutex_unlock(&s->mu);
        }
    }
    s->done = 1;
    return NULL;
}

static int pm_begin(sd_energy_backend *b, char *err)
{
    pm_state *s = b->state;
    if (s->done) { snprintf(err, SD_ERR_LEN, "powermetrics stopped"); return -1; }
    pthread_mutex_lock(&s->mu);
    s->begin_j = s->total_j;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int pm_sample(sd_energy_backend *b, double *j, char *err)
{
    pm_state *s = b->state;
    if (s->done) { snprintf(err, SD_ERR_LEN, "powermetrics stopped"); return -1; }
    pthread_mutex_lock(&s->mu);
    *j = s->total_j - s->begin_j;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void pm_close(sd_energy_backend *b)
{
    pm_state *s = b->state;
    pclose(s->pipe);   /* powermetrics exits on SIGPIPE once we stop reading */
    pthread_join(s->reader, NULL);
    free(s);
    free(b);
}

int sd_energy_powermetrics_open(sd_energy_backend **out, char *why)
{
    if (geteuid() != 0) {
        snprintf(why, SD_ERR_LEN, "powermetrics: permission denied (needs root: run with sudo)");
        return -1;
    }
    pm_state *s = calloc(1, sizeof *s);
    sd_energy_backend *b = calloc(1, sizeof *b);
    if (!s || !b) { free(s); free(b); snprintf(why, SD_ERR_LEN, "out of memory"); return -1; }
    s->pipe = popen("powermetrics -i 100 --samplers cpu_power,gpu_power 2>/dev/null", "r");
    if (!s->pipe) { free(s); free(b); snprintf(why, SD_ERR_LEN, "powermetrics: cannot start it"); return -1; }
    pthread_mutex_init(&s->mu, NULL);
    pthread_create(&s->reader, NULL, pm_read, s);
    snprintf(b->source, sizeof b->source, "powermetrics:soc");
    b->is_power = 0;
    b->default_interval_ms = 1000;
    b->state = s;
    b->begin = pm_begin;
    b->sample = pm_sample;
    b->close = pm_close;
    *out = b;
    return 0;
}

#endif
