/* Test helper for the suites that drive `showdown serve` over HTTP: the
 * server process (one per test, on an ephemeral loopback port, the model
 * from ../shared/models) and a libcurl client with strict checks of the
 * OpenAI error object and the SSE framing. Each including file declares
 * its own TestSuite with .fini = server_kill. */
#ifndef SD_TESTS_SERVE_CLIENT_H
#define SD_TESTS_SERVE_CLIENT_H

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "showdown.h"
#include "common.h"
#include "serve_child.h"

#define MODEL "models/stories260K.gguf"

/* ---- the server process ------------------------------------------------- */

static serve_child srv;

static inline void server_kill(void) { serve_child_kill(&srv); }

static inline void dump_log(void)
{
    char *t = slurp(srv.log);
    if (t) { fprintf(stderr, "--- server log ---\n%s\n---\n", t); free(t); }
}

/* Starts `showdown serve -m model --port 0 -t 1 ARGS...` and waits for its
 * URL: 0, or -1 with the log in *log_out (malloc'd) when it exited first. */
static inline int server_try_start(const char *model, const char *const *args, char **log_out)
{
    const char *argv[32] = {showdown_bin(), "serve", "-m", model, "--port", "0", "-t", "1"};
    int n = 8;
    for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
    argv[n] = NULL;
    int r = serve_child_start(&srv, argv);
    if (r == -1 && log_out) { *log_out = slurp(srv.log); return -1; }
    if (r) dump_log();
    cr_assert_neq(r, -1, "the server exited before it was ready");
    cr_assert_eq(r, 0, "the server printed no URL in 60 s");
    return 0;
}

/* The same on the suite's model (../shared/models), failing the test if it does not start. */
static inline void server_start(const char *first, ...)
{
    char model[512];
    shared_path(model, sizeof model, MODEL);
    const char *args[24];
    int n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 23; a = va_arg(ap, const char *)) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    server_try_start(model, args, NULL);
}

/* Sends sig and waits up to limit_ms: the exit status, -1 if it had to be killed. */
static inline int server_stop(int sig, double limit_ms, double *took_ms)
{
    double t0 = sd_time_ms();
    kill(srv.pid, sig);
    int st = 0;
    while (waitpid(srv.pid, &st, WNOHANG) != srv.pid) {
        if (sd_time_ms() - t0 > limit_ms) { server_kill(); return -1; }
        usleep(10000);
    }
    if (took_ms) *took_ms = sd_time_ms() - t0;
    srv.pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- the client ---------------------------------------------------------- */

typedef struct {
    char *data;
    size_t n;
    long status;
    int max_events;   /* > 0: abort the transfer after this many SSE events */
} reply;

static inline size_t on_data(char *p, size_t sz, size_t nm, void *u)
{
    reply *r = u;
    size_t n = sz * nm;
    char *d = realloc(r->data, r->n + n + 1);
    if (!d) return 0;
    r->data = d;
    memcpy(r->data + r->n, p, n);
    r->n += n;
    r->data[r->n] = 0;
    if (r->max_events > 0) {
        int ev = 0;
        for (const char *q = r->data; (q = strstr(q, "\n\n")); q += 2) ev++;
        if (ev >= r->max_events) return 0;   /* the client goes away */
    }
    return n;
}

static inline CURL *easy(const char *method, const char *path, const char *body, size_t n_body, const char *key, reply *r,
                  struct curl_slist **hdrs)
{
    static int inited;
    if (!inited) { curl_global_init(CURL_GLOBAL_DEFAULT); inited = 1; }
    CURL *c = curl_easy_init();
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s%s", srv.url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    *hdrs = curl_slist_append(*hdrs, "Expect:");
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        *hdrs = curl_slist_append(*hdrs, auth);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)n_body);
    }
    return c;
}

static inline long http_key(const char *method, const char *path, const char *body, const char *key, reply *r)
{
    memset(r, 0, sizeof *r);
    struct curl_slist *h;
    CURL *c = easy(method, path, body, body ? strlen(body) : 0, key, r, &h);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    cr_assert_eq(rc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    return r->status;
}

static inline long http(const char *method, const char *path, const char *body, reply *r)
{
    return http_key(method, path, body, NULL, r);
}

static inline json_t *json_of(const reply *r)
{
    json_error_t je;
    json_t *o = json_loadb(r->data ? r->data : "", r->n, 0, &je);
    cr_assert_not_null(o, "not JSON (%s): %.300s", je.text, r->data ? r->data : "");
    return o;
}

static inline const char *jstr(json_t *o, const char *path)
{
    /* "a.b.0.c": objects by key, arrays by index */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *k = strtok(buf, "."); k && o; k = strtok(NULL, "."))
        o = json_is_array(o) ? json_array_get(o, strtoul(k, NULL, 10)) : json_object_get(o, k);
    return json_string_value(o);
}

static inline json_t *jget(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *k = strtok(buf, "."); k && o; k = strtok(NULL, "."))
        o = json_is_array(o) ? json_array_get(o, strtoul(k, NULL, 10)) : json_object_get(o, k);
    return o;
}

static inline long long jint(json_t *o, const char *path) { return json_integer_value(jget(o, path)); }

/* The OpenAI error object, with the status expected. */
static inline void assert_error(const reply *r, long status, const char *needle)
{
    cr_assert_eq(r->status, status, "status %ld, not %ld: %s", r->status, status, r->data);
    json_t *o = json_of(r), *e = json_object_get(o, "error");
    cr_assert(json_is_object(e), "%s", r->data);
    cr_assert(json_is_string(json_object_get(e, "message")) && json_string_length(json_object_get(e, "message")));
    cr_assert(json_is_string(json_object_get(e, "type")));
    cr_assert(json_is_string(json_object_get(e, "param")) || json_is_null(json_object_get(e, "param")));
    cr_assert(json_is_string(json_object_get(e, "code")) || json_is_null(json_object_get(e, "code")));
    if (needle) cr_assert(strstr(jstr(e, "message"), needle), "'%s' not in: %s", needle, r->data);
    json_decref(o);
}

/* Strict SSE: only "data: X\n\n" events; JSON chunks with one id/created,
 * the chat role first, exactly one finish_reason, the usage chunk (when
 * asked) after it, then [DONE] last. Returns the text and fills *usage_gen. */
static inline char *sse_text(const reply *r, int chat, int want_usage, const char **finish, long long *usage_gen)
{
    cr_assert_eq(r->status, 200, "%ld: %s", r->status, r->data);
    char *all = calloc(1, r->n + 1), id[128] = "";
    long long created = -1;
    int n_ev = 0, done = 0, n_finish = 0, saw_usage = 0;
    static char fin[16];
    fin[0] = 0;
    const char *p = r->data;
    while (*p) {
        cr_assert(!done, "an event after [DONE]");
        cr_assert(!strncmp(p, "data: ", 6), "event %d does not start with 'data: ': %.60s", n_ev, p);
        const char *end = strstr(p, "\n\n");
        cr_assert_not_null(end, "event %d is not ended by a blank line", n_ev);
        const char *d = p + 6;
        size_t len = (size_t)(end - d);
        cr_assert(!memchr(d, '\n', len), "a multi-line event");
        if (len == 6 && !memcmp(d, "[DONE]", 6)) { done = 1; p = end + 2; continue; }
        json_error_t je;
        json_t *o = json_loadb(d, len, 0, &je);
        cr_assert_not_null(o, "event %d is not JSON: %.*s", n_ev, (int)len, d);
        cr_assert_null(json_object_get(o, "error"), "an error event: %.*s", (int)len, d);
        cr_assert_str_eq(jstr(o, "object"), chat ? "chat.completion.chunk" : "text_completion");
        if (!n_ev) { snprintf(id, sizeof id, "%s", jstr(o, "id")); created = jint(o, "created"); }
        cr_assert_str_eq(jstr(o, "id"), id, "every chunk has the same id");
        cr_assert_eq(jint(o, "created"), created);
        json_t *ch = json_object_get(o, "choices");
        cr_assert(json_is_array(ch));
        if (!json_array_size(ch)) {
            cr_assert(want_usage && n_finish == 1 && !saw_usage, "a usage chunk where none belongs");
            saw_usage = 1;
            if (usage_gen) *usage_gen = jint(o, "usage.completion_tokens");
        } else {
            cr_assert(!saw_usage, "a choice after the usage chunk");
            json_t *c0 = json_array_get(ch, 0);
            const char *t = chat ? jstr(c0, "delta.content") : jstr(c0, "text");
            if (chat && !n_ev) cr_assert_str_eq(jstr(c0, "delta.role"), "assistant", "the first delta has the role");
            if (chat && n_ev) cr_assert_null(jget(c0, "delta.role"));
            if (t) strcat(all, t);
            json_t *f = json_object_get(c0, "finish_reason");
            if (!json_is_null(f)) {
                cr_assert(json_is_string(f));
                cr_assert_eq(n_finish++, 0, "two chunks with a finish_reason");
                snprintf(fin, sizeof fin, "%s", json_string_value(f));
            } else {
                cr_assert_eq(n_finish, 0, "a chunk after the finish_reason");
            }
        }
        json_decref(o);
        n_ev++;
        p = end + 2;
    }
    cr_assert(done, "no data: [DONE] at the end");
    cr_assert_eq(n_finish, 1, "no chunk with a finish_reason");
    cr_assert_eq(saw_usage, want_usage, "usage chunk");
    if (finish) *finish = fin;
    return all;
}

static inline char *completion_text(const char *body, json_t **out)
{
    reply r;
    http("POST", "/v1/completions", body, &r);
    cr_assert_eq(r.status, 200, "%s", r.data);
    json_t *o = json_of(&r);
    char *t = strdup(jstr(o, "choices.0.text"));
    if (out) *out = o;
    else json_decref(o);
    free(r.data);
    return t;
}

/* Posts the n bodies (a char[n][body_size] array) to /v1/completions at
 * once (curl multi) and returns their completion texts (malloc'd), each
 * reply asserted 200 within limit_s seconds and, where finish is not NULL,
 * to end with that finish_reason. */
static inline void completions_together(const char *bodies, size_t body_size, int n, double limit_s,
                                        const char *finish, char **texts)
{
    enum { MAX_TOGETHER = 16 };
    CURLM *m = curl_multi_init();
    reply rs[MAX_TOGETHER];
    CURL *cs[MAX_TOGETHER];
    struct curl_slist *hs[MAX_TOGETHER];
    cr_assert_leq(n, MAX_TOGETHER);
    for (int i = 0; i < n; i++) {
        const char *b = bodies + (size_t)i * body_size;
        memset(&rs[i], 0, sizeof rs[i]);
        cs[i] = easy("POST", "/v1/completions", b, strlen(b), NULL, &rs[i], &hs[i]);
        curl_multi_add_handle(m, cs[i]);
    }
    int running = 1;
    for (double until = sd_time_ms() + limit_s * 1000; running && sd_time_ms() < until;) {
        curl_multi_perform(m, &running);
        if (running) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    cr_assert_eq(running, 0, "the requests did not finish in %.0f s", limit_s);
    for (int i = 0; i < n; i++) {
        curl_easy_getinfo(cs[i], CURLINFO_RESPONSE_CODE, &rs[i].status);
        cr_assert_eq(rs[i].status, 200, "request %d: %s", i, rs[i].data);
        json_t *o = json_of(&rs[i]);
        texts[i] = strdup(jstr(o, "choices.0.text"));
        if (finish) cr_assert_str_eq(jstr(o, "choices.0.finish_reason"), finish, "request %d: %s", i, rs[i].data);
        json_decref(o);
        free(rs[i].data);
        curl_multi_remove_handle(m, cs[i]);
        curl_easy_cleanup(cs[i]);
        curl_slist_free_all(hs[i]);
    }
    curl_multi_cleanup(m);
}

/* A number from GET /metrics (-1 when absent). */
static inline long long metric(const char *name)
{
    reply r;
    http("GET", "/metrics", NULL, &r);
    char key[96];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = r.data ? strstr(r.data, key) : NULL;
    long long v = p ? atoll(p + strlen(key)) : -1;
    free(r.data);
    return v;
}

#endif
