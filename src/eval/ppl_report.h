/* Writing `showdown ppl` results: markdown for people, JSON for scripts.
 * Writes to the caller's stream; never to stdout on its own. */
#ifndef SD_PPL_REPORT_H
#define SD_PPL_REPORT_H

#include <stdio.h>

#include "eval/ppl.h"
#include "eval/sweep.h"

/* What was measured, for the report's header. */
typedef struct {
    const char *model, *model_type;   /* path, dominant format */
    const char *base, *base_type;     /* NULL without a base */
    const char *text_path;
    size_t text_bytes;
    int n_threads;
    const char *kv;                   /* "f16" */
} sd_ppl_info;

void sd_ppl_write_md(FILE *f, const sd_ppl_info *in, const sd_ppl_result *r);
void sd_ppl_write_json(FILE *f, const sd_ppl_info *in, const sd_ppl_result *r);

/* The sweep: one row per format (in->model is the base). */
void sd_sweep_write_md(FILE *f, const sd_ppl_info *in, const sd_sweep_row *rows, int n);
void sd_sweep_write_json(FILE *f, const sd_ppl_info *in, const sd_sweep_row *rows, int n);

#endif
