/* JSON, JSON lines and CSV writers: each walks the field table, so the three
 * always carry the same data under the same names. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bench/emit.h"
#include "bench/fields.h"

int sd_bench_format_parse(const char *s, sd_bench_format *out)
{
    if (!strcmp(s, "md")) *out = SD_OUT_MD;
    else if (!strcmp(s, "csv")) *out = SD_OUT_CSV;
    else if (!strcmp(s, "json")) *out = SD_OUT_JSON;
    else if (!strcmp(s, "jsonl")) *out = SD_OUT_JSONL;
    else return -1;
    return 0;
}

static void number(FILE *f, double v, const char *null_word)
{
    if (isfinite(v)) fprintf(f, "%.10g", v);
    else fputs(null_word, f);
}

static void samples(FILE *f, const double *x, int n, int csv)
{
    fputs(csv ? "\"" : "[", f);
    for (int i = 0; i < n; i++) {
        if (i) fputs(csv ? ";" : ", ", f);
        fprintf(f, "%.10g", x[i]);
    }
    fputs(csv ? "\"" : "]", f);
}

/* One field's value; csv selects CSV quoting and empty for null. */
static void value(FILE *f, const sd_bench_field *fd, const sd_bench_row *r, int csv)
{
    const char *base = (const char *)r;
    char test[96];
    switch (fd->kind) {
    case FK_SCHEMA: csv ? sd_csv_string(f, SD_BENCH_SCHEMA) : sd_json_string(f, SD_BENCH_SCHEMA); break;
    case FK_TEST:
        sd_bench_test_name(r, test, sizeof test);
        csv ? sd_csv_string(f, test) : sd_json_string(f, test);
        break;
    case FK_STR: csv ? sd_csv_string(f, base + fd->offset) : sd_json_string(f, base + fd->offset); break;
    case FK_ERROR:
        if (!base[fd->offset]) fputs(csv ? "" : "null", f);
        else csv ? sd_csv_string(f, base + fd->offset) : sd_json_string(f, base + fd->offset);
        break;
    case FK_INT: fprintf(f, "%d", *(const int *)(base + fd->offset)); break;
    case FK_U64: fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)(base + fd->offset)); break;
    case FK_NUM: number(f, *(const double *)(base + fd->offset), csv ? "" : "null"); break;
    case FK_SAMPLES_NS: samples(f, r->samples_ns, r->n_reps, csv); break;
    case FK_SAMPLES_TS: samples(f, r->samples_ts, r->n_reps, csv); break;
    }
}

static void json_object(FILE *f, const sd_bench_row *r, const char *indent, const char *sep)
{
    fputc('{', f);
    for (int i = 0; i < sd_bench_n_fields; i++) {
        fprintf(f, "%s%s\"%s\": ", i ? "," : "", i ? sep : indent, sd_bench_fields[i].name);
        value(f, &sd_bench_fields[i], r, 0);
    }
    fputs(*indent ? "\n  }" : "}", f);
}

void sd_bench_emit_begin(FILE *f, sd_bench_format fmt)
{
    if (fmt == SD_OUT_JSON) fputs("[\n", f);
    else if (fmt == SD_OUT_MD) sd_bench_md_header(f);
    else if (fmt == SD_OUT_CSV) {
        for (int i = 0; i < sd_bench_n_fields; i++) fprintf(f, "%s%s", i ? "," : "", sd_bench_fields[i].name);
        fputc('\n', f);
    }
    fflush(f);
}

void sd_bench_emit_row(FILE *f, sd_bench_format fmt, const sd_bench_row *r, int index)
{
    switch (fmt) {
    case SD_OUT_JSON:
        fputs(index ? ",\n  " : "  ", f);
        json_object(f, r, "\n    ", "\n    ");
        break;
    case SD_OUT_JSONL:
        json_object(f, r, "", " ");
        fputc('\n', f);
        break;
    case SD_OUT_CSV:
        for (int i = 0; i < sd_bench_n_fields; i++) {
            if (i) fputc(',', f);
            value(f, &sd_bench_fields[i], r, 1);
        }
        fputc('\n', f);
        break;
    case SD_OUT_MD: sd_bench_md_row(f, r); break;
    }
    fflush(f);
}

void sd_bench_emit_end(FILE *f, sd_bench_format fmt, int n_rows)
{
    if (fmt == SD_OUT_JSON) fputs(n_rows ? "\n]\n" : "]\n", f);
    fflush(f);
}
