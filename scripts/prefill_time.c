/* Prefill alone, for interleaved A/B runs of two builds on a busy machine:
 * one session evaluates the same N random token ids REPS times (after one
 * untimed pass, which also repacks the experts it reaches) and prints the
 * median and best wall-clock rates, the median and least process CPU time
 * per pass (less disturbed by other processes than the wall clock), and a
 * hash of the last logits row (equal hashes: the builds computed the same).
 *
 *   cc -O2 -Iinclude scripts/prefill_time.c build/libshowdown.a -o /tmp/prefill_time \
 *      -lmicrohttpd -ljansson -lcurl -lm -lpthread -ldl
 *   /tmp/prefill_time MODEL N REPS [THREADS]   (threads: 2 by default) */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "showdown.h"

#define MAX_REPS 1000

static double seconds(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: prefill_time MODEL N REPS [THREADS]\n");
        return 2;
    }
    int n = atoi(argv[2]), reps = atoi(argv[3]);
    if (n < 1 || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "prefill_time: N >= 1 and 1 <= REPS <= %d\n", MAX_REPS);
        return 2;
    }
    char err[SD_ERR_LEN];
    sd_model *m;
    if (sd_model_load(argv[1], &m, err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    sd_session_params p = sd_session_default_params();
    p.n_threads = argc > 4 ? atoi(argv[4]) : 2;
    p.n_ctx = n;
    sd_session *s;
    if (sd_session_new(m, &p, &s, err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int nv = sd_model_hparams(m)->n_vocab;
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    srand(42);
    for (int i = 0; i < n; i++) tok[i] = rand() % nv;
    static double wall[MAX_REPS], cpu[MAX_REPS];
    for (int r = -1; r < reps; r++) {
        double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
        if (sd_session_eval(s, tok, n, NULL, err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (r >= 0) {
            wall[r] = seconds(CLOCK_MONOTONIC) - w0;
            cpu[r] = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
        sd_session_reset(s);
    }
    qsort(wall, (size_t)reps, sizeof *wall, by_value);
    qsort(cpu, (size_t)reps, sizeof *cpu, by_value);
    const float *l = sd_session_logits(s);
    unsigned long long h = 1469598103934665603ull;   /* FNV-1a over the row's bits */
    for (int i = 0; i < nv; i++) {
        unsigned u;
        memcpy(&u, l + i, sizeof u);
        h = (h ^ u) * 1099511628211ull;
    }
    printf("pp%d: median %.1f t/s best %.1f t/s  cpu median %.1f ms min %.1f ms  hash %016llx\n", n,
           n / wall[reps / 2], n / wall[0], cpu[reps / 2] * 1e3, cpu[0] * 1e3, h);
    sd_session_free(s);
    sd_model_free(m);
    free(tok);
    return 0;
}
