/* The HTTP server: libmicrohttpd's internal thread pool, routing, API key,
 * body limits, the small endpoints (models, health, tokenize, detokenize,
 * metrics) and one log line per request. Generation is in http_gen.c. */
#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve/http_internal.h"
#include "text/tokenizer.h"

typedef enum { R_NONE = 0, R_COMPLETIONS, R_CHAT, R_MODELS, R_HEALTH, R_TOKENIZE, R_DETOKENIZE, R_METRICS } route;

static const struct { const char *path; route r; const char *method; } routes[] = {
    {"/v1/completions", R_COMPLETIONS, "POST"}, {"/completions", R_COMPLETIONS, "POST"},
    {"/v1/chat/completions", R_CHAT, "POST"},   {"/chat/completions", R_CHAT, "POST"},
    {"/v1/models", R_MODELS, "GET"},            {"/models", R_MODELS, "GET"},
    {"/health", R_HEALTH, "GET"},               {"/v1/health", R_HEALTH, "GET"},
    {"/tokenize", R_TOKENIZE, "POST"},          {"/detokenize", R_DETOKENIZE, "POST"},
    {"/metrics", R_METRICS, "GET"},
};

/* One connection's request. */
typedef struct {
    route r;
    char method[16], path[128];
    char *body;
    size_t n_body, cap_body;
    int too_big, answered, status;
    sd_job *job;
    double t0;
} http_conn;

enum MHD_Result sd_http_send_json(struct MHD_Connection *c, int status, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        struct MHD_Response *r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Content-Type", "application/json");
        enum MHD_Result rc = MHD_queue_response(c, 500, r);
        MHD_destroy_response(r);
        return rc;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!r) { free(s); return MHD_NO; }
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

enum MHD_Result sd_http_send_error(struct MHD_Connection *c, const sd_api_error *e)
{
    char *s = sd_api_error_json(e);
    if (!s) return sd_http_send_json(c, 500, NULL);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!r) { free(s); return MHD_NO; }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (e->status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (e->status == 503 || e->status == 429) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)e->status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result fail(http_conn *hc, struct MHD_Connection *c, int status, const char *type, const char *param,
                            const char *code, const char *msg)
{
    sd_api_error e;
    sd_api_fail(&e, status, type, param, code, "%s", msg);
    hc->status = status;
    hc->answered = 1;
    return sd_http_send_error(c, &e);
}

/* Constant-time comparison of the bearer token with the key. */
static int key_ok(const sd_server *s, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    h += 7;
    size_t n = strlen(h), k = strlen(s->api_key);
    unsigned diff = n != k;
    for (size_t i = 0; i < k; i++) diff |= (unsigned char)s->api_key[i] ^ (unsigned char)(i < n ? h[i] : 0);
    return diff == 0;
}

/* ---- the small endpoints ----------------------------------------------- */

static enum MHD_Result send_models(sd_server *s, http_conn *hc, struct MHD_Connection *c)
{
    const sd_hparams *hp = sd_model_hparams(s->m);
    json_t *o = json_pack("{s:s,s:[{s:s,s:s,s:I,s:s,s:s,s:{s:i,s:i,s:i,s:I,s:I,s:s}}]}", "object", "list", "data",
                          "id", s->model_id, "object", "model", "created", (json_int_t)time(NULL), "owned_by",
                          "showdown", "root", s->model_file, "meta", "n_vocab", hp->n_vocab, "n_ctx_train",
                          hp->n_ctx_train, "n_embd", hp->n_embd, "n_params", (json_int_t)sd_model_n_params(s->m),
                          "size", (json_int_t)sd_model_weight_bytes(s->m), "type", sd_model_type_name(s->m));
    hc->status = 200;
    return sd_http_send_json(c, 200, o);
}

static json_t *load_body(http_conn *hc, sd_api_error *e)
{
    if (!sd_utf8_valid(hc->body ? hc->body : "", hc->n_body)) {
        sd_api_fail(e, 400, NULL, NULL, NULL, "the request body is not valid UTF-8");
        return NULL;
    }
    json_error_t je;
    json_t *o = json_loadb(hc->body ? hc->body : "", hc->n_body, 0, &je);
    if (!o || !json_is_object(o)) {
        sd_api_fail(e, 400, NULL, NULL, NULL, "the request body must be a JSON object%s%.200s", o ? "" : ": ",
                    o ? "" : je.text);
        json_decref(o);
        return NULL;
    }
    return o;
}

static enum MHD_Result send_tokenize(sd_server *s, http_conn *hc, struct MHD_Connection *c)
{
    sd_api_error e;
    json_t *o = load_body(hc, &e), *content = o ? json_object_get(o, "content") : NULL;
    json_t *add = o ? json_object_get(o, "add_special") : NULL, *pieces = o ? json_object_get(o, "with_pieces") : NULL;
    if (o && !json_is_string(content)) sd_api_fail(&e, 400, NULL, "content", NULL, "'content' must be a string");
    else if (o && ((add && !json_is_boolean(add)) || (pieces && !json_is_boolean(pieces))))
        sd_api_fail(&e, 400, NULL, add && !json_is_boolean(add) ? "add_special" : "with_pieces", NULL,
                    "'add_special' and 'with_pieces' must be booleans");
    else if (o) e.status = 0;
    if (!o || e.status) {
        json_decref(o);
        hc->status = e.status;
        return sd_http_send_error(c, &e);
    }
    const sd_tokenizer *tok = sd_model_tokenizer(s->m);
    int32_t *ids = NULL;
    int n = 0;
    char err[SD_ERR_LEN];
    if (sd_tokenize(tok, json_string_value(content), json_string_length(content), json_is_true(add), &ids, &n, err)) {
        json_decref(o);
        return fail(hc, c, 500, "server_error", NULL, NULL, err);
    }
    json_t *arr = json_array();
    for (int i = 0; i < n && arr; i++) {
        if (!json_is_true(pieces)) { json_array_append_new(arr, json_integer(ids[i])); continue; }
        size_t len;
        const char *p = sd_token_piece(tok, ids[i], &len);
        json_t *pj;
        if (sd_utf8_valid(p, len)) pj = json_stringn(p, len);
        else {
            pj = json_array();
            for (size_t k = 0; k < len; k++) json_array_append_new(pj, json_integer((unsigned char)p[k]));
        }
        json_array_append_new(arr, json_pack("{s:i,s:o}", "id", ids[i], "piece", pj));
    }
    free(ids);
    json_decref(o);
    hc->status = 200;
    return sd_http_send_json(c, 200, arr ? json_pack("{s:o}", "tokens", arr) : NULL);
}

static enum MHD_Result send_detokenize(sd_server *s, http_conn *hc, struct MHD_Connection *c)
{
    sd_api_error e;
    json_t *o = load_body(hc, &e), *tokens = o ? json_object_get(o, "tokens") : NULL;
    if (!o) { hc->status = e.status; return sd_http_send_error(c, &e); }
    const sd_tokenizer *tok = sd_model_tokenizer(s->m);
    int nv = sd_tokenizer_n_vocab(tok);
    size_t n = json_array_size(tokens), cap = 1, len = 0;
    int ok = json_is_array(tokens);
    for (size_t i = 0; ok && i < n; i++) {
        json_t *t = json_array_get(tokens, i);
        ok = json_is_integer(t) && json_integer_value(t) >= 0 && json_integer_value(t) < nv;
        if (ok) { size_t pl; sd_token_piece(tok, (int32_t)json_integer_value(t), &pl); cap += pl; }
    }
    if (!ok) {
        json_decref(o);
        char msg[128];
        snprintf(msg, sizeof msg, "'tokens' must be an array of token ids in [0, %d)", nv);
        return fail(hc, c, 400, NULL, "tokens", NULL, msg);
    }
    char *raw = malloc(cap), *txt = malloc(3 * cap);
    for (size_t i = 0; raw && i < n; i++) {
        size_t pl;
        const char *p = sd_token_piece(tok, (int32_t)json_integer_value(json_array_get(tokens, i)), &pl);
        memcpy(raw + len, p, pl);
        len += pl;
    }
    json_t *r = raw && txt ? json_pack("{s:s%}", "content", txt, sd_utf8_sanitize(raw, len, txt)) : NULL;
    free(raw);
    free(txt);
    json_decref(o);
    hc->status = 200;
    return sd_http_send_json(c, 200, r);
}

static enum MHD_Result send_metrics(sd_server *s, http_conn *hc, struct MHD_Connection *c)
{
    sd_engine_stats st;
    pthread_mutex_lock(&s->mu);
    sd_engine *e = s->e;   /* read outside s->mu: the engine's callbacks take it */
    pthread_mutex_unlock(&s->mu);
    int have = e != NULL;
    if (e) sd_engine_get_stats(e, &st);
    char *txt = sd_metrics_render(&s->metrics, have ? &st : NULL);
    if (!txt) return fail(hc, c, 500, "server_error", NULL, NULL, "out of memory");
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    hc->status = 200;
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

/* 200 {"status":"ok"}; 503 with an error object once a GPU step failed
 * (the engine refuses requests from then on). */
static enum MHD_Result send_health(sd_server *s, http_conn *hc, struct MHD_Connection *c)
{
    pthread_mutex_lock(&s->mu);
    sd_engine *e = s->e;
    pthread_mutex_unlock(&s->mu);
    sd_engine_stats st;
    st.failed = 0;
    if (e) sd_engine_get_stats(e, &st);
    if (st.failed) {
        char msg[SD_ERR_LEN];
        snprintf(msg, sizeof msg, "the GPU failed (%.300s); this server refuses requests until it is restarted",
                 st.failure);
        return fail(hc, c, 503, "unavailable_error", NULL, NULL, msg);
    }
    hc->status = 200;
    return sd_http_send_json(c, 200, json_pack("{s:s}", "status", "ok"));
}

/* ---- the access handler ------------------------------------------------ */

/* First call for a request: route, method, key and declared size. Returns
 * 1 when it answered already (an error). */
static int check_request(sd_server *s, http_conn *hc, struct MHD_Connection *c, const char *url, const char *method)
{
    snprintf(hc->method, sizeof hc->method, "%s", method);
    snprintf(hc->path, sizeof hc->path, "%s", url);
    /* Both go into the log line: no control characters (the URL is unescaped). */
    for (char *p = hc->path; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    for (char *p = hc->method; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    const char *want = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(url, routes[i].path)) { hc->r = routes[i].r; want = routes[i].method; break; }
    if (!want) { fail(hc, c, 404, NULL, NULL, "not_found", "unknown path (see the README: serve)"); return 1; }
    if (strcmp(method, want) && !(!strcmp(want, "GET") && !strcmp(method, "HEAD"))) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s takes %s, not %.16s", url, want, method);
        fail(hc, c, 405, NULL, NULL, "method_not_allowed", msg);
        return 1;
    }
    if (s->api_key && hc->r != R_HEALTH && hc->r != R_MODELS && !key_ok(s, c)) {
        fail(hc, c, 401, "authentication_error", NULL, "invalid_api_key",
             "a valid API key is needed: send the header 'Authorization: Bearer KEY'");
        return 1;
    }
    if (hc->r == R_METRICS && !s->p.metrics) {
        fail(hc, c, 501, "not_supported_error", NULL, NULL, "metrics are off: start the server with --metrics");
        return 1;
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->p.max_body) hc->too_big = 1;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    sd_server *s = cls;
    http_conn *hc = *con_cls;
    if (!hc) {
        if (!(hc = calloc(1, sizeof *hc))) return MHD_NO;
        hc->t0 = sd_time_ms();
        *con_cls = hc;
        check_request(s, hc, c, url, method);
        return MHD_YES;
    }
    if (hc->answered && !hc->job) { *upload_size = 0; return MHD_YES; }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (hc->too_big || hc->n_body + n > s->p.max_body) { hc->too_big = 1; return MHD_YES; }
        if (hc->n_body + n + 1 > hc->cap_body) {
            size_t cap = (hc->n_body + n + 1) * 2;
            if (cap > s->p.max_body + 1) cap = s->p.max_body + 1;
            char *p = realloc(hc->body, cap);
            if (!p) return MHD_NO;
            hc->body = p;
            hc->cap_body = cap;
        }
        memcpy(hc->body + hc->n_body, upload, n);
        hc->n_body += n;
        return MHD_YES;
    }
    if (hc->job) return sd_http_generate_resume(s, c, hc->job, &hc->status);
    hc->answered = 1;
    if (hc->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is larger than --max-body (%zu bytes)", s->p.max_body);
        return fail(hc, c, 413, NULL, NULL, "request_too_large", msg);
    }
    pthread_mutex_lock(&s->mu);
    int ready = s->ready, down = s->shutting_down;
    pthread_mutex_unlock(&s->mu);
    if (down) return fail(hc, c, 503, "unavailable_error", NULL, NULL, "the server is shutting down");
    if (!ready)
        return fail(hc, c, 503, "unavailable_error", NULL, NULL, "the model is loading");
    switch (hc->r) {
    case R_HEALTH: return send_health(s, hc, c);
    case R_MODELS: return send_models(s, hc, c);
    case R_TOKENIZE: return send_tokenize(s, hc, c);
    case R_DETOKENIZE: return send_detokenize(s, hc, c);
    case R_METRICS: return send_metrics(s, hc, c);
    case R_COMPLETIONS:
    case R_CHAT:
        return sd_http_generate(s, c, hc->r == R_CHAT ? SD_API_CHAT : SD_API_COMPLETION, hc->body, hc->n_body,
                                &hc->job, &hc->status);
    default: return fail(hc, c, 404, NULL, NULL, "not_found", "unknown path");
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    sd_server *s = cls;
    http_conn *hc = *con_cls;
    if (!hc) return;
    *con_cls = NULL;
    char line[512];
    int status = hc->status ? hc->status : 500;
    if (hc->job) {
        sd_job *j = hc->job;
        pthread_mutex_lock(&j->mu);
        snprintf(line, sizeof line, "%s %s %d prompt=%d cached=%d gen=%d ttft=%.1fms total=%.1fms%s", hc->method,
                 hc->path, status, j->n_prompt, j->n_cached, j->n_gen, j->t_first > 0 ? j->t_first - j->t_start : -1.0,
                 sd_time_ms() - hc->t0, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (client gone)");
        pthread_mutex_unlock(&j->mu);
        sd_http_job_closed(s, j);
    } else {
        snprintf(line, sizeof line, "%s %s %d total=%.1fms", hc->method, hc->path, status, sd_time_ms() - hc->t0);
    }
    sd_metrics_request(&s->metrics, status);
    if (s->p.log) s->p.log(s->p.log_user, line);
    free(hc->body);
    free(hc);
}

/* The address to bind: a numeric IPv4/IPv6 address or a host name. */
static int resolve(const char *host, int port, struct sockaddr_storage *ss, char *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc) { snprintf(err, SD_ERR_LEN, "--host %s: %s", host, gai_strerror(rc)); return -1; }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int sd_server_start(const sd_server_params *p, sd_server **out, char *err)
{
    *out = NULL;
    sd_server *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, SD_ERR_LEN, "out of memory"); return -1; }
    s->p = *p;
    snprintf(s->host, sizeof s->host, "%s", p->host ? p->host : "127.0.0.1");
    s->p.host = s->host;
    if (p->api_key && !(s->api_key = strdup(p->api_key))) { free(s); snprintf(err, SD_ERR_LEN, "out of memory"); return -1; }
    const char *file = p->model_file ? p->model_file : "";
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    snprintf(s->model_file, sizeof s->model_file, "%s", base);
    snprintf(s->model_id, sizeof s->model_id, "%s", p->model_id && p->model_id[0] ? p->model_id : base);
    s->p.api_key = s->api_key;
    s->p.model_id = s->model_id;
    s->p.model_file = s->model_file;
    if (!s->p.max_body) s->p.max_body = 1 << 20;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->id_salt = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 32;
    sd_metrics_init(&s->metrics, p->metrics ? p->energy : NULL);
    struct sockaddr_storage ss;
    if (resolve(s->host, p->port, &ss, err)) { sd_server_free(s); return -1; }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)p->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &ss,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_THREAD_POOL_SIZE,
                            (unsigned)(p->n_threads > 0 ? p->n_threads : 4), MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)(p->timeout_s > 0 ? p->timeout_s : 600), MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)1000, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, SD_ERR_LEN, "cannot listen on %s port %d (in use, or not an address of this machine?)", s->host,
                 p->port);
        sd_server_free(s);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : p->port;
    *out = s;
    return 0;
}

int sd_server_port(const sd_server *s) { return s->port; }

void sd_server_set_model(sd_server *s, sd_model *m, sd_engine *e, sd_chat_template chat)
{
    pthread_mutex_lock(&s->mu);
    s->m = m;
    s->e = e;
    s->chat = chat;
    s->ready = 1;
    pthread_mutex_unlock(&s->mu);
}

/* Waits until no job is in flight or the deadline passes; 1 when none is left. */
static int wait_jobs(sd_server *s, double deadline_ms)
{
    pthread_mutex_lock(&s->mu);
    while (s->n_jobs && sd_time_ms() < deadline_ms) {
        pthread_mutex_unlock(&s->mu);
        usleep(10000);
        pthread_mutex_lock(&s->mu);
    }
    int none = !s->n_jobs;
    pthread_mutex_unlock(&s->mu);
    return none;
}

void sd_server_shutdown(sd_server *s, int grace_ms)
{
    if (!s || !s->d) return;
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    pthread_mutex_lock(&s->mu);
    s->shutting_down = 1;
    pthread_mutex_unlock(&s->mu);
    if (!wait_jobs(s, sd_time_ms() + grace_ms)) {
        /* Cancel outside s->mu: the engine's callbacks take it. Jobs
         * submitted from now on cancel themselves (cancel_all). */
        pthread_mutex_lock(&s->mu);
        s->cancel_all = 1;
        int n = 0;
        uint64_t *ids = malloc((size_t)(s->n_jobs ? s->n_jobs : 1) * sizeof *ids);
        for (sd_job *j = s->jobs; j && ids; j = j->next)
            if (j->engine_id) ids[n++] = j->engine_id;
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < n; i++) sd_engine_cancel(s->e, ids[i]);
        free(ids);
        /* A cancelled request ends at the engine's next step, which can be
         * many seconds away (a software Vulkan driver, a large prompt
         * chunk); stopping the daemon with a connection still suspended
         * aborts the process, so wait for every job. A step always ends: a
         * hung device is reported lost at its fence's timeout. */
        wait_jobs(s, INFINITY);
    }
    /* Let the connections send what they have (every job is done, so none
     * stays suspended), then stop the threads. */
    double until = sd_time_ms() + 1000;
    for (;;) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!di || !di->num_connections || sd_time_ms() > until) break;
        usleep(10000);
    }
    MHD_stop_daemon(s->d);
    s->d = NULL;
}

void sd_server_free(sd_server *s)
{
    if (!s) return;
    if (s->d) sd_server_shutdown(s, 0);
    sd_metrics_free(&s->metrics);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->api_key);
    free(s);
}
