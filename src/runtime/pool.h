/* A persistent thread pool: the caller's thread works too, tasks are split by
 * index, and a run returns when every task is done. No allocation per run. */
#ifndef SD_POOL_H
#define SD_POOL_H
#include <stddef.h>

typedef struct sd_pool sd_pool;
/* fn(ctx, i, n): do share i of n. Called once per thread index. */
typedef void (*sd_pool_fn)(void *ctx, int i, int n);

sd_pool *sd_pool_new(int n_threads);   /* NULL on failure */
void sd_pool_free(sd_pool *p);
int sd_pool_size(const sd_pool *p);
void sd_pool_run(sd_pool *p, sd_pool_fn fn, void *ctx);
/* Work a thread may do once its share of a run is done, while it would
 * otherwise wait: called with step 0, 1, 2, ... until it returns 0, until
 * the run ends (the calling thread) or until the next run begins (a worker,
 * which keeps going after the run has returned). The pool copies idle_ctx
 * (at most SD_POOL_IDLE_BYTES), so it may live on the caller's stack. */
#define SD_POOL_IDLE_BYTES 64
typedef int (*sd_pool_idle_fn)(const void *ctx, int i, int n, int step);
void sd_pool_run_idle(sd_pool *p, sd_pool_fn fn, void *ctx, sd_pool_idle_fn idle, const void *idle_ctx,
                      size_t idle_bytes);
int sd_cpu_count(void);

#endif
