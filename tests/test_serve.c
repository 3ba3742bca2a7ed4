/* showdown serve end to end: the real binary ($SHOWDOWN_BIN) on an ephemeral
 * loopback port with a model from ../shared/models, driven by libcurl. Every
 * test starts its own server and kills it at the end (and the kernel kills it
 * if the test process dies: PR_SET_PDEATHSIG). Bounded: small model, few
 * tokens, timeouts on every wait. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "showdown.h"
#include "common.h"
#include "serve_child.h"

#define MODEL "models/stories260K.gguf"

/* ---- the server process ------------------------------------------------- */

static serve_child srv;

static void server_kill(void) { serve_child_kill(&srv); }

TestSuite(serve, .fini = server_kill, .timeout = 120);

static void dump_log(void)
{
    char *t = slurp(srv.log);
    if (t) { fprintf(stderr, "--- server log ---\n%s\n---\n", t); free(t); }
}

/* Starts `showdown serve -m model --port 0 -t 1 ARGS...` and waits for its
 * URL: 0, or -1 with the log in *log_out (malloc'd) when it exited first. */
static int server_try_start(const char *model, const char *const *args, char **log_out)
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
static void server_start(const char *first, ...)
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
static int server_stop(int sig, double limit_ms, double *took_ms)
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

static size_t on_data(char *p, size_t sz, size_t nm, void *u)
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

static CURL *easy(const char *method, const char *path, const char *body, size_t n_body, const char *key, reply *r,
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

static long http_key(const char *method, const char *path, const char *body, const char *key, reply *r)
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

static long http(const char *method, const char *path, const char *body, reply *r)
{
    return http_key(method, path, body, NULL, r);
}

static json_t *json_of(const reply *r)
{
    json_error_t je;
    json_t *o = json_loadb(r->data ? r->data : "", r->n, 0, &je);
    cr_assert_not_null(o, "not JSON (%s): %.300s", je.text, r->data ? r->data : "");
    return o;
}

static const char *jstr(json_t *o, const char *path)
{
    /* "a.b.0.c": objects by key, arrays by index */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *k = strtok(buf, "."); k && o; k = strtok(NULL, "."))
        o = json_is_array(o) ? json_array_get(o, strtoul(k, NULL, 10)) : json_object_get(o, k);
    return json_string_value(o);
}

static json_t *jget(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *k = strtok(buf, "."); k && o; k = strtok(NULL, "."))
        o = json_is_array(o) ? json_array_get(o, strtoul(k, NULL, 10)) : json_object_get(o, k);
    return o;
}

static long long jint(json_t *o, const char *path) { return json_integer_value(jget(o, path)); }

/* The OpenAI error object, with the status expected. */
static void assert_error(const reply *r, long status, const char *needle)
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
static char *sse_text(const reply *r, int chat, int want_usage, const char **finish, long long *usage_gen)
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

static char *completion_text(const char *body, json_t **out)
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

/* ---- the tests ------------------------------------------------------------ */

/* The server's greedy completion is what `showdown run --temp 0` prints. */
Test(serve, completion_matches_run)
{
    server_start("-c", "1024", NULL);
    json_t *o;
    char *t = completion_text("{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}", &o);
    char cmd[1024], model[512];
    snprintf(cmd, sizeof cmd, "'%s' run -m '%s' -p 'Once upon a time' -n 24 --temp 0 2>/dev/null", showdown_bin(),
             shared_path(model, sizeof model, MODEL));
    FILE *f = popen(cmd, "r");
    char want[4096];
    size_t n = fread(want, 1, sizeof want - 1, f);
    want[n] = 0;
    cr_assert_eq(pclose(f), 0);
    if (n && want[n - 1] == '\n') want[n - 1] = 0;
    cr_assert_str_eq(t, want);
    cr_assert(!strncmp(jstr(o, "id"), "cmpl-", 5));
    cr_assert_str_eq(jstr(o, "object"), "text_completion");
    cr_assert_str_eq(jstr(o, "model"), "stories260K.gguf");
    long long pt = jint(o, "usage.prompt_tokens"), ct = jint(o, "usage.completion_tokens");
    cr_assert_eq(pt, 5, "BOS + 4 prompt tokens");
    cr_assert_eq(jint(o, "usage.total_tokens"), pt + ct);
    cr_assert_eq(jint(o, "timings.predicted_n"), ct);
    cr_assert_eq(jint(o, "timings.prompt_n") + jint(o, "timings.cache_n"), pt);
    cr_assert(json_is_number(jget(o, "timings.prompt_ms")) && json_is_number(jget(o, "timings.predicted_ms")));
    cr_assert_str_eq(jstr(o, "choices.0.finish_reason"), ct == 24 ? "length" : "stop");
    json_decref(o);
    free(t);
    double ms;
    cr_assert_eq(server_stop(SIGINT, 10000, &ms), 0);
}

Test(serve, completion_stream_equals_plain)
{
    server_start("-c", "1024", NULL);
    const char *body = "{\"prompt\":\"The cat\",\"max_tokens\":20,\"temperature\":0,\"ignore_eos\":true%s}";
    char b[256];
    snprintf(b, sizeof b, body, "");
    char *plain = completion_text(b, NULL);
    snprintf(b, sizeof b, body, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    reply r;
    http("POST", "/v1/completions", b, &r);
    const char *fin;
    long long gen = -1;
    char *st = sse_text(&r, 0, 1, &fin, &gen);
    cr_assert_str_eq(st, plain);
    cr_assert_str_eq(fin, "length");
    cr_assert_eq(gen, 20);
    free(st);
    free(plain);
    free(r.data);
    /* Without include_usage: no usage chunk. */
    snprintf(b, sizeof b, body, ",\"stream\":true");
    http("POST", "/completions", b, &r);
    free(sse_text(&r, 0, 0, NULL, NULL));
    free(r.data);
}

Test(serve, chat_plain_and_stream)
{
    server_start("-c", "1024", "--chat-template", "chatml", "--alias", "tiny", NULL);
    const char *body = "{\"model\":\"tiny\",\"messages\":[{\"role\":\"system\",\"content\":\"You tell stories.\"},"
                       "{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"max_tokens\":16,\"temperature\":0%s}";
    char b[512];
    snprintf(b, sizeof b, body, "");
    reply r;
    http("POST", "/v1/chat/completions", b, &r);
    cr_assert_eq(r.status, 200, "%s", r.data);
    json_t *o = json_of(&r);
    cr_assert(!strncmp(jstr(o, "id"), "chatcmpl-", 9));
    cr_assert_str_eq(jstr(o, "object"), "chat.completion");
    cr_assert_str_eq(jstr(o, "model"), "tiny");
    cr_assert_str_eq(jstr(o, "choices.0.message.role"), "assistant");
    const char *content = jstr(o, "choices.0.message.content");
    cr_assert_not_null(content);
    cr_assert_null(strstr(content, "<|im_end|>"), "the end-of-turn marker is a stop string");
    free(r.data);
    snprintf(b, sizeof b, body, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    http("POST", "/chat/completions", b, &r);
    const char *fin;
    char *st = sse_text(&r, 1, 1, &fin, NULL);
    cr_assert_str_eq(st, content);
    cr_assert_str_eq(fin, jstr(o, "choices.0.finish_reason"));
    free(st);
    free(r.data);
    json_decref(o);
}

/* The file has no chat template: chat is refused with a message naming the flag. */
Test(serve, chat_without_template_names_the_flag)
{
    server_start("-c", "512", NULL);
    reply r;
    http("POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
    assert_error(&r, 400, "--chat-template");
    free(r.data);
}

/* A stop string that spans tokens: the text ends just before it, streamed or not. */
Test(serve, stop_string_across_tokens)
{
    server_start("-c", "1024", NULL);
    json_t *o;
    char *full = completion_text("{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"logprobs\":0,"
                                 "\"ignore_eos\":true}", &o);
    /* The last 2 bytes of one token and the first 2 of the next, somewhere past the start. */
    json_t *toks = jget(o, "choices.0.logprobs.tokens"), *offs = jget(o, "choices.0.logprobs.text_offset");
    cr_assert_eq(json_array_size(toks), 24);
    char stop[16] = "";
    size_t at = 0;
    for (size_t i = 3; i + 1 < json_array_size(toks) && !stop[0]; i++) {
        const char *a = json_string_value(json_array_get(toks, i)), *b = json_string_value(json_array_get(toks, i + 1));
        if (strlen(a) >= 2 && strlen(b) >= 2) {
            at = (size_t)json_integer_value(json_array_get(offs, i + 1)) - 2;
            snprintf(stop, sizeof stop, "%.4s", full + at);
        }
    }
    cr_assert(stop[0], "no two neighbouring tokens of 2+ bytes in: %s", full);
    char *first = strstr(full, stop);
    full[first - full] = 0;   /* the expected text: up to the first occurrence */
    char b[512];
    snprintf(b, sizeof b, "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"stop\":[\"zzz\",\"%s\"]}",
             stop);
    json_t *o2;
    char *t = completion_text(b, &o2);
    cr_assert_str_eq(t, full, "stop '%s'", stop);
    cr_assert_str_eq(jstr(o2, "choices.0.finish_reason"), "stop");
    snprintf(b, sizeof b,
             "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"stop\":\"%s\",\"stream\":true}", stop);
    reply r;
    http("POST", "/v1/completions", b, &r);
    const char *fin;
    char *st = sse_text(&r, 0, 0, &fin, NULL);
    cr_assert_str_eq(st, full);
    cr_assert_str_eq(fin, "stop");
    cr_assert_null(strstr(r.data, stop), "the stop string reached the client");
    free(st);
    free(r.data);
    free(t);
    free(full);
    json_decref(o);
    json_decref(o2);
}

/* 8 requests at once: each answer equals the one it gets alone (greedy). */
Test(serve, concurrent_equal_solo, .timeout = 240)
{
    server_start("-c", "2048", "-np", "4", NULL);
    enum { N = 8 };
    static const char *prompts[N] = {"Once upon a time", "The dog", "Lily wanted", "One day, a big",
                                     "Tom and Sue", "The sun was", "A little bird", "Mom said"};
    char *solo[N], bodies[N][256];
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0%s}", prompts[i],
                 12 + 3 * i, i % 2 ? ",\"stream\":true" : "");
        if (i % 2) {
            reply r;
            http("POST", "/v1/completions", bodies[i], &r);
            solo[i] = sse_text(&r, 0, 0, NULL, NULL);
            free(r.data);
        } else {
            solo[i] = completion_text(bodies[i], NULL);
        }
    }
    CURLM *m = curl_multi_init();
    reply rs[N];
    CURL *cs[N];
    struct curl_slist *hs[N];
    for (int i = 0; i < N; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        cs[i] = easy("POST", "/v1/completions", bodies[i], strlen(bodies[i]), NULL, &rs[i], &hs[i]);
        curl_multi_add_handle(m, cs[i]);
    }
    int running = 1;
    double until = sd_time_ms() + 180000;
    while (running && sd_time_ms() < until) {
        curl_multi_perform(m, &running);
        if (running) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    cr_assert_eq(running, 0, "the 8 requests did not finish in 180 s");
    for (int i = 0; i < N; i++) {
        curl_easy_getinfo(cs[i], CURLINFO_RESPONSE_CODE, &rs[i].status);
        char *t;
        if (i % 2) t = sse_text(&rs[i], 0, 0, NULL, NULL);
        else {
            cr_assert_eq(rs[i].status, 200, "%s", rs[i].data);
            json_t *o = json_of(&rs[i]);
            t = strdup(jstr(o, "choices.0.text"));
            json_decref(o);
        }
        cr_assert_str_eq(t, solo[i], "request %d alone: '%s', with company: '%s'", i, solo[i], t);
        free(t);
        free(solo[i]);
        free(rs[i].data);
        curl_multi_remove_handle(m, cs[i]);
        curl_easy_cleanup(cs[i]);
        curl_slist_free_all(hs[i]);
    }
    curl_multi_cleanup(m);
}

Test(serve, bad_inputs)
{
    server_start("-c", "256", "--api-key", "sekret", "--max-body", "4K", NULL);
    static const struct { const char *method, *path, *body, *key; long status; const char *needle; } cases[] = {
        {"POST", "/v1/completions", "{\"prompt\":\"hi\"}", NULL, 401, "API key"},
        {"POST", "/v1/completions", "{\"prompt\":\"hi\"}", "wrong", 401, "API key"},
        {"POST", "/v1/completions", "{\"prompt\":\"hi\"}", "sekre", 401, "API key"},
        {"GET", "/v1/completions", NULL, "sekret", 405, "POST"},
        {"DELETE", "/v1/models", NULL, "sekret", 405, "GET"},
        {"PUT", "/v1/chat/completions", "{}", "sekret", 405, NULL},
        {"POST", "/v2/completions", "{}", "sekret", 404, NULL},
        {"GET", "/", NULL, "sekret", 404, NULL},
        {"GET", "/v1/models%0a%ff", NULL, "sekret", 404, NULL},
        {"GET", "/v1/chat/completions", NULL, "sekret", 405, "POST"},
        {"POST", "/v1/completions", "{\"prompt\":", "sekret", 400, "JSON"},
        {"POST", "/v1/completions", "", "sekret", 400, "JSON"},
        {"POST", "/v1/completions", "[\"prompt\"]", "sekret", 400, "object"},
        {"POST", "/v1/completions", "{\"prompt\":\"hi\",\"temperature\":\"hot\"}", "sekret", 400, "temperature"},
        {"POST", "/v1/completions", "{\"prompt\":\"hi\",\"max_tokens\":-1}", "sekret", 400, "max_tokens"},
        {"POST", "/v1/completions", "{\"prompt\":\"hi\",\"n\":2}", "sekret", 400, "not supported"},
        {"POST", "/v1/completions", "{\"prompt\":\"h\xff\xfei\"}", "sekret", 400, "UTF-8"},
        {"POST", "/v1/completions", "{\"prompt\":\"\\udc00\"}", "sekret", 400, NULL},
        {"POST", "/v1/completions", "{\"prompt\":\"hi\",\"model\":\"gpt-4\"}", "sekret", 404, "gpt-4"},
        {"POST", "/v1/completions", "{\"prompt\":[1,2,100000]}", "sekret", 400, "vocabulary"},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tools\":[{}]}",
         "sekret", 400, "not supported"},
        {"POST", "/v1/chat/completions",
         "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"response_format\":{\"type\":\"json_object\"}}",
         "sekret", 400, "not supported"},
        {"POST", "/tokenize", "{\"content\":5}", "sekret", 400, "content"},
        {"POST", "/detokenize", "{\"tokens\":[1,-1]}", "sekret", 400, "tokens"},
        {"GET", "/metrics", NULL, "sekret", 501, "--metrics"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply r;
        http_key(cases[i].method, cases[i].path, cases[i].body, cases[i].key, &r);
        assert_error(&r, cases[i].status, cases[i].needle);
        free(r.data);
    }
    /* A body over --max-body, and a prompt longer than the context (-c 256). */
    char *big = malloc(8192);
    memset(big, ' ', 8191);
    memcpy(big, "{\"prompt\":\"", 11);
    memcpy(big + 8189, "\"}", 3);
    reply r;
    http_key("POST", "/v1/completions", big, "sekret", &r);
    assert_error(&r, 413, "--max-body");
    free(r.data);
    char *longp = malloc(4096);
    strcpy(longp, "{\"prompt\":[1");
    for (int i = 0; i < 300; i++) strcat(longp, ",400");
    strcat(longp, "]}");
    http_key("POST", "/v1/completions", longp, "sekret", &r);
    assert_error(&r, 400, NULL);
    free(r.data);
    free(big);
    free(longp);
    /* Health needs no key; and after all that the server still serves. */
    cr_assert_eq(http("GET", "/health", NULL, &r), 200, "%s", r.data);
    free(r.data);
    cr_assert_eq(http_key("POST", "/v1/completions", "{\"prompt\":\"hi\",\"max_tokens\":3}", "sekret", &r), 200, "%s",
                 r.data);
    free(r.data);
    double ms;
    cr_assert_eq(server_stop(SIGTERM, 10000, &ms), 0);
}

Test(serve, small_endpoints)
{
    server_start("-c", "512", "--metrics", NULL);
    reply r;
    cr_assert_eq(http("GET", "/health", NULL, &r), 200);
    json_t *o = json_of(&r);
    cr_assert_str_eq(jstr(o, "status"), "ok");
    json_decref(o);
    free(r.data);
    cr_assert_eq(http("GET", "/v1/models", NULL, &r), 200);
    o = json_of(&r);
    cr_assert_str_eq(jstr(o, "object"), "list");
    cr_assert_str_eq(jstr(o, "data.0.id"), "stories260K.gguf");
    cr_assert_str_eq(jstr(o, "data.0.object"), "model");
    cr_assert(jstr(o, "data.0.owned_by") && jstr(o, "data.0.root"));
    json_decref(o);
    free(r.data);
    /* tokenize: the prompt's tokens as the completion counts them (less BOS);
     * detokenize and the pieces give the text back. */
    cr_assert_eq(http("POST", "/tokenize", "{\"content\":\"Once upon a time\",\"with_pieces\":true}", &r), 200);
    o = json_of(&r);
    json_t *toks = json_object_get(o, "tokens");
    cr_assert_eq(json_array_size(toks), 4, "%s", r.data);
    char body[256] = "{\"tokens\":[", pieces[256] = "";
    for (size_t i = 0; i < json_array_size(toks); i++) {
        snprintf(body + strlen(body), sizeof body - strlen(body), "%s%lld", i ? "," : "",
                 jint(json_array_get(toks, i), "id"));
        strcat(pieces, jstr(json_array_get(toks, i), "piece"));
    }
    strcat(body, "]}");
    json_decref(o);
    free(r.data);
    cr_assert_eq(http("POST", "/detokenize", body, &r), 200);
    o = json_of(&r);
    cr_assert_str_eq(jstr(o, "content"), pieces);
    cr_assert(strstr(pieces, "Once upon a time"), "%s", pieces);
    json_decref(o);
    free(r.data);
    free(completion_text("{\"prompt\":\"Once upon a time\",\"max_tokens\":4}", NULL));
    cr_assert_eq(http("GET", "/metrics", NULL, &r), 200);
    static const char *names[] = {"showdown_requests_total{status=\"200\"}",
                                  "showdown_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1",
                                  "showdown_inter_token_latency_seconds_count",
                                  "showdown_busy_slots",
                                  "showdown_queue_depth",
                                  "showdown_kv_cache_usage_ratio",
                                  "showdown_prefix_cache_hit_tokens_total",
                                  "showdown_generated_tokens_total"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_assert(strstr(r.data, names[i]), "no %s in:\n%s", names[i], r.data);
    free(r.data);
}

/* Greedy: the token chosen is the most likely one, so it heads top_logprobs. */
Test(serve, logprobs_and_echo)
{
    server_start("-c", "512", "--chat-template", "chatml", NULL);
    reply r;
    http("POST", "/v1/chat/completions",
         "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"max_tokens\":6,\"temperature\":0,"
         "\"logprobs\":true,\"top_logprobs\":3,\"ignore_eos\":true}",
         &r);
    cr_assert_eq(r.status, 200, "%s", r.data);
    json_t *o = json_of(&r), *content = jget(o, "choices.0.logprobs.content");
    cr_assert_eq((long long)json_array_size(content), jint(o, "usage.completion_tokens"), "%s", r.data);
    for (size_t i = 0; i < json_array_size(content); i++) {
        json_t *e = json_array_get(content, i), *top = json_object_get(e, "top_logprobs");
        double lp = json_real_value(json_object_get(e, "logprob"));
        cr_assert(lp <= 0, "%s", r.data);
        cr_assert_eq(json_array_size(top), 3);
        cr_assert_str_eq(jstr(top, "0.token"), jstr(e, "token"));
        cr_assert_float_eq(json_real_value(jget(top, "0.logprob")), lp, 1e-5);
        cr_assert(json_real_value(jget(top, "1.logprob")) <= json_real_value(jget(top, "0.logprob")));
        cr_assert(json_is_array(json_object_get(e, "bytes")));
    }
    json_decref(o);
    free(r.data);
    /* echo: the prompt's own log-probabilities first (the first token has none). */
    http("POST", "/v1/completions",
         "{\"prompt\":\"Once upon a time\",\"max_tokens\":2,\"temperature\":0,\"logprobs\":1,\"echo\":true}", &r);
    cr_assert_eq(r.status, 200, "%s", r.data);
    o = json_of(&r);
    cr_assert(!strncmp(jstr(o, "choices.0.text"), "Once upon a time", 16), "%s", r.data);
    json_t *tl = jget(o, "choices.0.logprobs.token_logprobs");
    long long n = jint(o, "usage.prompt_tokens") + jint(o, "usage.completion_tokens");
    cr_assert_eq((long long)json_array_size(tl), n, "%s", r.data);
    cr_assert(json_is_null(json_array_get(tl, 0)));
    /* Each token's text offset points at its text in the echoed string
     * (the first word's SentencePiece space prefix is not in the text). */
    const char *text = jstr(o, "choices.0.text");
    json_t *toks = jget(o, "choices.0.logprobs.tokens"), *offs = jget(o, "choices.0.logprobs.text_offset");
    cr_assert_eq(json_array_size(toks), json_array_size(tl));
    for (size_t i = 2; i < json_array_size(toks); i++) {
        const char *t = json_string_value(json_array_get(toks, i));
        size_t off = (size_t)json_integer_value(json_array_get(offs, i));
        cr_assert(off <= strlen(text) && !strncmp(text + off, t, strlen(t)), "token %zu '%s' at %zu of '%s'", i, t, off,
                  text);
    }
    for (size_t i = 1; i < json_array_size(tl); i++) {
        cr_assert(json_is_number(json_array_get(tl, i)), "%s", r.data);
        cr_assert(json_number_value(json_array_get(tl, i)) <= 0);
    }
    json_decref(o);
    free(r.data);
}

static long long metric(const char *name)
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

/* A client that leaves mid-stream frees its slot: the one slot is free again
 * quickly (the request asked for thousands of tokens), and serves the next. */
Test(serve, disconnect_frees_slot)
{
    server_start("-c", "2048", "-np", "1", "--metrics", NULL);
    reply r;
    memset(&r, 0, sizeof r);
    r.max_events = 3;
    struct curl_slist *h;
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":2000,\"ignore_eos\":true,\"stream\":true}";
    CURL *c = easy("POST", "/v1/completions", body, strlen(body), NULL, &r, &h);
    CURLcode rc = curl_easy_perform(c);
    cr_assert_eq(rc, CURLE_WRITE_ERROR, "the client should have hung up: %s", curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(r.data);
    double t0 = sd_time_ms();
    while (metric("showdown_busy_slots") != 0 && sd_time_ms() - t0 < 5000) usleep(20000);
    cr_assert_eq(metric("showdown_busy_slots"), 0, "the slot is still busy 5 s after the client left");
    long long gen = metric("showdown_generated_tokens_total");
    cr_assert(gen < 2000, "it generated %lld tokens for a client that left", gen);
    json_t *o;
    free(completion_text("{\"prompt\":\"The dog\",\"max_tokens\":5,\"temperature\":0,\"ignore_eos\":true}", &o));
    cr_assert_eq(jint(o, "usage.completion_tokens"), 5);
    json_decref(o);
    /* The same for a non-streaming request whose client gives up waiting. */
    memset(&r, 0, sizeof r);
    body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":2000,\"ignore_eos\":true}";
    c = easy("POST", "/v1/completions", body, strlen(body), NULL, &r, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300L);
    long long gen0 = metric("showdown_generated_tokens_total");
    rc = curl_easy_perform(c);
    cr_assert_eq(rc, CURLE_OPERATION_TIMEDOUT, "%s", curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(r.data);
    t0 = sd_time_ms();
    while (metric("showdown_busy_slots") != 0 && sd_time_ms() - t0 < 5000) usleep(20000);
    cr_assert_eq(metric("showdown_busy_slots"), 0, "the slot is still busy 5 s after the client left");
    gen = metric("showdown_generated_tokens_total") - gen0;
    cr_assert(gen < 2000, "it generated %lld tokens for a client that left", gen);
}

/* SIGTERM with requests in flight: the server ends them and exits 0 quickly. */
Test(serve, sigterm_with_requests_in_flight)
{
    server_start("-c", "2048", "-np", "2", NULL);
    enum { N = 3 };
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":1500,\"ignore_eos\":true%s}";
    char b[2][256];
    snprintf(b[0], sizeof b[0], body, ",\"stream\":true");
    snprintf(b[1], sizeof b[1], body, "");
    CURLM *m = curl_multi_init();
    reply rs[N];
    CURL *cs[N];
    struct curl_slist *hs[N];
    for (int i = 0; i < N; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        cs[i] = easy("POST", "/v1/completions", b[i == 2], strlen(b[i == 2]), NULL, &rs[i], &hs[i]);
        curl_multi_add_handle(m, cs[i]);
    }
    int running = 1, signalled = 0;
    double until = sd_time_ms() + 60000, t_sig = 0;
    while (running && sd_time_ms() < until) {
        curl_multi_perform(m, &running);
        if (!signalled && rs[0].n > 0 && rs[1].n > 0) {   /* both streams are generating */
            kill(srv.pid, SIGTERM);
            signalled = 1;
            t_sig = sd_time_ms();
        }
        if (running) curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    cr_assert(signalled, "the streams never started");
    cr_assert_eq(running, 0, "requests still open 60 s later");
    double ms;
    int st = server_stop(0, 10000, &ms);
    cr_assert_eq(st, 0, "exit status %d", st);
    cr_assert(sd_time_ms() - t_sig < 8000, "took %.0f ms to stop", sd_time_ms() - t_sig);
    /* The queued non-streaming request got an answer, not a dropped connection. */
    curl_easy_getinfo(cs[2], CURLINFO_RESPONSE_CODE, &rs[2].status);
    cr_assert(rs[2].status == 503 || rs[2].status == 200, "status %ld: %s", rs[2].status, rs[2].data);
    for (int i = 0; i < N; i++) {
        free(rs[i].data);
        curl_multi_remove_handle(m, cs[i]);
        curl_easy_cleanup(cs[i]);
        curl_slist_free_all(hs[i]);
    }
    curl_multi_cleanup(m);
}

/* A second request with the same system prompt reuses its cached tokens
 * (timings.cache_n, usage's cached_tokens, the metric), and a cache hit
 * gives the same greedy answer as the cold request. */
Test(serve, prefix_cache_hit_in_timings)
{
    server_start("-c", "2048", "--chat-template", "chatml", "--metrics", NULL);
    char sys[1024] = "";
    for (int i = 0; i < 12; i++) strcat(sys, "Once upon a time there was a little girl named Lily. ");
    const char *users[] = {"The dog", "hi", "The dog"};
    char *content[3];
    long long cache_n[3];
    for (int i = 0; i < 3; i++) {
        char b[2048];
        snprintf(b, sizeof b,
                 "{\"messages\":[{\"role\":\"system\",\"content\":\"%s\"},{\"role\":\"user\",\"content\":\"%s\"}],"
                 "\"max_tokens\":8,\"temperature\":0}",
                 sys, users[i]);
        reply r;
        http("POST", "/v1/chat/completions", b, &r);
        cr_assert_eq(r.status, 200, "%s", r.data);
        json_t *o = json_of(&r);
        content[i] = strdup(jstr(o, "choices.0.message.content"));
        cache_n[i] = jint(o, "timings.cache_n");
        long long pt = jint(o, "usage.prompt_tokens");
        cr_assert_eq(jint(o, "usage.prompt_tokens_details.cached_tokens"), cache_n[i]);
        cr_assert_eq(jint(o, "timings.prompt_n") + cache_n[i], pt);
        if (i) cr_assert(cache_n[i] > pt / 2 && cache_n[i] < pt, "request %d: %lld of %lld prompt tokens reused", i,
                         cache_n[i], pt);
        json_decref(o);
        free(r.data);
    }
    cr_assert_eq(cache_n[0], 0, "a cold cache reused %lld tokens", cache_n[0]);
    cr_assert_str_eq(content[2], content[0], "the cache hit changed the answer");
    cr_assert_eq(metric("showdown_prefix_cache_hit_tokens_total"), cache_n[1] + cache_n[2]);
    for (int i = 0; i < 3; i++) free(content[i]);
}

/* ---- the real models (make models, or SHOWDOWN_MODELS; skipped when absent) ---- */

static int real_model(char *buf, size_t n, const char *file)
{
    const char *dir = getenv("SHOWDOWN_MODELS");
    snprintf(buf, n, "%s/%s", dir ? dir : "build/models", file);
    return access(buf, R_OK);
}

/* SmolLM2's file carries a ChatML template: the answer ends at its end of
 * turn, which never reaches the client. */
Test(serve, smollm2_chat_with_its_own_template)
{
    char path[512];
    if (real_model(path, sizeof path, "smollm2-135m-instruct-q4_1.gguf"))
        cr_skip_test("SmolLM2 not fetched (make models, or SHOWDOWN_MODELS)");
    const char *args[] = {"-c", "512", "-np", "2", NULL};
    server_try_start(path, args, NULL);
    reply r;
    http("POST", "/v1/chat/completions",
         "{\"messages\":[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}],"
         "\"max_tokens\":32,\"temperature\":0}", &r);
    cr_assert_eq(r.status, 200, "%s", r.data);
    json_t *o = json_of(&r);
    const char *c = jstr(o, "choices.0.message.content");
    cr_assert(c && strstr(c, "Paris"), "%s", r.data);
    cr_assert_null(strstr(c, "<|im_end|>"));
    cr_assert_null(strstr(c, "<|im_start|>"));
    cr_assert_str_eq(jstr(o, "choices.0.finish_reason"), "stop", "%s", r.data);
    json_decref(o);
    free(r.data);
}

/* The Gemma 3 270M file is the base model: no chat template. Chat is
 * refused with a message naming --chat-template; with the flag it works. */
Test(serve, gemma3_without_template)
{
    char path[512];
    if (real_model(path, sizeof path, "gemma-3-270m-q4_k_m.gguf"))
        cr_skip_test("Gemma 3 not fetched (make models, or SHOWDOWN_MODELS)");
    const char *args[] = {"-c", "512", NULL};
    char *log = NULL;
    if (server_try_start(path, args, &log)) {
        int unsupported = log && strstr(log, "unsupported architecture");
        char msg[256];
        snprintf(msg, sizeof msg, "the server did not start: %.200s", log ? log : "");
        free(log);
        if (unsupported) cr_skip_test("this build does not load gemma3 yet");
        cr_assert_fail("%s", msg);
    }
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"max_tokens\":4}";
    reply r;
    http("POST", "/v1/chat/completions", body, &r);
    assert_error(&r, 400, "--chat-template");
    free(r.data);
    cr_assert_eq(server_stop(SIGTERM, 10000, NULL), 0);
    const char *args2[] = {"-c", "512", "--chat-template", "gemma", NULL};
    server_try_start(path, args2, NULL);
    http("POST", "/v1/chat/completions", body, &r);
    cr_assert_eq(r.status, 200, "%s", r.data);
    free(r.data);
}

/* Bad flags: exit 1 with one "error:" line, before anything listens. */
Test(serve, cli_bad_flags)
{
    char model[512];
    shared_path(model, sizeof model, MODEL);
    static const struct { const char *args, *needle; } cases[] = {
        {"", "-m MODEL"},
        {"-m /nonexistent.gguf --port 0", "/nonexistent.gguf"},
        {"-m MODEL --port 70000", "--port"},
        {"-m MODEL --port 0 --chat-template nope", "chatml"},
        {"-m MODEL --port 0 --max-body 1Q", "--max-body"},
        {"-m MODEL --port 0 -np 0", "-np"},
        {"-m MODEL --port 0 --api-key a --api-key-file b", "not both"},
        {"-m MODEL --port 0 --api-key-file /nonexistent-key", "/nonexistent-key"},
        {"-m MODEL --port 0 --host no.such.host.invalid", "--host"},
        {"-m MODEL --bogus", "--bogus"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1200], cmd[2048];
        const char *m = strstr(cases[i].args, "MODEL");
        if (m) snprintf(args, sizeof args, "%.*s%s%s", (int)(m - cases[i].args), cases[i].args, model, m + 5);
        else snprintf(args, sizeof args, "%s", cases[i].args);
        snprintf(cmd, sizeof cmd, "timeout 20 '%s' serve %s 2>&1 >/dev/null", showdown_bin(), args);
        FILE *f = popen(cmd, "r");
        char out[2048];
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = 0;
        int st = pclose(f);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "serve %s: status %d, %s", args, st, out);
        cr_assert(!strncmp(out, "error: ", 7) && strchr(out, '\n') == out + n - 1, "serve %s: '%s'", args, out);
        cr_assert(strstr(out, cases[i].needle), "serve %s: '%s'", args, out);
    }
}

/* --api-key-file: the key from the file's first line. */
Test(serve, api_key_file)
{
    char path[] = "/tmp/sd_serve_key_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, "k3y-from-file\n", 14), 14);
    close(fd);
    server_start("-c", "256", "--api-key-file", path, NULL);
    unlink(path);
    reply r;
    http_key("GET", "/tokenize", NULL, "k3y-from-file", &r);
    assert_error(&r, 405, NULL);
    free(r.data);
    http_key("POST", "/tokenize", "{\"content\":\"a\"}", "k3y-from-fil", &r);
    assert_error(&r, 401, NULL);
    free(r.data);
    cr_assert_eq(http_key("POST", "/tokenize", "{\"content\":\"a\"}", "k3y-from-file", &r), 200, "%s", r.data);
    free(r.data);
}

/* More requests than one slot and the engine's queue (64) hold: the rest get
 * 503 with code queue_full at once, and the server goes on serving. */
Test(serve, queue_full_is_503)
{
    server_start("-c", "2048", "-np", "1", NULL);
    enum { N = 72 };
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":2000,\"ignore_eos\":true,\"stream\":true}";
    CURLM *m = curl_multi_init();
    static reply rs[N];
    CURL *cs[N];
    struct curl_slist *hs[N];
    for (int i = 0; i < N; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        cs[i] = easy("POST", "/v1/completions", body, strlen(body), NULL, &rs[i], &hs[i]);
        curl_multi_add_handle(m, cs[i]);
    }
    int running = N, refused = 0;
    double until = sd_time_ms() + 30000;
    while (sd_time_ms() < until && !refused) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE) {
                long st = 0;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
                for (int i = 0; i < N; i++)
                    if (cs[i] == msg->easy_handle && st == 503) {
                        rs[i].status = st;
                        assert_error(&rs[i], 503, "queue");
                        cr_assert(strstr(rs[i].data, "\"queue_full\""), "%s", rs[i].data);
                        refused++;
                    }
            }
        if (!refused) curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    cr_assert(refused > 0, "no request was refused with 503");
    for (int i = 0; i < N; i++) {   /* hang up: the streams are cancelled */
        curl_multi_remove_handle(m, cs[i]);
        curl_easy_cleanup(cs[i]);
        curl_slist_free_all(hs[i]);
        free(rs[i].data);
    }
    curl_multi_cleanup(m);
    reply r;
    cr_assert_eq(http("GET", "/health", NULL, &r), 200);
    free(r.data);
}
