/* Sustained multiply-add rate: every thread runs the blocked kernel for the
 * same number of iterations; the rate is all their operations over the time
 * until the last one finishes. */
#include <pthread.h>
#include <time.h>

#include "measure/calib_kernels.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    calib_kind kind;
    long iters;
    pthread_barrier_t *start;
    double sink, ops;
} rate_job;

static void *rate_worker(void *arg)
{
    rate_job *j = arg;
    pthread_barrier_wait(j->start);
    j->sink = sd_calib_kernel(j->kind, j->iters, &j->ops);
    return NULL;
}

double sd_calib_rate(calib_kind k, int threads, double seconds)
{
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    static volatile double sink;   /* keeps the work; read below so no compiler calls it unused */
    /* Size the run from a short single-thread trial. */
    double ops = 0;
    long iters = 64;
    for (;;) {
        double t0 = now_s();
        sink += sd_calib_kernel(k, iters, &ops);
        double dt = now_s() - t0;
        if (dt > 0.02 || iters > (1L << 40)) { iters = (long)((double)iters * (seconds / 3) / dt) + 1; break; }
        iters *= 4;
    }
    double best = 0;
    for (int pass = 0; pass < 3; pass++) {
        rate_job jobs[256];
        pthread_t tid[256];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)threads);
        for (int t = 0; t < threads; t++) jobs[t] = (rate_job){k, iters, &start, 0, 0};
        int n_started = 1;
        for (int t = 1; t < threads; t++, n_started++)
            if (pthread_create(&tid[t], NULL, rate_worker, &jobs[t]) != 0) break;
        if (n_started < threads) {
            /* cannot proceed: the barrier would never open */
            pthread_barrier_destroy(&start);
            return -1;
        }
        pthread_barrier_wait(&start);
        double t0 = now_s();
        jobs[0].sink = sd_calib_kernel(k, iters, &jobs[0].ops);
        for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
        double dt = now_s() - t0;
        pthread_barrier_destroy(&start);
        for (int t = 0; t < threads; t++) sink += jobs[t].sink;
        double rate = jobs[0].ops * (double)iters * threads / dt / 1e9;
        if (rate > best) best = rate;
    }
    (void)sink;
    return best;
}
