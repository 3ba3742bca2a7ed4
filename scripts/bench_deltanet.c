/* The gated delta rule alone (kernels/deltanet.h): token by token against
 * chunks of 16, 32 and 64, one thread, on random normalized q and k, beta
 * 0.5, decay 0.95, 4 heads laid out as qwen3next's batch is. Interleaved
 * passes; prints best, mean and standard deviation of microseconds per
 * (head, token). Not a test: docs/BENCHMARKS.md, "qwen3next".
 *
 *   cc -O3 -march=native -std=c11 -D_GNU_SOURCE -Isrc scripts/bench_deltanet.c \
 *      build/libshowdown.a -o /tmp/bench_deltanet -lm -lpthread -ldl
 *   /tmp/bench_deltanet [HEAD_SIZE (128)] [TOKENS (512)] [PASSES (15)] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/deltanet.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int d = argc > 1 ? atoi(argv[1]) : 128, n = argc > 2 ? atoi(argv[2]) : 512, passes = argc > 3 ? atoi(argv[3]) : 15;
    enum { H = 4, MODES = 4 };
    if (d < 1 || d > 1024 || n < 1 || passes < 1) {
        fprintf(stderr, "usage: bench_deltanet [HEAD_SIZE 1..1024] [TOKENS] [PASSES]\n");
        return 2;
    }
    size_t ld = (size_t)H * 3 * d, lg = 2 * H;
    float *x = malloc((size_t)n * ld * sizeof *x), *g = malloc((size_t)n * lg * sizeof *g);
    float *S = calloc((size_t)H * d * d, sizeof *S), *o = malloc((size_t)n * H * d * sizeof *o);
    float *work = malloc(sd_deltanet_work_floats(d, d) * sizeof *work);
    if (!x || !g || !S || !o || !work) return 1;
    srand(1);
    for (size_t i = 0; i < (size_t)n * ld; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++) {
            float *q = x + t * ld + (size_t)h * d;
            sd_l2norm(q, d, 1e-6f);
            for (int j = 0; j < d; j++) q[j] /= sqrtf((float)d);
            sd_l2norm(x + t * ld + (size_t)(H + h) * d, d, 1e-6f);
            g[t * lg + h] = 0.5f;
            g[t * lg + H + h] = 0.95f;
        }
    static const int chunk[MODES] = {1, 16, 32, 64};
    double best[MODES], sum[MODES] = {0}, sq[MODES] = {0};
    for (int m = 0; m < MODES; m++) best[m] = 1e30;
    for (int p = 0; p < passes; p++)
        for (int m = 0; m < MODES; m++) {
            double t0 = now();
            for (int h = 0; h < H; h++)
                sd_deltanet_run(S + (size_t)h * d * d, x + (size_t)h * d, x + (size_t)(H + h) * d, ld,
                                x + (size_t)2 * H * d + (size_t)h * d, ld, g + h, g + H + h, lg, n, d, d,
                                o + (size_t)h * d, (size_t)H * d, chunk[m], work);
            double us = (now() - t0) / ((double)H * n) * 1e6;
            best[m] = us < best[m] ? us : best[m];
            sum[m] += us;
            sq[m] += us * us;
        }
    for (int m = 0; m < MODES; m++) {
        double mean = sum[m] / passes, sd = sqrt(fmax(sq[m] / passes - mean * mean, 0));
        printf("head %d, %d tokens, %s %2d: best %.2f, mean %.2f +- %.2f us per head-token\n", d, n,
               chunk[m] > 1 ? "chunk" : "token", chunk[m], best[m], mean, sd);
    }
    free(x); free(g); free(S); free(o); free(work);
    return 0;
}
