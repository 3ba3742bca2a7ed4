/* `showdown synth`: a random-weight model with the exact shape of a real one,
 * written as a GGUF file other engines load (llama.cpp's key and tensor
 * names). Weights are generated row by row while the file is written, each
 * row from its own seeded stream, so the bytes depend only on the seed and
 * shape (not on threads) and a 70B file needs no more memory than a 1B one.
 * Quantized matrices are assembled from a pool of blocks quantized once per
 * (format, sigma) — same distribution, written at disk speed instead of the
 * hours a real quantizer would spend on 70B random numbers. */
#ifndef SD_MODEL_SYNTH_H
#define SD_MODEL_SYNTH_H

#include <stdint.h>

#include "gguf/gguf_write.h"
#include "quant/quantize.h"

typedef struct {
    char name[32];            /* preset name, or "custom" */
    char arch[16];            /* llama, qwen2 (Q/K/V biases), qwen3 (per-head Q/K norms), qwen3moe, gpt-oss,
                                 qwen3next */
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
    float rope_base, norm_eps;
    float rope_llama3_factor; /* > 0: Llama 3.1 rope scaling, written as rope_freqs.weight */
    int tied;                 /* no output.weight: the output reuses token_embd */
    const char *what;         /* the real model this shape is taken from */
    int n_expert, n_expert_used, n_ff_exp;   /* mixture of experts (0: dense): 3-D expert tensors
                                                ffn_{gate,up,down}_exps and the router ffn_gate_inp */
    /* qwen3next (0 elsewhere): shared expert size, DeltaNet convolution taps,
     * key head size (= value head size), key heads, value heads, rotated
     * values per head, one attention layer in every attn_interval */
    int n_ff_shexp, ssm_conv, ssm_state, ssm_groups, ssm_heads, n_rot, attn_interval;
} sd_synth_shape;

/* ---- presets (synth_presets.c) ---------------------------------------------- */

int sd_synth_n_presets(void);
const sd_synth_shape *sd_synth_preset_at(int i);
const sd_synth_shape *sd_synth_preset(const char *name);   /* NULL if unknown */
/* Switches a shape to another architecture: adds what it needs (qwen3: an
 * explicit head size; qwen: NEOX rope base). -1 if arch is unknown. */
int sd_synth_set_arch(sd_synth_shape *s, const char *arch);
/* Checks a (possibly user-edited) shape: 0, or -1 with a message. */
int sd_synth_check(const sd_synth_shape *s, char *err);
uint64_t sd_synth_n_params(const sd_synth_shape *s);

/* ---- writing (synth.c) ------------------------------------------------ */

typedef struct {
    sd_synth_shape shape;
    const char *type;         /* format or recipe name ("F16", "q4_k_m"); NULL: F16 */
    uint64_t seed;
    const char *vocab_path;   /* copy tokenizer.* from this GGUF (its size wins); NULL: synthesize */
    int n_threads;            /* 0: every CPU */
    int header_only;          /* right size and header, data left as a sparse hole */
    gguf_progress_fn progress;
    void *progress_ctx;
    sd_note_fn note;          /* row-length fallbacks */
    void *note_ctx;
} sd_synth_params;

sd_synth_params sd_synth_default_params(void);
/* 0, or -1 with a message; nothing is left under path on failure. */
int sd_synth_write(const sd_synth_params *p, const char *path, char *err);

/* ---- vocabulary (synth_vocab.c) --------------------------------------- */

/* Adds a byte-level BPE ("gpt2") vocabulary of exactly n_vocab tokens: the
 * 256 byte tokens, merges of frequent characters, then BOS and EOS. */
int sd_synth_vocab(gguf_writer *w, int n_vocab, char *err);
/* Copies every tokenizer.* key of a GGUF file; *n_vocab: its token count. */
int sd_synth_copy_vocab(gguf_writer *w, const char *path, int *n_vocab, char *err);

#endif
