/* showdown serve: an OpenAI-compatible HTTP server (src/serve/) for one
 * model. The HTTP server starts first (so /health says "loading"), then the
 * model and the engine; SIGINT/SIGTERM stop it cleanly. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "showdown.h"
#include "cli/cli.h"
#include "serve/engine.h"
#include "serve/server.h"
#include "text/chat.h"

static void serve_usage(FILE *out)
{
    fprintf(out,
            "usage: showdown serve -m MODEL [options]\n\n"
            "  -m, --model FILE       GGUF model\n"
            "  --host ADDR            address to listen on (default 127.0.0.1)\n"
            "  --port N               TCP port (default 8080; 0 = any free port, printed when ready)\n"
            "  -np, --parallel N      sequences generated at once (default 4)\n"
            "  -c, --ctx-size N       KV cache positions shared by all of them (default 8192)\n"
            "  --queue N              requests that may wait for a slot; more get 429 (default 64)\n"
            "  -t, --threads N        threads for the model (default: all CPUs)\n"
            "  --api-key KEY          require 'Authorization: Bearer KEY'\n"
            "  --api-key-file F       the same, the key read from the file's first line\n"
            "  --alias NAME           the model's name in the API (default: the file name)\n"
            "  --chat-template NAME   conversation format, overriding the file's (%s)\n"
            "  --max-body SIZE        largest request body (default 1M; K, M, G suffixes)\n"
            "  --timeout S            idle connection timeout in seconds (default 600)\n"
            "  --metrics              serve Prometheus metrics at GET /metrics\n"
            "  -ngl, --n-gpu-layers N the last N layers on the GPU (more than the model has: the\n"
            "                         output head too; auto: as many as fit; default 0)\n"
            "  --device N             the GPU to use, as `showdown devices` lists them (default 0)\n\n"
            "Endpoints: POST /v1/completions, /v1/chat/completions (also without /v1),\n"
            "GET /v1/models, /health, /metrics; POST /tokenize, /detokenize.\n",
            sd_chat_names());
}

typedef struct {
    const char *model, *host, *api_key, *api_key_file, *alias, *chat_template;
    long port, n_slots, ctx, threads, timeout, queue, device;
    int ngl;
    size_t max_body;
    int metrics;
} serve_opts;

/* "1M", "512K", "2048": bytes. */
static int parse_size(const char *flag, const char *v, size_t *out)
{
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1ull << 10;
    else if (*end == 'M' || *end == 'm') mul = 1ull << 20;
    else if (*end == 'G' || *end == 'g') mul = 1ull << 30;
    if (mul > 1) end++;
    if (end == v || !isdigit((unsigned char)v[0]) || *end || x == 0 || x > (1ull << 40) / mul)
        return fail("%s: '%s' is not a size (like 1M, 512K or 4096)", flag, v);
    *out = (size_t)(x * mul);
    return 0;
}

static int parse_serve_args(int argc, char **argv, serve_opts *o)
{
    o->host = "127.0.0.1";
    o->port = 8080;
    o->n_slots = 4;
    o->ctx = 8192;
    o->timeout = 600;
    o->queue = 64;
    o->max_body = 1 << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define FLAG(s, l2) (!strcmp(a, s) || !strcmp(a, l2))
        if (FLAG("-h", "--help")) { serve_usage(stdout); exit(0); }
        if (FLAG("--metrics", "--metrics")) { o->metrics = 1; continue; }
        static const char *valued[] = {"-m", "--model", "--host", "--port", "-np", "--parallel", "-c", "--ctx-size",
                                       "-t", "--threads", "--api-key", "--api-key-file", "--alias", "--chat-template",
                                       "--max-body", "--timeout", "--queue", "-ngl", "--n-gpu-layers", "--device"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) known |= !strcmp(a, valued[k]);
        if (!known) return fail("unknown option '%s' (showdown serve --help)", a);
        if (!v) return fail("%s needs a value (showdown serve --help)", a);
        i++;
        if (FLAG("-m", "--model")) o->model = v;
        else if (FLAG("--host", "--host")) o->host = v;
        else if (FLAG("--port", "--port")) { if (parse_int(a, v, 0, 65535, &o->port)) return 1; }
        else if (FLAG("-np", "--parallel")) { if (parse_int(a, v, 1, 256, &o->n_slots)) return 1; }
        else if (FLAG("-c", "--ctx-size")) { if (parse_int(a, v, 16, 1 << 22, &o->ctx)) return 1; }
        else if (FLAG("-t", "--threads")) { if (parse_int(a, v, 1, 512, &o->threads)) return 1; }
        else if (FLAG("--timeout", "--timeout")) { if (parse_int(a, v, 1, 86400, &o->timeout)) return 1; }
        else if (FLAG("--queue", "--queue")) { if (parse_int(a, v, 1, 1 << 20, &o->queue)) return 1; }
        else if (FLAG("--max-body", "--max-body")) { if (parse_size(a, v, &o->max_body)) return 1; }
        else if (FLAG("--api-key", "--api-key")) o->api_key = v;
        else if (FLAG("--api-key-file", "--api-key-file")) o->api_key_file = v;
        else if (FLAG("--alias", "--alias")) o->alias = v;
        else if (FLAG("--chat-template", "--chat-template")) o->chat_template = v;
        else if (FLAG("-ngl", "--n-gpu-layers")) { if (parse_ngl(a, v, &o->ngl)) return 1; }
        else if (FLAG("--device", "--device")) { if (parse_int(a, v, 0, 15, &o->device)) return 1; }
#undef FLAG
    }
    if (!o->model) return fail("serve: -m MODEL is required (showdown serve --help)");
    if (o->api_key && o->api_key_file) return fail("serve: give --api-key or --api-key-file, not both");
    if (o->api_key && !o->api_key[0]) return fail("--api-key: the key is empty");
    return 0;
}

/* The key from the file's first line (trailing whitespace dropped). */
static char *read_key(const char *path)
{
    size_t n;
    char *k = read_file_bytes(path, &n);
    if (!k) { fail("%s: cannot read the API key file", path); return NULL; }
    k[strcspn(k, "\r\n")] = 0;
    for (n = strlen(k); n && isspace((unsigned char)k[n - 1]);) k[--n] = 0;
    if (!k[0]) { fail("%s: the API key file's first line is empty", path); free(k); return NULL; }
    return k;
}

/* The conversation format: --chat-template, else the file's template if recognized. */
static int pick_template(const serve_opts *o, sd_model *m, sd_chat_template *t, char *why, size_t n_why)
{
    *t = SD_CHAT_UNKNOWN;
    if (o->chat_template) {
        if (sd_chat_by_name(o->chat_template, t))
            return fail("--chat-template: unknown template '%s' (one of %s)", o->chat_template, sd_chat_names());
        snprintf(why, n_why, "%s (--chat-template)", sd_chat_name(*t));
        return 0;
    }
    const char *jinja = sd_model_chat_template(m);
    if (!jinja || !jinja[0]) {
        snprintf(why, n_why, "none (the file has no chat template: chat requests need --chat-template)");
        return 0;
    }
    *t = sd_chat_detect(jinja);
    if (*t == SD_CHAT_UNKNOWN) snprintf(why, n_why, "unrecognized (chat requests need --chat-template)");
    else snprintf(why, n_why, "%s (from the file)", sd_chat_name(*t));
    return 0;
}

static void log_line(void *user, const char *line)
{
    (void)user;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03d %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000), line);
}

/* Tests observe the loading phase (/health 503) through this delay; a
 * small model loads too fast to see it. Milliseconds, at most 10 s. */
static void load_delay_for_tests(void)
{
    const char *v = getenv("SHOWDOWN_TEST_LOAD_DELAY_MS");
    long ms = v ? strtol(v, NULL, 10) : 0;
    if (ms <= 0) return;
    if (ms > 10000) ms = 10000;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int cmd_serve(int argc, char **argv)
{
    serve_opts o = {0};
    if (parse_serve_args(argc, argv, &o)) return 1;
    char *key = NULL;
    if (o.api_key_file && !(key = read_key(o.api_key_file))) return 1;
    /* Every thread started from here on inherits the block: the main thread
     * alone takes SIGINT/SIGTERM, in sigwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[SD_ERR_LEN];
    sd_server_params sp = {.host = o.host, .port = (int)o.port, .api_key = key ? key : o.api_key, .model_id = o.alias,
                           .model_file = o.model, .max_body = o.max_body, .timeout_s = (int)o.timeout,
                           .metrics = o.metrics, .energy = "auto", .log = log_line};
    sd_server *srv = NULL;
    sd_model *m = NULL;
    sd_engine *e = NULL;
    int rc = 1;
    /* What can be checked before listening is, so that a mistake gives one error line. */
    sd_chat_template named;
    if (o.chat_template && sd_chat_by_name(o.chat_template, &named)) {
        fail("--chat-template: unknown template '%s' (one of %s)", o.chat_template, sd_chat_names());
        goto done;
    }
    FILE *mf = fopen(o.model, "rb");
    if (!mf) { fail("%s: cannot open: %s", o.model, strerror(errno)); goto done; }
    fclose(mf);
    if (sd_server_start(&sp, &srv, err)) { fail("serve: %s", err); goto done; }
    const char *h = o.host;
    int v6 = strchr(h, ':') != NULL;
    fprintf(stderr, "showdown serve: loading %s; until it is ready http://%s%s%s:%d/health answers 503\n", o.model,
            v6 ? "[" : "", h, v6 ? "]" : "", sd_server_port(srv));
    load_delay_for_tests();
    if (sd_model_load(o.model, &m, err)) { fail("%s", err); goto done; }
    /* The engine's steps run the GPU layers over a device pool of the KV
     * cache's blocks (model/offload.h): sized for -c positions. */
    if (gpu_offload(m, o.ngl, (int)o.device, (int)o.ctx, SD_KV_F16)) goto done;
    sd_chat_template tmpl;
    char why[160];
    if (pick_template(&o, m, &tmpl, why, sizeof why)) goto done;
    sd_engine_params ep = sd_engine_default_params();
    ep.n_slots = (int)o.n_slots;
    ep.n_ctx = (int)o.ctx;
    ep.n_threads = (int)o.threads;
    ep.max_queue = (int)o.queue;
    if (sd_engine_new(m, &ep, &e, err)) { fail("%s", err); goto done; }
    sd_server_set_model(srv, m, e, tmpl);
    sd_engine_stats st;
    sd_engine_get_stats(e, &st);
    char where[96];
    if (st.gpu_layers)
        snprintf(where, sizeof where, "layers %d-%d on the GPU (%s)", st.gpu_first, st.gpu_first + st.gpu_layers - 1,
                 sd_model_backend(m));
    else snprintf(where, sizeof where, "every layer on the CPU");
    fprintf(stderr, "showdown serve: listening on http://%s%s%s:%d (model %s, %ld slots, context %ld, KV cache %.1f MiB "
                    "on the CPU, %s, chat template %s)\n",
            v6 ? "[" : "", h, v6 ? "]" : "", sd_server_port(srv), o.alias ? o.alias : o.model, o.n_slots, o.ctx,
            st.kv_bytes / 1048576.0, where, why);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "showdown serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sd_server_shutdown(srv, 2000);
    rc = 0;
done:
    if (srv) sd_server_shutdown(srv, 0);
    if (e) sd_engine_free(e);
    sd_server_free(srv);
    if (m) sd_model_free(m);
    free(key);
    if (!rc) fprintf(stderr, "showdown serve: stopped\n");
    return rc;
}
