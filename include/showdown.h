/* showdown: run GGUF language models on the CPU and measure how they run.
 *
 * The one public header. Every fallible call returns 0 on success or -1 on
 * failure and leaves a one-line, human-readable message (naming the file where
 * there is one) in the caller's `err` buffer of SD_ERR_LEN bytes. The library
 * never calls exit() and never prints. */
#ifndef SHOWDOWN_H
#define SHOWDOWN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SD_ERR_LEN 512

typedef struct sd_model sd_model;
typedef struct sd_session sd_session;
typedef struct sd_tokenizer sd_tokenizer;
typedef struct sd_sampler sd_sampler;

/* ---- model ------------------------------------------------------------ */

typedef enum {
    SD_ARCH_LLAMA = 0, SD_ARCH_QWEN2 = 1, SD_ARCH_QWEN3 = 2, SD_ARCH_GEMMA3 = 3, SD_ARCH_QWEN3MOE = 4, SD_ARCH_GPTOSS = 5,
    SD_ARCH_QWEN3NEXT = 6
} sd_arch;

typedef struct {
    sd_arch arch;
    char arch_name[32];
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim;
    int n_ctx_train;
    float norm_eps, rope_base, rope_scale; /* rope_scale: linear factor (1 = none) */
    int rope_neox;                          /* 1: rotate halves (qwen), 0: pairs (llama) */
    int n_expert, n_expert_used, n_ff_exp;  /* mixture of experts (0 when dense): routed experts,
                                               experts per token, rows of one expert's FFN */
} sd_hparams;

/* Maps the file, validates it, builds the tokenizer. Weights stay mapped. */
int sd_model_load(const char *path, sd_model **out, char *err);
void sd_model_free(sd_model *m);
const sd_hparams *sd_model_hparams(const sd_model *m);
sd_tokenizer *sd_model_tokenizer(sd_model *m);
uint64_t sd_model_n_params(const sd_model *m);
uint64_t sd_model_weight_bytes(const sd_model *m);  /* bytes of tensor data */
const char *sd_model_path(const sd_model *m);
/* The file's tokenizer.chat_template (Jinja text), or NULL when it has none. */
const char *sd_model_chat_template(const sd_model *m);
/* Short description of the dominant weight format, e.g. "Q4_0" or "Q4_K - mixed". */
const char *sd_model_type_name(const sd_model *m);

/* ---- inference session: KV cache, scratch, thread pool ----------------- */

typedef enum { SD_KV_F32 = 0, SD_KV_F16 = 1, SD_KV_Q8_0 = 8 } sd_kv_type;

typedef struct {
    int n_ctx;        /* 0: min(model's training context, 4096) */
    int n_threads;    /* 0: number of online CPUs */
    sd_kv_type kv_type;
} sd_session_params;

sd_session_params sd_session_default_params(void);
int sd_session_new(sd_model *m, const sd_session_params *p, sd_session **out, char *err);
void sd_session_free(sd_session *s);
/* Evaluates n tokens at the current position (appending to the KV cache).
 * logits_all: NULL, or room for n * n_vocab floats receiving every row.
 * The last row is always available from sd_session_logits afterwards. */
int sd_session_eval(sd_session *s, const int32_t *tokens, int n, float *logits_all, char *err);
const float *sd_session_logits(const sd_session *s);
int sd_session_pos(const sd_session *s);
void sd_session_reset(sd_session *s);               /* forget the context */
int sd_session_n_ctx(const sd_session *s);

/* ---- GPU offload ------------------------------------------------------ */

#define SD_NGL_AUTO (-1)   /* as many layers as fit the device's free memory */

typedef struct {
    int n_gpu_layers;   /* layers on the GPU, counted from the last (llama.cpp's -ngl); more than
                           the model's layers also puts the output head there; 0: none */
    int device;         /* index as `showdown devices` lists them */
    int n_ctx;          /* the context sessions will use (0: sd_session_new's default), for the fit check */
    sd_kv_type kv_type;
    void (*progress)(void *ctx, uint64_t done, uint64_t total);   /* upload progress, or NULL */
    void *progress_ctx;
} sd_offload_params;

/* Places the last layers (and the output head) on a GPU, uploads their
 * weights and drops the CPU copies. Without a usable device or for a model
 * the GPU kernels do not cover it returns 0 and leaves everything on the
 * CPU, saying why in sd_model_placement. -1: a bad device index, a model
 * that does not fit (bytes needed and free named, nothing uploaded), or a
 * failed upload. Call before creating sessions. */
int sd_model_offload(sd_model *m, const sd_offload_params *p, char *err);
/* What runs where, one line: "vulkan: layers 0-31 on <device>, output on
 * GPU", or the reason everything runs on the CPU ("" if never asked). */
const char *sd_model_placement(const sd_model *m);
const char *sd_model_backend(const sd_model *m);      /* "vulkan" or "cpu" */
int sd_model_gpu_layers(const sd_model *m);           /* layers placed on the GPU */
const char *sd_model_gpu_device(const sd_model *m);   /* its name, "" when none */

/* ---- tokenizer --------------------------------------------------------- */

int sd_tokenize(const sd_tokenizer *t, const char *text, size_t len, int add_bos,
                int32_t **out, int *n_out, char *err);  /* *out: malloc'd, caller frees */
/* As sd_tokenize, and the vocabulary's control tokens written in the text
 * ("<|im_start|>", "<start_of_turn>") become their ids, as the reference
 * engine's parse_special does: for chat templates, not for untrusted text. */
int sd_tokenize_special(const sd_tokenizer *t, const char *text, size_t len, int add_bos,
                        int32_t **out, int *n_out, char *err);
/* Text of one token as it appears in output (byte tokens decoded, "▁" -> " "). */
const char *sd_token_piece(const sd_tokenizer *t, int32_t id, size_t *len);
int sd_token_bos(const sd_tokenizer *t);
int sd_token_eos(const sd_tokenizer *t);
/* Whether id ends a generation: EOS, or an end-of-turn token of the
 * vocabulary (EOT, "<|im_end|>", "<end_of_turn>", "<|eot_id|>", ...). */
int sd_token_is_eog(const sd_tokenizer *t, int32_t id);
int sd_tokenizer_n_vocab(const sd_tokenizer *t);
/* What loading the vocabulary had to guess (an unknown or missing
 * pre-tokenizer name and the rule used instead), one line; NULL when
 * nothing. The library never prints: callers show it. */
const char *sd_tokenizer_warning(const sd_tokenizer *t);

/* ---- sampler ----------------------------------------------------------- */

typedef struct {
    float temp;       /* <= 0: greedy */
    int top_k;        /* <= 0: off */
    float top_p;      /* >= 1: off */
    float min_p;      /* <= 0: off */
    uint64_t seed;
} sd_sampler_params;

sd_sampler_params sd_sampler_default_params(void);
sd_sampler *sd_sampler_new(const sd_sampler_params *p, int n_vocab);
void sd_sampler_free(sd_sampler *s);
int32_t sd_sample(sd_sampler *s, const float *logits);

/* ---- misc -------------------------------------------------------------- */

double sd_time_ms(void);          /* monotonic clock */
const char *sd_version(void);
const char *sd_kernel_isa(void);  /* "avx512", "avx2", "neon", "generic" */

#ifdef __cplusplus
}
#endif
#endif
