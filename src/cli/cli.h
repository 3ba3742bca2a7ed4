/* The subcommands: each lives in its own cmd_*.c and is listed in main.c. */
#ifndef SD_CLI_H
#define SD_CLI_H

#include <stdio.h>

#include "showdown.h"
#include "gguf/gguf_write.h"

/* Every command: argv[0] is the command name. Returns the process exit code. */
typedef int (*sd_cmd_fn)(int argc, char **argv);

int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_url(int argc, char **argv);   /* bench --url (cmd_bench_url.c) */
int cmd_bench_parallel(int argc, char **argv);   /* bench --parallel (cmd_bench_par.c) */
int cmd_calibrate(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Prints "error: <msg>" on stderr and returns 1 (for `return fail(...)`). */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Strict number parsing for flags: 0 ok, -1 with a message printed. */
int parse_int(const char *flag, const char *s, long lo, long hi, long *out);
int parse_float(const char *flag, const char *s, double lo, double hi, double *out);
/* "warning: PATH: ..." on stderr when loading the vocabulary had to guess
 * (sd_tokenizer_warning); nothing otherwise. */
void show_tokenizer_warning(const char *path, const sd_tokenizer *t);
/* Whole file into a malloc'd NUL-terminated buffer, bytes kept exactly. */
char *read_file_bytes(const char *path, size_t *len);

/* run --dump-experts (dump_experts.c): the chosen experts of the last
 * forward pass's tokens (positions from pos0), and a prompt evaluation that
 * dumps every pass. 0, or -1 (err set by the second). */
typedef struct sd_session sd_session;
int dump_experts(FILE *f, const sd_session *s, const int32_t *toks, int pos0);
int dump_experts_eval(FILE *f, sd_session *s, const int32_t *toks, int n, float *rows, char *err);

/* -ngl N|auto (gpu_flags.c): 0 ok, -1 with a message printed. */
int parse_ngl(const char *flag, const char *v, int *out);
/* Offloads per -ngl/--device (nothing when both are 0) and prints what runs
 * where on stderr; 1 (message printed) on an error. */
int gpu_offload(sd_model *m, int ngl, int device, int n_ctx, sd_kv_type kv);

/* Commands that write a GGUF file (synth, quantize): progress on stderr, notes,
 * and removal of the half-written temporary file on Ctrl-C (write_progress.c). */
typedef struct { int done; double last_ms; } write_progress;
void write_progress_show(void *ctx, const gguf_write_progress *p);
void write_note(void *ctx, const char *msg);
void write_remove_temp_on_signals(void);

#endif
