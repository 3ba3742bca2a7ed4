/* Session lifecycle: allocate everything once, so evaluation never allocates. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/moe.h"
#include "model/offload.h"
#include "model/session.h"
#include "tensor/types.h"
#include "runtime/errf.h"

sd_session_params sd_session_default_params(void)
{
    sd_session_params p = {0, 0, SD_KV_F16};
    return p;
}

/* Tokens per pass for model m (session.h). GPU layers keep SD_UBATCH (their
 * state is made for SD_UBATCH tokens), and so does qwen3next for now (its
 * recurrent layers at longer passes are neither tested nor measured). */
static int session_ubatch(const sd_model *m)
{
    if (!m->hp.n_expert || m->qnext || sd_model_gpu_layers(m) > 0) return SD_UBATCH;
    int ub = SD_UBATCH_MOE;
    while (ub > SD_UBATCH && sd_moe_scratch_floats(m, ub) * sizeof(float) > SD_UBATCH_MOE_BYTES) ub /= 2;
    return ub;
}

int sd_session_new(sd_model *m, const sd_session_params *p, sd_session **out, char *err)
{
    const sd_hparams *hp = &m->hp;
    sd_session_params d = sd_session_default_params();
    if (!p) p = &d;
    int n_ctx = p->n_ctx > 0 ? p->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    if (n_ctx < 1) n_ctx = 1;
    if (n_ctx > (1 << 22)) return sd_errf(err, "%s: context length %d is too large", m->path, n_ctx);
    int n_threads = p->n_threads > 0 ? p->n_threads : sd_cpu_count();
    if (n_threads > 512) return sd_errf(err, "%d threads is too many", n_threads);
    if (hp->n_head / hp->n_head_kv > SD_MAX_GROUP)
        return sd_errf(err, "%s: %d query heads per KV head is more than the %d supported", m->path,
                         hp->n_head / hp->n_head_kv, SD_MAX_GROUP);
    switch (p->kv_type) {
    case SD_KV_F32: case SD_KV_F16: break;
    case SD_KV_Q8_0:
        if (hp->head_dim % 32)
            return sd_errf(err, "%s: a q8_0 KV cache needs a head size that is a multiple of 32 (it is %d)", m->path,
                             hp->head_dim);
        break;
    default: return sd_errf(err, "KV cache type %d is not supported (f32, f16, q8_0)", (int)p->kv_type);
    }
    sd_session *s = calloc(1, sizeof *s);
    if (!s) return sd_errf(err, "out of memory");
    s->m = m;
    s->n_ctx = n_ctx;
    s->kv_type = p->kv_type;
    s->ubatch = session_ubatch(m);
    s->pos_buf = malloc((size_t)s->ubatch * sizeof(int));
    s->seq_buf = malloc((size_t)s->ubatch * sizeof(int));
    s->out_buf = malloc((size_t)s->ubatch * sizeof(int));
    if (!s->pos_buf || !s->seq_buf || !s->out_buf) {
        sd_session_free(s);
        return sd_errf(err, "out of memory");
    }
    if (sd_kv_cache_new(m, p->kv_type, n_ctx, 1, s->ubatch, &s->kv, err)) {
        sd_session_free(s);
        return -1;
    }
    sd_kv_seq_grow(s->kv, 0, n_ctx);   /* every block, in order: one array per head */
    if (sd_fwd_init(&s->f, m, s->kv, s->ubatch, n_threads, err)) {
        sd_session_free(s);
        return -1;
    }
    s->logits = calloc((size_t)hp->n_vocab, sizeof(float));
    if (!s->logits) {
        sd_session_free(s);
        return sd_errf(err, "out of memory");
    }
    if (sd_offload_session_new(s, err)) {
        sd_session_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void sd_session_free(sd_session *s)
{
    if (!s) return;
    sd_offload_session_free(s);
    sd_fwd_free(&s->f);
    sd_kv_cache_free(s->kv);
    free(s->logits);
    free(s->pos_buf);
    free(s->seq_buf);
    free(s->out_buf);
    free(s);
}

void sd_forward(sd_session *s, const int32_t *tokens, int n, float *logits_out)
{
    for (int i = 0; i < n; i++) {
        s->pos_buf[i] = s->pos + i;
        s->seq_buf[i] = 0;
        s->out_buf[i] = i;
    }
    sd_batch b = {n, tokens, s->pos_buf, s->seq_buf, logits_out ? s->out_buf : s->out_buf + n - 1,
                  logits_out ? n : 1};
    sd_forward_batch(&s->f, &b, logits_out ? logits_out : s->logits);
    s->pos += n;
}

int sd_session_eval(sd_session *s, const int32_t *tokens, int n, float *logits_all, char *err)
{
    int nv = s->m->hp.n_vocab;
    if (n < 0) return sd_errf(err, "negative token count");
    if (n > s->n_ctx - s->pos)
        return sd_errf(err, "context full: %d tokens at position %d exceed the context of %d", n, s->pos, s->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= nv)
            return sd_errf(err, "token id %d out of range (vocabulary of %d)", (int)tokens[i], nv);
    for (int i = 0; i < n; i += s->ubatch) {
        int c = n - i < s->ubatch ? n - i : s->ubatch;
        /* Sliding layers: this chunk's window blocks (a chunk fits the pool's). */
        if (sd_kv_seq_window(s->kv, 0, s->pos, s->pos + c))
            return sd_errf(err, "KV cache: the sliding window of positions %d..%d is not held", s->pos, s->pos + c - 1);
        sd_forward(s, tokens + i, c, logits_all ? logits_all + (size_t)i * nv : NULL);
        if (s->f.gpu_err && s->f.gpu_err[0]) return sd_errf(err, "%s", s->f.gpu_err);
    }
    if (logits_all && n > 0) memcpy(s->logits, logits_all + (size_t)(n - 1) * nv, (size_t)nv * sizeof(float));
    return 0;
}

const float *sd_session_logits(const sd_session *s) { return s->logits; }
int sd_session_pos(const sd_session *s) { return s->pos; }
void sd_session_reset(sd_session *s) { s->pos = 0; }
int sd_session_n_ctx(const sd_session *s) { return s->n_ctx; }
uint64_t sd_session_kv_bytes(const sd_session *s) { return s->kv->bytes; }
