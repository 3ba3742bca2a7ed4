/* showdown bench --parallel: B sequences decoding together (bench/parallel.h),
 * one row per B, in llama-bench's formats and field names where they mean
 * the same (n_prompt, n_gen, n_threads, avg_ts, stddev_ts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "bench/bench.h"
#include "bench/emit.h"
#include "bench/listarg.h"
#include "bench/parallel.h"
#include "cli/cli.h"
#include "measure/sysinfo.h"

static void usage(FILE *out)
{
    fputs("usage: showdown bench -m MODEL --parallel LIST [options]\n\n"
          "B sequences, each prefilled with its own random prompt, decode together, one token each\n"
          "per forward pass (as llama-batched-bench; the server's decode without HTTP). avg_ts is\n"
          "the aggregate generated tokens/s; step_ms one decode step of all B tokens; speedup the\n"
          "aggregate against the B = 1 row of the same run.\n\n"
          "  -m, --model FILE      GGUF model\n"
          "  --parallel LIST       sequences decoding together (e.g. 1,2,4,8)\n"
          "  -p, --n-prompt N      prompt tokens per sequence (default 128)\n"
          "  -n, --n-gen N         generated tokens per sequence (default 128)\n"
          "  -t, --threads N       threads (default: all CPUs)\n"
          "  -ctk, --cache-type-k  f32, f16 (default), q8_0\n"
          "  -r, --repetitions N   timed repetitions (default 3)\n"
          "  --warmup N            untimed repetitions first (default 1)\n"
          "  --seed S              random prompts (default 42)\n"
          "  -o, --output FMT      md (default), csv, json, jsonl\n",
          out);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void emit(FILE *f, sd_bench_format fmt, const char *model, const sd_model *m, const sd_par_row *r,
                 double speedup, int index)
{
    const char *kv = sd_kv_type_name(r->kv), *type = sd_model_type_name(m);
    if (fmt == SD_OUT_MD) {
        if (index == 0)
            fprintf(f, "| model | threads | type_k | n_parallel | n_prompt | n_gen | pp t/s | step ms | tg t/s | speedup |\n"
                       "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        fprintf(f, "| %s (%s) | %d | %s | %d | %d | %d | %.2f | %.2f ± %.2f | %.2f ± %.2f | ", base_name(model), type,
                r->n_threads, kv,
                r->n_parallel, r->n_prompt, r->n_gen, r->avg_pp_ts, r->avg_step_ms, r->stddev_step_ms, r->avg_ts,
                r->stddev_ts);
        if (speedup > 0) fprintf(f, "%.2fx |\n", speedup);
        else fprintf(f, "- |\n");
        return;
    }
    if (fmt == SD_OUT_CSV) {
        if (index == 0)
            fprintf(f, "model_filename,model_type,n_threads,type_k,n_parallel,n_prompt,n_gen,n_reps,avg_pp_ts,"
                       "avg_step_ms,stddev_step_ms,avg_ts,stddev_ts,speedup\n");
        sd_csv_string(f, model);
        fputc(',', f);
        sd_csv_string(f, type);
        fprintf(f, ",%d,%s,%d,%d,%d,%d,%.4f,%.4f,%.4f,%.4f,%.4f,", r->n_threads, kv, r->n_parallel, r->n_prompt,
                r->n_gen, r->n_reps, r->avg_pp_ts, r->avg_step_ms, r->stddev_step_ms, r->avg_ts, r->stddev_ts);
        if (speedup > 0) fprintf(f, "%.4f", speedup);
        fputc('\n', f);
        return;
    }
    if (fmt == SD_OUT_JSON) fputs(index ? ",\n  " : "  ", f);
    fputs("{\"model_filename\": ", f);
    sd_json_string(f, model);
    fputs(", \"model_type\": ", f);
    sd_json_string(f, type);
    fprintf(f, ", \"n_threads\": %d, \"type_k\": \"%s\", \"n_parallel\": %d, \"n_prompt\": %d, \"n_gen\": %d, "
               "\"n_reps\": %d, \"avg_pp_ts\": %.4f, \"avg_step_ms\": %.4f, \"stddev_step_ms\": %.4f, "
               "\"avg_ts\": %.4f, \"stddev_ts\": %.4f, \"speedup\": ",
            r->n_threads, kv, r->n_parallel, r->n_prompt, r->n_gen, r->n_reps, r->avg_pp_ts, r->avg_step_ms,
            r->stddev_step_ms, r->avg_ts, r->stddev_ts);
    if (speedup > 0) fprintf(f, "%.4f", speedup);
    else fputs("null", f);
    fputs(", \"samples_tg_ms\": [", f);
    for (int i = 0; i < r->n_reps; i++) fprintf(f, "%s%.6f", i ? ", " : "", r->tg_ms[i]);
    fputs("]}", f);
    if (fmt == SD_OUT_JSONL) fputc('\n', f);
}

int cmd_bench_parallel(int argc, char **argv)
{
    const char *model = NULL;
    int *par = NULL, n_par = 0, kv_given = 0;
    long n_prompt = 128, n_gen = 128, threads = sd_online_cpus(), reps = 3, warmup = 1;
    unsigned long long seed = 42;
    sd_kv_type kv = SD_KV_F16;
    sd_bench_format fmt = SD_OUT_MD;
    char err[SD_ERR_LEN];
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(s1, s2) (!strcmp(a, s1) || !strcmp(a, s2))
        if (IS("-h", "--help")) { usage(stdout); free(par); return 0; }
        if (!v) { free(par); return fail("%s needs a value (showdown bench --parallel --help)", a); }
        i++;
        if (IS("-m", "--model")) model = v;
        else if (IS("--parallel", "-np")) {
            free(par);
            par = NULL;
            if (sd_parse_int_list(a, v, 1, 4096, &par, &n_par, err) != 0) return fail("%s", err);
        } else if (IS("-p", "--n-prompt")) { if (parse_int(a, v, 1, 1 << 20, &n_prompt)) goto out; }
        else if (IS("-n", "--n-gen")) { if (parse_int(a, v, 1, 1 << 20, &n_gen)) goto out; }
        else if (IS("-t", "--threads")) { if (parse_int(a, v, 1, 512, &threads)) goto out; }
        else if (IS("-r", "--repetitions")) { if (parse_int(a, v, 1, SD_PAR_MAX_REPS, &reps)) goto out; }
        else if (IS("--warmup", "--warmup")) { if (parse_int(a, v, 0, 100, &warmup)) goto out; }
        else if (IS("--seed", "-s")) {
            char *end;
            seed = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-') { fail("%s: expected a non-negative integer, got '%s'", a, v); goto out; }
        } else if (IS("-ctk", "--cache-type-k")) {
            if (sd_kv_type_parse(v, &kv) != 0) { fail("%s: unknown KV cache format '%s' (f32, f16, q8_0)", a, v); goto out; }
            kv_given = 1;
        } else if (IS("-o", "--output")) {
            if (sd_bench_format_parse(v, &fmt) != 0) { fail("%s: unknown format '%s' (md, csv, json, jsonl)", a, v); goto out; }
        } else { fail("unknown option '%s' with --parallel (showdown bench --parallel --help)", a); goto out; }
#undef IS
    }
    (void)kv_given;
    if (!model) { fail("no model: pass -m MODEL.gguf"); goto out; }
    if (!n_par) { fail("--parallel needs a list of sequence counts, e.g. 1,2,4,8"); goto out; }
    sd_model *m;
    if (sd_model_load(model, &m, err)) { fail("%s", err); goto out; }
    if (fmt == SD_OUT_JSON) fputs("[\n", stdout);
    double base = 0;
    rc = 0;
    for (int i = 0; i < n_par; i++) {
        sd_par_row r = {.n_parallel = par[i], .n_prompt = (int)n_prompt, .n_gen = (int)n_gen,
                        .n_threads = (int)threads, .n_reps = (int)reps, .kv = kv};
        if (sd_bench_parallel(m, &r, (int)warmup, seed, err)) {
            fprintf(stderr, "error: %s --parallel %d: %s\n", base_name(model), par[i], err);
            rc = 1;
            continue;
        }
        if (par[i] == 1) base = r.avg_ts;
        emit(stdout, fmt, model, m, &r, base > 0 ? r.avg_ts / base : 0, i);
        fflush(stdout);
    }
    if (fmt == SD_OUT_JSON) fputs("\n]\n", stdout);
    sd_model_free(m);
out:
    free(par);
    return rc;
}
