/* sd_tokenize: the text split at special tokens, BOS, then the SPM or BPE
 * encoder on each stretch between them, as the reference engine does
 * (tokenizer_st_partition): user-defined tokens are always matched in the
 * text, control and unknown ones only when asked (sd_tokenize_special), each
 * token in turn, longest text first. Also the end-of-generation set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

typedef struct { uint32_t len; int32_t id; } by_len;

static int longer_first(const void *a, const void *b)
{
    const by_len *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int is_special_type(int32_t ty)
{
    return ty == SD_TOKTYPE_USER_DEFINED || ty == SD_TOKTYPE_CONTROL || ty == SD_TOKTYPE_UNKNOWN;
}

int sd_tokenizer_build_special(sd_tokenizer *t)
{
    int n = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        n += is_special_type(t->type[i]) && t->text_len[i] > 0;
        t->n_user_defined += t->type[i] == SD_TOKTYPE_USER_DEFINED && t->text_len[i] > 0;
    }
    if (!n) return 0;
    by_len *tmp = malloc((size_t)n * sizeof *tmp);
    t->special = malloc((size_t)n * sizeof *t->special);
    if (!tmp || !t->special) { free(tmp); return -1; }
    int k = 0;
    for (int i = 0; i < t->n_vocab; i++)
        if (is_special_type(t->type[i]) && t->text_len[i] > 0) tmp[k++] = (by_len){t->text_len[i], i};
    qsort(tmp, (size_t)n, sizeof *tmp, longer_first);
    for (int i = 0; i < n; i++) t->special[i] = tmp[i].id;
    t->n_special = n;
    free(tmp);
    return 0;
}

/* The reference engine ends a generation at these texts whatever their type. */
static const char *const eog_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<|return|>",
                                        "<|call|>"};

static void add_eog(sd_tokenizer *t, int id)
{
    if (id < 0 || t->n_eog == SD_MAX_EOG) return;
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return;
    t->eog[t->n_eog++] = id;
}

void sd_tokenizer_find_eog(sd_tokenizer *t, int eot, int eom)
{
    t->n_eog = 0;
    add_eog(t, t->eos);
    add_eog(t, eot);
    add_eog(t, eom);
    for (size_t i = 0; i < sizeof eog_names / sizeof eog_names[0]; i++)
        add_eog(t, sd_strmap_get(&t->vocab, eog_names[i], strlen(eog_names[i])));
}

int sd_token_is_eog(const sd_tokenizer *t, int32_t id)
{
    for (int i = 0; id >= 0 && i < t->n_eog; i++)
        if (t->eog[i] == id) return 1;
    return 0;
}

/* A stretch of the input: raw text, or one special token found in it. */
typedef struct { size_t off, len; int32_t id; } fragment;

typedef struct { fragment *v; int n, cap; } frag_list;

static int frag_push(frag_list *l, fragment f)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        fragment *g = realloc(l->v, (size_t)cap * sizeof *g);
        if (!g) return -1;
        l->v = g;
        l->cap = cap;
    }
    l->v[l->n++] = f;
    return 0;
}

/* Splits the raw fragments at every occurrence of each special token in
 * turn. A first-byte table skips the tokens whose first byte the text lacks
 * (Gemma has 6000 control tokens, nearly all "<unused...>"). */
static int split_special(const sd_tokenizer *t, const char *text, size_t len, int parse_special, frag_list *frags)
{
    uint8_t has[256] = {0};
    for (size_t i = 0; i < len; i++) has[(uint8_t)text[i]] = 1;
    frag_list next = {0};
    for (int u = 0; u < t->n_special; u++) {
        int32_t id = t->special[u];
        if (!parse_special && t->type[id] != SD_TOKTYPE_USER_DEFINED) continue;
        const char *tok = t->text + t->text_off[id];
        size_t tl = t->text_len[id];
        if (!has[(uint8_t)tok[0]] || tl > len) continue;
        next.n = 0;
        int hit_any = 0;
        for (int i = 0; i < frags->n; i++) {
            fragment fr = frags->v[i];
            for (;;) {
                const char *hit = fr.id < 0 ? memmem(text + fr.off, fr.len, tok, tl) : NULL;
                if (!hit) {
                    if (frag_push(&next, fr)) goto oom;
                    break;
                }
                hit_any = 1;
                size_t before = (size_t)(hit - (text + fr.off));
                if (before && frag_push(&next, (fragment){fr.off, before, -1})) goto oom;
                if (frag_push(&next, (fragment){fr.off + before, tl, id})) goto oom;
                fr.off += before + tl;
                fr.len -= before + tl;
                if (!fr.len) break;
            }
        }
        if (hit_any) { frag_list tmp = *frags; *frags = next; next = tmp; }
    }
    free(next.v);
    return 0;
oom:
    free(next.v);
    return -1;
}

/* add_bos asks for the special tokens the vocabulary wants around the text
 * (BOS when tokenizer.ggml.add_bos_token says so, which defaults to true for
 * SentencePiece and Llama 3 vocabularies; EOS when add_eos_token), as the
 * reference engine's add_special does. */
static int tokenize(const sd_tokenizer *t, const char *text, size_t len, int add_bos, int parse_special,
                    int32_t **out, int *n_out, char *err)
{
    *out = NULL;
    *n_out = 0;
    if (!text && len) { if (err) snprintf(err, SD_ERR_LEN, "tokenize: NULL text"); return -1; }
    if (len > (1u << 30)) { if (err) snprintf(err, SD_ERR_LEN, "tokenize: text of %zu bytes is too long", len); return -1; }
    sd_toklist l = {0};
    frag_list frags = {0};
    int is_prev_special = 1;
    if (sd_toklist_push(&l, 0)) goto oom;  /* ensures *out is never NULL */
    l.n = 0;
    if (len && frag_push(&frags, (fragment){0, len, -1})) goto oom;
    if (len && t->n_special && split_special(t, text, len, parse_special, &frags)) goto oom;
    if (add_bos && t->add_bos && t->bos >= 0 && sd_toklist_push(&l, t->bos)) goto oom;
    for (int i = 0; i < frags.n; i++) {
        const fragment *fr = &frags.v[i];
        int rc;
        if (fr->id >= 0) rc = sd_toklist_push(&l, fr->id);
        else if (t->kind == SD_TOK_SPM)
            rc = sd_spm_encode(t, text + fr->off, fr->len, t->add_space_prefix && is_prev_special, &l);
        else rc = sd_bpe_encode(t, text + fr->off, fr->len, &l);
        if (rc) goto oom;
        is_prev_special = fr->id >= 0;
    }
    if (add_bos && t->add_eos && t->eos >= 0 && sd_toklist_push(&l, t->eos)) goto oom;
    free(frags.v);
    *out = l.v;
    *n_out = l.n;
    return 0;
oom:
    free(frags.v);
    free(l.v);
    if (err) snprintf(err, SD_ERR_LEN, "tokenize: out of memory");
    return -1;
}

int sd_tokenize(const sd_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **out, int *n_out,
                char *err)
{
    return tokenize(t, text, len, add_bos, 0, out, n_out, err);
}

int sd_tokenize_special(const sd_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **out, int *n_out,
                        char *err)
{
    return tokenize(t, text, len, add_bos, 1, out, n_out, err);
}
