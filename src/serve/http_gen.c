/* POST /v1/completions and /v1/chat/completions: a request becomes a job
 * submitted to the engine. The engine's callback (scheduler thread) filters
 * the text through the stop strings and either appends SSE chunks for the
 * streaming reader or collects the answer; a connection waiting for it is
 * suspended and resumed by the callback, so no HTTP thread ever blocks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "serve/http_internal.h"

/* ---- job lifetime ------------------------------------------------------ */

static void job_unref(sd_job *j)
{
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    for (int i = 0; i < j->n_stops; i++) free(j->stops[i]);
    sd_stop_free(&j->filt);
    free(j->prompt_text);
    free(j->text);
    free(j->sse);
    free(j->lp.v);
    free(j->prompt_lp.v);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static void list_remove(sd_server *s, sd_job *j)
{
    pthread_mutex_lock(&s->mu);
    if (j->prev) j->prev->next = j->next;
    else s->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    j->next = j->prev = NULL;
    s->n_jobs--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sd_http_job_closed(sd_server *s, sd_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->http_gone = 1;
    j->conn = NULL;
    int running = !j->done && j->engine_id;
    uint64_t id = j->engine_id;
    pthread_mutex_unlock(&j->mu);
    if (running) sd_engine_cancel(s->e, id);   /* the client left: free its slot now */
    job_unref(j);
}

/* ---- buffers ----------------------------------------------------------- */

static int grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = need * 2 > 256 ? need * 2 : 256;
    char *q = realloc(*p, c);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void sse_append_raw(sd_job *j, const char *s, size_t n)
{
    if (j->sse_off && j->sse_off == j->n_sse) j->sse_off = j->n_sse = 0;
    if (grow(&j->sse, &j->cap_sse, j->n_sse + n)) { j->oom = 1; return; }
    memcpy(j->sse + j->n_sse, s, n);
    j->n_sse += n;
}

/* One SSE event: "data: JSON\n\n" (steals o). */
static void sse_append(sd_job *j, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) { j->oom = 1; return; }
    sse_append_raw(j, "data: ", 6);
    sse_append_raw(j, s, strlen(s));
    sse_append_raw(j, "\n\n", 2);
    free(s);
}

static int lp_push(sd_lp_list *l, const sd_gen_event *ev, int has_logprob, size_t raw_off, int n_top)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        sd_tok_lp *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    sd_tok_lp *t = &l->v[l->n++];
    t->token = ev->token;
    t->logprob = ev->logprob;
    t->has_logprob = has_logprob;
    t->n_top = ev->n_top < n_top ? ev->n_top : n_top;
    if (t->n_top < 0) t->n_top = 0;
    if (t->n_top > SD_API_MAX_TOP_LOGPROBS) t->n_top = SD_API_MAX_TOP_LOGPROBS;
    for (int i = 0; i < t->n_top; i++) { t->top_id[i] = ev->top_id[i]; t->top_logprob[i] = ev->top_logprob[i]; }
    t->raw_off = raw_off;
    return 0;
}

/* ---- JSON pieces ------------------------------------------------------- */

/* A token's text as a JSON string (invalid UTF-8 as U+FFFD). */
static json_t *piece_json(const sd_tokenizer *tok, int32_t id, json_t **bytes)
{
    size_t n;
    const char *p = sd_token_piece(tok, id, &n);
    char buf[3 * 256];
    if (n > 256) n = 256;
    size_t k = sd_utf8_sanitize(p, n, buf);
    if (bytes) {
        *bytes = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(*bytes, json_integer((unsigned char)p[i]));
    }
    return json_stringn(buf, k);
}

/* Chat: {"content":[{token, logprob, bytes, top_logprobs:[...]}]} */
static json_t *chat_logprobs(const sd_tokenizer *tok, const sd_tok_lp *v, int n)
{
    json_t *content = json_array();
    for (int i = 0; i < n; i++) {
        json_t *bytes, *top = json_array();
        json_t *t = piece_json(tok, v[i].token, &bytes);
        for (int k = 0; k < v[i].n_top; k++) {
            json_t *tb, *tt = piece_json(tok, v[i].top_id[k], &tb);
            json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token", tt, "logprob", (double)v[i].top_logprob[k],
                                                 "bytes", tb));
        }
        json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", t, "logprob", (double)v[i].logprob,
                                                 "bytes", bytes, "top_logprobs", top));
    }
    return json_pack("{s:o}", "content", content);
}

/* Completions: {"tokens","token_logprobs","top_logprobs","text_offset"}, appended to o's arrays. */
static void completion_logprobs_add(json_t *o, const sd_tokenizer *tok, const sd_tok_lp *v, int n, size_t text_base)
{
    json_t *toks = json_object_get(o, "tokens"), *lps = json_object_get(o, "token_logprobs");
    json_t *tops = json_object_get(o, "top_logprobs"), *offs = json_object_get(o, "text_offset");
    for (int i = 0; i < n; i++) {
        json_array_append_new(toks, piece_json(tok, v[i].token, NULL));
        json_array_append_new(lps, v[i].has_logprob ? json_real(v[i].logprob) : json_null());
        json_t *top = v[i].has_logprob ? json_object() : json_null();
        for (int k = 0; k < v[i].n_top; k++) {
            json_t *key = piece_json(tok, v[i].top_id[k], NULL);
            if (!json_object_get(top, json_string_value(key)))
                json_object_set_new(top, json_string_value(key), json_real(v[i].top_logprob[k]));
            json_decref(key);
        }
        json_array_append_new(tops, top);
        json_array_append_new(offs, json_integer((json_int_t)(text_base + v[i].raw_off)));
    }
}

static json_t *completion_logprobs_new(void)
{
    return json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

static const char *finish_name(const sd_job *j)
{
    return j->finish == SD_FINISH_LENGTH ? "length" : "stop";
}

static json_t *usage_json(const sd_job *j)
{
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", j->n_prompt, "completion_tokens", j->n_gen,
                     "total_tokens", j->n_prompt + j->n_gen, "prompt_tokens_details", "cached_tokens", j->n_cached);
}

/* llama-server's timings; predicted_ms covers the tokens after the first
 * (the first one's time is the prompt's), so the rate uses n_gen - 1. */
static json_t *timings_json(const sd_job *j)
{
    int pn = j->n_prompt - j->n_cached, dn = j->n_gen > 1 ? j->n_gen - 1 : 0;
    return json_pack("{s:i,s:i,s:f,s:f,s:f,s:i,s:f,s:f,s:f,s:f}", "cache_n", j->n_cached, "prompt_n", pn, "prompt_ms",
                     j->prompt_ms, "prompt_per_token_ms", pn ? j->prompt_ms / pn : 0.0, "prompt_per_second",
                     j->prompt_ms > 0 ? pn * 1000.0 / j->prompt_ms : 0.0, "predicted_n", j->n_gen, "predicted_ms",
                     j->gen_ms, "predicted_per_token_ms", dn ? j->gen_ms / dn : 0.0, "predicted_per_second",
                     j->gen_ms > 0 ? dn * 1000.0 / j->gen_ms : 0.0, "queued_ms", j->queued_ms);
}

/* A streaming chunk with text (may be empty), logprobs (stolen, may be NULL), finish reason (may be NULL). */
static json_t *chunk_json(const sd_job *j, const char *text, size_t n, json_t *lp, const char *finish, int role)
{
    json_t *choice;
    if (j->kind == SD_API_CHAT) {
        json_t *delta = json_object();
        if (role) json_object_set_new(delta, "role", json_string("assistant"));
        if (n || role) json_object_set_new(delta, "content", json_stringn(text, n));
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", 0, "delta", delta, "logprobs", lp ? lp : json_null(),
                           "finish_reason", finish ? json_string(finish) : json_null());
    } else {
        choice = json_pack("{s:i,s:s%,s:o,s:o}", "index", 0, "text", text, n, "logprobs", lp ? lp : json_null(),
                           "finish_reason", finish ? json_string(finish) : json_null());
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", j->id, "object",
                     j->kind == SD_API_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)j->created, "model", j->srv->model_id, "choices", choice);
}

/* Echo: where each prompt token's piece starts in the echoed text (a
 * SentencePiece space prefix is not in the text). */
static void prompt_offsets(sd_job *j, const sd_tokenizer *tok)
{
    size_t off = 0, base = j->prompt_len;
    for (int i = 0; i < j->prompt_lp.n; i++) {
        size_t pl;
        const char *p = sd_token_piece(tok, j->prompt_lp.v[i].token, &pl);
        if (pl && p[0] == ' ' && off < base && j->prompt_text[off] != ' ') { p++; pl--; }
        j->prompt_lp.v[i].raw_off = off;
        if (off + pl <= base && !memcmp(j->prompt_text + off, p, pl)) off += pl;
        else off = off + pl < base ? off + pl : base;
    }
}

/* ---- the engine's side --------------------------------------------------- */

/* Released text: appended to the answer, or sent as a chunk with the
 * log-probabilities of the tokens whose text has now gone out. */
static void emit_text(sd_job *j, const char *text, size_t n, int final)
{
    if (!j->stream) {
        if (grow(&j->text, &j->cap_text, j->n_text + n + 1)) { j->oom = 1; return; }
        memcpy(j->text + j->n_text, text, n);
        j->n_text += n;
        return;
    }
    int upto = j->lp_sent;
    while (upto < j->lp.n && (final ? j->lp.v[upto].raw_off <= j->filt.raw_released
                                    : j->lp.v[upto].raw_off < j->filt.raw_released))
        upto++;
    if (!n && upto == j->lp_sent) return;
    json_t *lp = NULL;
    if (j->want_logprobs && upto > j->lp_sent) {
        const sd_tokenizer *tok = sd_model_tokenizer(j->srv->m);
        if (j->kind == SD_API_CHAT) lp = chat_logprobs(tok, j->lp.v + j->lp_sent, upto - j->lp_sent);
        else {
            lp = completion_logprobs_new();
            completion_logprobs_add(lp, tok, j->lp.v + j->lp_sent, upto - j->lp_sent, j->echo ? j->prompt_len : 0);
        }
    }
    j->lp_sent = upto;
    sse_append(j, chunk_json(j, text, n, lp, NULL, 0));
}

static void on_done(sd_job *j, const sd_gen_event *ev)
{
    j->finish = j->stop_hit || (j->end_hit && ev->finish != SD_FINISH_ERROR) ? SD_FINISH_STOP : ev->finish;
    snprintf(j->message, sizeof j->message, "%s", ev->message);
    j->n_prompt = ev->n_prompt;
    j->n_cached = ev->n_cached;
    j->n_gen = ev->n_gen;
    j->queued_ms = ev->queued_ms;
    j->prompt_ms = ev->prompt_ms;
    j->gen_ms = ev->gen_ms;
    int ok = j->finish == SD_FINISH_STOP || j->finish == SD_FINISH_LENGTH;
    if (ok && !j->stop_hit) {
        const char *out;
        size_t n;
        if (sd_stop_flush(&j->filt, &out, &n)) j->oom = 1;
        else emit_text(j, out, n, 1);
    }
    if (!j->stream) return;
    if (!ok || j->oom) {
        sd_api_error e;
        if (j->oom) sd_api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        else if (j->finish == SD_FINISH_CANCELLED)
            sd_api_fail(&e, 503, "unavailable_error", NULL, NULL, "the request was cancelled: the server is shutting down");
        else sd_api_fail(&e, 500, "server_error", NULL, NULL, "%s", j->message[0] ? j->message : "generation failed");
        char *s = sd_api_error_json(&e);
        j->oom = 0;
        if (s) { sse_append_raw(j, "data: ", 6); sse_append_raw(j, s, strlen(s)); sse_append_raw(j, "\n\n", 2); }
        free(s);
        return;
    }
    json_t *last = chunk_json(j, "", 0, NULL, finish_name(j), 0);
    json_object_set_new(last, "timings", timings_json(j));
    sse_append(j, last);
    if (j->include_usage) {
        json_t *u = json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", j->id, "object",
                              j->kind == SD_API_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                              (json_int_t)j->created, "model", j->srv->model_id, "choices", "usage", usage_json(j));
        sse_append(j, u);
    }
    sse_append_raw(j, "data: [DONE]\n\n", 14);
}

/* MHD does not watch a suspended connection's socket, so a client that
 * hung up while its non-streaming answer is generated would go unnoticed:
 * a few times a second, peek at the socket (suspended, MHD cannot close it
 * under us). 0 bytes from a peek is the client's FIN. */
static int client_left(sd_job *j)
{
    double now = sd_time_ms();
    if (j->fd < 0 || now - j->t_poke < 200) return 0;
    j->t_poke = now;
    char b;
    return recv(j->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static int on_event(const sd_gen_event *ev, void *user)
{
    sd_job *j = user;
    sd_server *s = j->srv;
    const sd_tokenizer *tok = sd_model_tokenizer(s->m);
    int stop = 0;
    pthread_mutex_lock(&j->mu);
    if (ev->kind == SD_EV_PROMPT) {
        if (j->echo && j->want_logprobs && lp_push(&j->prompt_lp, ev, ev->index > 0, 0, j->n_top)) j->oom = 1;
        if (j->stream && j->echo && j->want_logprobs && ev->index == j->n_prompt - 1 && !j->oom) {
            /* The whole prompt is in: its text and log-probabilities in the first chunk. */
            prompt_offsets(j, tok);
            json_t *lp = completion_logprobs_new();
            completion_logprobs_add(lp, tok, j->prompt_lp.v, j->prompt_lp.n, 0);
            sse_append(j, chunk_json(j, j->prompt_text, j->prompt_len, lp, NULL, 0));
        }
    } else if (ev->kind == SD_EV_TOKEN && !j->stop_hit && !j->end_hit) {
        double now = sd_time_ms();
        if (j->t_first <= 0) {
            j->t_first = now;
            sd_metrics_ttft(&s->metrics, (now - j->t_start) / 1000);
        } else {
            sd_metrics_itl(&s->metrics, (now - j->t_last) / 1000);
        }
        j->t_last = now;
        j->n_gen = ev->index + 1;
        size_t n = 0;
        const char *piece = "";
        /* The end of the turn: its text is not part of the answer. */
        int end = !j->ignore_eos && (j->kind == SD_API_CHAT ? sd_chat_is_end_token(s->chat, tok, ev->token)
                                                             : sd_token_is_eog(tok, ev->token));
        if (!end) piece = sd_token_piece(tok, ev->token, &n);
        else if (j->kind == SD_API_CHAT) j->end_hit = 1;   /* not EOG to the engine: end it here */
        if (j->want_logprobs && !end && lp_push(&j->lp, ev, 1, j->filt.raw_total, j->n_top)) j->oom = 1;
        const char *out;
        size_t n_out;
        int rc = sd_stop_push(&j->filt, piece, n, &out, &n_out);
        if (rc < 0) j->oom = 1;
        else {
            if (rc == 1) j->stop_hit = 1;
            emit_text(j, out, n_out, 0);
        }
        if (!j->stream && j->suspended && client_left(j)) j->http_gone = 1;
        stop = j->stop_hit || j->end_hit || j->oom || j->http_gone;
    } else if (ev->kind == SD_EV_DONE) {
        on_done(j, ev);
        j->done = 1;
    }
    struct MHD_Connection *wake = NULL;
    if (j->suspended && j->conn && (j->done || j->n_sse > j->sse_off)) {
        j->suspended = 0;
        wake = j->conn;
    }
    int done = j->done;
    pthread_mutex_unlock(&j->mu);
    /* Suspended, the connection cannot close under us; resume outside j->mu. */
    if (wake) MHD_resume_connection(wake);
    if (done) {
        list_remove(s, j);
        job_unref(j);
    }
    return stop;
}

/* ---- the streaming response ------------------------------------------- */

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    sd_job *j = cls;
    pthread_mutex_lock(&j->mu);
    ssize_t rc;
    if (j->n_sse > j->sse_off) {
        size_t n = j->n_sse - j->sse_off < max ? j->n_sse - j->sse_off : max;
        memcpy(buf, j->sse + j->sse_off, n);
        j->sse_off += n;
        rc = (ssize_t)n;
    } else if (j->done) {
        rc = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing yet: sleep until the engine's callback resumes us. */
        j->suspended = 1;
        MHD_suspend_connection(j->conn);
        rc = 0;
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static void sse_free(void *cls) { job_unref(cls); }

/* ---- the request ------------------------------------------------------- */

static int model_name_ok(const sd_server *s, const char *name)
{
    if (!name || !strcmp(name, s->model_id) || !strcmp(name, s->model_file)) return 1;
    size_t n = strlen(s->model_file);
    return n > 5 && !strcmp(s->model_file + n - 5, ".gguf") && strlen(name) == n - 5 &&
           !strncmp(name, s->model_file, n - 5);
}

/* The prompt's token ids (malloc'd): the text or ids given, or the rendered conversation. */
static int prompt_tokens(sd_server *s, const sd_api_request *r, int32_t **toks, int *n, char **echo_text,
                         sd_api_error *e)
{
    const sd_tokenizer *tok = sd_model_tokenizer(s->m);
    char err[SD_ERR_LEN];
    if (r->kind == SD_API_COMPLETION && r->prompt_is_tokens) {
        int nv = sd_tokenizer_n_vocab(tok);
        for (int i = 0; i < r->n_prompt_tokens; i++)
            if (r->prompt_tokens[i] >= nv)
                return sd_api_fail(e, 400, NULL, "prompt", NULL, "'prompt' token %d is %d, outside the vocabulary [0, %d)",
                                   i, r->prompt_tokens[i], nv);
        if (!(*toks = malloc((size_t)r->n_prompt_tokens * sizeof **toks)))
            return sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        memcpy(*toks, r->prompt_tokens, (size_t)r->n_prompt_tokens * sizeof **toks);
        *n = r->n_prompt_tokens;
        return 0;
    }
    if (r->kind == SD_API_COMPLETION) {
        if (sd_tokenize(tok, r->prompt, r->prompt_len, 1, toks, n, err))
            return sd_api_fail(e, 500, "server_error", NULL, NULL, "%s", err);
        if (echo_text && !(*echo_text = strdup(r->prompt)))
            return sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return 0;
    }
    if (s->chat == SD_CHAT_UNKNOWN)
        return sd_api_fail(e, 400, "invalid_request_error", NULL, "chat_template_unknown",
                           "this model has no chat template showdown recognizes: start the server with "
                           "--chat-template NAME (one of %s), or use /v1/completions",
                           sd_chat_names());
    sd_chat_msg *msgs = malloc((size_t)r->n_msgs * sizeof *msgs);
    if (!msgs) return sd_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (int i = 0; i < r->n_msgs; i++) msgs[i] = (sd_chat_msg){r->msgs[i].role, r->msgs[i].content};
    char *text = NULL;
    int rc = sd_chat_apply(s->chat, msgs, r->n_msgs, 1, &text, err);
    free(msgs);
    if (rc) return sd_api_fail(e, 400, NULL, "messages", NULL, "%s", err);
    /* the template's control tokens (<|im_start|>...) are tokens, not text; one BOS */
    rc = sd_chat_tokenize(tok, text, strlen(text), toks, n, err);
    free(text);
    if (rc) return sd_api_fail(e, 500, "server_error", NULL, NULL, "%s", err);
    return 0;
}

static sd_job *job_new(sd_server *s, const sd_api_request *r)
{
    sd_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    j->srv = s;
    j->refs = 1;   /* the connection's */
    j->kind = r->kind;
    j->stream = r->stream;
    j->include_usage = r->stream && r->include_usage;
    j->want_logprobs = r->kind == SD_API_CHAT ? r->logprobs : r->logprobs >= 0;
    j->n_top = r->kind == SD_API_CHAT ? r->top_logprobs : (r->logprobs > 0 ? r->logprobs : 0);
    j->echo = r->kind == SD_API_COMPLETION && r->echo;
    j->ignore_eos = r->ignore_eos;
    j->created = (long long)time(NULL);
    pthread_mutex_lock(&s->mu);
    uint64_t k = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    snprintf(j->id, sizeof j->id, "%s-%016llx", r->kind == SD_API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)((s->id_salt + k) * 0x9e3779b97f4a7c15ull));
    for (int i = 0; i < r->n_stop; i++) {
        if (!(j->stops[j->n_stops] = strdup(r->stop[i]))) { job_unref(j); return NULL; }
        j->n_stops++;
    }
    /* A template's end-of-turn text that is not one token ends the turn too. */
    const char *end = r->kind == SD_API_CHAT ? sd_chat_end_marker(s->chat) : NULL;
    if (end && !(j->stops[j->n_stops++] = strdup(end))) { job_unref(j); return NULL; }
    sd_stop_init(&j->filt, (const char *const *)j->stops, j->n_stops);
    return j;
}

/* The answer of a finished non-streaming job. */
static enum MHD_Result send_answer(sd_job *j, struct MHD_Connection *c, int *status)
{
    sd_api_error e;
    if (j->oom) sd_api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
    else if (j->finish == SD_FINISH_CANCELLED)
        sd_api_fail(&e, 503, "unavailable_error", NULL, NULL, "the request was cancelled: the server is shutting down");
    else if (j->finish == SD_FINISH_ERROR)
        sd_api_fail(&e, 500, "server_error", NULL, NULL, "%s", j->message[0] ? j->message : "generation failed");
    else e.status = 0;
    if (e.status) { *status = e.status; return sd_http_send_error(c, &e); }
    const sd_tokenizer *tok = sd_model_tokenizer(j->srv->m);
    /* Tokens whose text starts after a stop string's start produced nothing. */
    int n_lp = j->lp.n;
    if (j->stop_hit)
        while (n_lp && j->lp.v[n_lp - 1].raw_off >= j->filt.raw_released) n_lp--;
    json_t *choice, *lp = json_null();
    if (j->kind == SD_API_CHAT) {
        if (j->want_logprobs) { json_decref(lp); lp = chat_logprobs(tok, j->lp.v, n_lp); }
        choice = json_pack("{s:i,s:{s:s,s:s%},s:o,s:s}", "index", 0, "message", "role", "assistant", "content",
                           j->text ? j->text : "", j->n_text, "logprobs", lp, "finish_reason", finish_name(j));
    } else {
        size_t base = j->echo ? j->prompt_len : 0;
        if (j->want_logprobs) {
            json_decref(lp);
            lp = completion_logprobs_new();
            if (j->echo) {
                prompt_offsets(j, tok);
                completion_logprobs_add(lp, tok, j->prompt_lp.v, j->prompt_lp.n, 0);
            }
            completion_logprobs_add(lp, tok, j->lp.v, n_lp, base);
        }
        size_t n = base + j->n_text;
        char *all = malloc(n + 1);
        if (all) {
            if (base) memcpy(all, j->prompt_text, base);
            if (j->n_text) memcpy(all + base, j->text, j->n_text);
        }
        choice = all ? json_pack("{s:i,s:s%,s:o,s:s}", "index", 0, "text", all, n, "logprobs", lp, "finish_reason",
                                 finish_name(j))
                     : NULL;
        free(all);
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o,s:o}", "id", j->id, "object",
                          j->kind == SD_API_CHAT ? "chat.completion" : "text_completion", "created",
                          (json_int_t)j->created, "model", j->srv->model_id, "choices", choice, "usage",
                          usage_json(j), "timings", timings_json(j));
    *status = 200;
    return sd_http_send_json(c, 200, o);
}

/* Waits (suspended) until the job is done, or answers. */
enum MHD_Result sd_http_generate_resume(sd_server *s, struct MHD_Connection *c, sd_job *j, int *status)
{
    if (j->stream) return MHD_YES;   /* the response is queued already */
    pthread_mutex_lock(&j->mu);
    if (!j->done) {
        j->suspended = 1;
        MHD_suspend_connection(c);
        pthread_mutex_unlock(&j->mu);
        return MHD_YES;
    }
    int gone = j->http_gone;
    pthread_mutex_unlock(&j->mu);
    if (gone) { *status = 499; return MHD_NO; }   /* the client hung up: nobody to answer (nginx's 499) */
    return send_answer(j, c, status);
}

enum MHD_Result sd_http_generate(sd_server *s, struct MHD_Connection *c, sd_api_kind kind, const char *body,
                                 size_t n_body, sd_job **job, int *status)
{
    sd_api_request r;
    sd_api_error e;
    int32_t *toks = NULL;
    int n_toks = 0;
    sd_job *j = NULL;
    char *echo = NULL;
    if (sd_api_parse_request(body ? body : "", n_body, kind, &r, &e)) goto fail;
    if (!model_name_ok(s, r.model)) {
        sd_api_fail(&e, 404, "invalid_request_error", "model", "model_not_found",
                    "the model '%.100s' does not exist: this server serves '%.100s'", r.model, s->model_id);
        goto fail;
    }
    if (prompt_tokens(s, &r, &toks, &n_toks, r.echo ? &echo : NULL, &e)) goto fail;
    if (!(j = job_new(s, &r))) { sd_api_fail(&e, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
    j->prompt_text = echo;
    j->prompt_len = echo ? strlen(echo) : 0;
    echo = NULL;
    if (j->echo && r.prompt_is_tokens) {   /* echo of token ids: their text */
        const sd_tokenizer *tok = sd_model_tokenizer(s->m);
        size_t len = 0;
        for (int i = 0; i < n_toks; i++) { size_t pl; sd_token_piece(tok, toks[i], &pl); len += pl; }
        char *raw = malloc(len + 1), *txt = malloc(3 * len + 1);
        if (!raw || !txt) { free(raw); free(txt); sd_api_fail(&e, 500, "server_error", NULL, NULL, "out of memory"); goto fail; }
        len = 0;
        for (int i = 0; i < n_toks; i++) {
            size_t pl;
            const char *p = sd_token_piece(tok, toks[i], &pl);
            memcpy(raw + len, p, pl);
            len += pl;
        }
        j->prompt_len = sd_utf8_sanitize(raw, len, txt);
        txt[j->prompt_len] = 0;
        j->prompt_text = txt;
        free(raw);
    }
    /* OpenAI's check: a prompt and an explicit max_tokens that the context can never hold. */
    int n_ctx = sd_engine_n_ctx(s->e);
    if (r.max_tokens > 0 && (long long)n_toks + r.max_tokens > n_ctx) {
        sd_api_fail(&e, 400, NULL, "max_tokens", "context_length_exceeded",
                    "the context holds %d tokens, but %d were asked (%d in the prompt, %d to generate): shorten the "
                    "prompt or lower max_tokens",
                    n_ctx, n_toks + r.max_tokens, n_toks, r.max_tokens);
        goto fail;
    }
    sd_gen_request g = {0};
    g.prompt = toks;
    g.n_prompt = n_toks;
    g.max_tokens = r.max_tokens >= 0 ? r.max_tokens : kind == SD_API_COMPLETION ? 16 : -1;
    g.sampling = r.sampling;
    if (!r.has_seed) g.sampling.seed = (s->id_salt ^ (uint64_t)j->created) + s->next_id * 0x2545f4914f6cdd1dull;
    g.presence_penalty = r.presence_penalty;
    g.frequency_penalty = r.frequency_penalty;
    g.ignore_eos = r.ignore_eos;
    g.n_top = j->n_top;
    g.prompt_logprobs = j->echo && j->want_logprobs;
    j->n_prompt = n_toks;
    if (j->stream) {
        if (kind == SD_API_CHAT) { sse_append(j, chunk_json(j, "", 0, NULL, NULL, 1)); j->sent_first = 1; }
        /* Echo without log-probabilities goes out now; with them, once the
         * prompt's log-probabilities are known (on_event). */
        if (j->echo && !j->want_logprobs && j->prompt_len)
            sse_append(j, chunk_json(j, j->prompt_text, j->prompt_len, NULL, NULL, 0));
    }
    /* In the server's list before the engine can call back. */
    pthread_mutex_lock(&s->mu);
    int down = s->shutting_down;
    if (!down) {
        j->next = s->jobs;
        if (s->jobs) s->jobs->prev = j;
        s->jobs = j;
        s->n_jobs++;
    }
    pthread_mutex_unlock(&s->mu);
    if (down) { sd_api_fail(&e, 503, "unavailable_error", NULL, NULL, "the server is shutting down"); goto fail; }
    j->refs++;   /* the engine's, dropped at DONE */
    j->t_start = sd_time_ms();
    uint64_t id = 0;
    int queue_full = 0;
    char err[SD_ERR_LEN] = "";
    j->conn = c;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    if (sd_engine_submit(s->e, &g, on_event, j, &id, &queue_full, err)) {
        j->refs--;
        list_remove(s, j);
        if (queue_full == SD_SUBMIT_QUEUE_FULL)   /* OpenAI's rate limit object; Retry-After in sd_http_send_error */
            sd_api_fail(&e, 429, "requests", NULL, "rate_limit_exceeded", "too many requests at once: %s; retry later",
                        err);
        else if (queue_full) sd_api_fail(&e, 503, "unavailable_error", NULL, NULL, "%s", err);
        else sd_api_fail(&e, 400, NULL, "prompt", strstr(err, "context") ? "context_length_exceeded" : NULL, "%s", err);
        goto fail;
    }
    pthread_mutex_lock(&j->mu);
    j->engine_id = id;
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_lock(&s->mu);
    int cancel = s->cancel_all;
    pthread_mutex_unlock(&s->mu);
    if (cancel) sd_engine_cancel(s->e, id);
    free(toks);
    sd_api_request_free(&r);
    *job = j;
    if (!j->stream) return sd_http_generate_resume(s, c, j, status);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, j, sse_free);
    if (!resp) return MHD_NO;
    pthread_mutex_lock(&j->mu);
    j->refs++;   /* the response's, dropped by sse_free */
    pthread_mutex_unlock(&j->mu);
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    *status = 200;
    enum MHD_Result rc = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return rc;
fail:
    free(toks);
    free(echo);
    if (j) job_unref(j);
    sd_api_request_free(&r);
    *status = e.status;
    return sd_http_send_error(c, &e);
}
