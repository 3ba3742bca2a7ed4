/* showdown bench --url: measure any OpenAI-compatible server (showdown serve,
 * llama-server, vLLM, TensorRT-LLM, SGLang, ...) the way users load it. The
 * flags follow vLLM's `bench serve`; the work is in src/bench/url_*.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "bench/url.h"
#include "cli/cli.h"
#include "bench/listarg.h"
#include "measure/energy.h"

static void usage(FILE *out)
{
    fputs("usage: showdown bench --url http://HOST:PORT/v1 [options]\n\n"
          "Loads an OpenAI-compatible server with streaming requests and reports what users feel,\n"
          "with the definitions and field names of vLLM's `bench serve`.\n\n"
          "  --url URL              the server's OpenAI base URL (ending in /v1)\n"
          "  --model NAME           model name to request (default: the first of GET /v1/models)\n"
          "  --api-key KEY          bearer token (default: $OPENAI_API_KEY)\n"
          "  --endpoint E           completions (default) or chat\n"
          "  --concurrency LIST     closed loop: keep N streams busy (a list is a sweep: 1,2,4,8)\n"
          "  --request-rate LIST    open loop: requests/s (a list is a sweep; inf = all at once; default inf)\n"
          "  --burstiness B         gamma shape of the arrival gaps (1 = Poisson, default 1)\n"
          "  --num-prompts N        requests per sweep point (default 200)\n"
          "  --input-len N          random prompts of N tokens (default 128)\n"
          "  --output-len N         max_tokens (default 128; a --prompts line's output_len or a\n"
          "                         --dataset reply's length unless this flag is given)\n"
          "  --range-ratio R        lengths uniform in [len*(1-R), len*(1+R)] (default 0)\n"
          "  --prefix-len N         a shared random prefix of N tokens before every prompt (default 0)\n"
          "  --prompts FILE.jsonl   prompts instead of random text: a string or {\"prompt\":..} per line\n"
          "  --dataset FILE.json    a ShareGPT file: first human turn as prompt, the reply's length as max_tokens\n"
          "  -m, --tokenizer GGUF   count prompt tokens with this model's tokenizer (else the server's\n"
          "                         /tokenize, else approximated at one token per word, and said so)\n"
          "  --ignore-eos           ask the server to generate exactly max_tokens\n"
          "  --goodput SLOS         e.g. ttft:500,tpot:50,e2el:3000 (ms): requests/s meeting all of them\n"
          "  --warmup N             untimed requests before the first point (default 2)\n"
          "  --seed S               prompts and arrival times (default 1)\n"
          "  --timeout S            a request with no bytes for S seconds fails (default 60)\n"
          "  --allow-no-usage       accept streams without usage: output tokens = text chunks\n"
          "  --energy[=PROBE]       energy of this machine during each point (auto, rapl, nvml, ...):\n"
          "                         meaningful when the server runs here\n"
          "  -o, --output FMT       md (default), json, jsonl, csv\n"
          "  --svg FILE             latency (TTFT, TPOT p50/p99) against throughput across the sweep\n"
          "  -q, --quiet            no progress line (it is shown only on a terminal anyway)\n",
          out);
}

typedef struct {
    const char *url_arg, *model, *api_key, *endpoint, *tokenizer, *prompts_file, *dataset, *svg, *fmt, *goodput, *energy;
    int *conc, n_conc;
    double rates[256];
    int n_rates;
    double burstiness, range_ratio, timeout_s;
    long num_prompts, input_len, output_len, prefix_len, warmup, output_given;
    unsigned long long seed;
    int ignore_eos, allow_no_usage, quiet, progress_shown;
    int point, n_points;
    char point_name[48];
} url_cli;

static int parse_rates(const char *flag, const char *v, url_cli *c)
{
    char **items = NULL, err[SD_ERR_LEN];
    int n = 0, rc = 0;
    if (sd_parse_str_list(flag, v, &items, &n, err) != 0) return fail("%s", err);
    for (int i = 0; i < n; i++) {
        double r;
        if (rc) { free(items[i]); continue; }
        if (!strcmp(items[i], "inf")) r = INFINITY;
        else if (parse_float(flag, items[i], 1e-6, 1e9, &r) != 0) rc = 1;
        if (!rc && c->n_rates == (int)(sizeof c->rates / sizeof c->rates[0])) rc = fail("%s: at most 256 rates", flag);
        if (!rc) c->rates[c->n_rates++] = r;
        free(items[i]);
    }
    free(items);
    return rc;
}

static int parse_args(int argc, char **argv, url_cli *c, int *exit_now)
{
    for (int i = 1; i < argc; i++)   /* help wins wherever it is (even as "--url --help") */
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); *exit_now = 1; return 0; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(s) (!strcmp(a, s))
        if (IS("--ignore-eos")) { c->ignore_eos = 1; continue; }
        if (IS("--allow-no-usage")) { c->allow_no_usage = 1; continue; }
        if (IS("-q") || IS("--quiet")) { c->quiet = 1; continue; }
        if (IS("--energy")) { c->energy = "auto"; continue; }
        if (!strncmp(a, "--energy=", 9)) { c->energy = a + 9; continue; }
        if (!strncmp(a, "--url=", 6)) { c->url_arg = a + 6; continue; }
        if (!v) return fail("%s needs a value (showdown bench --url URL --help)", a);
        i++;
        if (IS("--url")) c->url_arg = v;
        else if (IS("--model")) c->model = v;
        else if (IS("--api-key")) c->api_key = v;
        else if (IS("--endpoint")) {
            if (strcmp(v, "completions") && strcmp(v, "chat")) return fail("--endpoint: expected completions or chat, got '%s'", v);
            c->endpoint = v;
        } else if (IS("--concurrency") || IS("--max-concurrency")) {
            char err[SD_ERR_LEN];
            if (sd_parse_int_list(a, v, 1, 100000, &c->conc, &c->n_conc, err) != 0) return fail("%s", err);
        } else if (IS("--request-rate")) {
            if (parse_rates(a, v, c)) return 1;
        } else if (IS("--burstiness")) {
            if (parse_float(a, v, 1e-3, 1e3, &c->burstiness)) return 1;
        } else if (IS("--num-prompts")) {
            if (parse_int(a, v, 1, 10000000, &c->num_prompts)) return 1;
        } else if (IS("--input-len")) {
            if (parse_int(a, v, 1, 1 << 20, &c->input_len)) return 1;
        } else if (IS("--output-len")) {
            if (parse_int(a, v, 1, 1 << 20, &c->output_len)) return 1;
            c->output_given = 1;
        } else if (IS("--range-ratio")) {
            if (parse_float(a, v, 0, 0.999, &c->range_ratio)) return 1;
        } else if (IS("--prefix-len")) {
            if (parse_int(a, v, 0, 1 << 20, &c->prefix_len)) return 1;
        } else if (IS("--prompts")) c->prompts_file = v;
        else if (IS("--dataset")) c->dataset = v;
        else if (IS("-m") || IS("--tokenizer")) c->tokenizer = v;
        else if (IS("--goodput")) c->goodput = v;
        else if (IS("--warmup")) {
            if (parse_int(a, v, 0, 10000, &c->warmup)) return 1;
        } else if (IS("--seed")) {
            char *end;
            c->seed = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-') return fail("--seed: expected a non-negative integer, got '%s'", v);
        } else if (IS("--timeout")) {
            if (parse_float(a, v, 0.01, 1e6, &c->timeout_s)) return 1;
        } else if (IS("-o") || IS("--output")) {
            if (strcmp(v, "md") && strcmp(v, "json") && strcmp(v, "jsonl") && strcmp(v, "csv"))
                return fail("%s: unknown format '%s' (md, json, jsonl, csv)", a, v);
            c->fmt = v;
        } else if (IS("--svg")) c->svg = v;
        else return fail("unknown option '%s' for bench --url (showdown bench --url URL --help)", a);
#undef IS
    }
    if (!c->url_arg) return fail("no --url");
    if (c->n_conc && c->n_rates) return fail("give --concurrency (closed loop) or --request-rate (open loop), not both");
    if (c->prompts_file && c->dataset) return fail("give --prompts or --dataset, not both");
    if ((c->prompts_file || c->dataset) && (c->prefix_len || c->range_ratio > 0))
        return fail("--prefix-len and --range-ratio shape random prompts; they do not apply to --prompts or --dataset");
    if (c->energy) {
        const char *known[] = {"auto", "rapl", "rapl:package", "rapl:core", "rapl:uncore", "rapl:dram", "rapl:psys", "nvml", "powermetrics", "none"};
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= !strcmp(c->energy, known[i]);
        if (!ok) return fail("--energy: unknown probe '%s' (auto, rapl, rapl:package|core|uncore|dram|psys, nvml, powermetrics, none)", c->energy);
    }
    return 0;
}

static int local_count(void *ctx, const char *text, int *n, char *err)
{
    int32_t *ids = NULL;
    if (sd_tokenize(ctx, text, strlen(text), 0, &ids, n, err) != 0) return -1;
    free(ids);
    return 0;
}

static void on_progress(const sd_url_progress *p, void *ud)
{
    url_cli *c = ud;
    if (c->quiet || !isatty(2)) return;
    fprintf(stderr, "\r\033[K[%d/%d %s] %d/%d done, %d failed, %d in flight, %.0f output tok/s, %.0fs", c->point + 1,
            c->n_points, c->point_name, p->done, p->total, p->failed, p->in_flight,
            p->elapsed_s > 0 ? p->output_tokens / p->elapsed_s : 0.0, p->elapsed_s);
    c->progress_shown = 1;
}

static void clear_progress(url_cli *c)
{
    if (c->progress_shown) fputs("\r\033[K", stderr);
    c->progress_shown = 0;
}

/* The SVG goes to a temporary file, opened before the run (an unwritable
 * path fails at once, not after an hour) and renamed into place at the end:
 * never half-written. */
static FILE *svg_open(const char *path, char *tmp, size_t n)
{
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) fail("--svg: cannot write %s: %m", path);
    return f;
}

static int svg_finish(FILE *f, const char *tmp, const char *path, const sd_url_metrics *m, int n, const sd_url_run_desc *d)
{
    sd_url_svg(f, m, n, d);
    if (fclose(f) != 0 || rename(tmp, path) != 0) { unlink(tmp); return fail("--svg: cannot write %s: %m", path); }
    return 0;
}

int cmd_bench_url(int argc, char **argv)
{
    url_cli c = {.endpoint = "completions", .fmt = "md", .burstiness = 1, .timeout_s = 60, .num_prompts = 200,
                 .input_len = 128, .output_len = 128, .warmup = 2, .seed = 1};
    int exit_now = 0, rc = 1;
    char err[SD_ERR_LEN], url[1024], model[256] = "", source[512];
    sd_url_prompt *prompts = NULL;
    int n_prompts = 0;
    sd_model *tok_model = NULL;
    sd_url_tokenizer server_tok = {0};
    sd_url_metrics *pts = NULL;
    sd_url_result *res = NULL;
    sd_url_slo slo, *slo_p = NULL;
    FILE *svg = NULL;
    char svg_tmp[4200];
    if (parse_args(argc, argv, &c, &exit_now) != 0) goto out;
    if (exit_now) { rc = 0; goto out; }
    if (c.goodput) {
        if (sd_url_slo_parse(c.goodput, &slo, err) != 0) { fail("%s", err); goto out; }
        slo_p = &slo;
    }
    if (sd_url_check(c.url_arg, err) != 0) { fail("%s", err); goto out; }
    snprintf(url, sizeof url, "%s", c.url_arg);
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/') url[--ul] = 0;
    /* a full endpoint URL is taken as its base and endpoint */
    if (ul > 17 && !strcmp(url + ul - 17, "/chat/completions")) { url[ul - 17] = 0; c.endpoint = "chat"; }
    else if (ul > 12 && !strcmp(url + ul - 12, "/completions")) { url[ul - 12] = 0; c.endpoint = "completions"; }
    if (!c.api_key) c.api_key = getenv("OPENAI_API_KEY");

    /* is anything there at all? (also: the model name) */
    if (sd_url_probe(url, c.api_key, c.timeout_s < 10 ? c.timeout_s : 10, model, sizeof model, err) != 0) { fail("%s", err); goto out; }
    if (c.model) snprintf(model, sizeof model, "%s", c.model);
    if (c.svg && !(svg = svg_open(c.svg, svg_tmp, sizeof svg_tmp))) goto out;

    /* who counts prompt tokens */
    sd_token_count_fn count = NULL;
    void *count_ctx = NULL;
    char counter[400];
    if (c.tokenizer) {
        if (sd_model_load(c.tokenizer, &tok_model, err) != 0) { fail("-m: %s", err); goto out; }
        count = local_count;
        count_ctx = sd_model_tokenizer(tok_model);
        snprintf(counter, sizeof counter, "exact: tokenizer of %.300s", c.tokenizer);
    } else if (sd_url_tokenizer_open(&server_tok, url, model, c.api_key) == 0) {
        count = sd_url_tokenizer_count;
        count_ctx = &server_tok;
        snprintf(counter, sizeof counter, "exact: the server's /tokenize");
    } else {
        snprintf(counter, sizeof counter, "approximate: one token per word (no /tokenize on the server; -m MODEL.gguf makes it exact)");
        if (!c.quiet) fprintf(stderr, "note: prompt lengths are approximate: one token per word (the server has no /tokenize; pass -m MODEL.gguf for exact lengths)\n");
    }

    /* prompts */
    if (c.prompts_file) {
        n_prompts = sd_url_prompts_jsonl(c.prompts_file, (int)c.num_prompts, count, count_ctx, &prompts, err);
        snprintf(source, sizeof source, "%.300s (tokens %.150s)", c.prompts_file, counter);
    } else if (c.dataset) {
        n_prompts = sd_url_prompts_sharegpt(c.dataset, (int)c.num_prompts, c.seed, count, count_ctx, &prompts, err);
        snprintf(source, sizeof source, "ShareGPT %.300s (tokens %.150s)", c.dataset, counter);
    } else {
        sd_url_random_spec sp = {(int)c.num_prompts, (int)c.input_len, (int)c.prefix_len, (int)c.output_len, c.range_ratio,
                                 c.seed, count, count_ctx};
        n_prompts = sd_url_prompts_random(&sp, &prompts, err) == 0 ? (int)c.num_prompts : -1;
        char shape[128];
        if (c.prefix_len) snprintf(shape, sizeof shape, "%ld shared + %ld tokens", c.prefix_len, c.input_len);
        else snprintf(shape, sizeof shape, "%ld tokens", c.input_len);
        snprintf(source, sizeof source, "random, %s%s (%.300s)", shape, c.range_ratio > 0 ? " (range ratio)" : "", counter);
    }
    if (n_prompts < 0) { fail("%s", err); goto out; }
    if (c.output_given && (c.prompts_file || c.dataset))   /* --output-len wins over a file's own lengths */
        for (int i = 0; i < n_prompts; i++) prompts[i].output_len = 0;
    if (c.tokenizer) { sd_model_free(tok_model); tok_model = NULL; }
    sd_url_tokenizer_close(&server_tok);

    /* the sweep */
    double inf_rate = INFINITY;
    int n_points = c.n_conc ? c.n_conc : c.n_rates ? c.n_rates : 1;
    const double *rates = c.n_rates ? c.rates : &inf_rate;
    pts = calloc((size_t)n_points, sizeof *pts);
    res = calloc((size_t)c.num_prompts + (size_t)c.warmup, sizeof *res);
    if (!pts || !res) { fail("out of memory"); goto out; }
    sd_url_params p = {url, model, c.api_key, !strcmp(c.endpoint, "chat"), prompts, 0, n_prompts,
                       (int)c.output_len, c.ignore_eos, 1, INFINITY,
                       c.burstiness, c.seed, c.timeout_s, !c.allow_no_usage, on_progress, &c};
    sd_url_run_info info;
    if (c.warmup > 0) {
        p.n = (int)c.warmup;
        c.n_points = n_points;
        snprintf(c.point_name, sizeof c.point_name, "warm-up");
        if (sd_url_run(&p, res, &info, err) != 0) { clear_progress(&c); fail("%s", err); goto out; }
        clear_progress(&c);
        int bad = 0;
        for (int i = 0; i < p.n; i++) bad += !res[i].ok;
        if (bad && !c.quiet) fprintf(stderr, "note: %d of %d warm-up requests failed (first: %s)\n", bad, p.n, res[0].ok ? "see the run" : res[0].reason);
        sd_url_results_free(res, p.n);
    }
    p.n = (int)c.num_prompts;
    int any_all_failed = -1;
    for (int k = 0; k < n_points; k++) {
        sd_url_metrics *m = &pts[k];
        p.concurrency = c.n_conc ? c.conc[k] : 0;
        p.request_rate = c.n_conc ? INFINITY : rates[k];
        c.point = k;
        c.n_points = n_points;
        if (p.concurrency) snprintf(c.point_name, sizeof c.point_name, "concurrency %d", p.concurrency);
        else snprintf(c.point_name, sizeof c.point_name, "rate %g/s", p.request_rate);
        sd_energy *e = sd_energy_open(c.energy ? c.energy : "none", 100);
        char eerr[SD_ERR_LEN];
        int e_ok = e && sd_energy_available(e) && sd_energy_begin(e, eerr) == 0;
        memset(res, 0, (size_t)p.n * sizeof *res);
        int run_rc = sd_url_run(&p, res, &info, err);
        double joules = NAN;
        if (e_ok && sd_energy_end(e, &joules, eerr) != 0) joules = NAN;
        clear_progress(&c);
        if (run_rc != 0) { sd_energy_close(e); fail("%s", err); goto out; }
        if (sd_url_metrics_compute(res, p.n, &info, slo_p, m, err) != 0) { sd_energy_close(e); fail("%s", err); goto out; }
        sd_url_results_free(res, p.n);
        m->concurrency = p.concurrency;
        m->request_rate = p.request_rate;
        m->burstiness = c.burstiness;
        m->energy_j = joules;
        m->tokens_per_j = isfinite(joules) && joules > 0 ? m->total_output_tokens / joules : NAN;
        snprintf(m->energy_boundary, sizeof m->energy_boundary, "%.150s",
                 !c.energy ? "not measured (pass --energy)" : e ? sd_energy_source(e) : "unavailable: out of memory");
        sd_energy_close(e);
        if (m->completed == 0 && any_all_failed < 0) any_all_failed = k;
        if (m->failed && !c.quiet)
            fprintf(stderr, "note: %s: %d of %d requests failed (first: %s)\n", c.point_name, m->failed, p.n, m->first_reason);
    }
    sd_url_run_desc d = {url, model[0] ? model : "(server default)", c.endpoint, source, (int)c.input_len, (int)c.output_len};
    if (sd_url_emit(stdout, c.fmt, pts, n_points, &d) != 0) { fail("out of memory writing results"); goto out; }
    fflush(stdout);
    if (svg) {
        FILE *f = svg;
        svg = NULL;
        if (svg_finish(f, svg_tmp, c.svg, pts, n_points, &d) != 0) goto out;
    }
    if (any_all_failed >= 0) {
        fail("every request failed at sweep point %d: %s", any_all_failed + 1, pts[any_all_failed].first_reason);
        goto out;
    }
    rc = 0;
out:
    if (svg) { fclose(svg); unlink(svg_tmp); }
    if (tok_model) sd_model_free(tok_model);
    sd_url_tokenizer_close(&server_tok);
    sd_url_prompts_free(prompts, n_prompts > 0 ? n_prompts : 0);
    free(pts);
    free(res);
    free(c.conc);
    return rc;
}
