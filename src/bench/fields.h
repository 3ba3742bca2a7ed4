/* The result row's fields, in output order: one table that the JSON, JSONL
 * and CSV writers walk, and that `report` checks a results file against. */
#ifndef SD_BENCH_FIELDS_H
#define SD_BENCH_FIELDS_H

#include <stddef.h>

typedef enum {
    FK_STR,        /* char[] in the row */
    FK_INT,        /* int */
    FK_U64,        /* uint64_t */
    FK_NUM,        /* double; NAN written as null */
    FK_SAMPLES_NS, /* samples_ns[n_reps] */
    FK_SAMPLES_TS, /* samples_ts[n_reps] */
    FK_SCHEMA,     /* the constant SD_BENCH_SCHEMA: marks a file as ours */
    FK_TEST,       /* computed test name, "pp512 @ d1024" */
    FK_ERROR       /* char[]; "" written as null */
} sd_field_kind;

typedef struct {
    const char *name;
    sd_field_kind kind;
    size_t offset;
} sd_bench_field;

extern const sd_bench_field sd_bench_fields[];
extern const int sd_bench_n_fields;

#endif
