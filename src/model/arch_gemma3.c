/* Gemma 3's hyper-parameters and per-layer settings (see arch_gemma3.h). */
#include <math.h>
#include <stdio.h>

#include "model/arch_gemma3.h"

static int fail(sd_model *m, char *err, const char *what, double v)
{
    snprintf(err, SD_ERR_LEN, "%s: gemma3.%s = %g is not usable", m->path, what, v);
    gguf_msg_clean(err);
    return -1;
}

int sd_gemma3_hparams(sd_model *m, char *err)
{
    sd_hparams *hp = &m->hp;
    uint32_t v_len = (uint32_t)hp->head_dim;
    if (gguf_get_u32(m->gguf, "gemma3.attention.value_length", &v_len, err) < 0) return -1;
    if (v_len != (uint32_t)hp->head_dim) return fail(m, err, "attention.value_length (the key length differs)", v_len);
    float cap = 0;
    if (gguf_get_f32(m->gguf, "gemma3.final_logit_softcapping", &cap, err) < 0) return -1;
    if (!isfinite(cap) || cap < 0) return fail(m, err, "final_logit_softcapping", cap);
    m->logit_softcap = cap;
    m->embd_scale = sqrtf((float)hp->n_embd);
    m->ffn_gelu = 1;
    /* query_pre_attn_scalar: head_dim, except n_embd / n_head for the 27B,
     * which the reference engine recognizes by its 62 layers */
    if (hp->n_layer == 62) m->q_scale = sqrtf((float)hp->head_dim / ((float)hp->n_embd / (float)hp->n_head));
    return 0;
}

int sd_gemma3_layer(sd_model *m, int il, char *err)
{
    uint32_t swa = 0;
    if (gguf_get_u32(m->gguf, "gemma3.attention.sliding_window", &swa, err) < 0) return -1;
    if (swa > (1u << 30)) return fail(m, err, "attention.sliding_window", swa);
    sd_layer *L = &m->layers[il];
    if (swa > 0 && il % SD_GEMMA3_SWA_PERIOD < SD_GEMMA3_SWA_PERIOD - 1) {
        L->swa = (int)swa;
        L->rope_base = SD_GEMMA3_SWA_ROPE_BASE;
        L->rope_scale = 1.0f;
    }
    return 0;
}
