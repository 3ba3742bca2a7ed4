/* `showdown plan`: will this model fit this machine, in which format, how fast,
 * how efficient? Arithmetic on paper (a roofline with explicit efficiency
 * factors, docs/PLANNER.md) for hardware the program cannot touch.
 *
 * Units: memory capacities in GiB (2^30, as VRAM is sold), bandwidths in GB/s
 * (1e9, as vendors quote them), model sizes in bytes, throughputs in
 * dense TFLOPS / TOPS, power in W. */
#ifndef SD_PLAN_H
#define SD_PLAN_H

#include <stddef.h>
#include <stdint.h>

/* ---- hardware profiles (hardware.c, data/hardware.tsv) ------------------ */

typedef enum { SD_HW_GPU = 0, SD_HW_SOC = 1, SD_HW_CPU = 2 } sd_hw_kind;

typedef struct {
    char id[40];
    char name[96];
    int kind;                 /* sd_hw_kind: discrete GPU, unified-memory SoC, CPU */
    char family[16];          /* cuda, metal, vulkan, cpu: picks the efficiency factors */
    double mem_gib;           /* installed capacity */
    double usable_gib;        /* what weights + KV + buffers may take */
    double bw_gbps;           /* peak memory bandwidth */
    char link[24];            /* "pcie4x16", "unified", "-" */
    double link_gbps;         /* host link, one direction (0 for unified / none) */
    double tflops_f16;        /* dense F16/BF16 (tensor cores, FP32 accumulate where it differs) */
    double tops_int8, tflops_fp8, tflops_fp4;   /* dense; 0 where the hardware has none */
    double load_w, idle_w;    /* typical power under inference load, and idle */
    int cores;
    char isa[48];
    char host[40];            /* default host id for a discrete GPU's offloaded layers */
    char source[768];
    int count;                /* >1: N identical GPUs splitting layers ("2xrtx-4090") */
} sd_hw;

typedef struct {
    sd_hw *rows;
    int n;
} sd_hw_table;

/* Loads a hardware.tsv; every row must carry a source. */
int sd_hw_load(const char *path, sd_hw_table *t, char *err);
void sd_hw_free(sd_hw_table *t);
/* Where hardware.tsv is: $SHOWDOWN_HARDWARE, else data/hardware.tsv next to the
 * executable's ../, else ./data/hardware.tsv. Returns buf, or NULL if none exists. */
const char *sd_hw_default_path(char *buf, size_t n);
/* Finds an id ("rtx-4090", "2xrtx-4090"); on failure err lists the valid ids. */
int sd_hw_find(const sd_hw_table *t, const char *id, sd_hw *out, char *err);
/* Comma-separated list of the ids (for messages). */
void sd_hw_list(const sd_hw_table *t, char *buf, size_t n);
/* Host link bandwidth (GB/s, one direction) of "pcie4x16"-style names; 0 otherwise. */
double sd_link_gbps(const char *link);

/* The `this` profile from a calibrate profile: -1 with a message suggesting
 * `showdown calibrate` when none exists. threads <= 0: the best thread count. */
int sd_hw_this(const char *calib_path, int threads, sd_hw *out, char *err);

/* ---- model shapes (presets.c, shape_gguf.c) ----------------------------- */

typedef struct {
    char name[64];
    char arch[32];
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, tied;
    int n_ctx_train;
    int n_expert, n_expert_used, expert_ff, shared_ff;  /* MoE; 0 = dense */
    int attn_gate;            /* q projection doubled for an output gate (qwen3-next) */
    int qkv_bias, o_bias, qk_norm;
    int sliding_window, swa_every;   /* every swa_every-th layer is global; the rest slide */
    int full_attn_every;      /* hybrid linear attention: 1 = all layers attend fully */
    int lin_k_heads, lin_v_heads, lin_k_dim, lin_v_dim, lin_conv; /* gated delta-net */
    double published_params;  /* total from the model card/paper, for tests (0 if none) */
    const char *source;
} sd_model_shape;

/* Parameters split by what decode reads of them. */
typedef struct {
    double embd;              /* token embedding: one row per token, not streamed */
    double output;            /* LM head (0 when tied: then embd is read as the head) */
    double body;              /* per-layer weights outside the experts, all layers */
    double experts;           /* all routed experts, all layers */
    double total, active;     /* active = what one token touches (embedding excluded) */
} sd_params;

int sd_preset_count(void);
const sd_model_shape *sd_preset_at(int i);
/* On failure err lists the valid ids. */
const sd_model_shape *sd_preset_find(const char *id, char *err);
void sd_preset_list(char *buf, size_t n);
void sd_shape_params(const sd_model_shape *s, sd_params *p);

/* Shape, parameter split and actual weight bytes from a GGUF header only. */
typedef struct {
    sd_model_shape shape;
    sd_params params;
    double bytes_embd, bytes_output, bytes_body, bytes_experts;
    char file_type[48];       /* dominant weight type of the file, e.g. "Q4_K" */
} sd_gguf_model;
int sd_shape_from_gguf(const char *path, sd_gguf_model *out, char *err);

/* ---- formats (formats.c): a quant name -> bits per weight by tensor class */

typedef struct {
    char name[24];            /* "q4_k_m", "bf16", "file" */
    int quality;              /* higher = closer to the original weights */
    double bpw_body, bpw_experts, bpw_output, bpw_embd;
    const char *note;
} sd_recipe;

/* Mixed recipes (q4_k_m, q2_k, ...) or any single type in the format table. */
int sd_plan_recipe_find(const char *name, sd_recipe *out, char *err);
/* GPU ALU work to decode one weight in a matrix-vector product, in F16
 * FLOP-equivalents (unpacking, scaling and the multiply-add): what bounds
 * decode on GPUs without integer dot-product paths (Metal) when their
 * compute per byte is low. */
double sd_plan_recipe_decode_ops(const sd_recipe *r);
/* Bits per weight of one GGUF type (format table, then GGUF's block sizes). */
double sd_plan_type_bpw(int type);
/* Bytes per element of a KV-cache type name ("f16", "q8_0"); 0 if unknown. */
double sd_kv_type_bytes(const char *name);
/* Known recipes from highest quality to lowest (for "best that fits"). */
int sd_plan_recipe_ladder(sd_recipe *out, int max);

/* ---- cost of one model in one format (model_cost.c) --------------------- */

typedef struct {
    double weights_bytes;     /* everything in the file */
    double layer_bytes;       /* one repeating layer (body + its experts) */
    double output_bytes, embd_bytes;
    double read_bytes;        /* weights one decode step reads (active) */
    double layer_read_bytes;  /* of which per repeating layer */
    double expert_bytes;      /* all routed experts, stored */
    double expert_read_bytes; /* the routed experts one decode step reads, all layers */
    double kv_bytes;          /* whole cache at n_ctx */
    double kv_token_bytes;    /* one token's K+V over the layers that keep it all */
    double state_bytes;       /* fixed per-sequence state (linear-attention layers) */
    double compute_bytes;     /* compute buffers (activations, logits) */
    double graph_nodes;       /* ops in one decode step's graph, as llama.cpp builds it (sd_graph_nodes) */
    double total_bytes;
} sd_cost;

typedef struct {
    const sd_model_shape *shape;
    sd_params params;
    const sd_gguf_model *file;  /* non-NULL when the "file" recipe means its real bytes */
} sd_model_ref;

int sd_model_cost(const sd_model_ref *m, const sd_recipe *r, int n_ctx, double kv_elem_bytes,
                  int n_ubatch, sd_cost *out);
/* KV bytes over the whole cache at n_ctx (sliding-window layers keep only their window). */
double sd_kv_bytes(const sd_model_shape *s, int n_ctx, double kv_elem_bytes);
/* K+V bytes one decode step reads at depth d (tokens already in the cache). */
double sd_kv_read_bytes(const sd_model_shape *s, int depth, double kv_elem_bytes);
/* Ops (kernels) in one decode step's compute graph as llama.cpp builds it,
 * counted per layer kind from its graph builders: what a GPU launches one by
 * one when the graph is not replayed (model_cost.c lists the counts). */
double sd_graph_nodes(const sd_model_shape *s);
/* Attention FLOPs of one token at depth d (QK and AV over the full-attention layers). */
double sd_attn_flops(const sd_model_shape *s, int depth);

/* ---- prediction (predict.c) -------------------------------------------- */

typedef struct {
    int n_ctx;                /* context the memory is sized for */
    int n_prompt;             /* prompt tokens for TTFT; decode is measured after them */
    int n_gen;                /* generated tokens whose mean speed tg reports */
    int decode_depth;         /* tokens already in the cache when decode starts (-1: n_prompt) */
    int ngl;                  /* -1: best split; else layers on the GPU (n_layer+1 = all + output) */
    int kv_on_host;           /* llama.cpp -nkvo: KV cache (and attention) in host memory */
    int n_cpu_moe;            /* MoE on a discrete GPU: routed experts of this many layers in host RAM
                                 (llama.cpp --n-cpu-moe N; n_layer = -ot exps=CPU); -1: the fewest that
                                 let the rest fit, when that beats the layer split; 0: layer split only */
    int n_ubatch;             /* prefill batch (llama.cpp default 512) */
    double kv_elem_bytes;     /* 2 for f16 */
    int no_graph_replay;      /* CUDA engine without graph replay (llama.cpp before May 2024): every op is
                                 launched from the host each token */
} sd_plan_opts;

typedef struct {
    int fits;                 /* entirely on the device */
    int runs;                 /* fits, or splits with the rest in host memory */
    int n_gpu_layers;         /* llama.cpp -ngl meaning; n_layer+1 = everything */
    int n_layer;
    sd_cost cost;
    double device_bytes, host_bytes;
    double pp_ts, tg_ts, ttft_ms, tokens_per_joule, power_w;
    const char *limit;        /* bandwidth, compute, host link, capacity */
    const char *pp_limit;
    int n_cpu_moe;            /* the chosen placement keeps these layers' routed experts in host RAM */
    double tg_layer_split, tg_experts_on_host;   /* both placements' decode (NAN: not possible) */
    char note[160];
} sd_plan_result;

void sd_plan_default_opts(sd_plan_opts *o);
/* host: used for a discrete GPU's offloaded layers (NULL: model without one). */
int sd_plan_predict(const sd_model_ref *m, const sd_recipe *r, const sd_hw *hw, const sd_hw *host,
                    const sd_plan_opts *o, sd_plan_result *out, char *err);

/* The efficiency factors of one family (docs/PLANNER.md explains each). */
typedef struct {
    const char *family;
    double bw_eff;            /* achieved / peak bandwidth when streaming weights */
    double layer_ms;          /* fixed cost per layer per decode step (launch, sync) */
    double pp_eff_f16;        /* achieved / peak F16 for prefill with 16-bit weights */
    double pp_eff_quant;      /* achieved / peak for prefill with quantized weights */
    int quant_uses_int8;      /* quantized prefill runs on INT8 units (MMQ) */
    double crossing_ms;       /* one host<->device hand-over of activations */
    double soc_mem_power;     /* SoC decode: share of the dynamic power the memory system draws while
                                 streaming (the rest scales with the ALUs' busy share) */
    double node_gap_us;       /* without graph replay: GPU idle per op between host-launched kernels */
    double launch_us;         /* without graph replay: host time to launch one op (0: the family replays
                                 no graphs, its layer_ms already holds its dispatch cost) */
} sd_eff;
const sd_eff *sd_eff_for(const char *family);

/* ---- checks against published numbers (published.c) -------------------- */

typedef struct {
    char hardware[128], model[64], quant[24], source[160];
    char hw_id[40], host_id[40], preset[40], variant[64];
    double pub_pp, pub_tg, pred_pp, pred_tg;
    int ngl, kv_on_host, n_cpu_moe;
    int no_graph_replay;      /* measured with an engine that replayed no CUDA graphs (2023 rows) */
} sd_published_row;

/* Reads published-train.tsv and predicts every measurement in it (rows with
 * several values, like an -ngl sweep, become several entries). *out malloc'd. */
int sd_published_check(const char *tsv_path, const sd_hw_table *hw, sd_published_row **out, int *n,
                       char *err);

/* ---- bench JSONL comparison (bench_compare.c) --------------------------- */

typedef struct {
    char model_filename[512];
    int n_prompt, n_gen, n_threads, n_depth;   /* n_depth optional (0 when absent) */
    double avg_ts;
} sd_bench_row;

/* Reads the rows of `showdown bench -o jsonl` (fields model_filename, n_prompt,
 * n_gen, avg_ts, n_threads). *out malloc'd. */
int sd_bench_jsonl_read(const char *path, sd_bench_row **out, int *n, char *err);

#endif
