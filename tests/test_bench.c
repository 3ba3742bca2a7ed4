/* bench and report: list/range parsing, statistics, escaping, roofline
 * arithmetic, the output formats carrying every field, the CLI on the tiny
 * model, and report refusing files that are not ours. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/emit.h"
#include "bench/fields.h"
#include "bench/listarg.h"
#include "bench/report.h"
#include "bench/roofline.h"
#include "bench/stats.h"
#include "common.h"

/* ---- list and range arguments ------------------------------------------ */

static void expect_list(const char *s, const int *want, int n_want)
{
    int *v = NULL, n = 0;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_parse_int_list("-p", s, 0, 1 << 20, &v, &n, err), 0, "'%s': %s", s, err);
    cr_assert_eq(n, n_want, "'%s' gave %d values", s, n);
    for (int i = 0; i < n; i++) cr_assert_eq(v[i], want[i], "'%s'[%d] = %d, want %d", s, i, v[i], want[i]);
    free(v);
}

static void expect_list_error(const char *s, long lo, const char *msg)
{
    int *v = NULL, n = 0;
    char err[SD_ERR_LEN] = "";
    cr_assert_eq(sd_parse_int_list("-t", s, lo, 1024, &v, &n, err), -1, "'%s' was accepted", s);
    cr_assert(strstr(err, msg), "'%s': message '%s' lacks '%s'", s, err, msg);
    cr_assert(strstr(err, "-t"), "message names the flag: %s", err);
    free(v);
}

Test(bench, lists_and_ranges)
{
    expect_list("64,128,256", (int[]){64, 128, 256}, 3);
    expect_list("1-4", (int[]){1, 2, 3, 4}, 4);
    expect_list("16-64+16", (int[]){16, 32, 48, 64}, 4);
    expect_list("16-100*2", (int[]){16, 32, 64}, 3);
    expect_list("0,8-10,512", (int[]){0, 8, 9, 10, 512}, 5);
    expect_list("7", (int[]){7}, 1);
}

Test(bench, bad_lists_are_refused)
{
    expect_list_error("4-1", 1, "backwards");
    expect_list_error("1-8*1", 1, "never end");
    expect_list_error("1-8+0", 1, "never end");
    expect_list_error("two", 1, "cannot read");
    expect_list_error("1,,2", 1, "empty item");
    expect_list_error("0-3", 1, "outside");
    expect_list_error("-3", 1, "cannot read");
    expect_list_error("4x", 1, "cannot read");
}

Test(bench, string_lists)
{
    char **v = NULL, err[SD_ERR_LEN];
    int n = 0;
    cr_assert_eq(sd_parse_str_list("-m", "a.gguf,b.gguf", &v, &n, err), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[1], "b.gguf");
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
    v = NULL;
    n = 0;
    cr_assert_eq(sd_parse_str_list("-m", "a.gguf,", &v, &n, err), -1);
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* ---- statistics --------------------------------------------------------- */

Test(bench, mean_and_sample_sd)
{
    double x[] = {2, 4, 4, 4, 5, 5, 7, 9};
    cr_assert_float_eq(sd_mean(x, 8), 5, 1e-12);
    cr_assert_float_eq(sd_stddev(x, 8), sqrt(32.0 / 7), 1e-12);
    cr_assert_float_eq(sd_stddev(x, 1), 0, 0);
    cr_assert(isnan(sd_mean(x, 0)));
}

/* ---- escaping ----------------------------------------------------------- */

static char *capture(void (*fn)(FILE *, const char *), const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f, s);
    fclose(f);
    return buf;
}

Test(bench, json_escaping)
{
    char *o = capture(sd_json_string, "a\"b\\c\nd\te\x01 caf\xc3\xa9 \xff!");
    cr_assert_str_eq(o, "\"a\\\"b\\\\c\\nd\\te\\u0001 caf\xc3\xa9 \\ufffd!\"");
    free(o);
}

Test(bench, csv_escaping)
{
    char *o = capture(sd_csv_string, "model \"x\", v2");
    cr_assert_str_eq(o, "\"model \"\"x\"\", v2\"");
    free(o);
    o = capture(sd_md_cell, "a|b\nc");
    cr_assert_str_eq(o, "a\\|b c");
    free(o);
}

/* ---- rows in every format ----------------------------------------------- */

static void sample_row(sd_bench_row *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->model_filename, sizeof r->model_filename, "/m/odd \"name\", here.gguf");
    snprintf(r->model_type, sizeof r->model_type, "Q4_0");
    snprintf(r->type_k, sizeof r->type_k, "f16");
    snprintf(r->type_v, sizeof r->type_v, "f16");
    snprintf(r->energy_source, sizeof r->energy_source, "rapl:package-0");
    snprintf(r->cpu_info, sizeof r->cpu_info, "Test CPU");
    snprintf(r->build_commit, sizeof r->build_commit, "abc123");
    snprintf(r->load_cache, sizeof r->load_cache, "warm");
    r->model_size = 1000;
    r->n_threads = 2;
    r->n_gen = 16;
    r->n_depth = 64;
    r->n_reps = 2;
    r->samples_ts[0] = 100;
    r->samples_ts[1] = 110;
    r->avg_ts = 105;
    r->stddev_ts = 7.0710678;
    r->energy_j = 0.5;
    r->tokens_per_joule = 32;
    r->roofline_ts = 1000;
    r->roofline_fraction = 0.105;
    r->ttft_ms = r->load_ms = r->load_cached_fraction = 1;
    r->stddev_energy_j = r->avg_ns = r->stddev_ns = r->stddev_ttft_ms = 0;
}

static char *emit(sd_bench_format fmt, const sd_bench_row *r, int n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sd_bench_emit_begin(f, fmt);
    for (int i = 0; i < n; i++) sd_bench_emit_row(f, fmt, r, i);
    sd_bench_emit_end(f, fmt, n);
    fclose(f);
    return buf;
}

Test(bench, every_format_carries_every_field)
{
    sd_bench_row *r = malloc(sizeof *r);
    sample_row(r);
    char *json = emit(SD_OUT_JSON, r, 2), *csv = emit(SD_OUT_CSV, r, 2), *jl = emit(SD_OUT_JSONL, r, 1);
    for (int i = 0; i < sd_bench_n_fields; i++) {
        char key[80];
        snprintf(key, sizeof key, "\"%s\": ", sd_bench_fields[i].name);
        cr_assert(strstr(json, key), "json lacks %s", key);
        cr_assert(strstr(jl, key), "jsonl lacks %s", key);
        cr_assert(strstr(csv, sd_bench_fields[i].name), "csv header lacks %s", sd_bench_fields[i].name);
    }
    cr_assert(strstr(json, "\"samples_ts\": [100, 110]"), "%s", json);
    cr_assert(strstr(json, "\"test\": \"tg16 @ d64\""));
    cr_assert(strstr(json, "\"error\": null"));
    cr_assert(strstr(csv, "\"100;110\""));
    cr_assert(strstr(csv, "\"/m/odd \"\"name\"\", here.gguf\""));
    /* CSV: header + 2 rows, each with as many fields as the header */
    int lines = 0;
    for (char *p = csv; *p; p++) lines += *p == '\n';
    cr_assert_eq(lines, 3);
    free(json);
    free(csv);
    free(jl);
    free(r);
}

Test(bench, jsonl_reads_back_through_the_report_loader)
{
    sd_bench_row *r = malloc(sizeof *r);
    sample_row(r);
    r->energy_j = NAN;
    r->tokens_per_joule = NAN;
    char path[] = "/tmp/sd-rows-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    sd_bench_emit_begin(f, SD_OUT_JSONL);
    sd_bench_emit_row(f, SD_OUT_JSONL, r, 0);
    snprintf(r->error, sizeof r->error, "session: out of \"memory\"");
    sd_bench_emit_row(f, SD_OUT_JSONL, r, 1);
    fclose(f);
    sd_report_row *rows;
    int n;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_report_load(path, &rows, &n, err), 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(rows[0].model, r->model_filename);
    cr_assert_eq(rows[0].threads, 2);
    cr_assert_eq(rows[0].n_depth, 64);
    cr_assert_float_eq(rows[0].avg_ts, 105, 1e-9);
    cr_assert(isnan(rows[0].tokens_per_joule), "null must stay null");
    cr_assert_str_eq(rows[0].test, "tg16 @ d64");
    cr_assert_str_eq(rows[1].error, "session: out of \"memory\"");
    free(rows);
    unlink(path);
    free(r);
}

/* ---- report refuses files that are not ours ----------------------------- */

static void expect_not_ours(const char *content, const char *msg)
{
    char path[] = "/tmp/sd-notours-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(write(fd, content, strlen(content)) == (ssize_t)strlen(content));
    close(fd);
    sd_report_row *rows;
    int n;
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_report_load(path, &rows, &n, err), -1, "accepted: %s", content);
    cr_assert(strstr(err, msg), "'%s' lacks '%s'", err, msg);
    cr_assert(strstr(err, path), "message names the file: %s", err);
    unlink(path);
}

Test(bench, report_rejects_files_that_are_not_ours)
{
    expect_not_ours("hello world\n", "not a showdown bench results file");
    /* llama-bench's own JSONL: right shape, not ours */
    expect_not_ours("{\"build_commit\": \"x\", \"model_filename\": \"m.gguf\", \"avg_ts\": 12.5}\n", "not a showdown bench row");
    expect_not_ours("{\"bench_schema\": \"showdown-bench/1\", \"model_filename\": \"m\", \"avg_ts\": 1}\n{\"a\": 1,\n", ":2:");
    expect_not_ours("", "no result rows");
    expect_not_ours("[{\"bench_schema\": \"showdown-bench/1\", \"model_filename\": \"m\", \"avg_ts\": 1}", "unterminated");
}

/* ---- roofline arithmetic ------------------------------------------------ */

Test(bench, roofline_ceilings)
{
    sd_calibration c = {0};
    c.max_threads = 2;
    c.bw_gbps[1] = 10;
    c.bw_gbps[2] = 20;
    c.gflops_f32 = 100;
    c.gops_int8 = 400;
    sd_roofline_in in = {.weight_bytes_per_token = 1000000000, .n_params = 1000000000, .n_layer = 0,
                         .kv_dim = 0, .kv_elem_bytes = 2, .type_name = "Q4_0", .n_threads = 1, .n_gen = 10};
    char note[160];
    /* decode: 10 GB/s over 1 GB per token = 10 tokens/s */
    cr_assert_float_eq(sd_roofline_ts(&c, &in, note, sizeof note), 10, 1e-9);
    in.n_threads = 8;   /* beyond the calibrated threads: the widest measured bandwidth */
    cr_assert_float_eq(sd_roofline_ts(&c, &in, note, sizeof note), 20, 1e-9);
    /* prefill: int8 rate 400 G ops/s over 2 G ops per token = 200 tokens/s (2 threads) */
    in.n_gen = 0;
    in.n_prompt = 512;
    cr_assert_float_eq(sd_roofline_ts(&c, &in, note, sizeof note), 200, 1e-9);
    in.type_name = "F32";
    in.n_threads = 1;   /* f32 rate scaled to one of two threads: 50 G ops/s */
    cr_assert_float_eq(sd_roofline_ts(&c, &in, note, sizeof note), 25, 1e-9);
    /* KV bytes: 1 layer x 1000 dims x 2 bytes x 2 (K,V) x mean context 1000.5 tokens */
    sd_roofline_in kv = {.weight_bytes_per_token = 0, .n_params = 1, .n_layer = 1, .kv_dim = 1000,
                         .kv_elem_bytes = 2, .type_name = "Q8_0", .n_threads = 1, .n_gen = 2, .n_depth = 999};
    cr_assert_float_eq(sd_roofline_ts(&c, &kv, note, sizeof note), 10e9 / (4000.0 * 1000.5), 1e-6);
    cr_assert(isnan(sd_roofline_ts(NULL, &kv, note, sizeof note)));
}

/* ---- the CLI ------------------------------------------------------------ */

/* Runs the CLI with stdin from /dev/null (not interactive); stdout into
 * *out. timeout: a run that goes wrong must not outlive the test. */
static int run_cli(const char *args, char **out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "SHOWDOWN_PROFILE=/nonexistent/profile.tsv timeout 100 %s %s </dev/null 2>/tmp/sd-bench-stderr.%d",
             showdown_bin(), args, (int)getpid());
    int rc = capture_cmd(cmd, out);
    cr_assert(*out, "cannot run %s", cmd);
    return rc;
}

static char *stderr_text(void)
{
    size_t n;
    char path[64];
    snprintf(path, sizeof path, "/tmp/sd-bench-stderr.%d", (int)getpid());
    char *s = read_all(path, &n);
    unlink(path);
    if (!s) return strdup("");
    s = realloc(s, n + 1);
    s[n] = 0;
    return s;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

Test(bench, cli_json_has_every_field_on_the_tiny_model, .timeout = 120)
{
    char model[512], args[1024], *out;
    shared_path(model, sizeof model, "models/tiny-q4_0.gguf");
    snprintf(args, sizeof args, "bench -m %s -p 32 -n 16 -r 2 --warmup 1 -t 1 -o json", model);
    int rc = run_cli(args, &out);
    char *err = stderr_text();
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    cr_assert_eq(count(out, "\"bench_schema\": \"showdown-bench/1\""), 2, "%s", out);
    for (int i = 0; i < sd_bench_n_fields; i++) {
        char key[80];
        snprintf(key, sizeof key, "\"%s\": ", sd_bench_fields[i].name);
        cr_assert_eq(count(out, key), 2, "field %s not in both rows", key);
    }
    cr_assert(strstr(out, "\"test\": \"pp32\"") && strstr(out, "\"test\": \"tg16\""));
    cr_assert(strstr(out, "\"n_prompt\": 32,\n    \"n_gen\": 0"), "pp32 has n_gen 0");
    cr_assert(strstr(out, "\"n_prompt\": 0,\n    \"n_gen\": 16"), "tg16 has n_prompt 0");
    cr_assert(strstr(out, "\"roofline_fraction\": null"), "no profile: roofline_fraction is null");
    cr_assert(strstr(out, "\"error\": null"));
    cr_assert(strstr(err, "showdown calibrate"), "suggests calibrate: %s", err);
    free(out);
    free(err);

    /* CSV and markdown carry the same rows */
    snprintf(args, sizeof args, "bench -m %s -p 32 -n 16 -r 2 --warmup 0 -t 1 -o csv", model);
    cr_assert_eq(run_cli(args, &out), 0);
    cr_assert_eq(count(out, "\n"), 3, "%s", out);
    cr_assert(strstr(out, "\"pp32\"") && strstr(out, "\"tg16\""));
    free(out);
    snprintf(args, sizeof args, "bench -m %s -p 32 -n 16 -r 2 --warmup 0 -t 1 -o md", model);
    cr_assert_eq(run_cli(args, &out), 0);
    cr_assert(strstr(out, "| pp32 |") && strstr(out, "| tg16 |"), "%s", out);
    free(out);
}

Test(bench, cli_bad_input_is_a_clear_error, .timeout = 60)
{
    char model[512], args[1024], *out, *err;
    shared_path(model, sizeof model, "models/tiny-q4_0.gguf");
    struct { const char *args, *msg; } cases[] = {
        {"-ctk f16 -ctv q8_0", "-ctk and -ctv differ"},
        {"-ctk q4", "unknown KV cache format 'q4'"},
        {"-o xml", "unknown format 'xml'"},
        {"-t 0", "outside"},
        {"-p 8-2", "backwards"},
        {"-ngl 3-1", "backwards"},
        {"-ngl -1", "cannot read '-1'"},
        {"-pg 5", "expected PP,TG"},
        {"--energy sundial", "unknown probe"},
        {"-p 0 -n 0", "no tests"},
        {"--frobnicate 1", "unknown option"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "bench -m %s %s", model, cases[i].args);
        int rc = run_cli(args, &out);
        err = stderr_text();
        cr_assert_neq(rc, 0, "'%s' exited 0", cases[i].args);
        cr_assert(strstr(err, "error: ") && strstr(err, cases[i].msg), "'%s': stderr '%s'", cases[i].args, err);
        free(out);
        free(err);
    }
    cr_assert_neq(run_cli("bench -m /nonexistent/model.gguf", &out), 0);
    err = stderr_text();
    cr_assert(strstr(err, "/nonexistent/model.gguf"), "%s", err);
    free(out);
    free(err);
}

Test(bench, cli_failed_model_is_reported_in_its_row, .timeout = 60)
{
    char model[512], args[1200], *out;
    shared_path(model, sizeof model, "models/tiny-q4_0.gguf");
    /* a file that exists but is not GGUF: its rows carry the error, the good model still runs */
    snprintf(args, sizeof args, "bench -m %s,/etc/hostname -p 8 -n 4 -r 1 --warmup 0 -t 1 -o jsonl", model);
    int rc = run_cli(args, &out);
    char *err = stderr_text();
    cr_assert_neq(rc, 0, "a failed test makes the exit status non-zero");
    cr_assert_eq(count(out, "\n"), 4, "%s", out);
    cr_assert_eq(count(out, "\"error\": null"), 2, "%s", out);
    cr_assert_eq(count(out, "\"error\": \""), 2, "%s", out);
    cr_assert(strstr(err, "2 of 4 tests failed"), "%s", err);
    free(out);
    free(err);
}

Test(bench, cli_refuses_a_sweep_of_hours_without_yes, .timeout = 60)
{
    char model[512], args[1024], *out;
    shared_path(model, sizeof model, "models/tiny-q4_0.gguf");
    snprintf(args, sizeof args, "bench -m %s -p 0 -n 1000000 -r 1000 -t 1", model);
    int rc = run_cli(args, &out);
    char *err = stderr_text();
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "over an hour") && strstr(err, "--yes"), "%s", err);
    free(out);
    free(err);
}

Test(bench, cli_report_rejects_a_file_that_is_not_ours, .timeout = 30)
{
    char *out;
    int rc = run_cli("report /etc/hostname -o /tmp/sd-report-test.svg", &out);
    char *err = stderr_text();
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "error: /etc/hostname:1: not a showdown bench"), "%s", err);
    free(out);
    free(err);
}
