/* showdown bench --parallel (bench/parallel.c, cli/cmd_bench_par.c): rows
 * whose figures agree with their own samples, the formats' field names, and
 * bad flags refused with one line. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "bench/parallel.h"

static int run_cli(const char *args, char **out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "timeout 100 %s %s </dev/null 2>/tmp/sd-par-stderr.%d", showdown_bin(), args,
             (int)getpid());
    int rc = capture_cmd(cmd, out);
    cr_assert(*out, "cannot run %s", cmd);
    return rc;
}

static char *stderr_line(void)
{
    char path[64], *s = calloc(1, 1024);
    snprintf(path, sizeof path, "/tmp/sd-par-stderr.%d", (int)getpid());
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(s, 1, 1023, f);
        s[n] = 0;
        fclose(f);
    }
    unlink(path);
    return s;
}

/* The library: three sequences, each rep's aggregate rate is B * n_gen over
 * its decode time, and the mean of those is avg_ts. */
Test(bench_parallel, row_agrees_with_its_samples, .timeout = 120)
{
    char p[512], err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(p, sizeof p, "models/tiny-q8_0.gguf"), &m, err), 0, "%s", err);
    sd_par_row r = {.n_parallel = 3, .n_prompt = 20, .n_gen = 6, .n_threads = 2, .n_reps = 2, .kv = SD_KV_F16};
    cr_assert_eq(sd_bench_parallel(m, &r, 1, 7, err), 0, "%s", err);
    double ts = 0, step = 0;
    for (int i = 0; i < 2; i++) {
        cr_assert_gt(r.pp_ms[i], 0);
        cr_assert_gt(r.tg_ms[i], 0);
        ts += 1e3 * 3 * 6 / r.tg_ms[i] / 2;
        step += r.tg_ms[i] / 6 / 2;
    }
    cr_assert_float_eq(r.avg_ts, ts, 1e-9 * ts);
    cr_assert_float_eq(r.avg_step_ms, step, 1e-9 * step);
    cr_assert_gt(r.avg_pp_ts, 0);
    /* a sequence count of 0 and a context the cache cannot take are refused */
    sd_par_row bad = r;
    bad.n_parallel = 0;
    cr_assert_eq(sd_bench_parallel(m, &bad, 0, 7, err), -1);
    cr_assert(strstr(err, "0 sequences"), "%s", err);
    sd_model_free(m);
}

Test(bench_parallel, json_rows_and_csv_fields, .timeout = 200)
{
    char args[1024], p[512], *out;
    snprintf(args, sizeof args, "bench -m %s --parallel 1,2 -p 8 -n 4 -t 2 -r 2 --warmup 0 -o json",
             shared_path(p, sizeof p, "models/tiny-q8_0.gguf"));
    cr_assert_eq(run_cli(args, &out), 0, "%s", stderr_line());
    json_error_t je;
    json_t *a = json_loads(out, 0, &je);
    cr_assert(json_is_array(a), "not a JSON array: %s\n%s", je.text, out);
    cr_assert_eq(json_array_size(a), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *row = json_array_get(a, i);
        cr_assert_eq(json_integer_value(json_object_get(row, "n_parallel")), (json_int_t)(i + 1));
        cr_assert_eq(json_integer_value(json_object_get(row, "n_prompt")), 8);
        cr_assert_eq(json_integer_value(json_object_get(row, "n_gen")), 4);
        cr_assert_eq(json_integer_value(json_object_get(row, "n_threads")), 2);
        cr_assert_str_eq(json_string_value(json_object_get(row, "type_k")), "f16");
        json_t *s = json_object_get(row, "samples_tg_ms");
        cr_assert_eq(json_array_size(s), 2);
        double ts = 0;
        for (size_t k = 0; k < 2; k++) ts += 1e3 * (double)(i + 1) * 4 / json_real_value(json_array_get(s, k)) / 2;
        double avg = json_real_value(json_object_get(row, "avg_ts"));
        cr_assert(fabs(avg - ts) <= 1e-3 * ts + 1e-3, "avg_ts %g against its samples %g", avg, ts);
        cr_assert_gt(json_real_value(json_object_get(row, "avg_step_ms")), 0);
    }
    cr_assert_float_eq(json_real_value(json_object_get(json_array_get(a, 0), "speedup")), 1.0, 1e-9);
    json_decref(a);
    free(out);
    snprintf(args, sizeof args, "bench -m %s --parallel 2 -p 4 -n 2 -t 1 -r 1 --warmup 0 -o csv",
             shared_path(p, sizeof p, "models/tiny-q8_0.gguf"));
    cr_assert_eq(run_cli(args, &out), 0, "%s", stderr_line());
    static const char head[] = "model_filename,model_type,n_threads,type_k,n_parallel,n_prompt,n_gen,n_reps,avg_pp_ts,"
                               "avg_step_ms,stddev_step_ms,avg_ts,stddev_ts,speedup\n";
    cr_assert(!strncmp(out, head, sizeof head - 1), "%s", out);
    cr_assert_eq(strchr(out, '\n') ? (int)(strchr(strchr(out, '\n') + 1, '\n') != NULL) : 0, 1, "one row: %s", out);
    free(out);
}

Test(bench_parallel, bad_flags_refused)
{
    static const char *cases[][2] = {
        {"--parallel 0", "--parallel"},
        {"--parallel 2 -n 0", "-n"},
        {"--parallel 2 --bogus 1", "unknown option '--bogus'"},
        {"--parallel 2 -o xml", "unknown format 'xml'"},
        {"--parallel 2 -ctk q4", "unknown KV cache format 'q4'"},
    };
    char p[512], args[1024], *out;
    shared_path(p, sizeof p, "models/tiny-q8_0.gguf");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "bench -m %s %s", p, cases[i][0]);
        cr_assert_eq(run_cli(args, &out), 1, "%s: not refused", cases[i][0]);
        cr_assert_str_eq(out, "", "%s: wrote rows", cases[i][0]);
        char *e = stderr_line();
        cr_assert(strstr(e, cases[i][1]) && strncmp(e, "error: ", 7) == 0, "%s: %s", cases[i][0], e);
        free(e);
        free(out);
    }
    cr_assert_eq(run_cli("bench --parallel 1,2", &out), 1);
    char *e = stderr_line();
    cr_assert(strstr(e, "no model"), "%s", e);
    free(e);
    free(out);
}
