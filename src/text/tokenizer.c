/* Building a tokenizer from GGUF metadata (every field checked) and the
 * output text of each token. Tokenizing is in tokenizer_special.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

#define MAX_VOCAB (1 << 24)

static int tok_fail(char *err, const gguf_file *f, const char *fmt, ...)
{
    if (err) {
        int n = snprintf(err, SD_ERR_LEN, "%s: ", f->path[0] ? f->path : "(gguf)");
        va_list ap;
        va_start(ap, fmt);
        if (n >= 0 && n < SD_ERR_LEN) vsnprintf(err + n, SD_ERR_LEN - (size_t)n, fmt, ap);
        va_end(ap);
        gguf_msg_clean(err);   /* the file's own strings may hold newlines */
    }
    return -1;
}

/* Array metadata of one element type: 1 found, 0 absent, -1 wrong type. */
static int get_array(const gguf_file *f, const char *key, uint32_t type, const gguf_kv **out, char *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    *out = NULL;
    if (!kv) return 0;
    if (kv->type != GGUF_ARRAY || kv->arr_type != type)
        return tok_fail(err, f, "metadata %s must be an array of %s", key, gguf_vtype_name(type));
    *out = kv;
    return 1;
}

/* A token id: 1 set (-1 for the "none" values 0xFFFFFFFF / -1), 0 absent, -1 bad. */
static int get_token_id(const gguf_file *f, const char *key, int n_vocab, int *out, char *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    int64_t v;
    switch (kv->type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64:
        v = kv->v.u == UINT32_MAX || kv->v.u == UINT64_MAX ? -1 : kv->v.u > INT64_MAX ? INT64_MAX : (int64_t)kv->v.u;
        break;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        v = kv->v.i;
        break;
    default:
        return tok_fail(err, f, "metadata %s must be an integer", key);
    }
    if (v < -1 || v >= n_vocab)
        return tok_fail(err, f, "metadata %s = %lld is not a token id (vocabulary has %d)", key, (long long)v, n_vocab);
    *out = (int)v;
    return 1;
}

static int get_bool(const gguf_file *f, const char *key, int *out, char *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_BOOL) return tok_fail(err, f, "metadata %s must be a bool", key);
    *out = kv->v.u != 0;
    return 1;
}

void sd_tokenizer_free(sd_tokenizer *t)
{
    if (!t) return;
    free(t->text);
    free(t->text_off);
    free(t->text_len);
    free(t->score);
    free(t->type);
    free(t->piece);
    free(t->piece_off);
    free(t->piece_len);
    sd_strmap_free(&t->vocab);
    free(t->merge_text);
    sd_strmap_free(&t->merges);
    free(t->special);
    free(t);
}

/* Copies the token texts into one owned buffer and indexes them. */
static int load_texts(sd_tokenizer *t, const gguf_kv *tokens, const gguf_file *f, char *err)
{
    size_t total = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        uint64_t n = tokens->arr_str[i].len;
        if (n > (1u << 20)) return tok_fail(err, f, "token %d is %llu bytes long", i, (unsigned long long)n);
        total += n + 1;
        if ((int)n > t->max_token_len) t->max_token_len = (int)n;
    }
    t->text = malloc(total ? total : 1);
    t->text_off = malloc((size_t)t->n_vocab * sizeof *t->text_off);
    t->text_len = malloc((size_t)t->n_vocab * sizeof *t->text_len);
    if (!t->text || !t->text_off || !t->text_len || sd_strmap_init(&t->vocab, (uint32_t)t->n_vocab))
        return tok_fail(err, f, "out of memory for %d tokens", t->n_vocab);
    size_t off = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        gguf_str s = tokens->arr_str[i];
        if (s.len) memcpy(t->text + off, s.ptr, s.len);
        t->text[off + s.len] = 0;
        t->text_off[i] = (uint32_t)off;
        t->text_len[i] = (uint32_t)s.len;
        sd_strmap_put(&t->vocab, t->text + off, (uint32_t)s.len, i, 0);
        off += s.len + 1;
    }
    if (total > UINT32_MAX) return tok_fail(err, f, "token texts too large");
    return 0;
}

static int load_scores_types(sd_tokenizer *t, const gguf_file *f, char *err)
{
    const gguf_kv *scores, *types;
    int r = get_array(f, "tokenizer.ggml.scores", GGUF_FLOAT32, &scores, err);
    if (r < 0) return -1;
    if (!r && t->kind == SD_TOK_SPM)
        return tok_fail(err, f, "SentencePiece vocabulary has no tokenizer.ggml.scores");
    if (r && scores->arr_n != (uint64_t)t->n_vocab)
        return tok_fail(err, f, "tokenizer.ggml.scores has %llu entries, tokens has %d",
                        (unsigned long long)scores->arr_n, t->n_vocab);
    if ((r = get_array(f, "tokenizer.ggml.token_type", GGUF_INT32, &types, err)) < 0) return -1;
    if (r && types->arr_n != (uint64_t)t->n_vocab)
        return tok_fail(err, f, "tokenizer.ggml.token_type has %llu entries, tokens has %d",
                        (unsigned long long)types->arr_n, t->n_vocab);
    t->score = calloc((size_t)t->n_vocab, sizeof *t->score);
    t->type = malloc((size_t)t->n_vocab * sizeof *t->type);
    if (!t->score || !t->type) return tok_fail(err, f, "out of memory for %d tokens", t->n_vocab);
    for (int i = 0; i < t->n_vocab; i++) {
        if (scores) memcpy(&t->score[i], scores->arr_data + 4 * (size_t)i, 4);
        int32_t ty = SD_TOKTYPE_NORMAL;
        if (types) memcpy(&ty, types->arr_data + 4 * (size_t)i, 4);
        if (ty < 0 || ty > SD_TOKTYPE_BYTE)
            return tok_fail(err, f, "token %d has unknown token_type %d", i, (int)ty);
        t->type[i] = ty ? ty : SD_TOKTYPE_NORMAL;  /* 0 "undefined": treat as normal */
    }
    return 0;
}

static int load_merges(sd_tokenizer *t, const gguf_file *f, char *err)
{
    const gguf_kv *m;
    int r = get_array(f, "tokenizer.ggml.merges", GGUF_STRING, &m, err);
    if (r < 0) return -1;
    if (!r) return tok_fail(err, f, "byte-level BPE vocabulary has no tokenizer.ggml.merges");
    if (m->arr_n > MAX_VOCAB) return tok_fail(err, f, "tokenizer.ggml.merges has too many entries");
    size_t total = 0;
    for (uint64_t i = 0; i < m->arr_n; i++) {
        if (m->arr_str[i].len > (1u << 20)) return tok_fail(err, f, "merge %llu is too long", (unsigned long long)i);
        total += m->arr_str[i].len + 1;
    }
    t->merge_text = malloc(total ? total : 1);
    if (!t->merge_text || sd_strmap_init(&t->merges, (uint32_t)m->arr_n))
        return tok_fail(err, f, "out of memory for %llu merges", (unsigned long long)m->arr_n);
    size_t off = 0;
    for (uint64_t i = 0; i < m->arr_n; i++) {
        gguf_str s = m->arr_str[i];
        /* "left right": the separator is the first space after the first byte */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp || sp + 1 == s.ptr + s.len)
            return tok_fail(err, f, "merge %llu is not of the form \"left right\"", (unsigned long long)i);
        memcpy(t->merge_text + off, s.ptr, s.len);
        t->merge_text[off + s.len] = 0;
        sd_strmap_put(&t->merges, t->merge_text + off, (uint32_t)s.len, (int32_t)i, 1);
        off += s.len + 1;
    }
    return 0;
}

/* Decoded output text of token i, written at dst (room for text_len + 3 bytes). */
static size_t decode_token(const sd_tokenizer *t, int i, char *dst)
{
    const char *s = t->text + t->text_off[i];
    size_t n = t->text_len[i], o = 0;
    switch (t->type[i]) {
    case SD_TOKTYPE_CONTROL: case SD_TOKTYPE_UNUSED:
        return 0;
    case SD_TOKTYPE_UNKNOWN:  /* llama.cpp shows unknown tokens as U+2585 */
        if (t->kind == SD_TOK_BPE) break;
        memcpy(dst, "\xe2\x96\x85", 3);
        return 3;
    case SD_TOKTYPE_BYTE: {
        unsigned v;
        char tail;
        if (n == 6 && sscanf(s, "<0x%2x%c", &v, &tail) == 2 && tail == '>') { dst[0] = (char)v; return 1; }
        break;
    }
    case SD_TOKTYPE_USER_DEFINED:
        if (t->kind == SD_TOK_BPE) { memcpy(dst, s, n); return n; }
        break;
    }
    if (t->kind == SD_TOK_BPE) return sd_bpe_unmap(s, n, dst);
    for (size_t k = 0; k < n; k++) {  /* SPM: "▁" -> " " */
        if (k + 2 < n && !memcmp(s + k, "\xe2\x96\x81", 3)) { dst[o++] = ' '; k += 2; }
        else dst[o++] = s[k];
    }
    return o;
}

static int build_pieces(sd_tokenizer *t, const gguf_file *f, char *err)
{
    size_t total = 0;
    for (int i = 0; i < t->n_vocab; i++) total += t->text_len[i] + 4;
    t->piece = malloc(total);
    t->piece_off = malloc((size_t)t->n_vocab * sizeof *t->piece_off);
    t->piece_len = malloc((size_t)t->n_vocab * sizeof *t->piece_len);
    if (!t->piece || !t->piece_off || !t->piece_len) return tok_fail(err, f, "out of memory for token pieces");
    size_t off = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        size_t n = decode_token(t, i, t->piece + off);
        t->piece[off + n] = 0;
        t->piece_off[i] = (uint32_t)off;
        t->piece_len[i] = (uint32_t)n;
        off += n + 1;
    }
    return 0;
}

static void build_byte_tokens(sd_tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        char buf[8];
        int32_t id;
        if (t->kind == SD_TOK_SPM) {
            snprintf(buf, sizeof buf, "<0x%02X>", b);
            id = sd_strmap_get(&t->vocab, buf, 6);
            if (id < 0) { buf[0] = (char)b; id = sd_strmap_get(&t->vocab, buf, 1); }
        } else {
            id = sd_strmap_get(&t->vocab, buf, sd_bpe_byte_to_utf8((uint8_t)b, buf));
        }
        t->byte_token[b] = id >= 0 ? id : t->unk;
    }
}

static int load_special_ids(sd_tokenizer *t, const gguf_file *f, char *err)
{
    /* llama.cpp's defaults for SentencePiece vocabularies: unk 0, bos 1, eos 2 */
    int spm = t->kind == SD_TOK_SPM;
    t->unk = spm ? 0 : -1;
    t->bos = spm && t->n_vocab > 1 ? 1 : -1;
    t->eos = spm && t->n_vocab > 2 ? 2 : -1;
    int eot = -1, eom = -1;
    if (get_token_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err) < 0 ||
        get_token_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err) < 0 ||
        get_token_id(f, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err) < 0 ||
        get_token_id(f, "tokenizer.ggml.eot_token_id", t->n_vocab, &eot, err) < 0 ||
        get_token_id(f, "tokenizer.ggml.eom_token_id", t->n_vocab, &eom, err) < 0)
        return -1;
    t->add_bos = spm || (t->kind == SD_TOK_BPE && t->pre == SD_PRE_LLAMA3 && t->ignore_merges);
    t->add_space_prefix = spm;
    if (get_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err) < 0 ||
        get_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos, err) < 0 ||
        get_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err) < 0)
        return -1;
    sd_tokenizer_find_eog(t, eot, eom);
    return 0;
}

static int load_kind(sd_tokenizer *t, const gguf_file *f, char *err)
{
    gguf_str model, pre;
    int r = gguf_get_str(f, "tokenizer.ggml.model", &model, err);
    if (r < 0) return -1;
    if (r == 0) return tok_fail(err, f, "no tokenizer.ggml.model (the file has no vocabulary)");
    if (gguf_str_eq(model, "llama")) t->kind = SD_TOK_SPM;
    else if (gguf_str_eq(model, "gpt2")) t->kind = SD_TOK_BPE;
    else
        return tok_fail(err, f, "unsupported tokenizer.ggml.model '%.*s' (supported: llama, gpt2)",
                        (int)(model.len > 40 ? 40 : model.len), model.ptr);
    if ((r = gguf_get_str(f, "tokenizer.ggml.pre", &pre, err)) < 0) return -1;
    /* SentencePiece vocabularies have no pre-tokenizer: the name is unused. */
    if (t->kind != SD_TOK_BPE) return 0;
    if (!r) {
        t->pre = SD_PRE_DEFAULT;   /* the reference engine's choice for a missing name */
        snprintf(t->warning, sizeof t->warning, "no tokenizer.ggml.pre in the file: using the 'default' pre-tokenizer");
    } else if (!sd_pretok_by_name(pre.ptr, pre.len, &t->pre, &t->ignore_merges)) {
        t->pre = SD_PRE_GPT2;
        snprintf(t->warning, sizeof t->warning, "unknown pre-tokenizer '%.*s': using the gpt-2 rule instead",
                 (int)(pre.len > 40 ? 40 : pre.len), pre.ptr);
        gguf_msg_clean(t->warning);
    }
    return 0;
}

int sd_tokenizer_from_gguf(const gguf_file *f, sd_tokenizer **out, char *err)
{
    *out = NULL;
    sd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return tok_fail(err, f, "out of memory");
    const gguf_kv *tokens;
    int r;
    if (load_kind(t, f, err)) goto fail;
    if ((r = get_array(f, "tokenizer.ggml.tokens", GGUF_STRING, &tokens, err)) < 0) goto fail;
    if (!r) { tok_fail(err, f, "no tokenizer.ggml.tokens"); goto fail; }
    if (tokens->arr_n == 0 || tokens->arr_n > MAX_VOCAB) {
        tok_fail(err, f, "tokenizer.ggml.tokens has %llu entries", (unsigned long long)tokens->arr_n);
        goto fail;
    }
    t->n_vocab = (int)tokens->arr_n;
    if (load_texts(t, tokens, f, err) || load_scores_types(t, f, err) || load_special_ids(t, f, err) ||
        (t->kind == SD_TOK_BPE && load_merges(t, f, err)) || build_pieces(t, f, err))
        goto fail;
    if (sd_tokenizer_build_special(t)) { tok_fail(err, f, "out of memory"); goto fail; }
    build_byte_tokens(t);
    *out = t;
    return 0;
fail:
    sd_tokenizer_free(t);
    return -1;
}

const char *sd_token_piece(const sd_tokenizer *t, int32_t id, size_t *len)
{
    if (!t || id < 0 || id >= t->n_vocab) { if (len) *len = 0; return ""; }
    if (len) *len = t->piece_len[id];
    return t->piece + t->piece_off[id];
}

int sd_token_bos(const sd_tokenizer *t) { return t->bos; }
int sd_token_eos(const sd_tokenizer *t) { return t->eos; }
int sd_tokenizer_n_vocab(const sd_tokenizer *t) { return t->n_vocab; }
const char *sd_tokenizer_warning(const sd_tokenizer *t) { return t && t->warning[0] ? t->warning : NULL; }
