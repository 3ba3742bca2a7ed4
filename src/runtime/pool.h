/* A persistent thread pool: the caller's thread works too, tasks are split by
 * index, and a run returns when every task is done. No allocation per run. */
#ifndef SD_POOL_H
#define SD_POOL_H

typedef struct sd_pool sd_pool;
/* fn(ctx, i, n): do share i of n. Called once per thread index. */
typedef void (*sd_pool_fn)(void *ctx, int i, int n);

sd_pool *sd_pool_new(int n_threads);   /* NULL on failure */
void sd_pool_free(sd_pool *p);
int sd_pool_size(const sd_pool *p);
void sd_pool_run(sd_pool *p, sd_pool_fn fn, void *ctx);
int sd_cpu_count(void);

#endif
