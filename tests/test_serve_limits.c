/* showdown serve at its limits, end to end (the real binary on an
 * ephemeral loopback port, libcurl): a KV cache too small for the requests
 * in flight (preemption), a full queue (429), the loading phase (/health
 * 503), prompt log-probabilities streamed and with a warm prefix cache,
 * connections that never finish their request, penalties and
 * max_completion_tokens. Bounded: a tiny model, few tokens, timeouts. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "serve_client.h"

TestSuite(serve_limits, .fini = server_kill, .timeout = 120);

/* Ends the test's server with SIGTERM: it must exit 0 (under ASan, also
 * without a leak or error in the server process). */
static void stop_clean(void)
{
    int st = server_stop(SIGTERM, 15000, NULL);
    if (st) dump_log();
    cr_assert_eq(st, 0, "the server exited with %d", st);
}

/* -c 128 is 8 blocks of 16 positions; 4 requests of 40 tokens need 3 each.
 * The pool runs out mid-generation: the youngest sequences are preempted
 * and recomputed, and every answer still equals its solo answer. A request
 * that can never fit (prompt + max_tokens > -c) is refused with 400. */
Test(serve_limits, kv_exhaustion_preempts_and_answers_equal_solo)
{
    server_start("-c", "128", "-np", "4", "--metrics", NULL);
    enum { N = 4 };
    static const char *prompts[N] = {"Once upon a time", "The dog", "Lily wanted", "Tom and Sue"};
    char bodies[N][256], *solo[N], *together[N];
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], "{\"prompt\":\"%s\",\"max_tokens\":40,\"temperature\":0,\"ignore_eos\":true}",
                 prompts[i]);
        solo[i] = completion_text(bodies[i], NULL);
    }
    cr_assert_eq(metric("showdown_preemptions_total"), 0, "one request at a time fits");
    completions_together(bodies[0], sizeof bodies[0], N, 90, "length", together);
    for (int i = 0; i < N; i++) {
        cr_assert_str_eq(together[i], solo[i], "request %d alone: '%s', with company: '%s'", i, solo[i], together[i]);
        free(solo[i]);
        free(together[i]);
    }
    cr_assert_gt(metric("showdown_preemptions_total"), 0, "the pool never ran out: nothing was tested");
    cr_assert_eq(metric("showdown_kv_cache_blocks_used"), 0);
    reply r;
    http("POST", "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":124}", &r);
    assert_error(&r, 400, "context");
    json_t *o = json_of(&r);
    cr_assert_str_eq(jstr(o, "error.code"), "context_length_exceeded");
    cr_assert_str_eq(jstr(o, "error.param"), "max_tokens");
    json_decref(o);
    free(r.data);
    /* 5 prompt tokens + 123 = 128: fits. */
    cr_assert_eq(http("POST", "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":123}", &r), 200, "%s",
                 r.data);
    free(r.data);
    stop_clean();
}

static size_t on_header(char *p, size_t sz, size_t nm, void *u)
{
    char *retry = u;
    size_t n = sz * nm;
    if (n > 12 && !strncasecmp(p, "Retry-After:", 12)) snprintf(retry, 32, "%.*s", (int)strcspn(p + 12, "\r\n"), p + 12);
    return n;
}

/* -np 1 --queue 2: one request generating and two waiting fill the server;
 * the next gets 429 with OpenAI's rate-limit error and Retry-After at once,
 * and when the others are gone the server serves again. */
Test(serve_limits, queue_full_is_429)
{
    server_start("-c", "2048", "-np", "1", "--queue", "2", "--metrics", NULL);
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":1500,\"ignore_eos\":true,\"stream\":true}";
    CURLM *m = curl_multi_init();
    enum { N = 3 };
    reply rs[N];
    CURL *cs[N];
    struct curl_slist *hs[N];
    int running = 0;
    for (int i = 0; i < N; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        cs[i] = easy("POST", "/v1/completions", body, strlen(body), NULL, &rs[i], &hs[i]);
        curl_multi_add_handle(m, cs[i]);
        /* the first generating, then each queued, before the next */
        double until = sd_time_ms() + 20000;
        while (sd_time_ms() < until) {
            curl_multi_perform(m, &running);
            if (i == 0 ? rs[0].n > 0 : metric("showdown_queue_depth") == i) break;
            curl_multi_poll(m, NULL, 0, 20, NULL);
        }
    }
    cr_assert_eq(metric("showdown_busy_slots"), 1);
    cr_assert_eq(metric("showdown_queue_depth"), 2);
    for (int k = 0; k < 2; k++) {
        reply r;
        memset(&r, 0, sizeof r);
        char retry[32] = "";
        struct curl_slist *h;
        const char *b = "{\"prompt\":\"The dog\",\"max_tokens\":4}";
        CURL *c = easy("POST", "/v1/completions", b, strlen(b), NULL, &r, &h);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, retry);
        double t0 = sd_time_ms();
        cr_assert_eq(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        cr_assert_lt(sd_time_ms() - t0, 5000, "the refusal waited");
        assert_error(&r, 429, "retry later");
        json_t *o = json_of(&r);
        cr_assert_str_eq(jstr(o, "error.code"), "rate_limit_exceeded");
        cr_assert_str_eq(jstr(o, "error.type"), "requests");
        json_decref(o);
        cr_assert(atoi(retry) >= 1, "Retry-After: '%s'", retry);
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        free(r.data);
    }
    for (int i = 0; i < N; i++) {   /* hang up: the streams are cancelled */
        curl_multi_remove_handle(m, cs[i]);
        curl_easy_cleanup(cs[i]);
        curl_slist_free_all(hs[i]);
        free(rs[i].data);
    }
    curl_multi_cleanup(m);
    double t0 = sd_time_ms();
    while ((metric("showdown_busy_slots") || metric("showdown_queue_depth")) && sd_time_ms() - t0 < 5000) usleep(20000);
    json_t *o;
    free(completion_text("{\"prompt\":\"The dog\",\"max_tokens\":4,\"ignore_eos\":true}", &o));
    cr_assert_eq(jint(o, "usage.completion_tokens"), 4);
    json_decref(o);
    cr_assert_eq(metric("showdown_requests_total{status=\"429\"}"), 2);
    stop_clean();
}

/* While the model loads (a test delay: SHOWDOWN_TEST_LOAD_DELAY_MS), /health
 * and the API answer 503 with the error object; then /health says 200. */
Test(serve_limits, health_is_503_while_loading)
{
    char model[512];
    shared_path(model, sizeof model, MODEL);
    const char *argv[] = {showdown_bin(), "serve", "-m", model, "--port", "0", "-t", "1", "-c", "256", NULL};
    setenv("SHOWDOWN_TEST_LOAD_DELAY_MS", "2000", 1);
    int rc = serve_child_start_until(&srv, argv, "loading ");
    unsetenv("SHOWDOWN_TEST_LOAD_DELAY_MS");
    cr_assert_eq(rc, 0, "no loading line");
    reply r;
    http("GET", "/health", NULL, &r);
    assert_error(&r, 503, "loading");
    free(r.data);
    http("POST", "/v1/completions", "{\"prompt\":\"hi\"}", &r);
    assert_error(&r, 503, "loading");
    free(r.data);
    long st = 503;
    double t0 = sd_time_ms();
    while (st == 503 && sd_time_ms() - t0 < 20000) {
        usleep(50000);
        st = http("GET", "/health", NULL, &r);
        free(r.data);
    }
    cr_assert_eq(st, 200, "/health never became ready");
    cr_assert_gt(sd_time_ms() - t0, 500, "the load delay was not observed");
    cr_assert_eq(http("POST", "/v1/completions", "{\"prompt\":\"hi\",\"max_tokens\":2}", &r), 200, "%s", r.data);
    free(r.data);
    stop_clean();
}

/* The choice's logprobs of a completion, for exact comparisons. */
static json_t *logprobs_of(const char *body, long long *cached)
{
    reply r;
    http("POST", "/v1/completions", body, &r);
    cr_assert_eq(r.status, 200, "%s", r.data);
    json_t *o = json_of(&r), *lp = json_incref(jget(o, "choices.0.logprobs"));
    if (cached) *cached = jint(o, "usage.prompt_tokens_details.cached_tokens");
    json_decref(o);
    free(r.data);
    cr_assert(json_is_object(lp));
    return lp;
}

/* echo + logprobs: the prompt's log-probabilities are recomputed, never
 * taken from the prefix cache (engine.h), so they are the same with a warm
 * cache; streamed, the first chunk carries the prompt and its
 * log-probabilities, and the chunks together equal the plain answer. */
Test(serve_limits, echo_logprobs_streamed_and_equal_with_a_warm_cache)
{
    server_start("-c", "512", NULL);
    const char *prompt = "Once upon a time there was a little girl named Lily. She liked to play in the park with her "
                         "dog. One day";
    char b[1024];
    snprintf(b, sizeof b, "{\"prompt\":\"%s\",\"max_tokens\":4,\"temperature\":0,\"logprobs\":2,\"echo\":true}", prompt);
    long long cached = -1;
    json_t *cold = logprobs_of(b, &cached);
    cr_assert_eq(cached, 0);
    size_t n_all = json_array_size(json_object_get(cold, "tokens"));
    /* A plain request warms the cache with the same prompt. */
    char plain[1024];
    snprintf(plain, sizeof plain, "{\"prompt\":\"%s\",\"max_tokens\":4,\"temperature\":0}", prompt);
    json_t *o;
    free(completion_text(plain, &o));
    long long n_prompt = jint(o, "usage.prompt_tokens");
    cr_assert_gt(jint(o, "timings.cache_n"), 15, "the prompt was not cached: %lld", jint(o, "timings.cache_n"));
    json_decref(o);
    cr_assert_eq((long long)n_all, n_prompt + 4);
    json_t *warm = logprobs_of(b, &cached);
    cr_assert_eq(cached, 0, "prompt log-probabilities taken from the cache");
    char *a = json_dumps(cold, JSON_SORT_KEYS), *w = json_dumps(warm, JSON_SORT_KEYS);
    cr_assert_str_eq(w, a, "log-probabilities with a warm cache differ");
    free(w);
    /* Streamed: the first chunk has the prompt text and its log-probabilities. */
    snprintf(b, sizeof b,
             "{\"prompt\":\"%s\",\"max_tokens\":4,\"temperature\":0,\"logprobs\":2,\"echo\":true,\"stream\":true}", prompt);
    reply r;
    http("POST", "/v1/completions", b, &r);
    char *text = sse_text(&r, 0, 0, NULL, NULL);
    json_t *joined = json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
    int first = 1;
    for (const char *p = r.data; (p = strstr(p, "data: {")); p++) {
        const char *end = strstr(p, "\n\n");
        json_t *c = json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL);
        json_t *lp = jget(c, "choices.0.logprobs");
        if (first) {
            cr_assert(!strcmp(jstr(c, "choices.0.text"), prompt), "first chunk: %.200s", p);
            cr_assert_eq((long long)json_array_size(json_object_get(lp, "tokens")), n_prompt, "first chunk: %.300s", p);
            first = 0;
        }
        if (json_is_object(lp)) {
            const char *keys[] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
            for (int k = 0; k < 4; k++) json_array_extend(json_object_get(joined, keys[k]), json_object_get(lp, keys[k]));
        }
        json_decref(c);
    }
    w = json_dumps(joined, JSON_SORT_KEYS);
    cr_assert_str_eq(w, a, "the streamed log-probabilities differ from the plain answer's");
    cr_assert(!strncmp(text, prompt, strlen(prompt)), "%s", text);
    free(w);
    free(a);
    free(text);
    free(r.data);
    json_decref(joined);
    json_decref(cold);
    json_decref(warm);
    stop_clean();
}

static int tcp_connect(void)
{
    int port = atoi(strrchr(srv.url, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof a), "cannot connect to %s", srv.url);
    return fd;
}

/* Connections that never finish their request (half a header, half a body,
 * more of them than HTTP threads) neither stop others from being served
 * nor stay open past --timeout. */
Test(serve_limits, half_open_connections_time_out)
{
    server_start("-c", "256", "--timeout", "2", NULL);
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect();
        const char *part = i % 2 ? "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Le"
                                 : "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro";
        cr_assert_eq(send(fds[i], part, strlen(part), 0), (ssize_t)strlen(part));
    }
    reply r;
    double t0 = sd_time_ms();
    cr_assert_eq(http("POST", "/v1/completions", "{\"prompt\":\"The dog\",\"max_tokens\":4}", &r), 200, "%s", r.data);
    free(r.data);
    cr_assert_lt(sd_time_ms() - t0, 1900, "a request waited for the stalled connections");
    /* Each is closed by the server within the timeout (2 s) and a margin. */
    for (int i = 0; i < N; i++) {
        struct pollfd p = {fds[i], POLLIN, 0};
        int left = (int)(t0 + 8000 - sd_time_ms());
        cr_assert_eq(poll(&p, 1, left > 0 ? left : 0), 1, "connection %d still open 8 s later", i);
        char buf[512];
        ssize_t n;
        while ((n = recv(fds[i], buf, sizeof buf, 0)) > 0) {}
        cr_assert_eq(n, 0, "connection %d: not closed", i);
        close(fds[i]);
    }
    stop_clean();
}

/* Distinct tokens of a completion (logprobs' token list). */
static int distinct_tokens(const char *body)
{
    json_t *lp = logprobs_of(body, NULL), *toks = json_object_get(lp, "tokens");
    int n = 0;
    for (size_t i = 0; i < json_array_size(toks); i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = json_equal(json_array_get(toks, i), json_array_get(toks, k));
        n += !seen;
    }
    cr_assert_eq(json_array_size(toks), 60);
    json_decref(lp);
    return n;
}

/* presence/frequency penalties reach the sampler: with them the greedy text
 * repeats itself less. max_completion_tokens bounds a chat answer. */
Test(serve_limits, penalties_and_max_completion_tokens)
{
    server_start("-c", "512", "--chat-template", "chatml", NULL);
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":60,\"temperature\":0,\"ignore_eos\":true,"
                       "\"logprobs\":0%s}";
    char b[512];
    snprintf(b, sizeof b, body, "");
    int plain = distinct_tokens(b);
    snprintf(b, sizeof b, body, ",\"frequency_penalty\":2,\"presence_penalty\":2");
    int pen = distinct_tokens(b);
    cr_assert_gt(pen, plain, "distinct tokens: %d with penalties, %d without", pen, plain);
    reply r;
    http("POST", "/v1/chat/completions",
         "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"max_completion_tokens\":5,"
         "\"ignore_eos\":true,\"temperature\":0}",
         &r);
    cr_assert_eq(r.status, 200, "%s", r.data);
    json_t *o = json_of(&r);
    cr_assert_eq(jint(o, "usage.completion_tokens"), 5, "%s", r.data);
    cr_assert_str_eq(jstr(o, "choices.0.finish_reason"), "length");
    json_decref(o);
    free(r.data);
    stop_clean();
}

/* A body sent in chunks (no Content-Length) past --max-body: 413 too, with
 * the error object, and the server goes on. */
Test(serve_limits, chunked_body_over_max_body_is_413)
{
    server_start("-c", "256", "--max-body", "4K", NULL);
    int fd = tcp_connect();
    const char *head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    cr_assert_eq(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
    char chunk[1024 + 16];
    int n = snprintf(chunk, sizeof chunk, "400\r\n");
    memset(chunk + n, ' ', 1024);
    memcpy(chunk + n + 1024, "\r\n", 2);
    for (int i = 0; i < 6; i++) send(fd, chunk, (size_t)n + 1026, MSG_NOSIGNAL);   /* 6 KiB */
    send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL);
    char resp[4096];
    size_t got = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (got < sizeof resp - 1 && poll(&p, 1, 10000) == 1) {
        ssize_t k = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
        resp[got] = 0;
        if (strstr(resp, "\r\n\r\n") && strstr(resp, "}}")) break;
    }
    close(fd);
    resp[got] = 0;
    cr_assert(!strncmp(resp, "HTTP/1.1 413", 12), "%.300s", resp);
    cr_assert(strstr(resp, "\"error\"") && strstr(resp, "--max-body"), "%.500s", resp);
    reply r;
    cr_assert_eq(http("POST", "/v1/completions", "{\"prompt\":\"hi\",\"max_tokens\":2}", &r), 200, "%s", r.data);
    free(r.data);
    stop_clean();
}

/* SIGTERM while a request runs: the server stops accepting, but a client
 * on a connection it already had gets 503 "shutting down" with the error
 * object (not a hang or a reset) during the grace period; then it exits 0. */
Test(serve_limits, shutdown_answers_503_on_open_connections)
{
    server_start("-c", "4096", "-np", "1", NULL);
    reply h;
    memset(&h, 0, sizeof h);
    struct curl_slist *hh;
    CURL *keep = easy("GET", "/health", NULL, 0, NULL, &h, &hh);
    cr_assert_eq(curl_easy_perform(keep), CURLE_OK);
    curl_easy_getinfo(keep, CURLINFO_RESPONSE_CODE, &h.status);
    cr_assert_eq(h.status, 200);
    free(h.data);
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":4000,\"ignore_eos\":true,\"stream\":true}";
    reply s;
    memset(&s, 0, sizeof s);
    struct curl_slist *hs;
    CURL *c = easy("POST", "/v1/completions", body, strlen(body), NULL, &s, &hs);
    CURLM *m = curl_multi_init();
    curl_multi_add_handle(m, c);
    int running = 1;
    double until = sd_time_ms() + 20000;
    while (running && !s.n && sd_time_ms() < until) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    cr_assert(s.n > 0, "the stream never started");
    kill(srv.pid, SIGTERM);
    usleep(200000);   /* the signal is taken */
    memset(&h, 0, sizeof h);
    cr_assert_eq(curl_easy_perform(keep), CURLE_OK);
    curl_easy_getinfo(keep, CURLINFO_RESPONSE_CODE, &h.status);
    long reused = 0;
    curl_easy_getinfo(keep, CURLINFO_NUM_CONNECTS, &reused);
    cr_assert_eq(reused, 0, "the second request did not reuse the open connection");
    assert_error(&h, 503, "shutting down");
    free(h.data);
    while (running && sd_time_ms() < until) {
        curl_multi_perform(m, &running);
        if (running) curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    cr_assert_eq(running, 0, "the stream is still open");
    cr_assert_eq(server_stop(0, 15000, NULL), 0);
    curl_multi_remove_handle(m, c);
    curl_easy_cleanup(c);
    curl_slist_free_all(hs);
    free(s.data);
    curl_multi_cleanup(m);
    curl_easy_cleanup(keep);
    curl_slist_free_all(hh);
}
