/* qwen3next through `showdown serve`: sequences batched together advance
 * their own recurrent states (three concurrent greedy completions equal the
 * same requests served alone), and a repeated prompt reuses no prefix
 * blocks (a cached block does not hold the state at its end): cache_n 0,
 * same answer. Loopback only, a child process (serve_child.h). */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>

#include "qwen3next_derive.h"
#include "serve_child.h"

static serve_child srv;
static char model[128];

static void fini(void)
{
    serve_child_kill(&srv);
    if (model[0]) unlink(model);
}

typedef struct { char *data; size_t n; } buf_t;

static size_t on_data(char *p, size_t sz, size_t nm, void *u)
{
    buf_t *b = u;
    size_t n = sz * nm;
    char *d = realloc(b->data, b->n + n + 1);
    if (!d) return 0;
    memcpy(d + b->n, p, n);
    b->n += n;
    d[b->n] = 0;
    b->data = d;
    return n;
}

static CURL *post(const char *body, buf_t *b, struct curl_slist **h)
{
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/v1/completions", srv.url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    return c;
}

/* The completion's text (malloc'd) and its timings.cache_n. */
static char *text_of(const buf_t *b, long long *cache_n)
{
    json_error_t je;
    json_t *o = json_loadb(b->data ? b->data : "", b->n, 0, &je);
    cr_assert_not_null(o, "not JSON: %.300s", b->data ? b->data : "");
    const char *t = json_string_value(json_object_get(json_array_get(json_object_get(o, "choices"), 0), "text"));
    cr_assert_not_null(t, "%s", b->data);
    char *r = strdup(t);
    if (cache_n) *cache_n = json_integer_value(json_object_get(json_object_get(o, "timings"), "cache_n"));
    json_decref(o);
    return r;
}

static char *solo(const char *body, long long *cache_n)
{
    buf_t b = {0};
    struct curl_slist *h;
    CURL *c = post(body, &b, &h);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    long st;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    cr_assert_eq(st, 200, "%s", b.data);
    char *t = text_of(&b, cache_n);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(b.data);
    return t;
}

Test(qwen3next_serve, batched_sequences_keep_their_own_state, .fini = fini, .timeout = 300)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    qnext_synth(model, sizeof model, "f32");
    const char *argv[] = {showdown_bin(), "serve", "-m", model, "--port", "0", "-c", "1024", "-np", "3", "-t", "2", NULL};
    cr_assert_eq(serve_child_start(&srv, argv), 0, "serve did not start (log %s)", srv.log);
    enum { N = 3 };
    /* The first prompt is long enough to fill prefix-cache blocks (16 tokens each). */
    static const char *prompts[N] = {
        "Once upon a time there was a little dog who liked to run in the park with his friends every day",
        "The sun was", "Lily wanted to"};
    char bodies[N][400], *alone[N];
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0}", prompts[i],
                 10 + 4 * i);
        alone[i] = solo(bodies[i], NULL);
    }
    CURLM *mh = curl_multi_init();
    buf_t bs[N];
    CURL *cs[N];
    struct curl_slist *hs[N];
    for (int i = 0; i < N; i++) {
        memset(&bs[i], 0, sizeof bs[i]);
        cs[i] = post(bodies[i], &bs[i], &hs[i]);
        curl_multi_add_handle(mh, cs[i]);
    }
    int running = 1;
    for (double until = sd_time_ms() + 120000; running && sd_time_ms() < until;) {
        curl_multi_perform(mh, &running);
        if (running) curl_multi_poll(mh, NULL, 0, 100, NULL);
    }
    cr_assert_eq(running, 0, "the requests did not finish in 120 s");
    for (int i = 0; i < N; i++) {
        char *t = text_of(&bs[i], NULL);
        cr_expect_str_eq(t, alone[i], "request %d alone: '%s', batched with the others: '%s'", i, alone[i], t);
        free(t);
        curl_multi_remove_handle(mh, cs[i]);
        curl_easy_cleanup(cs[i]);
        curl_slist_free_all(hs[i]);
        free(bs[i].data);
    }
    curl_multi_cleanup(mh);
    /* The long prompt once more: its blocks were published, but none is reused. */
    long long cache_n = -1;
    char *again = solo(bodies[0], &cache_n);
    cr_expect_eq(cache_n, 0, "a prefix was reused (%lld tokens) for a model with recurrent state", cache_n);
    cr_expect_str_eq(again, alone[0]);
    free(again);
    for (int i = 0; i < N; i++) free(alone[i]);
}
