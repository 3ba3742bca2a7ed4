/* The load generator: libcurl's multi interface drives every streaming
 * request from this one thread, so timestamps (monotonic clock, taken in the
 * write callback as bytes arrive) are not skewed by thread scheduling.
 * Arrivals: a closed loop keeping `concurrency` streams busy, or an open loop
 * sending at precomputed gamma-distributed times (sd_url_arrivals). Every
 * fault becomes a failed result with its reason and the run goes on. */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/sse.h"
#include "bench/url.h"

typedef struct {
    CURL *h;
    struct curl_slist *hdrs;
    char *body;
    sd_sse sse;
    sd_url_result *r;
    const sd_url_params *p;
    double t0, last_chunk, last_byte;
    int http_checked, http_code, saw_done, saw_usage, failed_here;
    long usage_prompt, usage_completion;
    char errbody[4096];   /* the start of an error answer, for its message */
    size_t errbody_len;
    int itl_cap;
    char curl_err[CURL_ERROR_SIZE];
} req;

/* The first fault of a request is its reason (one line, at most 199 bytes). */
static void set_fail(req *q, const char *why)
{
    if (q->failed_here) return;
    q->failed_here = 1;
    snprintf(q->r->reason, sizeof q->r->reason, "%.199s", why);
}

static int on_event(const char *event, const char *data, size_t len, void *user)
{
    req *q = user;
    sd_oai_chunk c;
    char err[SD_ERR_LEN];
    if (sd_oai_chunk_parse(event, data, len, q->p->chat, &c, err) != 0) {
        set_fail(q, err);
        return 1;
    }
    if (c.is_error) {
        char why[200];
        snprintf(why, sizeof why, "error event in the stream: %.150s", c.error);
        set_fail(q, why);
        return 1;
    }
    if (c.done) { q->saw_done = 1; return 0; }
    if (c.has_timings) {
        q->r->has_timings = 1;
        q->r->srv_prompt_ms = c.prompt_ms;
        q->r->srv_predicted_ms = c.predicted_ms;
        q->r->srv_predicted_n = c.predicted_n;
    }
    if (c.has_usage) {
        q->saw_usage = 1;
        q->usage_prompt = c.prompt_tokens;
        q->usage_completion = c.completion_tokens;
    }
    if (c.content_len) {
        sd_url_result *r = q->r;
        double now = q->last_byte;
        if (r->n_chunks == 0) {
            r->ttft_ms = now - q->t0;
        } else {
            if (r->n_itl == q->itl_cap) {
                int cap = q->itl_cap ? 2 * q->itl_cap : 64;
                double *ni = realloc(r->itl_ms, (size_t)cap * sizeof *ni);
                if (!ni) { set_fail(q, "out of memory"); return 1; }
                r->itl_ms = ni;
                q->itl_cap = cap;
            }
            r->itl_ms[r->n_itl++] = now - q->last_chunk;
        }
        q->last_chunk = now;
        r->n_chunks++;
    }
    return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *user)
{
    req *q = user;
    size_t n = size * nmemb;
    q->last_byte = sd_time_ms();
    if (!q->http_checked) {
        long code = 0;
        curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &code);
        q->http_code = (int)code;
        q->http_checked = 1;
    }
    if (q->http_code != 200) {   /* keep the start of the error body for the reason */
        size_t room = sizeof q->errbody - 1 - q->errbody_len, k = n < room ? n : room;
        memcpy(q->errbody + q->errbody_len, ptr, k);
        q->errbody_len += k;
        q->errbody[q->errbody_len] = 0;
        return n;
    }
    if (q->failed_here) return 0;   /* aborts the transfer */
    char err[SD_ERR_LEN];
    int rc = sd_sse_feed(&q->sse, ptr, n, on_event, q, err);
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof why, "malformed event stream: %.150s", err);
        set_fail(q, why);
    }
    return q->failed_here ? 0 : n;
}

static char *request_body(const sd_url_params *p, const sd_url_prompt *pr)
{
    json_t *o = json_object();
    if (p->model && p->model[0]) json_object_set_new(o, "model", json_string(p->model));
    if (p->chat) {
        json_t *msg = json_pack("{s:s,s:s}", "role", "user", "content", pr->text);
        json_object_set_new(o, "messages", json_pack("[o]", msg));
    } else {
        json_object_set_new(o, "prompt", json_string(pr->text));
    }
    int max_tokens = pr->output_len > 0 ? pr->output_len : p->output_len;
    if (max_tokens > 0) json_object_set_new(o, "max_tokens", json_integer(max_tokens));
    json_object_set_new(o, "stream", json_true());
    json_object_set_new(o, "stream_options", json_pack("{s:b}", "include_usage", 1));
    if (p->ignore_eos) json_object_set_new(o, "ignore_eos", json_true());
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int start(CURLM *m, req *q, const sd_url_params *p, int i, sd_url_result *r, double run_t0, char *err)
{
    const sd_url_prompt *pr = &p->prompts[i % p->n_prompts];
    memset(q, 0, sizeof *q);
    memset(r, 0, sizeof *r);
    q->p = p;
    q->r = r;
    sd_sse_init(&q->sse);
    q->body = request_body(p, pr);
    q->h = curl_easy_init();
    if (!q->body || !q->h) { snprintf(err, SD_ERR_LEN, "out of memory starting a request"); return -1; }
    char url[2048], auth[600];
    snprintf(url, sizeof url, "%s/%s", p->url, p->chat ? "chat/completions" : "completions");
    q->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    q->hdrs = curl_slist_append(q->hdrs, "Accept: text/event-stream");
    if (p->api_key && p->api_key[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %.500s", p->api_key);
        q->hdrs = curl_slist_append(q->hdrs, auth);
    }
    curl_easy_setopt(q->h, CURLOPT_URL, url);
    curl_easy_setopt(q->h, CURLOPT_HTTPHEADER, q->hdrs);
    curl_easy_setopt(q->h, CURLOPT_POSTFIELDS, q->body);
    curl_easy_setopt(q->h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(q->h, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(q->h, CURLOPT_PRIVATE, q);
    curl_easy_setopt(q->h, CURLOPT_ERRORBUFFER, q->curl_err);
    curl_easy_setopt(q->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(q->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(q->h, CURLOPT_CONNECTTIMEOUT_MS, (long)(p->timeout_s * 1000));
    q->t0 = q->last_byte = sd_time_ms();
    r->start_s = (q->t0 - run_t0) / 1000.0;
    if (curl_multi_add_handle(m, q->h) != CURLM_OK) { snprintf(err, SD_ERR_LEN, "libcurl refused a request"); return -1; }
    return 0;
}

/* The reason a finished transfer failed, or success with its numbers. */
static void finish(req *q, CURLcode code)
{
    sd_url_result *r = q->r;
    const sd_url_params *p = q->p;
    char why[200];
    if (!q->http_checked) {
        long c = 0;
        curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &c);
        q->http_code = (int)c;
    }
    if (q->failed_here) {
        /* reason already set (malformed stream, error event, stall) */
    } else if (code != CURLE_OK && q->http_code == 200) {
        snprintf(why, sizeof why, "connection closed mid-stream (%.150s)", q->curl_err[0] ? q->curl_err : curl_easy_strerror(code));
        set_fail(q, why);
    } else if (code == CURLE_COULDNT_CONNECT) {
        set_fail(q, "connection refused");
    } else if (code != CURLE_OK) {
        snprintf(why, sizeof why, "%.190s", q->curl_err[0] ? q->curl_err : curl_easy_strerror(code));
        set_fail(q, why);
    } else if (q->http_code != 200) {
        /* the error object's message when the body is one, else its start */
        json_t *e = json_loadb(q->errbody, q->errbody_len, 0, NULL), *msg = NULL;
        if (json_is_object(e)) {
            msg = json_object_get(e, "error");
            if (json_is_object(msg)) msg = json_object_get(msg, "message");
            if (!json_is_string(msg)) msg = json_object_get(e, "message");
        }
        char body[120];
        snprintf(body, sizeof body, "%.119s", json_is_string(msg) ? json_string_value(msg) : q->errbody);
        for (char *c = body; *c; c++)
            if ((unsigned char)*c < 32) *c = ' ';
        snprintf(why, sizeof why, "HTTP %d%s%s", q->http_code, body[0] ? ": " : "", body);
        set_fail(q, why);
        json_decref(e);
    } else if (!q->saw_done) {
        set_fail(q, sd_sse_pending(&q->sse) ? "stream ended mid-event, without data: [DONE]"
                                                 : "stream ended without data: [DONE]");
    } else if (r->n_chunks == 0) {
        set_fail(q, "no generated text in the stream");
    } else if (p->require_usage && !q->saw_usage) {
        set_fail(q, "no usage in the stream (the server ignored stream_options.include_usage)");
    }
    if (q->failed_here) { r->ok = 0; return; }
    r->ok = 1;
    r->e2el_ms = q->last_byte - q->t0;
    r->output_tokens = q->saw_usage ? (int)q->usage_completion : r->n_chunks;
    r->prompt_tokens = q->saw_usage ? (int)q->usage_prompt : -1;   /* -1: the caller fills the prompt's count */
}

static void release(CURLM *m, req *q)
{
    curl_multi_remove_handle(m, q->h);
    curl_easy_cleanup(q->h);
    curl_slist_free_all(q->hdrs);
    free(q->body);
    sd_sse_free(&q->sse);
    q->h = NULL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
void sd_url_curl_init(void) { pthread_once(&curl_once, curl_init); }

int sd_url_run(const sd_url_params *p, sd_url_result *res, sd_url_run_info *info, char *err)
{
    memset(info, 0, sizeof *info);
    sd_url_curl_init();
    if (p->n <= 0 || p->n_prompts <= 0) { snprintf(err, SD_ERR_LEN, "no requests to send"); return -1; }
    int slots = p->concurrency > 0 ? p->concurrency : p->n;
    if (slots > p->n) slots = p->n;
    double *when = malloc((size_t)p->n * sizeof *when);
    req *q = calloc((size_t)slots, sizeof *q);
    int *owner = malloc((size_t)p->n * sizeof *owner);   /* request index of each slot */
    CURLM *m = curl_multi_init();
    if (!when || !q || !owner || !m) {
        free(when); free(q); free(owner);
        if (m) curl_multi_cleanup(m);
        snprintf(err, SD_ERR_LEN, "out of memory (or libcurl) starting %d requests", p->n);
        return -1;
    }
    sd_url_arrivals(p->concurrency > 0 ? INFINITY : p->request_rate, p->burstiness > 0 ? p->burstiness : 1, p->seed, p->n, when);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    int next = 0, done = 0, failed = 0, in_flight = 0, rc = 0;
    long out_tokens = 0;
    double t0 = sd_time_ms(), last_progress = 0;
    while (done < p->n) {
        double now = sd_time_ms();
        /* start every request that is due and has a free slot */
        while (next < p->n && in_flight < slots && (p->concurrency > 0 || now - t0 >= when[next] * 1000.0)) {
            int s = 0;
            while (q[s].h) s++;
            if (start(m, &q[s], p, next, &res[next], t0, err) != 0) { release(m, &q[s]); rc = -1; goto out; }
            owner[s] = next++;
            if (++in_flight > info->peak_concurrency) info->peak_concurrency = in_flight;
        }
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left, freed = 0;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            req *d = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d);
            finish(d, msg->data.result);
            if (d->r->prompt_tokens < 0) d->r->prompt_tokens = p->prompts[owner[d - q] % p->n_prompts].n_tokens;
            if (d->r->ok) out_tokens += d->r->output_tokens; else failed++;
            release(m, d);
            in_flight--;
            done++;
            freed = 1;
        }
        /* a stream silent for longer than the timeout fails, the run goes on */
        now = sd_time_ms();
        for (int s = 0; s < slots; s++) {
            if (!q[s].h || now - q[s].last_byte < p->timeout_s * 1000.0) continue;
            char why[120];
            snprintf(why, sizeof why, "stalled: no bytes for %g s (--timeout)", p->timeout_s);
            set_fail(&q[s], why);
            finish(&q[s], CURLE_OK);
            failed++;
            release(m, &q[s]);
            in_flight--;
            done++;
            freed = 1;
        }
        if (p->progress && (now - last_progress >= 250 || done == p->n)) {
            sd_url_progress pg = {done, failed, p->n, in_flight, out_tokens, (now - t0) / 1000.0};
            p->progress(&pg, p->user);
            last_progress = now;
        }
        if (done == p->n) break;
        /* a freed slot takes the next request now (closed loop); else sleep
         * until data, the next arrival, or a stall check */
        if (freed && p->concurrency > 0 && next < p->n) continue;
        double wait = 50;
        if (p->concurrency == 0 && next < p->n) {
            double until = t0 + when[next] * 1000.0 - sd_time_ms();
            if (until < wait) wait = until;
        }
        if (wait >= 1) curl_multi_poll(m, NULL, 0, (int)wait, NULL);
    }
    info->duration_s = (sd_time_ms() - t0) / 1000.0;
out:
    for (int s = 0; s < slots; s++)
        if (q[s].h) release(m, &q[s]);
    curl_multi_cleanup(m);
    free(when); free(q); free(owner);
    return rc;
}

void sd_url_results_free(sd_url_result *res, int n)
{
    for (int i = 0; i < n; i++) { free(res[i].itl_ms); res[i].itl_ms = NULL; }
}
