/* The layers' and the output's matrices repacked for this CPU's kernels
 * (kernels/pack.h) at the first forward pass, not at load.
 *
 * Packing copies every dense matrix (the 8-layer qwen3-30b-a3b shape:
 * 260 MB, 0.25 s against a 0.09 s load without it), and a server or a
 * benchmark that loads a model should be ready as fast as the mapping
 * allows. The first pass packs everything before its first product, on as
 * many threads as it has, so every product of every pass runs on packed
 * weights (a model packed half-way would give timing-dependent results:
 * the packed and unpacked kernels sum in different orders). Sessions that
 * share the model wait on one lock the first time, then read a flag. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/pack.h"
#include "model/model.h"
#include "model/moe.h"

struct sd_model_packer {
    pthread_mutex_t mu;
    atomic_int done;      /* the matrices are final (packed or left as they are) */
    sd_weight **ws;       /* the matrices to pack, largest first */
    int n;
};

/* Drops the mapped pages of a packed original from this process (the file
 * stays in the page cache; the tied embedding reads fault them back). */
void sd_model_drop_mapped(const sd_weight *w, void *ctx)
{
    const sd_model *m = ctx;
    if (!m->gguf || !m->gguf->map) return;
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)w->data;
    uintptr_t lo = (a + pg - 1) / pg * pg, hi = (a + (uintptr_t)(w->rows * (int64_t)w->row_bytes)) / pg * pg;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* Memory the copies may take: MemAvailable (free memory plus the page cache
 * the kernel can reclaim; after a model file has been read, most of the
 * memory is its cache, and free memory alone once refused to pack a 3 GB
 * model on a 24 GB machine with 17 GB available), else free memory. 0:
 * unknown. */
static uint64_t available_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[128];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                fclose(f);
                return (uint64_t)kb * 1024;
            }
        fclose(f);
    }
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
}

static uint64_t bytes_of(const sd_weight *w) { return (uint64_t)w->rows * w->row_bytes; }

/* Largest first: the threads claim matrices in order, so the big output
 * matrix starts at once instead of holding one thread up at the end. */
static int by_size_desc(const void *a, const void *b)
{
    uint64_t x = bytes_of(*(sd_weight *const *)a), y = bytes_of(*(sd_weight *const *)b);
    return x < y ? 1 : x > y ? -1 : 0;
}

int sd_model_pack(sd_model *m)
{
    sd_weight **ws = malloc(((size_t)m->hp.n_layer * SD_LAYER_N_MATRICES + 1) * sizeof *ws);
    struct sd_model_packer *pk = calloc(1, sizeof *pk);
    if (!ws || !pk) {
        free(ws);
        free(pk);
        return -1;
    }
    int n = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        sd_weight *lw[] = {SD_LAYER_MATRICES(&m->layers[il])};
        for (int i = 0; i < SD_LAYER_N_MATRICES; i++)
            if (lw[i]->rows) ws[n++] = lw[i];
    }
    ws[n++] = &m->output;
    uint64_t need = 0;
    for (int i = 0; i < n; i++) need += bytes_of(ws[i]);
    need += sd_moe_expert_bytes(m);   /* experts are packed at first use (moe_pack.c) */
    uint64_t avail = available_bytes();
    int fits = (avail == 0 || need < avail / 2) && sd_pack_enabled();
    sd_moe_set_lazy_pack(m, fits);
    qsort(ws, (size_t)n, sizeof *ws, by_size_desc);
    pthread_mutex_init(&pk->mu, NULL);
    pk->ws = ws;
    pk->n = fits ? n : 0;
    atomic_init(&pk->done, !fits);
    m->packer = pk;
    return 0;
}

int sd_model_prepare(const sd_model *m, int n_threads)
{
    struct sd_model_packer *pk = m->packer;
    if (!pk || atomic_load_explicit(&pk->done, memory_order_acquire)) return 0;
    pthread_mutex_lock(&pk->mu);
    int packed = 0;
    if (!atomic_load_explicit(&pk->done, memory_order_relaxed)) {
        /* out of memory leaves a matrix unpacked: only slower */
        packed = sd_weights_pack(pk->ws, pk->n, n_threads < 1 ? 1 : n_threads, sd_model_drop_mapped, (void *)m);
        atomic_store_explicit(&pk->done, 1, memory_order_release);
    }
    pthread_mutex_unlock(&pk->mu);
    return packed;
}

void sd_model_packer_free(sd_model *m)
{
    struct sd_model_packer *pk = m->packer;
    if (!pk) return;
    pthread_mutex_destroy(&pk->mu);
    free(pk->ws);
    free(pk);
    m->packer = NULL;
}
