/* Experts repacked at first use. Packing every expert at load would copy
 * the whole file (tens of GB for the large mixtures) before the first token,
 * though a decode step reads k of n experts: instead each expert is packed
 * the first time a token routes to it, by the threads of the pass that
 * needs it, and its mapped original is dropped as at load. A flag per
 * expert, set under the layer's lock once its three matrices are final,
 * lets sessions that share the model read them without locking. */
#include <stdlib.h>

#include "kernels/pack.h"
#include "model/moe.h"

void sd_moe_prepare(const sd_model *m, sd_moe *moe, const int32_t *experts, int n, int n_threads)
{
    if (!moe->lazy_pack) return;
    int todo = 0;
    for (int i = 0; i < n; i++) todo |= !atomic_load_explicit(&moe->ready[experts[i]], memory_order_acquire);
    if (!todo) return;
    pthread_mutex_lock(&moe->mu);
    sd_weight *ws[3 * 64];
    int nw = 0;
    for (int i = 0; i < n; i++) {
        int e = experts[i];
        if (atomic_load_explicit(&moe->ready[e], memory_order_relaxed)) continue;
        /* an expert listed twice is packed once */
        int dup = 0;
        for (int q = 0; q < nw; q += 3) dup |= ws[q] == &moe->gate[e];
        if (dup) continue;
        ws[nw++] = &moe->gate[e];
        ws[nw++] = &moe->up[e];
        ws[nw++] = &moe->down[e];
        if (nw + 3 > (int)(sizeof ws / sizeof ws[0]) || i + 1 == n) {
            /* out of memory leaves a matrix unpacked: only slower */
            sd_weights_pack(ws, nw, n_threads, sd_model_drop_mapped, (void *)m);
            for (int q = 0; q < nw; q += 3)
                atomic_store_explicit(&moe->ready[ws[q] - moe->gate], 1, memory_order_release);
            nw = 0;
        }
    }
    if (nw) {
        sd_weights_pack(ws, nw, n_threads, sd_model_drop_mapped, (void *)m);
        for (int q = 0; q < nw; q += 3) atomic_store_explicit(&moe->ready[ws[q] - moe->gate], 1, memory_order_release);
    }
    pthread_mutex_unlock(&moe->mu);
}

uint64_t sd_moe_expert_bytes(const sd_model *m)
{
    uint64_t b = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const sd_moe *moe = m->layers[il].moe;
        if (!moe) continue;
        for (int e = 0; e < moe->n_expert; e++)
            b += (uint64_t)moe->gate[e].rows * moe->gate[e].row_bytes + (uint64_t)moe->up[e].rows * moe->up[e].row_bytes +
                 (uint64_t)moe->down[e].rows * moe->down[e].row_bytes;
    }
    return b;
}

void sd_moe_set_lazy_pack(sd_model *m, int on)
{
    for (int il = 0; il < m->hp.n_layer; il++)
        if (m->layers[il].moe) m->layers[il].moe->lazy_pack = on && sd_pack_enabled();
}
