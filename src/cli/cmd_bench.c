/* showdown bench: llama-bench's flags and habits, plus TTFT, load, peak
 * memory, energy and the fraction of this machine's ceiling. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "bench/bench.h"
#include "bench/emit.h"
#include "bench/listarg.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "measure/calibrate.h"
#include "measure/sysinfo.h"

#define LONG_SWEEP_S 3600.0

static void bench_usage(FILE *out)
{
    fputs("usage: showdown bench -m MODEL[,MODEL...] [options]\n"
          "       showdown bench --url http://HOST:PORT/v1 [options]   (a server; --url --help)\n"
          "       showdown bench -m MODEL --parallel 1,2,4,8 [options]   (batched decode; --parallel --help)\n\n"
          "Every list flag takes comma lists and ranges: 64,128,256  1-4  16-128+16  16-1024*2\n\n"
          "  -m, --model LIST      GGUF models (the flag may repeat)\n"
          "  -p, --n-prompt LIST   prompt sizes: one pp test each (default 512; 0 = none)\n"
          "  -n, --n-gen LIST      generation sizes: one tg test each (default 128; 0 = none)\n"
          "  -pg PP,TG             a combined test: PP prompt tokens then TG generated (may repeat)\n"
          "  -d, --n-depth LIST    context already filled before each test (default 0)\n"
          "  -t, --threads LIST    thread counts (default: all CPUs)\n"
          "  -ctk, --cache-type-k LIST   KV cache format: f32, f16, q8_0 (default f16)\n"
          "  -ctv, --cache-type-v LIST   must equal -ctk: a session has one KV format\n"
          "  -r, --repetitions N   timed repetitions per test (default 3): mean ± sd and every sample\n"
          "  --warmup N            untimed runs before them (default 2)\n"
          "  --seed S              seed of the random token ids (default 42)\n"
          "  -o, --output FMT      md (default), csv, json, jsonl\n"
          "  -ngl, --n-gpu-layers LIST  layers on the GPU, counted from the last (99: all and\n"
          "                        the output; auto alone: as many as fit), a load and rows\n"
          "                        per value; rows record what ran\n"
          "  --device N            GPU device (showdown devices)\n"
          "  --energy PROBE        auto (default; nvml for GPU runs where it reads), rapl,\n"
          "                        rapl:package|core|dram|psys, nvml,\n"
          "                        powermetrics, none\n"
          "  --cold                drop each model file from the page cache before loading it\n"
          "  --profile FILE        calibration profile for roofline_fraction (default: showdown\n"
          "                        calibrate's); without one roofline_fraction is null\n"
          "  --yes                 run a sweep estimated at over an hour without asking\n"
          "  -q, --quiet           no progress line (it is shown only on a terminal anyway)\n",
          out);
}

typedef struct {
    sd_bench_config cfg;
    sd_bench_format fmt;
    int yes, quiet, progress_shown, n_rows;
    sd_bench_row *last;
} bench_cli;

static int list_flag(const char *flag, const char *v, long lo, long hi, int **vals, int *n, int *given)
{
    char err[SD_ERR_LEN];
    if (!*given) { free(*vals); *vals = NULL; *n = 0; *given = 1; }   /* first use replaces the default */
    if (sd_parse_int_list(flag, v, lo, hi, vals, n, err) != 0) return fail("%s", err);
    return 0;
}

static int kv_flag(const char *flag, const char *v, sd_kv_type **out, int *n)
{
    char **names = NULL, err[SD_ERR_LEN];
    int k = 0, rc = 0;
    if (sd_parse_str_list(flag, v, &names, &k, err) != 0) return fail("%s", err);
    *out = realloc(*out, (size_t)(*n + k) * sizeof **out);
    for (int i = 0; i < k; i++) {
        if (!rc && sd_kv_type_parse(names[i], &(*out)[*n + i]) != 0)
            rc = fail("%s: unknown KV cache format '%s' (f32, f16, q8_0)", flag, names[i]);
        free(names[i]);
    }
    free(names);
    *n += k;
    return rc;
}

static int parse_bench_args(int argc, char **argv, bench_cli *b, int *exit_now)
{
    sd_bench_config *c = &b->cfg;
    static int def_p[] = {512}, def_n[] = {128}, def_d[] = {0};
    int given_p = 0, given_n = 0, given_d = 0, given_t = 0;
    c->n_prompt = malloc(sizeof(int)); c->n_prompt[0] = def_p[0]; c->n_n_prompt = 1;
    c->n_gen = malloc(sizeof(int)); c->n_gen[0] = def_n[0]; c->n_n_gen = 1;
    c->n_depth = malloc(sizeof(int)); c->n_depth[0] = def_d[0]; c->n_n_depth = 1;
    c->n_threads = malloc(sizeof(int)); c->n_threads[0] = sd_online_cpus(); c->n_n_threads = 1;
    c->reps = 3;
    c->warmup = 2;
    c->seed = 42;
    c->energy = "auto";
    sd_kv_type *ctk = NULL, *ctv = NULL;
    int n_ctk = 0, n_ctv = 0;
    const char *profile = NULL;
    char err[SD_ERR_LEN];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
#define IS(s1, s2) (!strcmp(a, s1) || !strcmp(a, s2))
        if (IS("-h", "--help")) { bench_usage(stdout); *exit_now = 1; return 0; }
        if (IS("--yes", "-y")) { b->yes = 1; continue; }
        if (IS("-q", "--quiet")) { b->quiet = 1; continue; }
        if (IS("--cold", "--cold")) { c->cold = 1; continue; }
        if (!v) return fail("%s needs a value (showdown bench --help)", a);
        i++;
        if (IS("-m", "--model")) {
            if (sd_parse_str_list(a, v, &c->models, &c->n_models, err) != 0) return fail("%s", err);
        } else if (IS("-p", "--n-prompt")) {
            if (list_flag(a, v, 0, 1 << 20, &c->n_prompt, &c->n_n_prompt, &given_p)) return 1;
        } else if (IS("-n", "--n-gen")) {
            if (list_flag(a, v, 0, 1 << 20, &c->n_gen, &c->n_n_gen, &given_n)) return 1;
        } else if (IS("-d", "--n-depth")) {
            if (list_flag(a, v, 0, 1 << 20, &c->n_depth, &c->n_n_depth, &given_d)) return 1;
        } else if (IS("-t", "--threads")) {
            if (list_flag(a, v, 1, 1024, &c->n_threads, &c->n_n_threads, &given_t)) return 1;
        } else if (IS("-pg", "--pg")) {
            int *pair = NULL, np = 0;
            if (sd_parse_int_list(a, v, 0, 1 << 20, &pair, &np, err) != 0) return fail("%s", err);
            if (np != 2 || pair[0] < 1 || pair[1] < 1) {
                free(pair);
                return fail("%s: expected PP,TG with both at least 1, got '%s'", a, v);
            }
            c->pg = realloc(c->pg, (size_t)(c->n_pg + 1) * 2 * sizeof(int));
            c->pg[2 * c->n_pg] = pair[0];
            c->pg[2 * c->n_pg + 1] = pair[1];
            c->n_pg++;
            free(pair);
        } else if (IS("-ctk", "--cache-type-k")) {
            if (kv_flag(a, v, &ctk, &n_ctk)) return 1;
        } else if (IS("-ctv", "--cache-type-v")) {
            if (kv_flag(a, v, &ctv, &n_ctv)) return 1;
        } else if (IS("-r", "--repetitions")) {
            if (parse_int(a, v, 1, SD_BENCH_MAX_REPS, &l)) return 1;
            c->reps = (int)l;
        } else if (IS("--warmup", "--warmup")) {
            if (parse_int(a, v, 0, 1000, &l)) return 1;
            c->warmup = (int)l;
        } else if (IS("--seed", "-s")) {
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-') return fail("%s: expected a non-negative integer, got '%s'", a, v);
            c->seed = s;
        } else if (IS("-o", "--output")) {
            if (sd_bench_format_parse(v, &b->fmt) != 0) return fail("%s: unknown format '%s' (md, csv, json, jsonl)", a, v);
        } else if (IS("-ngl", "--n-gpu-layers")) {
            if (!strcmp(v, "auto")) {
                c->n_gpu_layers = realloc(c->n_gpu_layers, sizeof(int));
                if (!c->n_gpu_layers) return fail("out of memory");
                c->n_gpu_layers[0] = SD_NGL_AUTO;
                c->n_n_gpu_layers = 1;
            } else {
                int given = 0;   /* a repeated -ngl replaces the earlier one */
                if (list_flag(a, v, 0, 100000, &c->n_gpu_layers, &c->n_n_gpu_layers, &given)) return 1;
            }
        } else if (IS("--device", "--device")) {
            if (parse_int(a, v, 0, 15, &l)) return 1;
            c->device = (int)l;
        } else if (IS("--energy", "--energy")) {
            c->energy = v;
        } else if (IS("--profile", "--profile")) {
            profile = v;
        } else return fail("unknown option '%s' (showdown bench --help)", a);
    }
    if (c->n_models == 0) return fail("no model: pass -m MODEL.gguf (showdown bench --help)");
    /* A lone model that is not a readable GGUF is refused before anything runs;
     * in a list of several, its rows carry the error and the others still run. */
    for (int i = 0; i < c->n_models && c->n_models == 1; i++) {
        char e[SD_ERR_LEN];
        gguf_file *g;
        if (gguf_open_header(c->models[i], &g, e)) return fail("%s", e);
        gguf_close(g);
    }
    /* One KV format per session: -ctk and -ctv must say the same thing. */
    if (n_ctk && n_ctv && (n_ctk != n_ctv || memcmp(ctk, ctv, (size_t)n_ctk * sizeof *ctk)))
        return fail("-ctk and -ctv differ: showdown keeps K and V in one format, so give the same list to both (or only -ctk)");
    if (n_ctk || n_ctv) {
        c->kv = n_ctk ? ctk : ctv;
        c->n_kv = n_ctk ? n_ctk : n_ctv;
        if (n_ctk) free(ctv); else free(ctk);
    } else {
        c->kv = malloc(sizeof *c->kv);
        c->kv[0] = SD_KV_F16;
        c->n_kv = 1;
    }
    const char *known[] = {"auto", "rapl", "rapl:package", "rapl:core", "rapl:uncore", "rapl:dram", "rapl:psys", "nvml", "powermetrics", "none"};
    int ok = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= !strcmp(c->energy, known[i]);
    if (!ok) return fail("--energy: unknown probe '%s' (auto, rapl, rapl:package|core|uncore|dram|psys, nvml, powermetrics, none)", c->energy);
    if (sd_bench_count_tests(c) == 0) return fail("no tests: every -p and -n value is 0 and there is no -pg");

    static sd_calibration calib;
    char pbuf[1024];
    const char *ppath = profile ? profile : sd_calib_path(pbuf, sizeof pbuf);
    if (sd_calib_load(&calib, ppath, err) == 0) c->calib = &calib;
    else if (profile) return fail("--profile: %s", err);
    else if (!b->quiet) fprintf(stderr, "note: no calibration profile (%s): roofline_fraction will be null; run `showdown calibrate` once\n", ppath);
    return 0;
}

static void fmt_secs(char *buf, size_t n, double s)
{
    if (s < 0) snprintf(buf, n, "?");
    else if (s < 90) snprintf(buf, n, "%.0fs", s);
    else if (s < 5400) snprintf(buf, n, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else snprintf(buf, n, "%.1fh", s / 3600);
}

static int on_estimate(double seconds, void *ud)
{
    bench_cli *b = ud;
    if (seconds <= LONG_SWEEP_S || b->yes) return 0;
    char t[32];
    fmt_secs(t, sizeof t, seconds);
    if (!isatty(0) || !isatty(2)) {
        fail("this sweep is estimated to take %s (over an hour); pass --yes to run it", t);
        return -1;
    }
    fprintf(stderr, "This sweep is estimated to take %s (over an hour). Run it? [y/N] ", t);
    char line[16];
    if (!fgets(line, sizeof line, stdin) || (line[0] != 'y' && line[0] != 'Y')) {
        fail("stopped: rerun with --yes to run a sweep this long");
        return -1;
    }
    return 0;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void on_progress(const sd_bench_progress *p, void *ud)
{
    bench_cli *b = ud;
    if (b->quiet || !isatty(2)) return;
    char el[32], eta[32];
    fmt_secs(el, sizeof el, p->elapsed_s);
    fmt_secs(eta, sizeof eta, p->eta_s);
    fprintf(stderr, "\r\033[K[%d/%d] %s %s t=%d %s %d/%d  elapsed %s  ETA %s", p->test, p->n_tests,
            base_name(p->model), p->test_name, p->n_threads, p->warmup ? "warm-up" : "rep", p->rep,
            p->warmup ? b->cfg.warmup : p->n_reps, el, eta);
    b->progress_shown = 1;
}

static void on_placement(const char *model, const char *placement, void *ud)
{
    fprintf(stderr, "%s: %s\n", model, placement);
}

static void on_row(const sd_bench_row *r, void *ud)
{
    bench_cli *b = ud;
    if (b->progress_shown) { fputs("\r\033[K", stderr); b->progress_shown = 0; }
    sd_bench_emit_row(stdout, b->fmt, r, b->n_rows++);
    if (r->error[0]) {
        char name[96];
        fprintf(stderr, "error: %s %s: %s\n", base_name(r->model_filename), sd_bench_test_name(r, name, sizeof name), r->error);
    }
    memcpy(b->last, r, sizeof *r);
}

static void free_cfg(sd_bench_config *c)
{
    for (int i = 0; i < c->n_models; i++) free(c->models[i]);
    free(c->models);
    free(c->n_prompt);
    free(c->n_gen);
    free(c->pg);
    free(c->n_depth);
    free(c->n_threads);
    free(c->n_gpu_layers);
    free(c->kv);
}

int cmd_bench(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)   /* --url: measure a server instead (cmd_bench_url.c) */
        if (!strcmp(argv[i], "--url") || !strncmp(argv[i], "--url=", 6)) return cmd_bench_url(argc, argv);
    for (int i = 1; i < argc; i++)   /* --parallel: sequences decoding together (cmd_bench_par.c) */
        if (!strcmp(argv[i], "--parallel")) return cmd_bench_parallel(argc, argv);
    bench_cli b = {0};
    b.fmt = SD_OUT_MD;
    int exit_now = 0;
    if (parse_bench_args(argc, argv, &b, &exit_now) != 0) { free_cfg(&b.cfg); return 1; }
    if (exit_now) { free_cfg(&b.cfg); return 0; }
    b.last = calloc(1, sizeof *b.last);
    if (!b.last) { free_cfg(&b.cfg); return fail("out of memory"); }
    sd_bench_callbacks cb = {on_estimate, on_progress, on_row, &b, on_placement};
    char err[SD_ERR_LEN];
    sd_bench_emit_begin(stdout, b.fmt);
    int failed = sd_bench_run(&b.cfg, &cb, err);
    if (b.progress_shown) fputs("\r\033[K", stderr);
    sd_bench_emit_end(stdout, b.fmt, b.n_rows);
    if (b.fmt == SD_OUT_MD && b.n_rows) sd_bench_md_footer(stdout, b.last);
    int n_tests = sd_bench_count_tests(&b.cfg);
    free(b.last);
    free_cfg(&b.cfg);
    if (failed < 0) {
        /* on_estimate already said why when it stopped the sweep */
        if (!strstr(err, "stopped before the sweep")) return fail("%s", err);
        return 1;
    }
    if (failed > 0) return fail("%d of %d tests failed (see the error field of their rows)", failed, n_tests);
    return 0;
}
