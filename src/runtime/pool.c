/* Persistent thread pool. A run publishes (fn, ctx) and bumps a generation
 * counter; workers spin on it for a short while before sleeping on a futex-
 * backed condition variable, so back-to-back runs (seven or more per layer at
 * decode) cost a cache-line handoff instead of a wake-up. The caller works
 * share 0, then takes over every share whose worker has not started it yet
 * (a worker claims its share of a generation with a compare-and-swap, so
 * each share runs once), then spins until the workers that did start finish.
 * So a worker that is asleep or descheduled (more threads than free cores:
 * other processes) costs no wait: a decode step makes ~150 runs on a small
 * model, and each used to wait out such a worker's wake-up or time slice. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* Before sleeping a worker spins (tens of microseconds: longer than the gap
 * between two matrix products at decode, far shorter than a token), then
 * yields a while, so that with more threads than free cores the spinning
 * does not starve the thread everyone waits for. */
#define SPIN_ITERS 5000
#define YIELD_ITERS 200

struct sd_pool {
    int n;
    pthread_t *threads;
    sd_pool_fn fn;
    void *ctx;
    /* A run's idle work, in the slot of its generation's parity: a worker
     * may still read run g's slot while run g + 1 is being set up, never
     * while run g + 2 is (that needs the worker to have finished g + 1). */
    struct { sd_pool_idle_fn fn; _Alignas(16) char ctx[SD_POOL_IDLE_BYTES]; } idle[2];
    /* claimed[i]: the last generation whose share i was taken, by worker i
     * or by the caller; padded apart. */
    struct claim_slot { _Alignas(64) atomic_uint gen; } *claimed;
    _Alignas(64) atomic_uint generation;   /* bumped per run */
    _Alignas(64) atomic_int pending;       /* workers still in the current run */
    atomic_int sleepers;                   /* workers blocked on `wake` */
    atomic_int quit;
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

typedef struct { sd_pool *p; int idx; } worker_arg;

/* Waits until the generation differs from `seen`; returns the new one. */
static unsigned wait_generation(sd_pool *p, unsigned seen)
{
    for (int i = 0; i < SPIN_ITERS + YIELD_ITERS; i++) {
        unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&p->quit, memory_order_relaxed)) return g;
        if (i < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    unsigned g;
    while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker(void *arg)
{
    worker_arg *wa = arg;
    sd_pool *p = wa->p;
    int idx = wa->idx;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        seen = wait_generation(p, seen);
        if (atomic_load(&p->quit)) return NULL;
        /* Generation `seen` is still the current one while its share is
         * unclaimed: the caller publishes the next only after every share.
         * A claim at or past `seen` (this worker was slow to look): taken over. */
        unsigned c = atomic_load_explicit(&p->claimed[idx].gen, memory_order_relaxed);
        if ((int)(seen - c) <= 0 || !atomic_compare_exchange_strong(&p->claimed[idx].gen, &c, seen)) continue;
        p->fn(p->ctx, idx, p->n);
        /* The idle work's context, copied while its slot cannot change: the
         * slot is rewritten for run seen + 2, published after seen + 1 began. */
        struct { sd_pool_idle_fn fn; _Alignas(16) char ctx[SD_POOL_IDLE_BYTES]; } idle;
        memcpy(&idle, &p->idle[seen & 1], sizeof idle);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
        if (idle.fn && atomic_load_explicit(&p->generation, memory_order_acquire) == seen)
            for (int step = 0; atomic_load_explicit(&p->generation, memory_order_relaxed) == seen; step++)
                if (!idle.fn(idle.ctx, idx, p->n, step)) break;
    }
}

int sd_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

sd_pool *sd_pool_new(int n_threads)
{
    if (n_threads < 1) n_threads = 1;
    sd_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    p->claimed = aligned_alloc(64, (size_t)n_threads * sizeof *p->claimed);
    if (!p->threads || !p->claimed) {
        pthread_mutex_destroy(&p->mu); pthread_cond_destroy(&p->wake);
        free(p->threads); free(p->claimed); free(p);
        return NULL;
    }
    for (int i = 0; i < n_threads; i++) atomic_init(&p->claimed[i].gen, 0);
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) { p->n = i; sd_pool_free(p); return NULL; }
        wa->p = p;
        wa->idx = i;
        if (pthread_create(&p->threads[i], NULL, worker, wa)) {
            free(wa);
            p->n = i;
            sd_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void sd_pool_free(sd_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p->claimed);
    free(p);
}

int sd_pool_size(const sd_pool *p) { return p->n; }

void sd_pool_run(sd_pool *p, sd_pool_fn fn, void *ctx) { sd_pool_run_idle(p, fn, ctx, NULL, NULL, 0); }

void sd_pool_run_idle(sd_pool *p, sd_pool_fn fn, void *ctx, sd_pool_idle_fn idle, const void *idle_ctx,
                      size_t idle_bytes)
{
    if (p->n == 1) { fn(ctx, 0, 1); return; }
    p->fn = fn;
    p->ctx = ctx;
    unsigned slot = (atomic_load_explicit(&p->generation, memory_order_relaxed) + 1) & 1;
    p->idle[slot].fn = idle && idle_bytes <= SD_POOL_IDLE_BYTES ? idle : NULL;
    if (p->idle[slot].fn) memcpy(p->idle[slot].ctx, idle_ctx, idle_bytes);
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    unsigned gen = atomic_fetch_add(&p->generation, 1) + 1;   /* seq_cst: ordered before the sleepers load */
    /* Only sleepers need the lock and the signal; spinning workers see the
     * generation change on their own. The lock orders this broadcast after a
     * sleeper's check of the generation. */
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    /* Shares no worker has started: done here rather than waited for. */
    for (int i = 1; i < p->n; i++) {
        unsigned c = atomic_load_explicit(&p->claimed[i].gen, memory_order_relaxed);
        if (c != gen && atomic_compare_exchange_strong(&p->claimed[i].gen, &c, gen)) {
            fn(ctx, i, p->n);
            atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
        }
    }
    if (p->idle[slot].fn)
        for (int step = 0; atomic_load_explicit(&p->pending, memory_order_acquire); step++)
            if (!idle(p->idle[slot].ctx, 0, p->n, step)) break;
    /* The others are mid-chunk; past a short spin, give the CPU to them in
     * case the machine has fewer free cores than threads. */
    for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire); i++) {
        if (i < 4000) cpu_relax();
        else sched_yield();
    }
}
