/* Session lifecycle: allocate everything once, so evaluation never allocates. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "model/moe.h"
#include "model/session.h"
#include "tensor/types.h"

static int sess_fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SD_ERR_LEN, fmt, ap);
    va_end(ap);
    return -1;
}

sd_session_params sd_session_default_params(void)
{
    sd_session_params p = {0, 0, SD_KV_F16};
    return p;
}

/* Largest activation-conversion scratch any matrix of the model needs. */
static size_t xq_bytes(const sd_model *m)
{
    size_t mx = sd_matmul_scratch_bytes(m->output.type, m->output.rows, m->output.cols, SD_UBATCH);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const sd_layer *L = &m->layers[il];
        const sd_weight *lw[] = {SD_LAYER_MATRICES(L)};
        for (size_t i = 0; i < sizeof lw / sizeof lw[0]; i++) {
            size_t b = sd_matmul_scratch_bytes(lw[i]->type, lw[i]->rows, lw[i]->cols, SD_UBATCH);
            mx = b > mx ? b : mx;
        }
    }
    size_t moe = sd_moe_xq_bytes(m);
    return moe > mx ? moe : mx;
}

int sd_session_new(sd_model *m, const sd_session_params *p, sd_session **out, char *err)
{
    const sd_hparams *hp = &m->hp;
    sd_session_params d = sd_session_default_params();
    if (!p) p = &d;
    int n_ctx = p->n_ctx > 0 ? p->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    if (n_ctx < 1) n_ctx = 1;
    if (n_ctx > (1 << 22)) return sess_fail(err, "%s: context length %d is too large", m->path, n_ctx);
    int n_threads = p->n_threads > 0 ? p->n_threads : sd_cpu_count();
    if (n_threads > 512) return sess_fail(err, "%d threads is too many", n_threads);
    if (hp->n_head / hp->n_head_kv > SD_MAX_GROUP)
        return sess_fail(err, "%s: %d query heads per KV head is more than the %d supported", m->path,
                         hp->n_head / hp->n_head_kv, SD_MAX_GROUP);
    switch (p->kv_type) {
    case SD_KV_F32: case SD_KV_F16: break;
    case SD_KV_Q8_0:
        if (hp->head_dim % 32)
            return sess_fail(err, "%s: a q8_0 KV cache needs a head size that is a multiple of 32 (it is %d)", m->path,
                             hp->head_dim);
        break;
    default: return sess_fail(err, "KV cache type %d is not supported (f32, f16, q8_0)", (int)p->kv_type);
    }
    sd_session *s = calloc(1, sizeof *s);
    if (!s) return sess_fail(err, "out of memory");
    s->m = m;
    s->n_ctx = n_ctx;
    s->kv_type = p->kv_type;
    size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim, q_dim = (size_t)hp->n_head * hp->head_dim;
    s->kv_row = sd_row_bytes((uint32_t)p->kv_type, (int64_t)kv_dim);
    s->kv_head = sd_row_bytes((uint32_t)p->kv_type, hp->head_dim);
    size_t kv_bytes = (size_t)hp->n_layer * (size_t)n_ctx * s->kv_row;
    size_t B = SD_UBATCH;
    s->k_cache = malloc(kv_bytes);
    s->v_cache = malloc(kv_bytes);
    s->x = malloc(B * hp->n_embd * sizeof(float));
    s->xb = malloc(B * (q_dim > (size_t)hp->n_embd ? q_dim : (size_t)hp->n_embd) * sizeof(float));
    s->q = malloc(B * q_dim * sizeof(float));
    s->k = malloc(B * kv_dim * sizeof(float));
    s->v = malloc(B * kv_dim * sizeof(float));
    s->att_out = malloc(B * q_dim * sizeof(float));
    s->hb = malloc(B * hp->n_ff * sizeof(float));
    s->hb2 = malloc(B * hp->n_ff * sizeof(float));
    s->att = malloc((size_t)n_threads * (hp->n_head / hp->n_head_kv) * n_ctx * sizeof(float));
    s->att_tmp = malloc((size_t)n_threads * SD_ATT_TMP(hp->head_dim, hp->n_head / hp->n_head_kv) * sizeof(float));
    s->xq = malloc(xq_bytes(m) + 64);
    s->logits = malloc((size_t)hp->n_vocab * sizeof(float));
    s->pool = sd_pool_new(n_threads);
    size_t moe_floats = sd_moe_scratch_floats(m);
    if (moe_floats) {
        s->moe = malloc(moe_floats * sizeof(float));
        s->moe_ids = calloc(B * (size_t)hp->n_layer * (size_t)hp->n_expert_used, sizeof(int32_t));
        if (!s->moe || !s->moe_ids) {
            sd_session_free(s);
            return sess_fail(err, "%s: out of memory for the experts' scratch", m->path);
        }
    }
    if (!s->k_cache || !s->v_cache || !s->x || !s->xb || !s->q || !s->k || !s->v || !s->att_out || !s->hb ||
        !s->hb2 || !s->att || !s->att_tmp || !s->xq || !s->logits || !s->pool) {
        sd_session_free(s);
        return sess_fail(err, "%s: out of memory for a %d-token context (KV cache %.1f MiB)", m->path, n_ctx,
                         2.0 * (double)kv_bytes / (1 << 20));
    }
    memset(s->logits, 0, (size_t)hp->n_vocab * sizeof(float));
    *out = s;
    return 0;
}

void sd_session_free(sd_session *s)
{
    if (!s) return;
    free(s->k_cache); free(s->v_cache); free(s->x); free(s->xb); free(s->q); free(s->k); free(s->v);
    free(s->att_out); free(s->hb); free(s->hb2); free(s->att); free(s->att_tmp); free(s->xq); free(s->logits);
    free(s->moe); free(s->moe_ids);
    sd_pool_free(s->pool);
    free(s);
}

int sd_session_eval(sd_session *s, const int32_t *tokens, int n, float *logits_all, char *err)
{
    int nv = s->m->hp.n_vocab;
    if (n < 0) return sess_fail(err, "negative token count");
    if (n > s->n_ctx - s->pos)
        return sess_fail(err, "context full: %d tokens at position %d exceed the context of %d", n, s->pos, s->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= nv)
            return sess_fail(err, "token id %d out of range (vocabulary of %d)", (int)tokens[i], nv);
    for (int i = 0; i < n; i += SD_UBATCH) {
        int c = n - i < SD_UBATCH ? n - i : SD_UBATCH;
        sd_forward(s, tokens + i, c, logits_all ? logits_all + (size_t)i * nv : NULL);
    }
    if (logits_all && n > 0) memcpy(s->logits, logits_all + (size_t)(n - 1) * nv, (size_t)nv * sizeof(float));
    return 0;
}

const float *sd_session_logits(const sd_session *s) { return s->logits; }
int sd_session_pos(const sd_session *s) { return s->pos; }
void sd_session_reset(sd_session *s) { s->pos = 0; }
int sd_session_n_ctx(const sd_session *s) { return s->n_ctx; }
