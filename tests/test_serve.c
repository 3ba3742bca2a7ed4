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

#include "serve_client.h"

TestSuite(serve, .fini = server_kill, .timeout = 120);

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
    free(completion_text("{\"prompt\":\"Once upon a time\",\"max_tokens\":4,\"ignore_eos\":true}", NULL));
    /* The counters count what was asked: 5 prompt tokens (BOS + 4), 4 generated. */
    cr_assert_eq(metric("showdown_prompt_tokens_total"), 5);
    cr_assert_eq(metric("showdown_generated_tokens_total"), 4);
    cr_assert_eq(metric("showdown_busy_slots"), 0);
    cr_assert_eq(metric("showdown_preemptions_total"), 0);
    cr_assert_eq(http("GET", "/metrics", NULL, &r), 200);
    static const char *names[] = {"showdown_requests_total{status=\"200\"}",
                                  "showdown_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1",
                                  "showdown_inter_token_latency_seconds_count",
                                  "showdown_busy_slots",
                                  "showdown_queue_depth",
                                  "showdown_kv_cache_usage_ratio",
                                  "showdown_prefix_cache_hit_tokens_total",
                                  "showdown_generated_tokens_total",
                                  "showdown_prompt_tokens_total",
                                  "showdown_preemptions_total",
                                  "# TYPE showdown_time_to_first_token_seconds histogram"};
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
