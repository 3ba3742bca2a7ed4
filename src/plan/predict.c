/* The roofline: where the layers go, and how long prefill and decode take
 * there. Every factor that is not physics is in effs[] below, named, and
 * fitted to docs/published-train.tsv (docs/PLANNER.md shows the per-row error). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "showdown.h"
#include "plan/plan.h"

static const sd_eff effs[] = {
    /* family    bw_eff layer_ms pp_f16 pp_quant int8 crossing_ms soc_mem_power node_gap_us launch_us */
    {"cuda",     0.78,  0.050,   0.85,  0.23,    1,   0.138,      0.5,          1.19,       5.0},
    /* Datacenter parts (A100, H100): the same kernels at 1.4-1.75 GHz instead of
     * 2.2-2.5: the per-layer cost of the small, latency-bound kernels grows with
     * the clock ratio (0.050 x 2.5 / 1.41; the gap 1.19 x 1.695 / 1.41). */
    {"cuda-dc",  0.78,  0.089,   0.85,  0.23,    1,   0.138,      0.5,          1.43,       5.0},
    {"metal",    0.85,  0.155,   0.68,  0.62,    0,   0,          0.5,          0,          0},
    {"vulkan",   0.75,  0.080,   0.50,  0.45,    0,   0.138,      0.5,          0,          0},   /* not calibrated: no published row */
    {"cpu",      0.75,  0.005,   0.50,  0.50,    1,   0,          0.5,          0,          0},
};

enum { HEAD_ON_DEVICE = 1 };
static const double LINK_EFF = 0.80;     /* achieved / nominal PCIe bandwidth for bulk copies */
static const double GIB = 1073741824.0;

const sd_eff *sd_eff_for(const char *family)
{
    for (size_t i = 0; family && i < sizeof effs / sizeof effs[0]; i++)
        if (!strcmp(effs[i].family, family)) return &effs[i];
    return NULL;
}

void sd_plan_default_opts(sd_plan_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_ctx = 4096;
    o->n_prompt = 512;
    o->n_gen = 128;
    o->decode_depth = -1;
    o->ngl = -1;
    o->n_ubatch = 512;
    o->kv_elem_bytes = 2;
    o->n_cpu_moe = -1;
}

/* Sustained rate (FLOP/s) for matrix products with these weights on hw. */
static double matmul_rate(const sd_hw *hw, const sd_eff *e, const sd_recipe *r)
{
    int quant = r->bpw_body < 15.9;
    if (quant && e->quant_uses_int8 && hw->tops_int8 > 0) return hw->tops_int8 * 1e12 * e->pp_eff_quant;
    return hw->tflops_f16 * 1e12 * (quant ? e->pp_eff_quant : e->pp_eff_f16);
}

typedef struct {
    const sd_model_shape *s;
    const sd_cost *c;
    const sd_params *p;
    const sd_recipe *r;
    const sd_hw *dev, *host;   /* host NULL: everything on dev */
    const sd_eff *edev, *ehost;
    int gpu_layers, head_on_dev, kv_on_host;
    int experts_on_host;       /* every layer on the GPU, but the routed experts of this many layers in host RAM */
    int graphless;             /* the engine launches every op from the host (no CUDA graph replay) */
} placement;

/* Without graph replay the host launches each op of the step: the GPU idles
 * a little between dependent kernels (node_gap_us, measured as the gain of
 * CUDA graphs in llama.cpp PR 6766: 7B Q4_0 on an RTX 3090, 116.3 -> 128.3
 * t/s = 0.80 ms over 675 ops), and when the ops are many and small the host's
 * launch rate (launch_us per op) sets the pace instead of the GPU. */
static double graphless_s(const placement *pl, double t_gpu, int dev_layers, int head, int *launch_bound)
{
    const sd_eff *e = pl->edev;
    *launch_bound = 0;
    if (!pl->graphless || e->launch_us <= 0) return t_gpu;
    double nodes = pl->c->graph_nodes * (dev_layers + head) / (pl->s->n_layer + 1.0);
    double gpu = t_gpu + nodes * e->node_gap_us * 1e-6, host = nodes * e->launch_us * 1e-6;
    *launch_bound = host > gpu;
    return gpu > host ? gpu : host;
}

/* Decode with the routed experts of pl->experts_on_host layers in host RAM
 * (llama.cpp --n-cpu-moe N; all layers = -ot exps=CPU): attention, norms,
 * router, shared experts, KV, the head and the other layers' experts on the
 * GPU; those layers' expert products on the host CPU, so the activations cross
 * the link there and back once per such layer. */
static double decode_experts_on_host(const placement *pl, int depth, double kv_layer, double head,
                                     double flops_layer, double flops_head, double *t_dev, double *t_host,
                                     int *compute_bound, double *busy)
{
    const sd_model_shape *s = pl->s;
    const sd_cost *c = pl->c;
    int L = s->n_layer;
    double used = s->n_expert ? (double)s->n_expert_used / s->n_expert : 0;
    double share = (double)pl->experts_on_host / L;
    double exp_flops = 2.0 * pl->p->experts * used * share;
    double host_read = c->expert_read_bytes * share;
    double dev_bytes = L * (c->layer_read_bytes + kv_layer) - host_read + head;
    double dev_flops = L * flops_layer + flops_head - exp_flops;
    double rate_dev = matmul_rate(pl->dev, pl->edev, pl->r);
    double mem = dev_bytes / (pl->dev->bw_gbps * 1e9 * pl->edev->bw_eff);
    double cmp = rate_dev > 0 ? dev_flops / rate_dev : 0;
    double td = (mem > cmp ? mem : cmp) + (L + 1) * pl->edev->layer_ms * 1e-3;
    int launch_bound;
    td = graphless_s(pl, td, L, 1, &launch_bound);
    double rate_h = matmul_rate(pl->host, pl->ehost, pl->r);
    double mh = host_read / (pl->host->bw_gbps * 1e9 * pl->ehost->bw_eff);
    double ch = rate_h > 0 ? exp_flops / rate_h : 0;
    double th = (mh > ch ? mh : ch) + pl->experts_on_host * pl->ehost->layer_ms * 1e-3;
    double cross = 2.0 * pl->experts_on_host * pl->edev->crossing_ms * 1e-3;
    *compute_bound = ch > mh;
    if (busy) *busy = td > 0 ? cmp / td : 0;
    *t_dev = td;
    *t_host = th + cross;
    (void)depth;
    return td + th + cross;
}

/* One decode step at the given depth; splits its time into device and host. */
static double decode_s(const placement *pl, int depth, double *t_dev, double *t_host, int *compute_bound,
                       double *busy)
{
    const sd_model_shape *s = pl->s;
    const sd_cost *c = pl->c;
    int L = s->n_layer;
    double kv_layer = sd_kv_read_bytes(s, depth, c->kv_token_bytes / (2.0 * s->n_head_kv * s->head_dim)) / L
                    + 2.0 * c->state_bytes / L;   /* recurrent state: read and written */
    double head = c->read_bytes - L * c->layer_read_bytes;
    double flops_layer = 2.0 * (pl->p->active - (s->tied ? pl->p->embd : pl->p->output)) / L
                       + sd_attn_flops(s, depth) / L;
    double flops_head = 2.0 * (s->tied ? pl->p->embd : pl->p->output);
    int dev_l = pl->gpu_layers, host_l = L - dev_l;
    if (pl->experts_on_host) return decode_experts_on_host(pl, depth, kv_layer, head, flops_layer, flops_head,
                                                           t_dev, t_host, compute_bound, busy);

    double dev_bytes = dev_l * (c->layer_read_bytes + (pl->kv_on_host ? 0 : kv_layer)) + (pl->head_on_dev ? head : 0);
    double host_bytes = host_l * (c->layer_read_bytes + kv_layer) + (pl->head_on_dev ? 0 : head)
                      + (pl->kv_on_host ? dev_l * kv_layer : 0);
    double dev_flops = dev_l * flops_layer + (pl->head_on_dev ? flops_head : 0);
    double host_flops = host_l * flops_layer + (pl->head_on_dev ? 0 : flops_head);

    double rate_dev = matmul_rate(pl->dev, pl->edev, pl->r);
    double mem = dev_bytes / (pl->dev->bw_gbps * 1e9 * pl->edev->bw_eff);
    double cmp = rate_dev > 0 ? dev_flops / rate_dev : 0;
    if (!pl->edev->quant_uses_int8 && pl->dev->tflops_f16 > 0) {
        /* Without integer dot products the GPU unpacks every weight in its
         * float ALUs: on parts with little compute per byte of bandwidth (M1
         * Max: 26 FLOP/B) that, not memory, bounds k-quant decode. */
        double dq = (dev_flops - dev_l * sd_attn_flops(s, depth) / L) / 2.0 * sd_plan_recipe_decode_ops(pl->r)
                  / (pl->dev->tflops_f16 * 1e12);
        if (dq > cmp) cmp = dq;
    }
    double td = (mem > cmp ? mem : cmp) + (dev_l + (pl->head_on_dev ? 1 : 0)) * pl->edev->layer_ms * 1e-3;
    int launch_bound;
    td = graphless_s(pl, td, dev_l, pl->head_on_dev ? 1 : 0, &launch_bound);
    *compute_bound = launch_bound ? 2 : cmp > mem;   /* 2: the host's op launches set the pace */
    /* Several GPUs in a layer split hand the activations along once each. */
    td += (pl->dev->count - 1) * pl->edev->crossing_ms * 1e-3;
    double th = 0, cross = 0;
    if (pl->host && (host_bytes > 0 || host_flops > 0)) {
        double rate_h = matmul_rate(pl->host, pl->ehost, pl->r);
        double mh = host_bytes / (pl->host->bw_gbps * 1e9 * pl->ehost->bw_eff);
        double ch = rate_h > 0 ? host_flops / rate_h : 0;
        th = (mh > ch ? mh : ch) + (host_l + (pl->head_on_dev ? 0 : 1)) * pl->ehost->layer_ms * 1e-3;
        /* Activations cross the link into the GPU and back; with the KV cache on
         * the host, attention of every GPU layer crosses twice more. */
        if (dev_l > 0 || pl->head_on_dev) cross = 2 * pl->edev->crossing_ms * 1e-3;
        if (pl->kv_on_host) cross += 2.0 * dev_l * pl->edev->crossing_ms * 1e-3;
    }
    if (busy) *busy = td > 0 ? (cmp > 0 ? cmp : 0) / td : 0;
    *t_dev = td;
    *t_host = th + cross;
    return td + th + cross;
}

/* Prefill of n tokens from an empty cache, in micro-batches. */
static double prefill_s(const placement *pl, int n, int n_ubatch, const char **limit)
{
    const sd_model_shape *s = pl->s;
    const sd_cost *c = pl->c;
    int L = s->n_layer;
    double t = 0;
    int compute = 0, link = 0;
    for (int done = 0; done < n; done += n_ubatch) {
        int b = n - done < n_ubatch ? n - done : n_ubatch;
        double attn = 0;
        for (int i = 0; i < b; i += 64) attn += sd_attn_flops(s, done + i) * (b - i < 64 ? b - i : 64);
        double flops = 2.0 * (pl->p->active - (s->tied ? pl->p->embd : pl->p->output)) * b + attn
                     + 2.0 * (s->tied ? pl->p->embd : pl->p->output);   /* logits of the last token only */
        /* A batch streams every weight once, all experts included. */
        double bytes = L * c->layer_bytes + (c->read_bytes - L * c->layer_read_bytes);
        double tc = flops / matmul_rate(pl->dev, pl->edev, pl->r);
        double tm = bytes / (pl->dev->bw_gbps * 1e9 * pl->edev->bw_eff);
        double tb = (tc > tm ? tc : tm) + L * pl->edev->layer_ms * 1e-3;
        compute |= tc > tm;
        int host_l = L - pl->gpu_layers;
        if (pl->experts_on_host) {
            /* llama.cpp copies the host-resident experts to the GPU for a big
             * batch, as it does host layers. */
            tb += c->expert_bytes * pl->experts_on_host / L / (pl->dev->link_gbps * 1e9 * LINK_EFF);
            link = 1;
        } else if (pl->host && pl->dev->kind == SD_HW_GPU && (host_l > 0 || !pl->head_on_dev)) {
            /* llama.cpp runs big batches of host-resident layers on the GPU,
             * copying their weights over the link once per micro-batch. */
            double hb = host_l * c->layer_bytes + (pl->head_on_dev ? 0 : c->read_bytes - L * c->layer_read_bytes);
            tb += hb / (pl->dev->link_gbps * 1e9 * LINK_EFF);
            link = 1;
        } else if (pl->host && pl->dev->kind != SD_HW_GPU) {
            tb = flops / matmul_rate(pl->host, pl->ehost, pl->r);
        }
        t += tb;
    }
    *limit = link ? "host link" : compute ? "compute" : "bandwidth";
    return t;
}

int sd_plan_predict(const sd_model_ref *m, const sd_recipe *r, const sd_hw *hw, const sd_hw *host,
                    const sd_plan_opts *o, sd_plan_result *out, char *err)
{
    memset(out, 0, sizeof *out);
    const sd_model_shape *s = m->shape;
    const sd_eff *edev = sd_eff_for(hw->family);
    if (!edev) { snprintf(err, SD_ERR_LEN, "%s: unknown family '%s'", hw->id, hw->family); return -1; }
    if (o->n_ctx <= 0 || o->n_prompt < 0 || o->n_gen <= 0 || o->n_ubatch <= 0) {
        snprintf(err, SD_ERR_LEN, "context, prompt, generated tokens and batch must be positive");
        return -1;
    }
    if (s->n_ctx_train > 0 && o->n_ctx > s->n_ctx_train) {
        snprintf(err, SD_ERR_LEN, "context %d is beyond %s's training context %d", o->n_ctx, s->name, s->n_ctx_train);
        return -1;
    }
    if (o->n_prompt + o->n_gen > o->n_ctx) {
        snprintf(err, SD_ERR_LEN, "prompt %d + generated %d tokens do not fit a context of %d",
                 o->n_prompt, o->n_gen, o->n_ctx);
        return -1;
    }
    if (sd_model_cost(m, r, o->n_ctx, o->kv_elem_bytes, o->n_ubatch, &out->cost)) {
        snprintf(err, SD_ERR_LEN, "%s: cannot cost this shape", s->name);
        return -1;
    }
    const sd_cost *c = &out->cost;
    int L = s->n_layer;
    out->n_layer = L;
    double usable = hw->usable_gib * GIB;
    double kv_layer = (c->kv_bytes + c->state_bytes) / L;
    double head_store = s->tied ? c->embd_bytes : c->output_bytes;
    int discrete = hw->kind == SD_HW_GPU;
    if (!discrete || !host) host = NULL;
    const sd_eff *ehost = host ? sd_eff_for(host->family) : NULL;
    if (host && !ehost) { snprintf(err, SD_ERR_LEN, "%s: unknown family '%s'", host->id, host->family); return -1; }

    /* Placement: -ngl counts repeating layers; n_layer+1 also moves the head. */
    int ngl = L + 1;
    if (discrete) {
        int kvh = o->kv_on_host;
        double need_full = L * (c->layer_bytes + (kvh ? 0 : kv_layer)) + head_store + c->compute_bytes;
        if (o->ngl >= 0) ngl = o->ngl > L + 1 ? L + 1 : o->ngl;
        else if (need_full <= usable) ngl = L + 1;
        else {
            ngl = 0;   /* the most layers whose weights, KV and buffers fit */
            for (int g = L; g >= 0; g--)
                if (g * (c->layer_bytes + (kvh ? 0 : kv_layer)) + c->compute_bytes <= usable) { ngl = g; break; }
            if (!host) ngl = -1;
        }
        if (ngl >= 0) {
            int gl = ngl > L ? L : ngl, head_on = ngl > L;
            out->device_bytes = gl * (c->layer_bytes + (kvh ? 0 : kv_layer)) + (head_on ? head_store : 0)
                              + c->compute_bytes;
            /* The token embedding always stays in host memory (one row per token). */
            out->host_bytes = (L - gl) * (c->layer_bytes + kv_layer) + c->embd_bytes
                            + (head_on || s->tied ? 0 : head_store) + (kvh ? gl * kv_layer : 0);
        }
        out->fits = ngl == L + 1 && out->device_bytes <= usable;
        out->runs = ngl >= 0 && out->device_bytes <= usable &&
                    (out->fits || (host && out->host_bytes <= host->usable_gib * GIB));
        if (ngl >= 0 && out->device_bytes > usable)
            snprintf(out->note, sizeof out->note, "-ngl %d needs %.1f GiB on the GPU, %.1f GiB usable",
                     ngl, out->device_bytes / GIB, hw->usable_gib);
        else if (ngl >= 0 && !out->runs)
            snprintf(out->note, sizeof out->note, "%.1f GiB left for the host, which has %.1f GiB usable",
                     out->host_bytes / GIB, host ? host->usable_gib : 0.0);
        else if (ngl < 0)
            snprintf(out->note, sizeof out->note, "needs %.1f GiB, %.1f GiB usable, no host to offload to",
                     c->total_bytes / GIB, hw->usable_gib);
    } else {
        out->device_bytes = c->total_bytes;
        out->fits = out->runs = c->total_bytes <= usable;
        ngl = hw->kind == SD_HW_SOC ? L + 1 : 0;
        if (!out->fits)
            snprintf(out->note, sizeof out->note, "needs %.1f GiB, %.1f GiB usable", c->total_bytes / GIB, hw->usable_gib);
    }
    out->n_gpu_layers = ngl < 0 ? 0 : ngl;
    out->tg_layer_split = out->tg_experts_on_host = NAN;

    placement pl = {.s = s, .c = c, .p = &m->params, .r = r, .dev = hw, .host = host, .edev = edev, .ehost = ehost,
                    .kv_on_host = discrete && o->kv_on_host,
                    /* llama.cpp (to early 2026) turns CUDA graphs off for models with recurrent
                     * layers: their state views change every step and the graph update fails
                     * (ggml-org/llama.cpp issue 19345, Qwen3-Next). */
                    .graphless = o->no_graph_replay || s->full_attn_every > 1};
    if (discrete) {
        pl.gpu_layers = out->n_gpu_layers > L ? L : out->n_gpu_layers;
        pl.head_on_dev = out->n_gpu_layers > L;
    } else {
        pl.gpu_layers = L;
        pl.head_on_dev = HEAD_ON_DEVICE;
    }
    int depth = (o->decode_depth >= 0 ? o->decode_depth : o->n_prompt) + o->n_gen / 2;
    double td, th, busy;
    int cb;
    if (out->runs) out->tg_layer_split = 1.0 / decode_s(&pl, depth, &td, &th, &cb, &busy);

    /* A MoE that does not fit: the routed experts of the fewest layers that
     * let everything else fit stay in host RAM (or --n-cpu-moe N of them),
     * beside the layer split; the faster one is the plan. */
    if (discrete && host && s->n_expert > 0 && o->n_cpu_moe != 0 && (o->n_cpu_moe > 0 || (!out->fits && o->ngl < 0))) {
        int kvh = o->kv_on_host;
        double rest = L * (c->layer_bytes + (kvh ? 0 : kv_layer)) + head_store + c->compute_bytes;
        int n_moe = -1;
        double dev_need = 0;
        for (int k = o->n_cpu_moe > 0 ? (o->n_cpu_moe > L ? L : o->n_cpu_moe) : 1; k <= L; k++) {
            dev_need = rest - c->expert_bytes * k / L;
            if (dev_need <= usable || o->n_cpu_moe > 0) { n_moe = k; break; }
        }
        double host_need = n_moe > 0 ? c->expert_bytes * n_moe / L + c->embd_bytes + (kvh ? L * kv_layer : 0) : 0;
        if (n_moe > 0 && dev_need <= usable && host_need <= host->usable_gib * GIB) {
            placement pe = pl;
            pe.gpu_layers = L;
            pe.head_on_dev = 1;
            pe.experts_on_host = n_moe;
            double te, the, be;
            int cbe;
            out->tg_experts_on_host = 1.0 / decode_s(&pe, depth, &te, &the, &cbe, &be);
            if (o->n_cpu_moe > 0 || !out->runs || out->tg_experts_on_host > out->tg_layer_split) {
                pl = pe;
                out->n_cpu_moe = n_moe;
                out->runs = 1;
                out->n_gpu_layers = L + 1;
                out->device_bytes = dev_need;
                out->host_bytes = host_need;
                if (isnan(out->tg_layer_split))
                    snprintf(out->note, sizeof out->note, "--n-cpu-moe %d (routed experts of %d layers in host RAM): "
                             "%.1f GiB on the GPU, %.1f GiB in host RAM", n_moe, n_moe, dev_need / GIB, host_need / GIB);
                else
                    snprintf(out->note, sizeof out->note, "--n-cpu-moe %d (routed experts of %d layers in host RAM): "
                             "%.1f t/s, vs %.1f t/s with -ngl %d", n_moe, n_moe, out->tg_experts_on_host,
                             out->tg_layer_split, ngl);
            } else {
                snprintf(out->note, sizeof out->note, "-ngl %d: %.1f t/s, vs %.1f t/s with --n-cpu-moe %d", ngl,
                         out->tg_layer_split, out->tg_experts_on_host, n_moe);
            }
        }
    }
    if (!out->runs) {
        out->limit = out->pp_limit = "capacity";
        out->pp_ts = out->tg_ts = out->ttft_ms = out->tokens_per_joule = NAN;
        return 0;
    }
    double t_tok = decode_s(&pl, depth, &td, &th, &cb, &busy);
    out->tg_ts = 1.0 / t_tok;
    double t_pp = o->n_prompt > 0 ? prefill_s(&pl, o->n_prompt, o->n_ubatch, &out->pp_limit) : 0;
    if (!out->pp_limit) out->pp_limit = "-";
    out->pp_ts = o->n_prompt > 0 ? o->n_prompt / t_pp : NAN;
    double td0, th0, b0;
    int cb0;
    out->ttft_ms = (t_pp + decode_s(&pl, o->n_prompt, &td0, &th0, &cb0, &b0)) * 1e3;

    int split = discrete && (pl.gpu_layers < L || !pl.head_on_dev || pl.kv_on_host || pl.experts_on_host);
    out->limit = split ? "host link" : cb == 2 ? "op launches" : cb ? "compute" : "bandwidth";

    /* Power at the boundary hardware.tsv names: the board (+ the host package
     * while it works) for a discrete GPU; for an SoC the memory system's share
     * of the dynamic power while it streams, plus the ALUs' share as far as
     * they are busy (decode that waits on memory does not draw the package's
     * full load power). */
    double p = hw->idle_w + (hw->load_w - hw->idle_w) *
               (discrete ? td / t_tok : edev->soc_mem_power + (1 - edev->soc_mem_power) * busy);
    if (discrete && host && th > 0) p += host->idle_w + (host->load_w - host->idle_w) * th / t_tok;
    out->power_w = hw->load_w > 0 ? p : NAN;
    out->tokens_per_joule = hw->load_w > 0 ? out->tg_ts / p : NAN;
    return 0;
}
