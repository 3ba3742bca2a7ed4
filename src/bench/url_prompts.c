/* Prompts for the load: random text of a chosen token length, a JSONL file,
 * or a ShareGPT conversation file. Random text is made of common English
 * words; with a token counter (the server's /tokenize or a local GGUF
 * tokenizer) words are added or removed until the count is exactly the
 * length asked for, without one a word is taken as one token (approximate;
 * the caller says so). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/url.h"

static const char *const words[] = {
    "the", "of", "and", "to", "in", "is", "was", "he", "for", "it", "with", "as", "his", "on", "be", "at",
    "by", "had", "are", "but", "from", "or", "have", "an", "they", "which", "one", "you", "were", "her",
    "all", "she", "there", "would", "their", "we", "him", "been", "has", "when", "who", "will", "more",
    "no", "if", "out", "so", "said", "what", "up", "its", "about", "into", "than", "them", "can", "only",
    "other", "new", "some", "could", "time", "these", "two", "may", "then", "do", "first", "any", "my",
    "now", "such", "like", "our", "over", "man", "me", "even", "most", "made", "after", "also", "did",
    "many", "before", "must", "through", "back", "years", "where", "much", "your", "way", "well", "down",
    "should", "because", "each", "just", "those", "people", "how", "too", "little", "state", "good",
    "very", "make", "world", "still", "own", "see", "men", "work", "long", "get", "here", "between",
    "both", "life", "being", "under", "never", "day", "same", "another", "know", "while", "last",
};
#define N_WORDS ((int)(sizeof words / sizeof words[0]))

int sd_url_approx_tokens(const char *text)
{
    int n = 0, in = 0;
    for (const char *p = text; *p; p++) {
        int sp = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

typedef struct { int *w; int n, cap; } wordseq;

static int seq_push(wordseq *s, sd_rng *r, int k)
{
    if (s->n + k > s->cap) {
        int cap = (s->n + k) * 2 + 16;
        int *nw = realloc(s->w, (size_t)cap * sizeof *nw);
        if (!nw) return -1;
        s->w = nw;
        s->cap = cap;
    }
    for (int i = 0; i < k; i++) s->w[s->n++] = (int)(sd_rng_next(r) % N_WORDS);
    return 0;
}

static char *seq_text(const wordseq *s)
{
    size_t len = 1;
    for (int i = 0; i < s->n; i++) len += strlen(words[s->w[i]]) + 1;
    char *t = malloc(len), *p = t;
    if (!t) return NULL;
    *p = 0;
    for (int i = 0; i < s->n; i++) p += sprintf(p, i ? " %s" : "%s", words[s->w[i]]);
    return t;
}

/* Random words counting exactly `target` tokens when a counter can make it
 * so (*n_tok gets the count reached, closest from below when no word mix
 * lands on it). */
static int random_text(sd_rng *r, int target, sd_token_count_fn count, void *ctx, char **out, int *n_tok, char *err)
{
    wordseq s = {0};
    char *t = NULL;
    if (seq_push(&s, r, target) != 0) goto oom;
    if (!count) {
        if (!(t = seq_text(&s))) goto oom;
        *out = t;
        *n_tok = target;
        free(s.w);
        return 0;
    }
    int c = -1;
    for (int iter = 0; iter < 64; iter++) {
        free(t);
        if (!(t = seq_text(&s))) goto oom;
        if (count(ctx, t, &c, err) != 0) { free(t); free(s.w); return -1; }
        if (c == target) break;
        if (iter < 8 && (c < target - 3 || c > target + 3)) {
            /* big steps first: scale the word count by target / count */
            int want = (int)((double)s.n * target / (c > 0 ? c : 1));
            if (want < 1) want = 1;
            if (want == s.n) want += c < target ? 1 : -1;
            if (want > s.n) { if (seq_push(&s, r, want - s.n) != 0) goto oom; }
            else s.n = want > 0 ? want : 1;
        } else if (c < target) {   /* then one word at a time */
            if (seq_push(&s, r, 1) != 0) goto oom;
        } else if (iter % 8 == 7 && s.n > 1) {
            s.n--;
        } else {   /* over: another word in the last place (keeps the progress made) */
            s.w[s.n - 1] = (int)(sd_rng_next(r) % N_WORDS);
        }
    }
    while (c > target && s.n > 1) {   /* never over the length asked for */
        s.n--;
        free(t);
        if (!(t = seq_text(&s))) goto oom;
        if (count(ctx, t, &c, err) != 0) { free(t); free(s.w); return -1; }
    }
    *out = t;
    *n_tok = c;
    free(s.w);
    return 0;
oom:
    free(t);
    free(s.w);
    snprintf(err, SD_ERR_LEN, "out of memory making prompts");
    return -1;
}

static int rand_len(sd_rng *r, int len, double ratio)
{
    int lo = (int)floor(len * (1 - ratio)), hi = (int)ceil(len * (1 + ratio));
    if (lo < 1) lo = 1;
    if (hi < lo) hi = lo;
    return lo + (int)(sd_rng_next(r) % (uint64_t)(hi - lo + 1));
}

int sd_url_prompts_random(const sd_url_random_spec *sp, sd_url_prompt **out, char *err)
{
    sd_rng r;
    sd_rng_seed(&r, sp->seed);
    sd_url_prompt *p = calloc((size_t)sp->n, sizeof *p);
    char *prefix = NULL;
    int n_prefix = 0;
    if (!p) { snprintf(err, SD_ERR_LEN, "out of memory making prompts"); return -1; }
    if (sp->prefix_len > 0 && random_text(&r, sp->prefix_len, sp->count, sp->count_ctx, &prefix, &n_prefix, err) != 0) {
        free(p);
        return -1;
    }
    for (int i = 0; i < sp->n; i++) {
        int len = rand_len(&r, sp->input_len, sp->range_ratio);
        char *body;
        int nb;
        if (random_text(&r, len, sp->count, sp->count_ctx, &body, &nb, err) != 0) {
            sd_url_prompts_free(p, i);
            free(prefix);
            return -1;
        }
        if (prefix) {
            size_t a = strlen(prefix), b = strlen(body);
            p[i].text = malloc(a + b + 2);
            if (p[i].text) { memcpy(p[i].text, prefix, a); p[i].text[a] = ' '; memcpy(p[i].text + a + 1, body, b + 1); }
            free(body);
        } else {
            p[i].text = body;
        }
        if (!p[i].text) { sd_url_prompts_free(p, i); free(prefix); snprintf(err, SD_ERR_LEN, "out of memory making prompts"); return -1; }
        p[i].n_tokens = n_prefix + nb;
        p[i].output_len = sp->output_len > 0 && sp->range_ratio > 0 ? rand_len(&r, sp->output_len, sp->range_ratio) : 0;
    }
    free(prefix);
    *out = p;
    return 0;
}

void sd_url_prompts_free(sd_url_prompt *p, int n)
{
    if (!p) return;
    for (int i = 0; i < n; i++) free(p[i].text);
    free(p);
}

static int count_or_approx(sd_token_count_fn count, void *ctx, const char *text, int *n, char *err)
{
    if (!count) { *n = sd_url_approx_tokens(text); return 0; }
    return count(ctx, text, n, err);
}

int sd_url_prompts_jsonl(const char *path, int n, sd_token_count_fn count, void *ctx, sd_url_prompt **out, char *err)
{
    FILE *f = fopen(path, "r");
    if (!f) { snprintf(err, SD_ERR_LEN, "%.300s: cannot open: %m", path); return -1; }
    sd_url_prompt *p = calloc((size_t)n, sizeof *p);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int k = 0, lineno = 0;
    if (!p) { fclose(f); snprintf(err, SD_ERR_LEN, "out of memory reading %.300s", path); return -1; }
    while (k < n && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ')) line[--len] = 0;
        if (len == 0) continue;
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)len, JSON_DECODE_ANY, &je), *text = j, *ol = NULL;
        if (json_is_object(j)) {
            text = json_object_get(j, "prompt");
            if (!text) text = json_object_get(j, "text");
            ol = json_object_get(j, "output_len");
            if (!ol) ol = json_object_get(j, "max_tokens");
        }
        if (!json_is_string(text) || json_string_length(text) == 0 || (ol && !(json_is_integer(ol) && json_integer_value(ol) > 0 && json_integer_value(ol) < (1 << 24)))) {
            snprintf(err, SD_ERR_LEN, "%.300s:%d: expected a JSON string or {\"prompt\": \"...\", \"output_len\": N}%s%.100s",
                     path, lineno, j ? "" : ": ", j ? "" : je.text);
            json_decref(j);
            goto fail;
        }
        p[k].text = strdup(json_string_value(text));
        p[k].output_len = ol ? (int)json_integer_value(ol) : 0;
        json_decref(j);
        if (!p[k].text) { snprintf(err, SD_ERR_LEN, "out of memory reading %.300s", path); goto fail; }
        k++;
        if (count_or_approx(count, ctx, p[k - 1].text, &p[k - 1].n_tokens, err) != 0) goto fail;
    }
    if (k == 0) { snprintf(err, SD_ERR_LEN, "%.300s: no prompts in the file", path); goto fail; }
    free(line);
    fclose(f);
    *out = p;
    return k;
fail:
    free(line);
    fclose(f);
    sd_url_prompts_free(p, k);
    return -1;
}

static const char *turn(json_t *conv, size_t i)
{
    json_t *v = json_object_get(json_array_get(conv, i), "value");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int sd_url_prompts_sharegpt(const char *path, int n, uint64_t seed, sd_token_count_fn count, void *ctx,
                            sd_url_prompt **out, char *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) { snprintf(err, SD_ERR_LEN, "%.300s:%d: not JSON: %.100s", path, je.line, je.text); return -1; }
    if (!json_is_array(root)) {
        snprintf(err, SD_ERR_LEN, "%.300s: expected a ShareGPT array of {\"conversations\": [...]}", path);
        json_decref(root);
        return -1;
    }
    size_t m = json_array_size(root);
    size_t *order = malloc((m + 1) * sizeof *order);
    sd_url_prompt *p = calloc((size_t)n, sizeof *p);
    int k = 0;
    if (!order || !p) { snprintf(err, SD_ERR_LEN, "out of memory reading %.300s", path); goto fail; }
    sd_rng r;
    sd_rng_seed(&r, seed);
    for (size_t i = 0; i < m; i++) order[i] = i;
    for (size_t i = m; i > 1; i--) {   /* Fisher-Yates */
        size_t j = (size_t)(sd_rng_next(&r) % i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < m && k < n; i++) {
        json_t *conv = json_object_get(json_array_get(root, order[i]), "conversations");
        if (!json_is_array(conv) || json_array_size(conv) < 2) continue;
        const char *q = turn(conv, 0), *a = turn(conv, 1);
        if (!q || !a || !*q || !*a) continue;
        int nq, na;
        if (count_or_approx(count, ctx, q, &nq, err) != 0 || count_or_approx(count, ctx, a, &na, err) != 0) goto fail;
        /* vLLM's filter: drop tiny or over-long pairs */
        if (nq < 4 || na < 4 || nq > 1024 || nq + na > 2048) continue;
        if (!(p[k].text = strdup(q))) { snprintf(err, SD_ERR_LEN, "out of memory reading %.300s", path); goto fail; }
        p[k].n_tokens = nq;
        p[k].output_len = na;
        k++;
    }
    if (k == 0) { snprintf(err, SD_ERR_LEN, "%.300s: no usable conversations (a human turn then a reply, 4 to 1024 tokens each)", path); goto fail; }
    free(order);
    json_decref(root);
    *out = p;
    return k;
fail:
    free(order);
    json_decref(root);
    sd_url_prompts_free(p, k);
    return -1;
}
