/* showdown ppl: perplexity over a text, KL divergence against a base model,
 * and the sweep that puts every weight format's quality cost in one table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "bench/listarg.h"
#include "cli/cli.h"
#include "eval/ppl.h"
#include "eval/ppl_report.h"
#include "eval/sweep.h"

static void usage(FILE *out)
{
    fputs("usage: showdown ppl -m MODEL -f TEXT [-c CTX] [-t N] [--kld-base BASE] [-o md|json]\n"
          "       showdown ppl --sweep -m BASE -f TEXT [-c CTX] [--chunks N] [--types LIST] [--svg FILE]\n\n"
          "Perplexity as llama.cpp's perplexity tool computes it: the text is tokenized with BOS and cut\n"
          "into windows of CTX tokens (the tail that does not fill one is unused); each window is\n"
          "evaluated from an empty cache with BOS at its start, and only its second half is scored.\n"
          "The text must hold at least one window.\n\n"
          "  -m, --model FILE     the model to measure (with --sweep: the base; a quantized one is\n"
          "                       requantized from its weights and each format compared with it)\n"
          "  -f, --file FILE      the text\n"
          "  -c, --ctx-size N     window length in tokens (default 512)\n"
          "  --chunks N           only the first N windows of the text (default: all)\n"
          "  -t, --threads N      threads (default: all CPUs)\n"
          "  -ngl, --n-gpu-layers N  layers of -m on the GPU, counted from the last (99: all and\n"
          "                       the output; auto: as many as fit)\n"
          "  --device N           GPU device (showdown devices)\n"
          "  --kld-base FILE      also compare with this model on the same windows: KL divergence\n"
          "                       KL(base || model), same top-1 token, Δp, PPL of both and their ratio\n"
          "  --sweep              quantize MODEL into each format (temporary files, removed) and\n"
          "                       measure each against it: bits per weight, fallbacks, PPL, KLD\n"
          "  --types LIST         formats for --sweep (default " SD_SWEEP_DEFAULT_TYPES ")\n"
          "  --svg FILE           with --sweep: plot mean KLD (log) against bits per weight\n"
          "  -o, --output FMT     md (default) or json\n"
          "  -q, --quiet          no progress on stderr\n"
          "  -h, --help           this help\n", out);
}

typedef struct {
    const char *model, *file, *base, *types, *svg;
    long ctx, threads, chunks, device;
    int sweep, json, quiet, ngl;
} ppl_args;

static int parse_args(int argc, char **argv, ppl_args *a, int *exit_now)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) { usage(stdout); *exit_now = 1; return 0; }
        if (!strcmp(o, "--sweep")) { a->sweep = 1; continue; }
        if (!strcmp(o, "-q") || !strcmp(o, "--quiet")) { a->quiet = 1; continue; }
        if (i + 1 >= argc) return fail("ppl: %s needs a value (showdown ppl --help)", o);
        const char *v = argv[++i];
        if (!strcmp(o, "-m") || !strcmp(o, "--model")) a->model = v;
        else if (!strcmp(o, "-f") || !strcmp(o, "--file")) a->file = v;
        else if (!strcmp(o, "--kld-base")) a->base = v;
        else if (!strcmp(o, "--types")) a->types = v;
        else if (!strcmp(o, "--svg")) a->svg = v;
        else if (!strcmp(o, "-c") || !strcmp(o, "--ctx-size")) {
            if (parse_int(o, v, SD_PPL_MIN_CTX, 1 << 20, &a->ctx)) return 1;
        } else if (!strcmp(o, "-ngl") || !strcmp(o, "--n-gpu-layers")) {
            if (parse_ngl(o, v, &a->ngl)) return 1;
        } else if (!strcmp(o, "--device")) {
            if (parse_int(o, v, 0, 15, &a->device)) return 1;
        } else if (!strcmp(o, "--chunks")) {
            if (parse_int(o, v, 1, 1 << 20, &a->chunks)) return 1;
        } else if (!strcmp(o, "-t") || !strcmp(o, "--threads")) {
            if (parse_int(o, v, 1, 512, &a->threads)) return 1;
        } else if (!strcmp(o, "-o") || !strcmp(o, "--output")) {
            if (strcmp(v, "md") && strcmp(v, "json")) return fail("%s: unknown format '%s' (md, json)", o, v);
            a->json = !strcmp(v, "json");
        } else {
            return fail("ppl: unknown option '%s' (showdown ppl --help)", o);
        }
    }
    if (!a->model) return fail("ppl: no model given (-m MODEL)");
    if (!a->file) return fail("ppl: no text given (-f FILE)");
    if (a->sweep && a->base) return fail("ppl: --sweep compares with -m itself; drop --kld-base");
    if (a->sweep && (a->ngl || a->device)) return fail("ppl: --sweep runs on the CPU; drop -ngl/--device");
    if (!a->sweep && (a->types || a->svg)) return fail("ppl: --types and --svg go with --sweep");
    return 0;
}

static void on_window(void *ud, int done, int total, double ppl)
{
    (void)ud;
    fprintf(stderr, "ppl: window %d/%d, running PPL %.4f\n", done, total, ppl);
}

static void on_format(void *ud, int i, int n, const char *type, const char *stage)
{
    (void)ud;
    fprintf(stderr, "ppl: [%d/%d] %s: %s\n", i + 1, n, type, stage);
}

static int run_sweep(const ppl_args *a, sd_ppl_params *pp, const char *text, size_t len, sd_ppl_info *info)
{
    char err[SD_ERR_LEN], **types = NULL;
    int n = 0, rc = 1;
    if (sd_parse_str_list("--types", a->types ? a->types : SD_SWEEP_DEFAULT_TYPES, &types, &n, err))
        return fail("%s", err);
    sd_sweep_row *rows = calloc((size_t)n, sizeof *rows);
    sd_sweep_params sp = {a->model, text, len, *pp, NULL, a->quiet ? NULL : on_format, NULL};
    if (!rows) { fail("out of memory"); goto done; }
    if (sd_sweep_run(&sp, (const char *const *)types, n, rows, err)) { fail("%s", err); goto done; }
    for (int i = 0; i < n; i++)
        if (!rows[i].ok) fprintf(stderr, "warning: %s: %s\n", rows[i].type, rows[i].err);
    if (a->json) sd_sweep_write_json(stdout, info, rows, n);
    else sd_sweep_write_md(stdout, info, rows, n);
    rc = 0;
    if (a->svg) {
        char title[320];
        const char *ms = strrchr(a->model, '/'), *ts = strrchr(a->file, '/');
        snprintf(title, sizeof title, "%.120s: KL divergence vs bits per weight (%.120s, ctx %d)",
                 ms ? ms + 1 : a->model, ts ? ts + 1 : a->file, pp->n_ctx);
        if (sd_quality_svg(a->svg, title, rows, n, err)) rc = fail("%s", err);
    }
done:
    for (int i = 0; i < n; i++) free(types[i]);
    free(types);
    free(rows);
    return rc;
}

int cmd_ppl(int argc, char **argv)
{
    ppl_args a = {0};
    int exit_now = 0;
    a.ctx = 512;
    if (parse_args(argc, argv, &a, &exit_now)) return 1;
    if (exit_now) return 0;

    size_t len;
    char *text = read_file_bytes(a.file, &len);
    if (!text) return fail("%s: cannot read file", a.file);
    sd_ppl_params pp = sd_ppl_default_params();
    pp.n_ctx = (int)a.ctx;
    pp.n_threads = (int)a.threads;
    pp.max_windows = (int)a.chunks;
    if (!a.quiet) pp.progress = on_window;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    sd_ppl_info info = {a.model, "", NULL, NULL, a.file, len, a.threads ? (int)a.threads : (int)(cpus > 0 ? cpus : 1),
                        "f16"};

    char err[SD_ERR_LEN];
    sd_model *m = NULL, *base = NULL;
    int rc = 1;
    if (sd_model_load(a.model, &m, err)) { fail("%s", err); goto done; }
    show_tokenizer_warning(a.model, sd_model_tokenizer(m));
    if (!a.sweep && gpu_offload(m, a.ngl, (int)a.device, (int)a.ctx, pp.kv_type)) goto done;
    int n_train = sd_model_hparams(m)->n_ctx_train;
    if (n_train > 0 && a.ctx > n_train)
        fprintf(stderr, "warning: -c %ld is longer than %s was trained on (%d): expect a worse PPL\n", a.ctx,
                a.model, n_train);
    char mtype[64];   /* kept past sd_model_free below */
    snprintf(mtype, sizeof mtype, "%s", sd_model_type_name(m));
    info.model_type = mtype;
    if (a.sweep) {
        sd_model_free(m);     /* the sweep loads its own */
        m = NULL;
        rc = run_sweep(&a, &pp, text, len, &info);
        goto done;
    }
    if (a.base) {
        if (sd_model_load(a.base, &base, err)) { fail("%s", err); goto done; }
        info.base = a.base;
        info.base_type = sd_model_type_name(base);
    }
    sd_ppl_result r;
    if (sd_ppl_run(m, base, text, len, &pp, &r, err)) { fail("%s", err); goto done; }
    if (a.json) sd_ppl_write_json(stdout, &info, &r);
    else sd_ppl_write_md(stdout, &info, &r);
    rc = fflush(stdout) ? fail("ppl: cannot write the output") : 0;
done:
    sd_model_free(base);
    sd_model_free(m);
    free(text);
    return rc;
}
