/* Tokenizers: SentencePiece-style (GGUF "llama") and byte-level BPE ("gpt2").
 *
 * Both follow llama.cpp's behaviour so token ids match the reference engine:
 * SPM merges the highest-scoring adjacent pair (ties to the leftmost) and falls
 * back to <0xNN> byte tokens; BPE merges the lowest-ranked pair after a
 * GPT-2-style pre-tokenization. Everything the tokenizer needs is copied out
 * of the GGUF file, so the file may be closed afterwards. */
#ifndef SD_TEXT_TOKENIZER_H
#define SD_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "showdown.h"
#include "gguf/gguf.h"

/* GGUF tokenizer.ggml.token_type values. */
enum {
    SD_TOKTYPE_NORMAL = 1, SD_TOKTYPE_UNKNOWN = 2, SD_TOKTYPE_CONTROL = 3,
    SD_TOKTYPE_USER_DEFINED = 4, SD_TOKTYPE_UNUSED = 5, SD_TOKTYPE_BYTE = 6
};

typedef enum { SD_TOK_SPM = 0, SD_TOK_BPE = 1 } sd_tok_kind;

#define SD_MAX_EOG 16

/* Which pre-tokenizer rule a BPE vocabulary expects (tokenizer.ggml.pre,
 * by the reference engine's names: sd_pretok_by_name); see
 * tokenizer_pretok.c for what each does. */
typedef enum {
    SD_PRE_GPT2 = 0,     /* gpt-2 (and mpt, olmo, jais, phi-2, ...) */
    SD_PRE_LLAMA3 = 1,   /* llama-bpe, llama3, smaug-bpe, dbrx, falcon3 */
    SD_PRE_QWEN2 = 2,    /* qwen2, stablelm2, deepseek-r1-qwen, megrez */
    SD_PRE_SMOLLM = 3,   /* smollm, starcoder, refact, command-r, ...: each digit alone, then GPT-2 */
    SD_PRE_DEFAULT = 4,  /* default (and a missing tokenizer.ggml.pre): punctuation runs, GPT-2,
                            number runs, then three ASCII digits at a time */
    SD_PRE_COUNT
} sd_pretok_kind;

/* The rule for a tokenizer.ggml.pre name: 1 known (*kind, *ignore_merges set:
 * whether a whole word found in the vocabulary skips the merges, as the
 * reference engine does for Llama 3), 0 unknown. */
int sd_pretok_by_name(const char *name, size_t len, sd_pretok_kind *kind, int *ignore_merges);
const char *sd_pretok_name(sd_pretok_kind kind);

/* Open-addressing map from a byte string to an int32 (token id or merge rank).
 * Keys point into memory the tokenizer owns. */
typedef struct {
    const char **key;
    uint32_t *key_len;
    int32_t *val;
    uint32_t cap;  /* power of two, at least twice the entries */
} sd_strmap;

struct sd_tokenizer {
    sd_tok_kind kind;
    sd_pretok_kind pre;
    int n_vocab;
    char *text;                 /* all token texts, each NUL-terminated */
    uint32_t *text_off, *text_len;
    float *score;
    int32_t *type;
    char *piece;                /* decoded output text of each token */
    uint32_t *piece_off, *piece_len;
    sd_strmap vocab;            /* token text -> id (last duplicate wins, as llama.cpp) */
    char *merge_text;           /* BPE: "left right" strings */
    sd_strmap merges;           /* "left right" -> rank (first duplicate wins) */
    int32_t byte_token[256];    /* token for a raw byte (SPM: <0xNN>, BPE: its mapped char); -1 none */
    int32_t *special;           /* ids of user-defined, control and unknown tokens with text,
                                   longest text first (the split of sd_tokenize) */
    int n_special, n_user_defined;
    int bos, eos, unk;          /* -1: none */
    int eog[SD_MAX_EOG];        /* end-of-generation ids (sd_token_is_eog) */
    int n_eog;
    int add_bos, add_eos, add_space_prefix, ignore_merges;
    int max_token_len;
    char warning[160];          /* what loading replaced or guessed (sd_tokenizer_warning); "" none */
};

int sd_tokenizer_from_gguf(const gguf_file *f, sd_tokenizer **out, char *err);
void sd_tokenizer_free(sd_tokenizer *t);

/* Loading's last steps (tokenizer_special.c): the list of tokens the text is
 * split at (-1 out of memory), and the end-of-generation ids from EOS, the
 * EOT/EOM ids (-1: none) and the end-of-turn tokens found by name. */
int sd_tokenizer_build_special(sd_tokenizer *t);
void sd_tokenizer_find_eog(sd_tokenizer *t, int eot, int eom);

/* ---- shared by the tokenizer files ------------------------------------- */

int sd_strmap_init(sd_strmap *m, uint32_t n_entries);
void sd_strmap_free(sd_strmap *m);
/* keep_first: a duplicate key keeps the first value instead of the last. */
void sd_strmap_put(sd_strmap *m, const char *key, uint32_t len, int32_t val, int keep_first);
int32_t sd_strmap_get(const sd_strmap *m, const char *key, size_t len); /* -1 absent */

/* Length of the UTF-8 sequence a lead byte announces (llama.cpp's table:
 * stray continuation bytes count as 1). Never more than `left`. */
size_t sd_utf8_len(uint8_t lead, size_t left);

/* Growable token list used while tokenizing. */
typedef struct { int32_t *v; int n, cap; } sd_toklist;
int sd_toklist_push(sd_toklist *l, int32_t id);

/* Tokenize one stretch of raw text (no special tokens inside). -1 only on
 * allocation failure. */
int sd_spm_encode(const sd_tokenizer *t, const char *text, size_t len, int space_prefix, sd_toklist *out);
int sd_bpe_encode(const sd_tokenizer *t, const char *text, size_t len, sd_toklist *out);

/* GPT-2 byte <-> unicode mapping: the UTF-8 text (1-2 bytes) of byte b. */
size_t sd_bpe_byte_to_utf8(uint8_t b, char out[4]);
/* Decodes a mapped token text back to raw bytes; returns the byte count
 * (<= len). Characters outside the mapping are copied unchanged. */
size_t sd_bpe_unmap(const char *s, size_t len, char *out);

/* Splits text into pre-tokenizer words: calls fn(text+off, n, ctx) for each;
 * a non-zero return stops and is returned. */
typedef int (*sd_word_fn)(const char *w, size_t n, void *ctx);
int sd_pretokenize(sd_pretok_kind kind, const char *text, size_t len, sd_word_fn fn, void *ctx);

#endif
