/* Writing result rows: markdown table, CSV, JSON array, JSON lines. Rows
 * are written as they finish so a long sweep shows (and keeps) its results. */
#ifndef SD_BENCH_EMIT_H
#define SD_BENCH_EMIT_H

#include <stdio.h>

#include "bench/bench.h"

typedef enum { SD_OUT_MD, SD_OUT_CSV, SD_OUT_JSON, SD_OUT_JSONL } sd_bench_format;

int sd_bench_format_parse(const char *s, sd_bench_format *out);
void sd_bench_emit_begin(FILE *f, sd_bench_format fmt);
/* index: 0 for the first row of the output. */
void sd_bench_emit_row(FILE *f, sd_bench_format fmt, const sd_bench_row *r, int index);
void sd_bench_emit_end(FILE *f, sd_bench_format fmt, int n_rows);

/* The markdown writer (emit_md.c). */
void sd_bench_md_header(FILE *f);
void sd_bench_md_row(FILE *f, const sd_bench_row *r);
void sd_bench_md_footer(FILE *f, const sd_bench_row *last);

/* Escaping (escape.c). JSON: a quoted string, control characters escaped,
 * invalid UTF-8 replaced by U+FFFD so the output always parses. CSV: a
 * quoted field with inner quotes doubled (RFC 4180). Markdown: '|' escaped,
 * newlines flattened. */
void sd_json_string(FILE *f, const char *s);
void sd_csv_string(FILE *f, const char *s);
void sd_md_cell(FILE *f, const char *s);

#endif
