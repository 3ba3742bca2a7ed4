/* The thread pool: every share of every run executes exactly once, whether
 * the workers are spinning (back-to-back runs) or asleep (after a pause). */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <time.h>

#include "runtime/pool.h"

typedef struct {
    atomic_int hits[16];
    atomic_int total;
} counts;

static void touch(void *ctx, int i, int n)
{
    counts *c = ctx;
    (void)n;
    atomic_fetch_add(&c->hits[i], 1);
    atomic_fetch_add(&c->total, 1);
}

static void run_many(int threads, int runs, int pause_every)
{
    sd_pool *p = sd_pool_new(threads);
    cr_assert(p);
    cr_assert_eq(sd_pool_size(p), threads);
    counts c = {0};
    for (int r = 0; r < runs; r++) {
        sd_pool_run(p, touch, &c);
        cr_assert_eq(atomic_load(&c.total), threads * (r + 1), "run %d lost or repeated a share", r);
        if (pause_every && r % pause_every == 0) {
            struct timespec ts = {0, 3 * 1000 * 1000};   /* long enough for workers to fall asleep */
            nanosleep(&ts, NULL);
        }
    }
    for (int i = 0; i < threads; i++) cr_expect_eq(atomic_load(&c.hits[i]), runs, "share %d", i);
    sd_pool_free(p);
}

Test(pool, back_to_back_runs) { run_many(2, 5000, 0); }
Test(pool, runs_after_sleeping) { run_many(2, 40, 1); }
Test(pool, more_threads_than_cpus) { run_many(5, 300, 37); }
Test(pool, one_thread_runs_inline) { run_many(1, 10, 0); }
Test(pool, free_right_after_create)
{
    for (int i = 0; i < 20; i++) sd_pool_free(sd_pool_new(3));
}
