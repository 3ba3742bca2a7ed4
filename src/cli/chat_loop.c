/* `showdown run --chat`: renders the conversation with the chat template,
 * evaluates only what the KV cache does not hold yet, and generates until the
 * end of the assistant's turn. Interactive (read a line, answer, repeat) when
 * no user text is given; otherwise that text is one user turn. */
#include "cli/chat_loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "eval/logits_file.h"
#include "gguf/gguf.h"
#include "text/chat.h"

/* The template: --chat-template NAME, else the file's own, read from the
 * header before the weights are loaded so a wrong file fails at once. */
static int resolve_template(const chat_opts *o, sd_chat_template *t)
{
    if (o->template_name) {
        if (sd_chat_by_name(o->template_name, t))
            return fail("--chat-template: unknown template '%s' (%s)", o->template_name, sd_chat_names());
        return 0;
    }
    char err[SD_ERR_LEN];
    gguf_file *f;
    if (gguf_open_header(o->model, &f, err)) return fail("%s", err);
    gguf_str s;
    int r = gguf_get_str(f, "tokenizer.chat_template", &s, err);
    if (r != 1 || s.len == 0) {
        gguf_close(f);
        return fail("%s has no chat template: pass --chat-template NAME (%s). A base (pre-trained) model, "
                    "like the Gemma 3 270M package, is not instruction-tuned and will not follow a conversation.",
                    o->model, sd_chat_names());
    }
    char *j = malloc(s.len + 1);
    if (!j) { gguf_close(f); return fail("out of memory"); }
    memcpy(j, s.ptr, s.len);
    j[s.len] = 0;
    gguf_close(f);
    *t = sd_chat_detect(j);
    free(j);
    if (*t == SD_CHAT_UNKNOWN)
        return fail("%s: its chat template is none of the families showdown renders: pass --chat-template NAME (%s)",
                    o->model, sd_chat_names());
    return 0;
}

typedef struct {
    sd_chat_msg *v;
    int n, cap;
} msg_list;

static int msg_push(msg_list *l, const char *role, const char *content)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        sd_chat_msg *g = realloc(l->v, (size_t)cap * sizeof *g);
        if (!g) return -1;
        l->v = g;
        l->cap = cap;
    }
    char *c = strdup(content);
    if (!c) return -1;
    l->v[l->n++] = (sd_chat_msg){role, c};
    return 0;
}

static void msg_free(msg_list *l)
{
    for (int i = 0; i < l->n; i++) free((char *)l->v[i].content);
    free(l->v);
}

/* How many bytes at the end of s (length n) could begin the marker: they
 * are held back from the terminal until the next token decides. */
static size_t marker_prefix_at_end(const char *s, size_t n, const char *mk)
{
    size_t m = mk ? strlen(mk) : 0;
    for (size_t k = m ? m - 1 : 0; k > 0; k--)
        if (k <= n && !memcmp(s + n - k, mk, k)) return k;
    return 0;
}

typedef struct {
    sd_model *m;
    sd_tokenizer *tok;
    sd_session *s;
    sd_sampler *smp;
    sd_chat_template t;
    char *ctx_text;      /* the text whose tokens the KV cache holds ("" after a reset) */
    const chat_opts *o;
} chat_state;

/* One assistant turn for the conversation in msgs: appends the reply. */
static int chat_turn(chat_state *c, msg_list *msgs)
{
    char err[SD_ERR_LEN];
    char *full = NULL, *reply = NULL;
    int32_t *toks = NULL, *gen = NULL;
    float *rows = NULL;
    int n_new = 0, n_gen = 0, rc = 1, stop_eog = 0, marker_in_text = 0;
    if (sd_chat_apply(c->t, msgs->v, msgs->n, 1, &full, err)) return fail("%s", err);
    size_t have = strlen(c->ctx_text);
    int reuse = have > 0 && !strncmp(full, c->ctx_text, have);
    if (reuse) {
        if (sd_tokenize_special(c->tok, full + have, strlen(full) - have, 0, &toks, &n_new, err)) {
            fail("%s", err);
            goto done;
        }
    } else {
        /* a first turn, or a template that rewrote earlier text (trimmed reply): start over */
        sd_session_reset(c->s);
        if (sd_chat_tokenize(c->tok, full, strlen(full), &toks, &n_new, err)) { fail("%s", err); goto done; }
    }
    int pos = sd_session_pos(c->s), n_ctx = sd_session_n_ctx(c->s);
    if (pos + n_new >= n_ctx) {
        fail("the conversation (%d tokens) no longer fits the context of %d (-c)", pos + n_new, n_ctx);
        goto done;
    }
    long n_want = c->o->n_predict < n_ctx - pos - n_new ? c->o->n_predict : n_ctx - pos - n_new;
    int nv = sd_model_hparams(c->m)->n_vocab;
    reply = malloc(1);
    gen = malloc(((size_t)n_want + 1) * sizeof *gen);
    if (c->o->logits_out) rows = malloc(((size_t)n_new + (size_t)n_want) * (size_t)nv * sizeof *rows);
    if (!reply || !gen || (c->o->logits_out && !rows)) { fail("out of memory"); goto done; }
    reply[0] = 0;

    double t0 = sd_time_ms();
    if (n_new && sd_session_eval(c->s, toks, n_new, rows, err)) { fail("%s", err); goto done; }
    double t_prompt = sd_time_ms() - t0, t1 = sd_time_ms();
    const char *mk = sd_chat_end_marker(c->t);
    size_t len = 0, shown = 0;
    for (; n_gen < n_want; n_gen++) {
        int32_t next = sd_sample(c->smp, sd_session_logits(c->s));
        if (sd_chat_is_end_token(c->t, c->tok, next)) { stop_eog = 1; break; }
        gen[n_gen] = next;
        size_t pl;
        const char *piece = sd_token_piece(c->tok, next, &pl);
        char *g = realloc(reply, len + pl + 1);
        if (!g) { fail("out of memory"); goto done; }
        reply = g;
        memcpy(reply + len, piece, pl);
        len += pl;
        reply[len] = 0;
        float *row = rows ? rows + ((size_t)n_new + (size_t)n_gen) * nv : NULL;
        if (sd_session_eval(c->s, &next, 1, row, err)) { fail("%s", err); goto done; }
        char *hit = mk ? strstr(reply, mk) : NULL;
        if (hit) {  /* the marker spelled in ordinary tokens */
            len = (size_t)(hit - reply);
            reply[len] = 0;
            marker_in_text = 1;
            n_gen++;
            break;
        }
        size_t safe = len - marker_prefix_at_end(reply, len, mk);
        if (safe > shown) { fwrite(reply + shown, 1, safe - shown, stdout); fflush(stdout); shown = safe; }
    }
    if (len > shown) fwrite(reply + shown, 1, len - shown, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    double t_gen = sd_time_ms() - t1;
    fprintf(stderr, "[prompt %d new tokens (%d cached), %.2f tokens/s | generated %d tokens, %.2f tokens/s | %s]\n",
            n_new, reuse ? pos : 0, t_prompt > 0 ? n_new / (t_prompt / 1e3) : 0.0, n_gen,
            n_gen && t_gen > 0 ? n_gen / (t_gen / 1e3) : 0.0,
            stop_eog || marker_in_text ? "stopped at the end of the turn" : "stopped at the -n limit");
    if (c->o->logits_out &&
        sd_logits_file_write(c->o->logits_out, nv, toks, n_new, gen, n_gen, rows, err)) {
        fail("%s", err);
        goto done;
    }
    /* The cache now holds the prompt and the reply's tokens (not the end
     * token: the next rendering writes it, so it is evaluated then). A
     * marker spelled in text is in the cache: start over next turn. */
    char *ctx = malloc(strlen(full) + len + 1);
    if (!ctx) { fail("out of memory"); goto done; }
    if (marker_in_text) ctx[0] = 0;
    else { strcpy(ctx, full); memcpy(ctx + strlen(full), reply, len + 1); }
    free(c->ctx_text);
    c->ctx_text = ctx;
    if (msg_push(msgs, "assistant", reply)) { fail("out of memory"); goto done; }
    rc = 0;
done:
    free(full); free(reply); free(toks); free(gen); free(rows);
    return rc;
}

/* Reads one line from stdin (without its newline); NULL at end of input. */
static char *read_line(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) { free(line); return NULL; }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    return line;
}

int chat_run(const chat_opts *o)
{
    chat_state c = {0};
    c.o = o;
    if (resolve_template(o, &c.t)) return 1;
    char err[SD_ERR_LEN];
    if (sd_model_load(o->model, &c.m, err)) return fail("%s", err);
    c.tok = sd_model_tokenizer(c.m);
    sd_session_params sp = {(int)o->ctx, (int)o->threads, o->kv};
    msg_list msgs = {0};
    int rc = 1;
    if (sd_session_new(c.m, &sp, &c.s, err)) { fail("%s", err); goto done; }
    c.smp = sd_sampler_new(&o->sp, sd_model_hparams(c.m)->n_vocab);
    c.ctx_text = strdup("");
    if (!c.smp || !c.ctx_text) { fail("out of memory"); goto done; }
    if (o->system && msg_push(&msgs, "system", o->system)) { fail("out of memory"); goto done; }
    fprintf(stderr, "[chat template: %s]\n", sd_chat_name(c.t));
    if (o->user) {
        if (msg_push(&msgs, "user", o->user)) { fail("out of memory"); goto done; }
        rc = chat_turn(&c, &msgs);
        goto done;
    }
    fprintf(stderr, "[type a message and Enter; Ctrl-D ends the conversation]\n");
    for (;;) {
        fputs("> ", stderr);
        fflush(stderr);
        char *line = read_line();
        if (!line) break;
        if (!line[0]) { free(line); continue; }
        int bad = msg_push(&msgs, "user", line);
        free(line);
        if (bad) { fail("out of memory"); goto done; }
        if (chat_turn(&c, &msgs)) goto done;
    }
    rc = 0;
done:
    msg_free(&msgs);
    free(c.ctx_text);
    sd_sampler_free(c.smp);
    sd_session_free(c.s);
    sd_model_free(c.m);
    return rc;
}
