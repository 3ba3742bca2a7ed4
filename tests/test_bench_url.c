/* showdown bench --url against a small fault server built here with
 * libmicrohttpd (loopback, port 0): a well-behaved fake that streams exactly
 * max_tokens chunks with usage, and one mode per fault (500, closed
 * mid-stream, malformed JSON and SSE, error event, stall, no usage). The
 * server's own counts and arrival times are the truths the client is
 * checked against. Plus the SSE parser split at every byte, the chunk
 * reader, the statistics (numpy's percentiles) and the gamma arrivals. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/sse.h"
#include "bench/url.h"
#include "common.h"

/* ---- the fault server -------------------------------------------------- */

#define MAX_ARRIVALS 256
static struct {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    int n_completions, n_tokenize;
    long tokens_sent;
    double arrival_ms[MAX_ARRIVALS];
    volatile int stopping;
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

typedef struct { char *b; size_t n; } upload;

typedef struct {
    char **pieces;
    int n, next;
    int end_error;     /* after the pieces: close the connection mid-stream */
    int stall_ms;      /* after the pieces: send nothing for this long, then close */
    int delay_ms;      /* before each piece */
} stream;

static int words_in(const char *s) { return sd_url_approx_tokens(s); }

static void push(stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void push(stream *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p;
    if (vasprintf(&p, fmt, ap) < 0) abort();
    va_end(ap);
    s->pieces = realloc(s->pieces, (size_t)(s->n + 1) * sizeof *s->pieces);
    s->pieces[s->n++] = p;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *s = cls;
    if (s->next < s->n) {
        if (s->delay_ms) usleep((useconds_t)s->delay_ms * 1000);
        size_t l = strlen(s->pieces[s->next]);
        if (l > max) l = max;   /* pieces are small; max is at least a few KiB */
        memcpy(buf, s->pieces[s->next++], l);
        return (ssize_t)l;
    }
    for (int t = 0; t < s->stall_ms && !srv.stopping; t += 20) usleep(20000);
    return s->end_error || s->stall_ms ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls)
{
    stream *s = cls;
    for (int i = 0; i < s->n; i++) free(s->pieces[i]);
    free(s->pieces);
    free(s);
}

static enum MHD_Result reply(struct MHD_Connection *c, int code, const char *body, const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, r);
    MHD_destroy_response(r);
    return ret;
}

/* One text chunk, sent in two pieces split inside the JSON (a client must
 * not care where TCP cuts), every other one with CRLF line ends. */
static void token_chunk(stream *s, int chat, int i)
{
    char ev[200];
    const char *end = i % 2 ? "\r\n\r\n" : "\n\n";
    if (chat) snprintf(ev, sizeof ev, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tok%d\"}}]}%s", i, end);
    else snprintf(ev, sizeof ev, "data: {\"choices\":[{\"index\":0,\"text\":\" tok%d\"}]}%s", i, end);
    size_t cut = strlen(ev) / 2;
    push(s, "%.*s", (int)cut, ev);
    push(s, "%s", ev + cut);
}

static enum MHD_Result completion(struct MHD_Connection *c, const char *mode, int chat, const upload *u)
{
    json_t *req = json_loadb(u->b ? u->b : "", u->n, 0, NULL);
    if (!req) return reply(c, 400, "{\"error\":{\"message\":\"bad json\"}}", "application/json");
    const char *prompt = chat ? json_string_value(json_object_get(json_array_get(json_object_get(req, "messages"), 0), "content"))
                              : json_string_value(json_object_get(req, "prompt"));
    int max_tokens = (int)json_integer_value(json_object_get(req, "max_tokens"));
    int want_usage = json_is_true(json_object_get(json_object_get(req, "stream_options"), "include_usage"));
    int n_prompt = prompt ? words_in(prompt) : 0;
    json_decref(req);
    if (max_tokens <= 0) max_tokens = 3;
    pthread_mutex_lock(&srv.mu);
    int k = srv.n_completions++;
    if (k < MAX_ARRIVALS) srv.arrival_ms[k] = sd_time_ms();
    pthread_mutex_unlock(&srv.mu);

    if (!strcmp(mode, "e500") || (!strcmp(mode, "mixed") && k % 3 == 2))
        return reply(c, 500, "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}", "application/json");
    stream *s = calloc(1, sizeof *s);
    int n_tok = max_tokens;
    if (!strcmp(mode, "slow")) s->delay_ms = 10;
    if (!strcmp(mode, "close") || !strcmp(mode, "stall") || !strcmp(mode, "error")) n_tok = 2;
    push(s, ": keep-alive comment\n\n");
    for (int i = 0; i < n_tok; i++) token_chunk(s, chat, i);
    pthread_mutex_lock(&srv.mu);
    srv.tokens_sent += n_tok;
    pthread_mutex_unlock(&srv.mu);
    if (!strcmp(mode, "close")) s->end_error = 1;
    else if (!strcmp(mode, "stall")) s->stall_ms = 1500;
    else if (!strcmp(mode, "error")) push(s, "data: {\"error\":{\"message\":\"out of memory\",\"code\":500}}\n\n");
    else if (!strcmp(mode, "malformed")) push(s, "data: {\"choices\": [{\"text\": \"x\"\n\ndata: [DONE]\n\n");
    else if (!strcmp(mode, "badsse")) push(s, "\x01\x02 garbage that never ends its line");
    else {
        if (want_usage && strcmp(mode, "nousage"))
            push(s, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d},"
                    "\"timings\":{\"prompt_n\":%d,\"prompt_ms\":1.5,\"predicted_n\":%d,\"predicted_ms\":%d}}\n\n",
                 n_prompt, n_tok, n_prompt + n_tok, n_prompt, n_tok, 2 * n_tok);
        push(s, "data: [DONE]\n\n");
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, s, stream_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **con_cls)
{
    upload *u = *con_cls;
    if (!u) { *con_cls = calloc(1, sizeof(upload)); return MHD_YES; }
    if (*size) {
        u->b = realloc(u->b, u->n + *size + 1);
        memcpy(u->b + u->n, data, *size);
        u->n += *size;
        u->b[u->n] = 0;
        *size = 0;
        return MHD_YES;
    }
    char mode[32] = "";
    const char *rest = url[0] == '/' ? strchr(url + 1, '/') : NULL;
    if (!rest || rest - url - 1 >= (long)sizeof mode) return reply(c, 404, "{}", "application/json");
    memcpy(mode, url + 1, (size_t)(rest - url - 1));
    mode[rest - url - 1] = 0;
    if (!strcmp(mode, "auth")) {
        const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!key || strcmp(key, "Bearer sekret")) return reply(c, 401, "{\"error\":{\"message\":\"bad key\"}}", "application/json");
    }
    if (!strcmp(rest, "/v1/models"))
        return reply(c, 200, "{\"object\":\"list\",\"data\":[{\"id\":\"fake-model\",\"object\":\"model\"}]}", "application/json");
    if (!strcmp(rest, "/tokenize") && strncmp(mode, "no", 2)) {   /* notok, nousage: none */
        /* one token per word: an exact, independent count for the tests */
        json_t *j = json_loadb(u->b ? u->b : "", u->n, 0, NULL);
        int n = words_in(json_string_value(json_object_get(j, "content")) ? json_string_value(json_object_get(j, "content")) : "");
        json_decref(j);
        json_t *toks = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(toks, json_integer(100 + i));
        json_t *o = json_pack("{s:o}", "tokens", toks);
        char *body = json_dumps(o, 0);
        json_decref(o);
        pthread_mutex_lock(&srv.mu);
        srv.n_tokenize++;
        pthread_mutex_unlock(&srv.mu);
        enum MHD_Result r = reply(c, 200, body, "application/json");
        free(body);
        return r;
    }
    if (!strcmp(rest, "/v1/completions") && !strcmp(method, "POST")) return completion(c, mode, 0, u);
    if (!strcmp(rest, "/v1/chat/completions") && !strcmp(method, "POST")) return completion(c, mode, 1, u);
    return reply(c, 404, "{\"error\":{\"message\":\"not found\"}}", "application/json");
}

static void done_cb(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    upload *u = *con_cls;
    if (u) { free(u->b); free(u); }
    *con_cls = NULL;
}

static void server_start(void)
{
    srv.stopping = 0;
    srv.n_completions = srv.n_tokenize = 0;
    srv.tokens_sent = 0;
    srv.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, handler, NULL,
                             MHD_OPTION_NOTIFY_COMPLETED, done_cb, NULL, MHD_OPTION_SOCK_ADDR, NULL, MHD_OPTION_END);
    cr_assert_not_null(srv.d, "the fault server did not start");
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(srv.d, MHD_DAEMON_INFO_BIND_PORT);
    srv.port = i->port;
}

static void server_stop(void)
{
    srv.stopping = 1;
    if (srv.d) MHD_stop_daemon(srv.d);
    srv.d = NULL;
}

static char *base(const char *mode)
{
    static char b[128];
    snprintf(b, sizeof b, "http://127.0.0.1:%d/%s/v1", srv.port, mode);
    return b;
}

/* ---- running the library against it ------------------------------------ */

static sd_url_prompt *word_prompts(int n, int words)
{
    sd_url_random_spec sp = {n, words, 0, 0, 0, 7, NULL, NULL};
    sd_url_prompt *p;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_url_prompts_random(&sp, &p, err), 0, "%s", err);
    return p;
}

typedef struct { sd_url_metrics m; sd_url_run_info info; sd_url_result *res; } run_out;

static void run(const char *mode, int n, int conc, double rate, int out_len, double timeout_s, int chat, run_out *o)
{
    sd_url_prompt *p = word_prompts(n, 9);
    sd_url_params prm = {base(mode), "fake-model", NULL, chat, p, n, n, out_len, 1, conc, rate, 1.0, 3, timeout_s, 1, NULL, NULL};
    char err[SD_ERR_LEN];
    o->res = calloc((size_t)n, sizeof *o->res);
    cr_assert_eq(sd_url_run(&prm, o->res, &o->info, err), 0, "%s", err);
    cr_assert_eq(sd_url_metrics_compute(o->res, n, &o->info, NULL, &o->m, err), 0, "%s", err);
    sd_url_prompts_free(p, n);
}

static void run_free(run_out *o)
{
    sd_url_results_free(o->res, o->m.num_prompts);
    free(o->res);
}

TestSuite(bench_url, .init = server_start, .fini = server_stop, .timeout = 60);

Test(bench_url, closed_loop_counts_and_tokens_match_the_server)
{
    run_out o;
    run("good", 12, 4, INFINITY, 5, 10, 0, &o);
    cr_assert_eq(o.m.completed, 12);
    cr_assert_eq(o.m.failed, 0);
    cr_assert_eq(srv.n_completions, 12, "the server saw %d requests", srv.n_completions);
    cr_assert_eq(o.m.total_output_tokens, srv.tokens_sent);
    cr_assert_eq(o.m.total_output_tokens, 12 * 5);
    cr_assert_eq(o.m.total_input_tokens, 12 * 9, "input %ld", o.m.total_input_tokens);   /* the server's usage: words */
    cr_assert_eq(o.m.peak_concurrency, 4);
    cr_assert_eq(o.m.server_timed, 12);   /* the server's "timings", read back */
    cr_assert_eq(o.m.server_output_tokens, 60);
    cr_assert_float_eq(o.m.server_mean_ms_per_token, 2.0, 1e-12);
    cr_assert_float_eq(o.m.server_mean_prompt_ms, 1.5, 1e-12);
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(o.res[i].n_chunks, 5);
        cr_assert_eq(o.res[i].n_itl, 4);
        cr_assert(o.res[i].ttft_ms > 0 && o.res[i].ttft_ms <= o.res[i].e2el_ms);
    }
    cr_assert(o.m.request_throughput > 0 && fabs(o.m.request_throughput - 12 / o.info.duration_s) < 1e-9);
    cr_assert(fabs(o.m.output_throughput - 60 / o.info.duration_s) < 1e-9);
    run_free(&o);
}

Test(bench_url, chat_endpoint_and_timings_follow_the_server_pace)
{
    run_out o;
    run("slow", 4, 2, INFINITY, 6, 10, 1, &o);   /* 10 ms before each piece, two pieces per token */
    cr_assert_eq(o.m.completed, 4);
    cr_assert_eq(o.m.total_output_tokens, 24);
    /* a token every ~20 ms (two 10 ms pieces): ITL and TPOT near 20, never below */
    cr_assert(o.m.itl.median >= 18 && o.m.itl.median < 80, "ITL median %.1f ms", o.m.itl.median);
    cr_assert(o.m.tpot.mean >= 18 && o.m.tpot.mean < 80, "TPOT mean %.1f ms", o.m.tpot.mean);
    cr_assert(o.m.ttft.median >= 19, "TTFT median %.1f ms (the comment and first token take 3 pieces)", o.m.ttft.median);
    run_free(&o);
}

static void expect_all_failed(const char *mode, const char *reason, double timeout_s)
{
    run_out o;
    double t0 = sd_time_ms();
    run(mode, 3, 3, INFINITY, 4, timeout_s, 0, &o);
    cr_assert_eq(o.m.completed, 0, "%s: %d completed", mode, o.m.completed);
    cr_assert_eq(o.m.failed, 3, "%s", mode);
    cr_assert_eq(o.m.n_reasons, 1, "%s: %d reasons (first %s)", mode, o.m.n_reasons, o.m.first_reason);
    cr_assert_eq(o.m.reason_count[0], 3);
    cr_assert(strstr(o.m.first_reason, reason), "%s: reason '%s' lacks '%s'", mode, o.m.first_reason, reason);
    cr_assert(isnan(o.m.ttft.mean) && o.m.total_output_tokens == 0);
    cr_assert(sd_time_ms() - t0 < 10000);
    run_free(&o);
}

Test(bench_url, http_500_is_a_failure_with_the_server_message)
{
    expect_all_failed("e500", "HTTP 500: boom", 10);
}

Test(bench_url, closed_mid_stream) { expect_all_failed("close", "connection closed mid-stream", 10); }
Test(bench_url, malformed_json) { expect_all_failed("malformed", "malformed JSON", 10); }
Test(bench_url, malformed_sse) { expect_all_failed("badsse", "stream ended mid-event", 10); }
Test(bench_url, error_event_mid_stream) { expect_all_failed("error", "error event in the stream: out of memory", 10); }
Test(bench_url, no_usage) { expect_all_failed("nousage", "no usage", 10); }

Test(bench_url, stall_past_the_timeout)
{
    double t0 = sd_time_ms();
    expect_all_failed("stall", "stalled", 0.3);
    cr_assert(sd_time_ms() - t0 < 1400, "the stalled requests were not cut at --timeout");
}

Test(bench_url, connection_refused)
{
    int port = srv.port;
    server_stop();   /* nothing listens there now */
    sd_url_prompt *p = word_prompts(2, 3);
    char url[96], err[SD_ERR_LEN];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/good/v1", port);
    sd_url_params prm = {url, "m", NULL, 0, p, 2, 2, 4, 0, 2, INFINITY, 1, 1, 5, 1, NULL, NULL};
    sd_url_result res[2] = {0};
    sd_url_run_info info;
    cr_assert_eq(sd_url_run(&prm, res, &info, err), 0);
    for (int i = 0; i < 2; i++) cr_assert(!res[i].ok && !strcmp(res[i].reason, "connection refused"), "%s", res[i].reason);
    char model[64];
    cr_assert_eq(sd_url_probe(url, NULL, 5, model, sizeof model, err), -1);
    cr_assert(strstr(err, "cannot reach") && !strchr(err, '\n'), "%s", err);
    sd_url_prompts_free(p, 2);
}

Test(bench_url, mixed_faults_the_run_goes_on)
{
    run_out o;
    run("mixed", 9, 2, INFINITY, 3, 10, 0, &o);
    cr_assert_eq(o.m.completed, 6);
    cr_assert_eq(o.m.failed, 3);
    cr_assert_eq(o.m.total_output_tokens, 18);
    cr_assert(strstr(o.m.first_reason, "HTTP 500"));
    run_free(&o);
}

Test(bench_url, open_loop_arrivals_follow_the_gamma_schedule)
{
    /* gaps of 100 ms on average: on a loaded two-core machine a send can be
     * late by a few ms (rarely by tens), never by a gap */
    const int n = 16;
    const double rate = 10;
    run_out o;
    run("good", n, 0, rate, 2, 10, 0, &o);
    cr_assert_eq(o.m.completed, n);
    double t[16], dev[16];
    sd_url_arrivals(rate, 1.0, 3, n, t);   /* the seed run() uses */
    for (int i = 0; i < n; i++) {
        /* the server's own clock (same monotonic clock, same machine) */
        double got = srv.arrival_ms[i] - srv.arrival_ms[0], want = t[i] * 1000;
        dev[i] = fabs(got - want);
        cr_assert(dev[i] < 150, "request %d arrived at %.1f ms, scheduled %.1f", i, got, want);
        cr_assert(fabs(o.res[i].start_s * 1000 - want) < 60, "request %d sent at %.1f ms, scheduled %.1f", i, o.res[i].start_s * 1000, want);
    }
    sd_url_dist d;
    sd_url_dist_of(dev, n, &d);
    cr_assert(d.median < 20, "arrivals off their schedule by %.1f ms (median)", d.median);
    cr_assert(o.info.duration_s >= t[n - 1], "run shorter than its schedule");
    run_free(&o);
}

/* ---- prompts ------------------------------------------------------------ */

Test(bench_url, random_prompts_are_exact_with_the_server_tokenizer)
{
    sd_url_tokenizer tk;
    cr_assert_eq(sd_url_tokenizer_open(&tk, base("good"), "fake-model", NULL), 0);
    sd_url_random_spec sp = {6, 20, 5, 0, 0.5, 11, sd_url_tokenizer_count, &tk};
    sd_url_prompt *p;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_url_prompts_random(&sp, &p, err), 0, "%s", err);
    size_t plen = 0;   /* the first five words of prompt 0: the shared prefix */
    for (int w = 0; w < 5; w++) plen += strcspn(p[0].text + plen, " ") + 1;
    for (int i = 0; i < 6; i++) {
        int body = p[i].n_tokens - 5;
        cr_assert(body >= 10 && body <= 30, "length %d outside 20 +- 50%%", body);
        cr_assert_eq(words_in(p[i].text), p[i].n_tokens, "counted %d, text has %d words", p[i].n_tokens, words_in(p[i].text));
        cr_assert(!strncmp(p[i].text, p[0].text, plen), "prompts do not share the prefix");
    }
    cr_assert(srv.n_tokenize > 0);
    sd_url_prompts_free(p, 6);
    sd_url_tokenizer_close(&tk);
    cr_assert_eq(sd_url_tokenizer_open(&tk, base("notok"), "fake-model", NULL), -1, "a 404 /tokenize was taken as a tokenizer");
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(bench_url, jsonl_and_sharegpt_prompts)
{
    char dir[64], a[128], b[128], err[SD_ERR_LEN];
    cr_assert_eq(tmp_dir_make(dir, sizeof dir), 0);
    snprintf(a, sizeof a, "%s/p.jsonl", dir);
    write_text(a, "\"one two three\"\n\n{\"prompt\": \"four five\", \"output_len\": 7}\n");
    sd_url_prompt *p;
    cr_assert_eq(sd_url_prompts_jsonl(a, 10, NULL, NULL, &p, err), 2, "%s", err);
    cr_assert_str_eq(p[0].text, "one two three");
    cr_assert_eq(p[0].n_tokens, 3);
    cr_assert_eq(p[1].output_len, 7);
    sd_url_prompts_free(p, 2);
    write_text(a, "\"ok\"\n{\"prompt\": 5}\n");
    cr_assert_eq(sd_url_prompts_jsonl(a, 10, NULL, NULL, &p, err), -1);
    cr_assert(strstr(err, a) && strstr(err, ":2:") && !strchr(err, '\n'), "%s", err);

    snprintf(b, sizeof b, "%s/s.json", dir);
    write_text(b, "[{\"conversations\":[{\"from\":\"human\",\"value\":\"a b c d e\"},{\"from\":\"gpt\",\"value\":\"f g h i j k\"}]},"
                  " {\"conversations\":[{\"from\":\"human\",\"value\":\"too short\"},{\"from\":\"gpt\",\"value\":\"x y z w\"}]},"
                  " {\"id\": 3}]");
    int n = sd_url_prompts_sharegpt(b, 5, 1, NULL, NULL, &p, err);
    cr_assert_eq(n, 1, "%s", err);
    cr_assert_str_eq(p[0].text, "a b c d e");
    cr_assert_eq(p[0].n_tokens, 5);
    cr_assert_eq(p[0].output_len, 6);
    sd_url_prompts_free(p, 1);
    write_text(b, "{\"not\": \"an array\"}");
    cr_assert_eq(sd_url_prompts_sharegpt(b, 5, 1, NULL, NULL, &p, err), -1);
    cr_assert(strstr(err, b), "%s", err);
    tmp_dir_remove(dir);
}

/* ---- the CLI ----------------------------------------------------------- */

/* A whole file as a NUL-terminated string ("" when missing or empty). */
static char *read_text(const char *path)
{
    size_t n = 0;
    char *b = read_all(path, &n);
    char *s = calloc(1, n + 1);
    if (b && n) memcpy(s, b, n);
    free(b);
    return s;
}

static int run_cli(const char *args, char **out, char **errt)
{
    char dir[64], cmd[2048], o[128], e[128];
    cr_assert_eq(tmp_dir_make(dir, sizeof dir), 0);
    snprintf(o, sizeof o, "%s/out", dir);
    snprintf(e, sizeof e, "%s/err", dir);
    snprintf(cmd, sizeof cmd, "%s bench %s >%s 2>%s", showdown_bin(), args, o, e);
    int st = system(cmd);
    *out = read_text(o);
    *errt = read_text(e);
    tmp_dir_remove(dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(bench_url, cli_sweep_json_and_svg)
{
    char args[1024], svg[64], *out, *err;
    snprintf(svg, sizeof svg, "/tmp/sd_url_test_%d.svg", (int)getpid());
    snprintf(args, sizeof args, "--url %s --concurrency 1,3 --num-prompts 6 --input-len 8 --output-len 4 --warmup 1 "
                                "--goodput ttft:60000 -o json --svg %s", base("good"), svg);
    int rc = run_cli(args, &out, &err);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    json_error_t je;
    json_t *a = json_loads(out, 0, &je);
    cr_assert(json_is_array(a) && json_array_size(a) == 2, "not a 2-point JSON array: %s", out);
    for (int i = 0; i < 2; i++) {
        json_t *o = json_array_get(a, (size_t)i);
        cr_assert_eq(json_integer_value(json_object_get(o, "concurrency")), i ? 3 : 1);
        cr_assert_eq(json_integer_value(json_object_get(o, "completed")), 6);
        cr_assert_eq(json_integer_value(json_object_get(o, "failed")), 0);
        cr_assert_eq(json_integer_value(json_object_get(o, "total_output_tokens")), 24);
        cr_assert_eq(json_integer_value(json_object_get(o, "total_input_tokens")), 48);   /* exact via /tokenize */
        cr_assert_str_eq(json_string_value(json_object_get(o, "request_rate")), "inf");
        const char *keys[] = {"request_throughput", "output_throughput", "total_token_throughput", "mean_ttft_ms",
                              "median_tpot_ms", "p90_itl_ms", "p99_e2el_ms", "goodput"};
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            cr_assert(json_real_value(json_object_get(o, keys[k])) > 0, "%s missing or not positive", keys[k]);
        cr_assert(fabs(json_real_value(json_object_get(o, "goodput")) - json_real_value(json_object_get(o, "request_throughput"))) < 1e-9,
                  "every request meets a 60 s TTFT");
        cr_assert(json_is_null(json_object_get(o, "energy_j")), "energy invented without --energy");
    }
    cr_assert_eq(srv.n_completions, 1 + 12, "warm-up plus two points of 6");
    json_decref(a);
    char *s = read_text(svg);
    cr_assert(s && strstr(s, "<svg") && strstr(s, "</svg>") && strstr(s, "TPOT p99") && strstr(s, "c=3"), "bad SVG");
    free(s);
    unlink(svg);
    free(out);
    free(err);
    /* an SVG that cannot be written stops the run before it sends anything */
    snprintf(args, sizeof args, "--url %s --num-prompts 2 --warmup 0 --svg /nonexistent-dir/x.svg", base("good"));
    cr_assert_eq(run_cli(args, &out, &err), 1);
    cr_assert(strstr(err, "error: --svg: cannot write /nonexistent-dir/x.svg"), "%s", err);
    cr_assert_str_eq(out, "");
    cr_assert_eq(srv.n_completions, 13, "requests were sent");
    free(out);
    free(err);
}

Test(bench_url, cli_rate_sweep_csv_jsonl_and_md)
{
    char args[512], *out, *err;
    snprintf(args, sizeof args, "--url %s --request-rate 50,inf --burstiness 2 --num-prompts 4 --output-len 2 --warmup 0 -o csv", base("good"));
    cr_assert_eq(run_cli(args, &out, &err), 0, "%s", err);
    char *l2 = strchr(out, '\n');
    cr_assert(l2 && strstr(out, "completed,failed,total_input_tokens") && strstr(out, "request_rate"), "%s", out);
    int lines = 0;
    for (char *c = out; *c; c++) lines += *c == '\n';
    cr_assert_eq(lines, 3, "header + 2 points: %s", out);
    cr_assert(strstr(l2, ",50,2,"), "rate 50 and burstiness 2 in the first row: %s", l2);
    free(out); free(err);
    snprintf(args, sizeof args, "--url %s --request-rate 50 --num-prompts 3 --output-len 2 --warmup 0 -o jsonl", base("good"));
    cr_assert_eq(run_cli(args, &out, &err), 0, "%s", err);
    json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
    cr_assert(json_is_object(o) && json_real_value(json_object_get(o, "request_rate")) == 50);
    cr_assert(json_is_null(json_object_get(o, "concurrency")));
    json_decref(o);
    free(out); free(err);
    snprintf(args, sizeof args, "--url %s --concurrency 2 --num-prompts 3 --output-len 2 --warmup 0", base("mixed"));
    cr_assert_eq(run_cli(args, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "| concurrency 2 | 2 | 1 |"), "md row: %s", out);
    cr_assert(strstr(out, "HTTP 500: boom"), "failure reason in the md footer: %s", out);
    cr_assert(strstr(err, "1 of 3 requests failed"), "%s", err);
    free(out); free(err);
}

Test(bench_url, cli_local_tokenizer_makes_prompt_lengths_exact)
{
    /* no /tokenize and no usage: the prompt counts are the local tokenizer's,
     * and the stories260K vocabulary splits most words, so only the counting
     * loop can land on 24 tokens */
    char args[512], model[256], *out, *err;
    shared_path(model, sizeof model, "models/tiny-q8_0.gguf");
    snprintf(args, sizeof args, "--url %s --concurrency 2 --num-prompts 3 --input-len 24 --output-len 2 --warmup 0 "
                                "--allow-no-usage -m %s -o json", base("nousage"), model);
    cr_assert_eq(run_cli(args, &out, &err), 0, "%s", err);
    json_t *a = json_loads(out, 0, NULL), *o = json_array_get(a, 0);
    cr_assert_eq(json_integer_value(json_object_get(o, "total_input_tokens")), 3 * 24, "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(o, "total_output_tokens")), 3 * 2, "counted chunks");
    cr_assert(strstr(json_string_value(json_object_get(o, "prompts")), "exact: tokenizer of"));
    json_decref(a);
    free(out); free(err);
    /* neither: approximate, and said so */
    snprintf(args, sizeof args, "--url %s --num-prompts 2 --output-len 2 --warmup 0 -o json", base("notok"));
    cr_assert_eq(run_cli(args, &out, &err), 0, "%s", err);
    cr_assert(strstr(err, "note: prompt lengths are approximate"), "%s", err);
    cr_assert(strstr(out, "approximate: one token per word"), "%s", out);
    free(out); free(err);
}

Test(bench_url, cli_energy_is_never_invented)
{
    char args[512], *out, *err;
    snprintf(args, sizeof args, "SHOWDOWN_POWERCAP_ROOT=/nonexistent %s bench --url %s --num-prompts 2 --output-len 2 "
                                "--warmup 0 --energy -o json", showdown_bin(), base("good"));
    /* run_cli puts the binary first; this one needs the environment before it */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s >/tmp/sd_url_energy_%d.json 2>/dev/null", args, (int)getpid());
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "/tmp/sd_url_energy_%d.json", (int)getpid());
    out = read_text(cmd);
    unlink(cmd);
    json_t *a = json_loads(out, 0, NULL), *o = json_array_get(a, 0);
    cr_assert(json_is_object(o), "%s", out);
    cr_assert(json_is_null(json_object_get(o, "energy_j")) && json_is_null(json_object_get(o, "tokens_per_j")));
    cr_assert(!strncmp(json_string_value(json_object_get(o, "energy_boundary")), "unavailable: ", 13), "%s",
              json_string_value(json_object_get(o, "energy_boundary")));
    json_decref(a);
    free(out);
    (void)err;
}

Test(bench_url, cli_prompt_file_lengths_and_cycling)
{
    char dir[64], file[128], args[512], *out, *err;
    cr_assert_eq(tmp_dir_make(dir, sizeof dir), 0);
    snprintf(file, sizeof file, "%s/p.jsonl", dir);
    write_text(file, "{\"prompt\": \"a b\", \"output_len\": 3}\n{\"prompt\": \"c d e\", \"output_len\": 5}\n");
    /* 4 requests over 2 prompts: each file length twice (the fake streams max_tokens) */
    snprintf(args, sizeof args, "--url %s --prompts %s --num-prompts 4 --warmup 0 -o jsonl", base("good"), file);
    cr_assert_eq(run_cli(args, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "\"total_input_tokens\":10,\"total_output_tokens\":16"), "%s", out);
    free(out); free(err);
    snprintf(args, sizeof args, "--url %s --prompts %s --num-prompts 4 --output-len 2 --warmup 0 -o jsonl", base("good"), file);
    cr_assert_eq(run_cli(args, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "\"total_input_tokens\":10,\"total_output_tokens\":8"), "--output-len wins: %s", out);
    free(out); free(err);
    snprintf(args, sizeof args, "--url %s --prompts %s/missing.jsonl --warmup 0", base("good"), dir);
    cr_assert_eq(run_cli(args, &out, &err), 1);
    cr_assert(strstr(err, "missing.jsonl: cannot open") && strchr(err, '\n') == err + strlen(err) - 1, "%s", err);
    cr_assert_str_eq(out, "");
    free(out); free(err);
    tmp_dir_remove(dir);
}

Test(bench_url, cli_api_key)
{
    char args[512], *out, *err;
    snprintf(args, sizeof args, "--url %s --api-key sekret --num-prompts 2 --output-len 2 --warmup 0 -o jsonl", base("auth"));
    cr_assert_eq(run_cli(args, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "\"completed\":2,\"failed\":0"), "%s", out);
    free(out); free(err);
    snprintf(args, sizeof args, "--url %s --num-prompts 2 --output-len 2 --warmup 0 -o jsonl", base("auth"));
    cr_assert_eq(run_cli(args, &out, &err), 1);
    cr_assert(strstr(err, "error: every request failed at sweep point 1: HTTP 401: bad key"), "%s", err);
    free(out); free(err);
}

Test(bench_url, cli_all_failed_writes_results_then_fails)
{
    char args[512], *out, *err;
    snprintf(args, sizeof args, "--url %s --concurrency 2 --num-prompts 4 --warmup 0 -o json", base("e500"));
    int rc = run_cli(args, &out, &err);
    cr_assert_neq(rc, 0);
    json_t *a = json_loads(out, 0, NULL);
    cr_assert(json_is_array(a), "results not written: %s", out);
    json_t *o = json_array_get(a, 0);
    cr_assert_eq(json_integer_value(json_object_get(o, "failed")), 4);
    json_t *f = json_array_get(json_object_get(o, "failures"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(f, "reason")), "HTTP 500: boom");
    cr_assert_eq(json_integer_value(json_object_get(f, "count")), 4);
    json_decref(a);
    cr_assert(strstr(err, "error: every request failed at sweep point 1: HTTP 500: boom\n"), "%s", err);
    free(out); free(err);
}

Test(bench_url, cli_bad_input_is_one_line)
{
    struct { const char *args, *want; } cases[] = {
        {"--url ftp://x/v1", "--url: expected http"},
        {"--url http:///v1", "--url: no host"},
        {"--url http://127.0.0.1:1/v1 --concurrency 0", "--concurrency"},
        {"--url http://127.0.0.1:1/v1 --concurrency 2 --request-rate 3", "not both"},
        {"--url http://127.0.0.1:1/v1 --request-rate fast", "--request-rate"},
        {"--url http://127.0.0.1:1/v1 --goodput ttft=5", "--goodput"},
        {"--url http://127.0.0.1:1/v1 --endpoint embeddings", "--endpoint"},
        {"--url http://127.0.0.1:1/v1 --frobnicate 1", "unknown option"},
        {"--url http://127.0.0.1:1/v1 --warmup 0", "cannot reach http://127.0.0.1:1/v1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out, *err;
        int rc = run_cli(cases[i].args, &out, &err);
        cr_assert_eq(rc, 1, "%s: exit %d", cases[i].args, rc);
        cr_assert(!strncmp(err, "error: ", 7) && strstr(err, cases[i].want), "%s: '%s'", cases[i].args, err);
        cr_assert(strchr(err, '\n') == err + strlen(err) - 1, "%s: not one line: '%s'", cases[i].args, err);
        cr_assert_str_eq(out, "", "%s wrote results", cases[i].args);
        free(out); free(err);
    }
}

/* ---- pure parts: SSE, chunks, statistics, arrivals ----------------------- */

typedef struct { char log[4096]; int n; } evlog;

static int log_event(const char *event, const char *data, size_t len, void *user)
{
    evlog *l = user;
    size_t at = strlen(l->log);
    snprintf(l->log + at, sizeof l->log - at, "[%s|%.*s]", event, (int)len, data);
    l->n++;
    return 0;
}

static const char stream_text[] =
    ": hello comment\r\n\r\n"
    "data: {\"a\":1}\n\n"
    "event: error\r\ndata: first\r\ndata:second\r\n\r\n"
    "id: 7\nretry: 10\ndata\n\n"
    "data: x\r\rdata: y\n\n"
    ":only a comment\n\n"
    "data: [DONE]\n\n"
    "data: pending";
static const char stream_want[] = "[|{\"a\":1}][error|first\nsecond][|][|x][|y][|[DONE]]";

Test(bench_url, sse_split_at_every_byte)
{
    size_t n = strlen(stream_text);
    char err[SD_ERR_LEN];
    for (size_t cut = 0; cut <= n; cut++) {
        sd_sse p;
        evlog l = {{0}, 0};
        sd_sse_init(&p);
        cr_assert_eq(sd_sse_feed(&p, stream_text, cut, log_event, &l, err), 0);
        cr_assert_eq(sd_sse_feed(&p, stream_text + cut, n - cut, log_event, &l, err), 0);
        cr_assert_str_eq(l.log, stream_want, "split at %zu", cut);
        cr_assert(sd_sse_pending(&p), "the unterminated last event is pending");
        sd_sse_free(&p);
    }
    sd_sse p;
    evlog l = {{0}, 0};
    sd_sse_init(&p);
    for (size_t i = 0; i < n; i++) cr_assert_eq(sd_sse_feed(&p, stream_text + i, 1, log_event, &l, err), 0);
    cr_assert_str_eq(l.log, stream_want, "byte by byte");
    sd_sse_free(&p);
}

static int stop_at_first(const char *e, const char *d, size_t n, void *u) { ++*(int *)u; return 1; }

Test(bench_url, sse_limits_and_stops)
{
    sd_sse p;
    char err[SD_ERR_LEN];
    int calls = 0;
    sd_sse_init(&p);
    cr_assert_eq(sd_sse_feed(&p, "data: a\n\ndata: b\n\n", 18, stop_at_first, &calls, err), 1);
    cr_assert_eq(calls, 1);
    sd_sse_free(&p);
    sd_sse_init(&p);
    size_t big = SD_SSE_MAX_LINE + 10;
    char *b = malloc(big);
    memset(b, 'x', big);
    memcpy(b, "data: ", 6);
    cr_assert_eq(sd_sse_feed(&p, b, big, stop_at_first, &calls, err), -1);
    cr_assert(strstr(err, "line of the event stream is over"), "%s", err);
    free(b);
    sd_sse_free(&p);
}

Test(bench_url, openai_chunks)
{
    sd_oai_chunk c;
    char err[SD_ERR_LEN];
    const char *t = "{\"choices\":[{\"index\":0,\"text\":\"hello\",\"finish_reason\":null}]}";
    cr_assert_eq(sd_oai_chunk_parse("", t, strlen(t), 0, &c, err), 0);
    cr_assert(c.content_len == 5 && !c.has_usage && !c.is_error && !c.done);
    t = "{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}";
    cr_assert_eq(sd_oai_chunk_parse("", t, strlen(t), 1, &c, err), 0);
    cr_assert_eq(c.content_len, 0, "an empty role delta is not text");
    t = "{\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}";
    cr_assert_eq(sd_oai_chunk_parse("", t, strlen(t), 1, &c, err), 0);
    cr_assert(c.content_len == 2 && !c.has_usage);
    t = "{\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34}}";
    cr_assert_eq(sd_oai_chunk_parse("", t, strlen(t), 0, &c, err), 0);
    cr_assert(c.has_usage && c.prompt_tokens == 12 && c.completion_tokens == 34 && c.content_len == 0);
    t = "{\"error\":{\"message\":\"bad\\nthing\"}}";
    cr_assert_eq(sd_oai_chunk_parse("", t, strlen(t), 0, &c, err), 0);
    cr_assert(c.is_error);
    cr_assert_str_eq(c.error, "bad thing");
    cr_assert_eq(sd_oai_chunk_parse("error", "overloaded", 10, 0, &c, err), 0);
    cr_assert(c.is_error && !strcmp(c.error, "overloaded"));
    cr_assert_eq(sd_oai_chunk_parse("", "[DONE]", 6, 0, &c, err), 0);
    cr_assert(c.done);
    cr_assert_eq(sd_oai_chunk_parse("", "{\"choices\":", 11, 0, &c, err), -1);
    cr_assert(strstr(err, "malformed JSON"));
    cr_assert_eq(sd_oai_chunk_parse("", "[1,2]", 5, 0, &c, err), -1);
}

Test(bench_url, percentiles_are_numpys)
{
    double x[] = {4, 1, 3, 2};
    sd_url_dist d;
    sd_url_dist_of(x, 4, &d);
    /* numpy.percentile([1,2,3,4], [50, 90, 99]) = 2.5, 3.7, 3.97; std = 1.118034 */
    cr_assert_float_eq(d.median, 2.5, 1e-12);
    cr_assert_float_eq(d.p90, 3.7, 1e-12);
    cr_assert_float_eq(d.p99, 3.97, 1e-12);
    cr_assert_float_eq(d.mean, 2.5, 1e-12);
    cr_assert_float_eq(d.std, sqrt(1.25), 1e-12);
    double one[] = {7};
    sd_url_dist_of(one, 1, &d);
    cr_assert(d.median == 7 && d.p99 == 7 && d.std == 0);
    sd_url_dist_of(NULL, 0, &d);
    cr_assert(isnan(d.mean) && isnan(d.p99));
}

Test(bench_url, metrics_follow_vllm_definitions)
{
    double itl0[] = {10, 30};
    sd_url_result r[3] = {
        {.ok = 1, .ttft_ms = 100, .e2el_ms = 140, .prompt_tokens = 10, .output_tokens = 3, .n_chunks = 3, .itl_ms = itl0, .n_itl = 2},
        {.ok = 1, .ttft_ms = 400, .e2el_ms = 400, .prompt_tokens = 20, .output_tokens = 1, .n_chunks = 1},
        {.ok = 0, .reason = "HTTP 503: busy"},
    };
    sd_url_run_info info = {2.0, 2};
    sd_url_slo slo;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_url_slo_parse("ttft:200,tpot:50", &slo, err), 0);
    sd_url_metrics m = {0};
    cr_assert_eq(sd_url_metrics_compute(r, 3, &info, &slo, &m, err), 0);
    cr_assert(m.completed == 2 && m.failed == 1 && m.total_input_tokens == 30 && m.total_output_tokens == 4);
    cr_assert_float_eq(m.request_throughput, 1.0, 1e-12);
    cr_assert_float_eq(m.output_throughput, 2.0, 1e-12);
    cr_assert_float_eq(m.total_token_throughput, 17.0, 1e-12);
    cr_assert_float_eq(m.tpot.mean, 20.0, 1e-12, "(140 - 100) / (3 - 1), the 1-token request has none");
    cr_assert_float_eq(m.itl.mean, 20.0, 1e-12);
    cr_assert_float_eq(m.ttft.median, 250.0, 1e-12);
    cr_assert_float_eq(m.goodput, 0.5, 1e-12, "only the first meets TTFT 200 ms");
    cr_assert_str_eq(m.first_reason, "HTTP 503: busy");
    cr_assert_eq(sd_url_slo_parse("ttft:abc", &slo, err), -1);
    cr_assert_eq(sd_url_slo_parse("latency:5", &slo, err), -1);
    cr_assert_eq(sd_url_slo_parse("", &slo, err), -1);
    cr_assert_eq(sd_url_slo_parse("e2el:3000", &slo, err), 0);
    cr_assert(slo.e2el_ms == 3000 && isnan(slo.ttft_ms));
}

Test(bench_url, gamma_gaps_have_vllms_mean_and_spread)
{
    /* gamma(k, 1/(rate k)): mean 1/rate, variance 1/(rate^2 k) */
    const int n = 40000;
    double *t = malloc((n + 1) * sizeof *t);
    for (int b = 0; b < 3; b++) {
        double burst = (double[]){1.0, 4.0, 0.5}[b], rate = 8;
        sd_url_arrivals(rate, burst, 5, n + 1, t);
        double s = 0, ss = 0;
        for (int i = 0; i < n; i++) s += t[i + 1] - t[i];
        double mean = s / n;
        for (int i = 0; i < n; i++) ss += (t[i + 1] - t[i] - mean) * (t[i + 1] - t[i] - mean);
        double var = ss / (n - 1), want_var = 1.0 / (rate * rate * burst);
        cr_assert(fabs(mean - 1 / rate) < 0.02 / rate, "burstiness %g: mean gap %g", burst, mean);
        cr_assert(fabs(var - want_var) < 0.06 * want_var, "burstiness %g: variance %g, want %g", burst, var, want_var);
    }
    sd_url_arrivals(INFINITY, 1, 5, 10, t);
    for (int i = 0; i < 10; i++) cr_assert_eq(t[i], 0);
    free(t);
}

static int local_count(void *ctx, const char *text, int *n, char *err)
{
    int32_t *ids = NULL;
    if (sd_tokenize(ctx, text, strlen(text), 0, &ids, n, err) != 0) return -1;
    free(ids);
    return 0;
}

Test(bench_url, random_prompts_land_exactly_on_a_subword_vocabulary)
{
    /* the stories260K vocabulary (512 tokens) splits most words into 2-3
     * tokens: the counting loop must still land on every length exactly */
    char path[256], err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(path, sizeof path, "models/tiny-q8_0.gguf"), &m, err), 0, "%s", err);
    int lens[] = {1, 2, 5, 64, 300};
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
        sd_url_random_spec sp = {12, lens[k], k == 3 ? 10 : 0, 0, 0, 100 + k, local_count, sd_model_tokenizer(m)};
        sd_url_prompt *p;
        cr_assert_eq(sd_url_prompts_random(&sp, &p, err), 0, "%s", err);
        for (int i = 0; i < 12; i++) {
            int n;
            cr_assert_eq(local_count(sd_model_tokenizer(m), p[i].text, &n, err), 0);
            int want = lens[k] + sp.prefix_len;
            /* prefix and body are counted apart; joined, a word boundary may merge */
            cr_assert(p[i].n_tokens == want && abs(n - want) <= (sp.prefix_len ? 1 : 0),
                      "length %d: prompt %d counted %d, tokenizes to %d", want, i, p[i].n_tokens, n);
        }
        sd_url_prompts_free(p, 12);
    }
    sd_model_free(m);
}
