/* Talking to the server outside the timed run: is the URL well formed, does
 * anything answer at all (GET /models, which also names the model), and does
 * it offer /tokenize (llama-server, vLLM, showdown serve) so random prompts
 * can have exactly --input-len tokens. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/url.h"

int sd_url_check(const char *url, char *err)
{
    const char *rest = !strncmp(url, "http://", 7) ? url + 7 : !strncmp(url, "https://", 8) ? url + 8 : NULL;
    if (!rest) {
        snprintf(err, SD_ERR_LEN, "--url: expected http://HOST[:PORT]/v1 or https://..., got '%.200s'", url);
        return -1;
    }
    if (!*rest || *rest == '/' || *rest == ':' || strlen(url) > 1000 || strpbrk(url, " \t\r\n\"<>\\^`{|}")) {
        snprintf(err, SD_ERR_LEN, "--url: no host or a bad character in '%.200s'", url);
        return -1;
    }
    CURLU *u = curl_url();
    CURLUcode rc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
    curl_url_cleanup(u);
    if (rc != CURLUE_OK) {
        snprintf(err, SD_ERR_LEN, "--url: '%.200s' is not a valid URL (%s)", url, curl_url_strerror(rc));
        return -1;
    }
    return 0;
}

typedef struct { char *b; size_t n; } buf;

static size_t collect(char *p, size_t size, size_t nm, void *ud)
{
    buf *b = ud;
    size_t n = size * nm;
    if (b->n + n > (8u << 20)) return 0;   /* a model list or token list is not this big */
    char *nb = realloc(b->b, b->n + n + 1);
    if (!nb) return 0;
    memcpy(nb + b->n, p, n);
    b->b = nb;
    b->n += n;
    b->b[b->n] = 0;
    return n;
}

static void set_common(CURL *h, const char *url, struct curl_slist *hdrs, buf *b, char *cerr, double timeout_s)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
}

static struct curl_slist *headers(const char *api_key)
{
    char auth[600];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (api_key && api_key[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %.500s", api_key);
        h = curl_slist_append(h, auth);
    }
    return h;
}

int sd_url_probe(const char *url, const char *api_key, double timeout_s, char *model, size_t model_len, char *err)
{
    sd_url_curl_init();
    char full[1100], cerr[CURL_ERROR_SIZE] = "";
    snprintf(full, sizeof full, "%s/models", url);
    CURL *h = curl_easy_init();
    if (!h) { snprintf(err, SD_ERR_LEN, "libcurl could not start"); return -1; }
    struct curl_slist *hdrs = headers(api_key);
    buf b = {0};
    set_common(h, full, hdrs, &b, cerr, timeout_s);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        snprintf(err, SD_ERR_LEN, "cannot reach %.300s: %.180s", url, cerr[0] ? cerr : curl_easy_strerror(rc));
        free(b.b);
        return -1;
    }
    model[0] = 0;
    json_t *j = code == 200 && b.b ? json_loads(b.b, 0, NULL) : NULL;
    json_t *d = json_is_object(j) ? json_object_get(j, "data") : NULL;
    json_t *id = json_is_array(d) ? json_object_get(json_array_get(d, 0), "id") : NULL;
    if (json_is_string(id)) snprintf(model, model_len, "%s", json_string_value(id));
    json_decref(j);
    free(b.b);
    return 0;
}

int sd_url_tokenizer_open(sd_url_tokenizer *t, const char *url, const char *model, const char *api_key)
{
    memset(t, 0, sizeof *t);
    snprintf(t->root, sizeof t->root, "%s", url);
    size_t n = strlen(t->root);
    if (n >= 3 && !strcmp(t->root + n - 3, "/v1")) t->root[n - 3] = 0;   /* /tokenize lives at the root */
    snprintf(t->model, sizeof t->model, "%s", model ? model : "");
    snprintf(t->api_key, sizeof t->api_key, "%s", api_key ? api_key : "");
    sd_url_curl_init();
    t->curl = curl_easy_init();
    if (!t->curl) return -1;
    int k;
    char err[SD_ERR_LEN];
    /* offered when a known text comes back as a plausible token count */
    if (sd_url_tokenizer_count(t, "hello world", &k, err) != 0 || k < 1 || k > 11) {
        sd_url_tokenizer_close(t);
        return -1;
    }
    return 0;
}

void sd_url_tokenizer_close(sd_url_tokenizer *t)
{
    if (t->curl) curl_easy_cleanup(t->curl);
    t->curl = NULL;
}

int sd_url_tokenizer_count(void *ctx, const char *text, int *n, char *err)
{
    sd_url_tokenizer *t = ctx;
    char url[1100], cerr[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s/tokenize", t->root);
    /* "content": llama-server and showdown; "prompt"/"model": vLLM. No special tokens. */
    json_t *o = json_pack("{s:s,s:s,s:b,s:b}", "content", text, "prompt", text, "add_special", 0, "add_special_tokens", 0);
    if (t->model[0]) json_object_set_new(o, "model", json_string(t->model));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct curl_slist *hdrs = headers(t->api_key);
    buf b = {0};
    curl_easy_reset(t->curl);
    set_common(t->curl, url, hdrs, &b, cerr, 30);
    curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(t->curl);
    long code = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hdrs);
    free(body);
    json_t *j = rc == CURLE_OK && code == 200 && b.b ? json_loads(b.b, 0, NULL) : NULL;
    free(b.b);
    json_t *tok = json_is_object(j) ? json_object_get(j, "tokens") : NULL;
    json_t *cnt = json_is_object(j) ? json_object_get(j, "count") : NULL;
    int ok = json_is_array(tok) || json_is_integer(cnt);
    if (ok) *n = json_is_array(tok) ? (int)json_array_size(tok) : (int)json_integer_value(cnt);
    json_decref(j);
    if (!ok) {
        snprintf(err, SD_ERR_LEN, "%.300s: %.200s", url, rc != CURLE_OK ? (cerr[0] ? cerr : curl_easy_strerror(rc))
                                                   : "no token list in the answer");
        return -1;
    }
    return 0;
}
