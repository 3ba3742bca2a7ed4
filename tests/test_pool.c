/* The thread pool: every share of every run executes exactly once, whether
 * the workers are spinning (back-to-back runs) or asleep (after a pause). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
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

/* Idle work: every worker gets the run's own context (a copy: the caller's
 * goes out of scope) and steps through it after its share until the idle
 * function says it is done, and a later run cuts it short. */
typedef struct {
    atomic_int steps[16];       /* idle calls per thread */
    atomic_int wrong_ctx;
    atomic_int latest;          /* the tag of the newest run */
} idle_log;

static idle_log g_idle;

/* Which shares of the last run the caller took over (their workers had not
 * started them): such a worker does no idle work for that run. */
static pthread_t g_caller;
static atomic_int g_taken_over[16];
static void nothing(void *ctx, int i, int n)
{
    (void)ctx; (void)n;
    atomic_store(&g_taken_over[i], pthread_equal(pthread_self(), g_caller) && i > 0);
}

static int idle_steps(const void *ctx, int i, int n, int step)
{
    int tag;
    memcpy(&tag, ctx, sizeof tag);
    (void)n;
    /* A run's own tag, a copy: a worker may still finish an idle step of an
     * older run (one it was preempted in while the caller went on). */
    int latest = atomic_load(&g_idle.latest);
    if (tag < 1 || tag > latest) atomic_fetch_add(&g_idle.wrong_ctx, 1);
    atomic_fetch_add(&g_idle.steps[i], 1);
    return step < 3;
}

static void run_tagged(sd_pool *p, int tag)
{
    int ctx = tag;   /* on this frame only */
    atomic_store(&g_idle.latest, tag);
    sd_pool_run_idle(p, nothing, NULL, idle_steps, &ctx, sizeof ctx);
}

Test(pool, idle_work_after_a_run)
{
    int threads = 3;
    sd_pool *p = sd_pool_new(threads);
    cr_assert(p);
    g_caller = pthread_self();
    run_tagged(p, 1);
    /* With no next run, each worker that ran its share takes steps 0..3 and stops. */
    for (int spins = 0; spins < 2000; spins++) {
        int done = 1;
        for (int i = 1; i < threads; i++)
            done &= atomic_load(&g_idle.steps[i]) == (atomic_load(&g_taken_over[i]) ? 0 : 4);
        if (done) break;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int i = 1; i < threads; i++)
        cr_expect_eq(atomic_load(&g_idle.steps[i]), atomic_load(&g_taken_over[i]) ? 0 : 4, "worker %d", i);
    cr_expect_leq(atomic_load(&g_idle.steps[0]), 4, "the caller steps only while workers are busy");
    /* Back to back, runs interrupt the idle work of the run before. */
    for (int r = 2; r < 3000; r++) run_tagged(p, r);
    sd_pool_free(p);
    cr_expect_eq(atomic_load(&g_idle.wrong_ctx), 0, "an idle step saw another run's context");
}

/* A share held up 50 ms now and then (as by a descheduled thread), so that
 * the worker is late for the runs after it and the caller takes its shares
 * over: every share of every run still runs exactly once. */
static atomic_int g_hold, g_held_runs;
static void hold_first(void *ctx, int i, int n)
{
    counts *c = ctx;
    (void)n;
    atomic_fetch_add(&c->hits[i], 1);
    atomic_fetch_add(&c->total, 1);
    if (i == 1 && atomic_exchange(&g_hold, 0)) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        atomic_fetch_add(&g_held_runs, 1);
    }
}

Test(pool, shares_taken_over_run_once)
{
    int threads = 3, runs = 2000;
    sd_pool *p = sd_pool_new(threads);
    cr_assert(p);
    counts c = {0};
    for (int r = 0; r < runs; r++) {
        if (r % 500 == 0) atomic_store(&g_hold, 1);
        sd_pool_run(p, hold_first, &c);
        cr_assert_eq(atomic_load(&c.total), threads * (r + 1), "run %d lost or repeated a share", r);
    }
    for (int i = 0; i < threads; i++) cr_expect_eq(atomic_load(&c.hits[i]), runs, "share %d", i);
    sd_pool_free(p);
    cr_expect_leq(atomic_load(&g_held_runs), 4);
}
