/* Vocabularies for synthesized models: either copied from a GGUF file, or a
 * made-up byte-level BPE ("gpt2") one that any BPE tokenizer loads: the 256
 * byte tokens in the GPT-2 byte-to-unicode mapping, merges of frequent
 * characters (pairs, then pair + character) up to the requested size, and
 * BOS/EOS control tokens at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/synth.h"
#include "showdown.h"
#include "text/tokenizer.h"

/* Characters that merges are made of, most frequent first (English text). */
static const char alphabet[] = " etaoinshrdlcumwfgypbvkjxqzETAOINSHRDLCUMWFGYPBVKJXQZ0123456789.,'\"-!?:;()\n";
#define A ((int)sizeof alphabet - 1)
#define N_PAIRS (A * A)
#define MAX_MERGES (N_PAIRS + N_PAIRS * A)

/* A walk over an na x nb grid by anti-diagonals: (0,0), (0,1), (1,0), (0,2),
 * ... so that pairs of frequent items come first. */
typedef struct { int na, nb, s, a; } diag_walk;

static void diag_next(diag_walk *d, int *a, int *b)
{
    for (;;) {
        int lo = d->s - (d->nb - 1) > 0 ? d->s - (d->nb - 1) : 0, hi = d->s < d->na - 1 ? d->s : d->na - 1;
        if (d->a < lo) d->a = lo;
        if (d->a <= hi) { *a = d->a++; *b = d->s - *a; return; }
        d->s++;
        d->a = 0;
    }
}

/* Mapped (GPT-2 unicode) text of alphabet character i. */
static size_t sym(int i, char out[4])
{
    return sd_bpe_byte_to_utf8((uint8_t)alphabet[i], out);
}

/* Yields the merges in rank order: character pairs, then pair + character. */
typedef struct { diag_walk pairs, triples; int k, pa[N_PAIRS], pb[N_PAIRS]; } merge_gen;

static void merge_next(merge_gen *g, char *left, size_t *ll, char *right, size_t *rl)
{
    int a, b;
    if (g->k < N_PAIRS) {
        diag_next(&g->pairs, &a, &b);
        g->pa[g->k] = a;
        g->pb[g->k] = b;
        *ll = sym(a, left);
        *rl = sym(b, right);
    } else {
        int p, c;
        diag_next(&g->triples, &p, &c);
        *ll = sym(g->pa[p], left);
        *ll += sym(g->pb[p], left + *ll);
        *rl = sym(c, right);
    }
    g->k++;
}

int sd_synth_vocab(gguf_writer *w, int n_vocab, char *err)
{
    int n_merges = n_vocab - 256 - 2;
    if (n_merges < 0 || n_merges > MAX_MERGES) {
        snprintf(err, SD_ERR_LEN, "a synthesized vocabulary has 258 to %d tokens, not %d (use --vocab FILE.gguf)",
                 MAX_MERGES + 258, n_vocab);
        return -1;
    }
    /* token texts are at most 3 mapped characters (6 bytes); merges "ab c" */
    char *tok_text = malloc((size_t)n_vocab * 24), *merge_text = malloc((size_t)(n_merges ? n_merges : 1) * 16);
    const char **toks = malloc((size_t)n_vocab * sizeof *toks);
    const char **merges = malloc((size_t)(n_merges + 1) * sizeof *merges);
    int32_t *types = malloc((size_t)n_vocab * sizeof *types);
    merge_gen *gen = calloc(1, sizeof *gen);
    int rc = -1;
    if (!tok_text || !merge_text || !toks || !merges || !types || !gen) {
        snprintf(err, SD_ERR_LEN, "out of memory for a vocabulary of %d tokens", n_vocab);
        goto done;
    }
    gen->pairs = (diag_walk){A, A, 0, 0};
    gen->triples = (diag_walk){N_PAIRS, A, 0, 0};
    for (int i = 0; i < n_vocab; i++) {
        char *t = tok_text + (size_t)i * 24;
        types[i] = SD_TOKTYPE_NORMAL;
        toks[i] = t;
        if (i < 256) {
            t[sd_bpe_byte_to_utf8((uint8_t)i, t)] = 0;
        } else if (i < 256 + n_merges) {
            char l[16], r[8];
            size_t ll, rl;
            merge_next(gen, l, &ll, r, &rl);
            memcpy(t, l, ll);
            memcpy(t + ll, r, rl);
            t[ll + rl] = 0;
            char *m = merge_text + (size_t)(i - 256) * 16;
            memcpy(m, l, ll);
            m[ll] = ' ';
            memcpy(m + ll + 1, r, rl);
            m[ll + 1 + rl] = 0;
            merges[i - 256] = m;
        } else {
            snprintf(t, 24, "%s", i == n_vocab - 2 ? "<|bos|>" : "<|eos|>");
            types[i] = SD_TOKTYPE_CONTROL;
        }
    }
    if (gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2") ||
        gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2") ||
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, (uint64_t)n_vocab) ||
        gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, types, (uint64_t)n_vocab) ||
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, (uint64_t)n_merges) ||
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n_vocab - 2)) ||
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n_vocab - 1)) ||
        gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1)) {
        snprintf(err, SD_ERR_LEN, "out of memory for a vocabulary of %d tokens", n_vocab);
        goto done;
    }
    rc = 0;
done:
    free(tok_text);
    free(merge_text);
    free(toks);
    free(merges);
    free(types);
    free(gen);
    return rc;
}

int sd_synth_copy_vocab(gguf_writer *w, const char *path, int *n_vocab, char *err)
{
    gguf_file *f;
    if (gguf_open_header(path, &f, err)) return -1;
    const gguf_kv *tokens = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING);
    int rc = -1;
    if (!tokens || tokens->arr_n == 0 || tokens->arr_n > (1u << 24)) {
        snprintf(err, SD_ERR_LEN, "%s: no usable tokenizer.ggml.tokens (not a vocabulary file?)", path);
        goto done;
    }
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        if (kv->key.len > 10 && !memcmp(kv->key.ptr, "tokenizer.", 10) && gguf_writer_copy_kv(w, kv)) {
            snprintf(err, SD_ERR_LEN, "%s: cannot copy %.*s", path, (int)(kv->key.len > 80 ? 80 : kv->key.len),
                     kv->key.ptr);
            goto done;
        }
    }
    *n_vocab = (int)tokens->arr_n;
    rc = 0;
done:
    gguf_close(f);
    return rc;
}
