/* Shared by the server's files: the server, one connection's state, and a
 * generation job (shared by the connection and the engine's callback). */
#ifndef SD_SERVE_HTTP_INTERNAL_H
#define SD_SERVE_HTTP_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "serve/api.h"
#include "serve/metrics.h"
#include "serve/server.h"
#include "serve/stop_filter.h"

typedef struct sd_job sd_job;

struct sd_server {
    sd_server_params p;
    char *api_key, model_id[256], model_file[256], host[256];
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;          /* guards everything below */
    pthread_cond_t cv;           /* a job ended */
    int ready, shutting_down, cancel_all;
    sd_model *m;
    sd_engine *e;
    sd_chat_template chat;
    sd_job *jobs;                /* in flight (submitted, not yet DONE) */
    int n_jobs;
    uint64_t next_id, id_salt;
    sd_metrics metrics;
};

/* Per-token log-probabilities kept for the response. */
typedef struct {
    int32_t token;
    float logprob;
    int has_logprob;             /* 0: the prompt's first token */
    int n_top;
    int32_t top_id[SD_API_MAX_TOP_LOGPROBS];
    float top_logprob[SD_API_MAX_TOP_LOGPROBS];
    size_t raw_off;              /* where its text starts in the raw generated text */
} sd_tok_lp;

typedef struct { sd_tok_lp *v; int n, cap; } sd_lp_list;

struct sd_job {
    sd_server *srv;
    pthread_mutex_t mu;
    int refs;                    /* the engine, the connection, the streaming response */
    struct MHD_Connection *conn; /* NULL once the connection is gone */
    int suspended, http_gone, done;
    uint64_t engine_id;
    sd_job *next, *prev;         /* the server's in-flight list */

    sd_api_kind kind;
    int stream, include_usage, want_logprobs, n_top, echo, ignore_eos;
    char id[64];
    long long created;
    char *stops[SD_API_MAX_STOP + 1];
    int n_stops;
    sd_stop_filter filt;
    char *prompt_text;           /* echo */
    size_t prompt_len;

    char *text;                  /* non-streaming: the text released so far */
    size_t n_text, cap_text;
    char *sse;                   /* streaming: bytes waiting for the client */
    size_t n_sse, cap_sse, sse_off;
    sd_lp_list lp, prompt_lp;
    int lp_sent;                 /* streaming: entries of lp already sent */
    int sent_first;              /* streaming chat: the role delta went out */

    int n_prompt, n_cached, n_gen, stop_hit, end_hit, oom;
    sd_finish finish;
    char message[SD_ERR_LEN];
    double t_start, t_first, t_last, queued_ms, prompt_ms, gen_ms;
};

/* http_gen.c: POST /v1/completions and /v1/chat/completions. Returns the
 * MHD result of the call (queues a response, or suspends to wait). */
enum MHD_Result sd_http_generate(sd_server *s, struct MHD_Connection *c, sd_api_kind kind, const char *body,
                                 size_t n_body, sd_job **job, int *status);
/* The connection is back after waiting for a non-streaming job. */
enum MHD_Result sd_http_generate_resume(sd_server *s, struct MHD_Connection *c, sd_job *j, int *status);
/* The connection closed: cancels the job if it still runs, drops the reference. */
void sd_http_job_closed(sd_server *s, sd_job *j);

/* http.c */
enum MHD_Result sd_http_send_json(struct MHD_Connection *c, int status, json_t *o);   /* steals o */
enum MHD_Result sd_http_send_error(struct MHD_Connection *c, const sd_api_error *e);

#endif
