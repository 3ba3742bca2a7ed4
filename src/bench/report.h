/* `showdown report`: read bench results (JSON lines or a JSON array written
 * by `showdown bench`) and draw them: tokens/s against threads, context
 * depth and weight format with the machine's ceiling, and tokens per joule. */
#ifndef SD_REPORT_H
#define SD_REPORT_H

#include <stdio.h>

typedef struct {
    char model[256], type[64], kv[8], test[96], energy_source[256], cpu[128], commit[64], error[256];
    int threads, n_prompt, n_gen, n_depth, n_reps;
    double avg_ts, stddev_ts, roofline_ts, tokens_per_joule, energy_j;
} sd_report_row;

/* Reads every row; a file that is not showdown bench output (not JSON, or a
 * row without bench_schema "showdown-bench/1") is an error naming the line. */
int sd_report_load(const char *path, sd_report_row **rows, int *n, char *err);

/* Minimal JSON for those files: one flat object (strings, numbers, null,
 * booleans, arrays of numbers). Calls fn for each key; returns the number of
 * bytes consumed, or -1 with a message. (report_json.c) */
typedef void (*sd_json_field_fn)(void *ud, const char *key, const char *str, double num, int is_null);
long sd_json_object(const char *s, sd_json_field_fn fn, void *ud, char *err);

void sd_report_svg(FILE *f, const sd_report_row *rows, int n);
void sd_report_html(FILE *f, const sd_report_row *rows, int n);

#endif
