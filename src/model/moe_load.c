/* Loading a layer's experts: the router, the experts' matrices as views of
 * the 3-D tensors ffn_{gate,up,down}_exps (ggml order, fastest first:
 * gate/up {n_embd, n_ff, n_expert}, down {n_ff, n_embd, n_expert}) or of
 * the older per-expert tensors blk.N.ffn_gate.E, and the optional biases. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/pack.h"
#include "model/moe.h"
#include "tensor/scale.h"
#include "tensor/types.h"

/* Checks a matrix tensor's format: computable, and with whole rows. */
static int check_format(const sd_model *m, const gguf_tensor *t, const char *name, char *err)
{
    const sd_type_traits *tr = sd_type_get(t->type);
    if (!tr || !tr->to_float || !tr->vec_dot)
        return gguf_fail(err, m->path, "tensor %s: format %s cannot be computed with", name, sd_type_name(t->type));
    return 0;
}

static void view(sd_weight *w, const gguf_tensor *t, const sd_model *m, int64_t cols, int64_t rows, int e)
{
    w->type = t->type;
    w->cols = cols;
    w->rows = rows;
    w->row_bytes = sd_row_bytes(t->type, cols);
    w->data = (const char *)t->data + (size_t)e * (size_t)rows * w->row_bytes;
    w->scale = sd_tensor_scale(m->gguf, t);
    w->packed = NULL;
}

/* One kind of expert matrix (gate, up or down: "gate") of every expert. */
static int load_experts(sd_model *m, int il, const char *kind, int64_t cols, int64_t rows, int n_exp, sd_weight *out,
                        char *err)
{
    char name[96];
    snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.weight", il, kind);
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    if (t) {
        if (t->n_dims != 3 || t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != n_exp)
            return gguf_fail(err, m->path,
                            "tensor %s has shape [%lld, %lld, %lld], expected [%lld, %lld, %lld] "
                            "(from the expert count and sizes in the header)",
                            name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)cols,
                            (long long)rows, (long long)n_exp);
        if (check_format(m, t, name, err)) return -1;
        for (int e = 0; e < n_exp; e++) view(&out[e], t, m, cols, rows, e);
        return 0;
    }
    /* Older files: one 2-D tensor per expert. */
    for (int e = 0; e < n_exp; e++) {
        snprintf(name, sizeof name, "blk.%d.ffn_%s.%d.weight", il, kind, e);
        t = gguf_find_tensor(m->gguf, name);
        if (!t)
            return gguf_fail(err, m->path, "missing tensor blk.%d.ffn_%s_exps.weight (or %s)", il, kind, name);
        if (t->n_dims > 2 || t->ne[0] != cols || t->ne[1] != rows)
            return gguf_fail(err, m->path, "tensor %s has shape [%lld, %lld], expected [%lld, %lld]", name,
                            (long long)t->ne[0], (long long)t->ne[1], (long long)cols, (long long)rows);
        if (check_format(m, t, name, err)) return -1;
        view(&out[e], t, m, cols, rows, 0);
    }
    return 0;
}

/* An optional F32 copy of a bias of n_exp x len values ({len, n_exp} in the file). */
static int load_bias(sd_model *m, const char *name, int64_t len, int n_exp, float **out, char *err)
{
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    *out = NULL;
    if (!t) return 0;
    if (t->ne[0] != len || t->n_elements != (uint64_t)len * (uint64_t)n_exp)
        return gguf_fail(err, m->path, "tensor %s has %llu elements in rows of %lld, expected %d rows of %lld", name,
                        (unsigned long long)t->n_elements, (long long)t->ne[0], n_exp, (long long)len);
    const sd_type_traits *tr = sd_type_get(t->type);
    if (!tr || !tr->to_float) return gguf_fail(err, m->path, "tensor %s: format %s unreadable", name, sd_type_name(t->type));
    size_t n = (size_t)len * (size_t)n_exp;
    *out = malloc(n * sizeof **out);
    if (!*out) return gguf_fail(err, m->path, "out of memory");
    tr->to_float(t->data, *out, (int64_t)n);
    float s = sd_tensor_scale(m->gguf, t);
    for (size_t i = 0; i < n; i++) (*out)[i] *= s;
    return 0;
}

int sd_moe_load_layer(sd_model *m, int il, char *err)
{
    const sd_hparams *hp = &m->hp;
    int ne = hp->n_expert, ff = hp->n_ff_exp;
    int64_t e = hp->n_embd;
    sd_moe *moe = calloc(1, sizeof *moe);
    if (!moe) return gguf_fail(err, m->path, "out of memory");
    m->layers[il].moe = moe;
    moe->n_expert = ne;
    moe->n_used = hp->n_expert_used;
    moe->n_ff = ff;
    moe->gating = hp->arch == SD_ARCH_GPTOSS ? SD_MOE_TOPK_SOFTMAX : SD_MOE_SOFTMAX_TOPK;
    moe->act = hp->arch == SD_ARCH_GPTOSS ? SD_MOE_SWIGLU_OAI : SD_MOE_SILU;
    moe->gate = calloc((size_t)ne, sizeof *moe->gate);
    moe->up = calloc((size_t)ne, sizeof *moe->up);
    moe->down = calloc((size_t)ne, sizeof *moe->down);
    moe->ready = calloc((size_t)ne, sizeof *moe->ready);
    if (!moe->gate || !moe->up || !moe->down || !moe->ready) return gguf_fail(err, m->path, "out of memory");
    pthread_mutex_init(&moe->mu, NULL);

    char name[96];
    snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.weight", il);
    const gguf_tensor *r = gguf_find_tensor(m->gguf, name);
    if (!r) return gguf_fail(err, m->path, "missing tensor %s (the router of %d experts)", name, ne);
    if (r->n_dims > 2 || r->ne[0] != e || r->ne[1] != ne)
        return gguf_fail(err, m->path, "tensor %s has shape [%lld, %lld], expected [%lld, %d] (%s.expert_count = %d)",
                        name, (long long)r->ne[0], (long long)r->ne[1], (long long)e, ne, hp->arch_name, ne);
    if (check_format(m, r, name, err)) return -1;
    view(&moe->router, r, m, e, ne, 0);

    if (load_experts(m, il, "gate", e, ff, ne, moe->gate, err) || load_experts(m, il, "up", e, ff, ne, moe->up, err) ||
        load_experts(m, il, "down", ff, e, ne, moe->down, err))
        return -1;

    snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.bias", il);
    if (load_bias(m, name, ne, 1, &moe->router_b, err)) return -1;
    snprintf(name, sizeof name, "blk.%d.ffn_gate_exps.bias", il);
    if (load_bias(m, name, ff, ne, &moe->b_gate, err)) return -1;
    snprintf(name, sizeof name, "blk.%d.ffn_up_exps.bias", il);
    if (load_bias(m, name, ff, ne, &moe->b_up, err)) return -1;
    snprintf(name, sizeof name, "blk.%d.ffn_down_exps.bias", il);
    if (load_bias(m, name, e, ne, &moe->b_down, err)) return -1;
    if (hp->arch == SD_ARCH_GPTOSS && (!moe->router_b || !moe->b_gate || !moe->b_up || !moe->b_down))
        return gguf_fail(err, m->path, "layer %d: gpt-oss needs the router and expert biases (ffn_*_exps.bias)", il);
    return 0;
}

void sd_moe_free(sd_moe *moe)
{
    if (!moe) return;
    for (int e = 0; e < moe->n_expert; e++) {
        if (moe->gate) sd_weight_unpack(&moe->gate[e]);
        if (moe->up) sd_weight_unpack(&moe->up[e]);
        if (moe->down) sd_weight_unpack(&moe->down[e]);
    }
    sd_weight_unpack(&moe->router);
    if (moe->ready) pthread_mutex_destroy(&moe->mu);
    free(moe->gate); free(moe->up); free(moe->down); free((void *)moe->ready);
    free(moe->router_b); free(moe->b_gate); free(moe->b_up); free(moe->b_down);
    free(moe);
}
