/* `showdown serve`'s HTTP side: an OpenAI-compatible server over
 * libmicrohttpd (its internal thread pool; suspend/resume for waiting on the
 * engine and for streaming), in front of one sd_engine. The library never
 * prints: each finished request is reported through the log callback.
 *
 *   sd_server_start(&p, &s, err);              // /health answers 503 (loading)
 *   ...load the model, make the engine...
 *   sd_server_set_model(s, m, e, chat);        // ready: /health 200
 *   ...until SIGINT/SIGTERM...
 *   sd_server_shutdown(s, 2000); sd_engine_free(e); sd_server_free(s); */
#ifndef SD_SERVE_SERVER_H
#define SD_SERVE_SERVER_H

#include <stddef.h>

#include "serve/engine.h"
#include "text/chat.h"

typedef struct sd_server sd_server;

typedef struct {
    const char *host;         /* numeric address or name to bind ("127.0.0.1") */
    int port;                 /* 0: an ephemeral port (sd_server_port says which) */
    const char *api_key;      /* NULL: no key needed */
    const char *model_id;     /* the name /v1/models lists; requests may also name the file */
    const char *model_file;   /* path of the model file (its base name is accepted as a model name) */
    size_t max_body;          /* request bodies larger than this: 413 */
    int timeout_s;            /* idle connection timeout */
    int n_threads;            /* HTTP threads (0: 4) */
    int metrics;              /* 1: GET /metrics */
    const char *energy;       /* energy probe for /metrics ("auto"), NULL for none */
    void (*log)(void *user, const char *line);
    void *log_user;
} sd_server_params;

int sd_server_start(const sd_server_params *p, sd_server **out, char *err);
int sd_server_port(const sd_server *s);
/* The model and engine are borrowed: free them after sd_server_shutdown.
 * chat: SD_CHAT_UNKNOWN makes chat requests fail with a message naming
 * --chat-template. */
void sd_server_set_model(sd_server *s, sd_model *m, sd_engine *e, sd_chat_template chat);
/* Stops accepting connections, lets requests in flight finish for up to
 * grace_ms, cancels the rest, waits for them to end (one engine step: a
 * slow device's can take long) and their connections to close, and stops
 * the HTTP threads. */
void sd_server_shutdown(sd_server *s, int grace_ms);
void sd_server_free(sd_server *s);

#endif
