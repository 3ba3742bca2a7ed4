/* `showdown run --chat`: a conversation through the model's chat template. */
#ifndef SD_CLI_CHAT_LOOP_H
#define SD_CLI_CHAT_LOOP_H

#include "showdown.h"

typedef struct {
    const char *model;
    const char *user;           /* one user turn (-p/-f, or stdin when it is not a terminal); NULL: interactive */
    const char *system;         /* --system, or NULL */
    const char *template_name;  /* --chat-template, or NULL: the file's own */
    const char *logits_out;     /* one-turn runs: prompt, reply and logits rows (reference format) */
    long n_predict, threads, ctx;
    sd_kv_type kv;
    sd_sampler_params sp;
} chat_opts;

int chat_run(const chat_opts *o);

#endif
