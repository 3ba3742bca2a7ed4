/* What one model in one format costs: bytes stored, bytes one decode step
 * reads, KV cache, fixed state and compute buffers. */
#include <string.h>

#include "plan/plan.h"

static int is_full_attn(const sd_model_shape *s, int il)
{
    return s->full_attn_every <= 1 || (il + 1) % s->full_attn_every == 0;
}

/* Tokens a full-attention layer keeps when the context holds n of them. */
static double kept(const sd_model_shape *s, int il, double n)
{
    int sliding = s->sliding_window > 0 && s->swa_every > 0 && (il + 1) % s->swa_every != 0;
    return sliding && n > s->sliding_window ? s->sliding_window : n;
}

static double kv_bytes_at(const sd_model_shape *s, double n, double elem)
{
    double per_tok = 2.0 * s->n_head_kv * s->head_dim * elem;   /* K and V */
    double b = 0;
    for (int il = 0; il < s->n_layer; il++)
        if (is_full_attn(s, il)) b += per_tok * kept(s, il, n);
    return b;
}

double sd_kv_bytes(const sd_model_shape *s, int n_ctx, double kv_elem_bytes)
{
    return kv_bytes_at(s, n_ctx, kv_elem_bytes);
}

double sd_kv_read_bytes(const sd_model_shape *s, int depth, double kv_elem_bytes)
{
    return kv_bytes_at(s, depth, kv_elem_bytes);
}

double sd_attn_flops(const sd_model_shape *s, int depth)
{
    double f = 0;
    for (int il = 0; il < s->n_layer; il++) {
        if (is_full_attn(s, il))
            f += 4.0 * s->n_head * s->head_dim * kept(s, il, depth);   /* QK^T and AV, 2 flops per MAC */
        else
            f += 6.0 * s->lin_v_heads * s->lin_k_dim * s->lin_v_dim;   /* delta-rule state update + read */
    }
    return f;
}

/* Ops per decode step in llama.cpp's graph builders (llm_build_llama,
 * build_moe_ffn, build_ffn, llama_model_qwen3next's gated delta net, legacy
 * GGUF path), counting kernels, not views or reshapes:
 *   attention mixer: norm (2) + residual add + q, k, v + 2 ropes + K and V
 *     stores + attention (2) + output = 13; + 4 with per-head q/k norms;
 *     + 3 for an output gate (cont, sigmoid, mul); + 4 for biases;
 *   gated delta net mixer: norm + residual (3) + qkvz and ba products,
 *     their splits and gates (14), conv state (3), recurrent state (2), conv
 *     and silu (2), q/k l2 norms and repeats (4), delta rule (2), gated norm
 *     (4), output = 35;
 *   dense FFN: norm + residual (3) + gate, up, activation, multiply, down = 8;
 *   MoE FFN: norm + residual (3) + router, softmax, argsort, get_rows,
 *     weight renormalisation (2), 3 expert products, activation, weighting
 *     = 14, + one add per used expert after the first; + 8 for a shared
 *     expert; + 4 for router and expert biases;
 *   head: final norm (2) + LM head = 3.
 * Llama 2 7B: 32 x 21 + 3 = 675; Qwen3-Next 80B: 36 x 66 + 12 x 51 + 3 = 2991. */
double sd_graph_nodes(const sd_model_shape *s)
{
    double attn = 13 + (s->qk_norm ? 4 : 0) + (s->attn_gate ? 3 : 0) + (s->qkv_bias || s->o_bias ? 4 : 0);
    double ffn = 8;
    if (s->n_expert > 0)
        ffn = 14 + (s->n_expert_used > 1 ? s->n_expert_used - 1 : 0) + (s->shared_ff ? 8 : 0)
            + (s->qkv_bias ? 4 : 0);   /* gpt-oss: biases on the router and the experts too */
    double n = 3;
    for (int il = 0; il < s->n_layer; il++) n += (is_full_attn(s, il) ? attn : 35) + ffn;
    return n;
}

/* Recurrent state of the linear-attention layers (f32), independent of context. */
static double state_bytes(const sd_model_shape *s)
{
    double b = 0;
    for (int il = 0; il < s->n_layer; il++)
        if (!is_full_attn(s, il)) {
            double kd = (double)s->lin_k_heads * s->lin_k_dim, vd = (double)s->lin_v_heads * s->lin_v_dim;
            b += 4.0 * s->lin_v_heads * s->lin_k_dim * s->lin_v_dim
               + 4.0 * (2 * kd + vd) * (s->lin_conv > 1 ? s->lin_conv - 1 : 0);   /* delta-rule state + conv tail */
        }
    return b;
}

int sd_model_cost(const sd_model_ref *m, const sd_recipe *r, int n_ctx, double kv_elem_bytes,
                  int n_ubatch, sd_cost *out)
{
    const sd_model_shape *s = m->shape;
    const sd_params *p = &m->params;
    memset(out, 0, sizeof *out);
    if (s->n_layer <= 0 || n_ctx <= 0 || kv_elem_bytes <= 0) return -1;
    double body, experts;
    if (m->file && !strcmp(r->name, "file")) {
        out->embd_bytes = m->file->bytes_embd;
        out->output_bytes = m->file->bytes_output;
        body = m->file->bytes_body;
        experts = m->file->bytes_experts;
    } else {
        out->embd_bytes = p->embd * r->bpw_embd / 8;
        out->output_bytes = p->output * r->bpw_output / 8;
        body = p->body * r->bpw_body / 8;
        experts = p->experts * r->bpw_experts / 8;
    }
    double used = s->n_expert ? (double)s->n_expert_used / s->n_expert : 0;
    out->weights_bytes = out->embd_bytes + out->output_bytes + body + experts;
    out->layer_bytes = (body + experts) / s->n_layer;
    out->layer_read_bytes = (body + experts * used) / s->n_layer;
    out->expert_bytes = experts;
    out->expert_read_bytes = experts * used;
    /* A tied model reads its embedding matrix as the LM head. */
    out->read_bytes = body + experts * used + (s->tied ? out->embd_bytes : out->output_bytes);
    out->kv_bytes = sd_kv_bytes(s, n_ctx, kv_elem_bytes);
    out->kv_token_bytes = 2.0 * s->n_head_kv * s->head_dim * kv_elem_bytes;
    out->state_bytes = state_bytes(s);
    out->graph_nodes = sd_graph_nodes(s);
    /* Compute buffers for one prefill micro-batch: logits, the residual stream and
     * FFN activations in f32, and the f16 attention mask (flash attention assumed,
     * so no n_ctx x n_head score matrix). */
    double ffn = s->n_ff + (double)s->n_expert_used * s->expert_ff + s->shared_ff;
    out->compute_bytes = (double)n_ubatch * 4.0 * (s->n_vocab + 4.0 * s->n_embd + 2.0 * ffn)
                       + (double)n_ubatch * n_ctx * 2.0;
    out->total_bytes = out->weights_bytes + out->kv_bytes + out->state_bytes + out->compute_bytes;
    return 0;
}
