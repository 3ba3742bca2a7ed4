/* Progress, notes and clean-up for the commands that write GGUF files. */
#include <signal.h>
#include <stdio.h>

#include "showdown.h"
#include "cli/cli.h"

void write_progress_show(void *ctx, const gguf_write_progress *p)
{
    write_progress *ps = ctx;
    double now = sd_time_ms();
    int done = p->tensors_done == p->n_tensors;
    if (!done && now - ps->last_ms < 200) return;   /* a few lines a second is plenty */
    ps->last_ms = now;
    fprintf(stderr, "\r[%4llu/%4llu] %-32.32s %9.1f / %.1f MB", (unsigned long long)p->tensors_done,
            (unsigned long long)p->n_tensors, p->tensor_name, (double)p->bytes_done / 1e6,
            (double)p->bytes_total / 1e6);
    ps->done = done;
    if (done) fputc('\n', stderr);
}

void write_note(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "note: %s\n", msg);
}

/* Ctrl-C: remove the half-written temporary file, then die of the signal. */
static void on_signal(int sig)
{
    gguf_writer_remove_temp_files();
    signal(sig, SIG_DFL);
    raise(sig);
}

void write_remove_temp_on_signals(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}
