/* showdown plan: will this model fit this machine, in which format, how fast,
 * how efficient? (docs/PLANNER.md) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "cli/cli.h"
#include "measure/calibrate.h"
#include "plan/plan.h"
#include "plan/plan_svg.h"

#define MAX_LIST 32
static const double GIB = 1073741824.0;

static const char usage_text[] =
    "usage: showdown plan --model PRESET|FILE --hw ID[,ID...] [options]\n"
    "       showdown plan --hw this --compare RESULTS.jsonl [--model PRESET|FILE] [--quant TYPE]\n"
    "       showdown plan --published FILE        (predict every row of a published-results TSV)\n\n"
    "Predicts, on paper, whether a model fits a device and how fast it runs there:\n"
    "weights, KV cache and buffer bytes; the best -ngl split when it does not fit;\n"
    "prefill (pp) and decode (tg) tokens/s, time to first token, tokens per joule.\n\n"
    "options:\n"
    "  --model PRESET|FILE   a preset shape (--list) or a GGUF file (only its header is read)\n"
    "  --hw ID[,ID...]       devices from data/hardware.tsv; NxID = N GPUs splitting layers;\n"
    "                        `this` = this machine from the `showdown calibrate` profile\n"
    "  --quant TYPE[,...]    q2_k q3_k_m q4_0 q4_k_m q5_k_m q6_k q8_0 bf16 f16 mxfp4 nvfp4, any\n"
    "                        single type, or `file` (a GGUF's own bytes). Default q4_k_m / file\n"
    "  -c N                  context the memory is sized for (default min(4096, training))\n"
    "  -p N                  prompt tokens for pp and TTFT (default 512); decode runs after them\n"
    "  -n N                  generated tokens tg averages over (default 128)\n"
    "  -ngl N                layers on the GPU (llama.cpp meaning; default: the most that fit)\n"
    "  -nkvo                 keep the KV cache in host memory (llama.cpp --no-kv-offload)\n"
    "  --no-cuda-graphs      an engine that launches every op from the host each token (llama.cpp before\n"
    "                        May 2024, GGML_CUDA_DISABLE_GRAPHS=1)\n"
    "  --n-cpu-moe N         MoE: keep the routed experts of N layers in host RAM (llama.cpp\n"
    "                        --n-cpu-moe; n_layer = -ot exps=CPU); 0 = plain layer split. Default:\n"
    "                        when the model does not fit, the fewest that let the rest fit, if\n"
    "                        that decodes faster than the layer split\n"
    "  -ctk TYPE             KV cache type: f16 (default), q8_0, q4_0, f32\n"
    "  --host ID             host for a discrete GPU's offloaded layers (default: the row's host)\n"
    "  -t N                  threads, for --hw this (bandwidth measured at N threads)\n"
    "  -o md|json|csv        output format (default md)\n"
    "  --svg FILE            plot decode tokens/s against model size per device (the VRAM wall)\n"
    "  --compare FILE        with --hw this: predictions next to `showdown bench -o jsonl` rows\n"
    "  --published FILE      prediction error for every row of a published-results TSV\n"
    "  --hw-file FILE        hardware profiles (default: $SHOWDOWN_HARDWARE or data/hardware.tsv)\n"
    "  --list                list hardware ids, presets and formats\n\n"
    "Definitions: pp = N prompt tokens in one pass, N / time; tg = mean speed of N tokens\n"
    "generated one at a time; TTFT = prefill + one decode step. tokens/J is an ESTIMATE from\n"
    "the power figures in hardware.tsv (board for discrete GPUs, + host package while the\n"
    "host computes; package/system for SoCs), not a measurement.\n";

typedef struct {
    const char *model, *hw, *quant, *host, *out, *svg, *compare, *published, *hw_file, *ctk;
    long c, p, n, ngl, t, n_cpu_moe;
    int nkvo, list, no_graphs;
} args;

static int split_list(char *s, char **items, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ",")) items[n++] = tok;
    return n;
}

static int parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->c = a->ngl = a->t = a->n_cpu_moe = -1;
    a->p = 512;
    a->n = 128;
    a->out = "md";
    a->ctk = "f16";
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char **str = !strcmp(f, "--model") || !strcmp(f, "-m") ? &a->model
                         : !strcmp(f, "--hw") ? &a->hw : !strcmp(f, "--quant") ? &a->quant
                         : !strcmp(f, "--host") ? &a->host : !strcmp(f, "-o") ? &a->out
                         : !strcmp(f, "--svg") ? &a->svg : !strcmp(f, "--compare") ? &a->compare
                         : !strcmp(f, "--published") ? &a->published : !strcmp(f, "--hw-file") ? &a->hw_file
                         : !strcmp(f, "-ctk") ? &a->ctk : NULL;
        long *num = !strcmp(f, "-c") ? &a->c : !strcmp(f, "-p") ? &a->p : !strcmp(f, "-n") ? &a->n
                  : !strcmp(f, "-ngl") ? &a->ngl : !strcmp(f, "-t") ? &a->t
                  : !strcmp(f, "--n-cpu-moe") ? &a->n_cpu_moe : NULL;
        if (!strcmp(f, "-nkvo")) { a->nkvo = 1; continue; }
        if (!strcmp(f, "--no-cuda-graphs")) { a->no_graphs = 1; continue; }
        if (!strcmp(f, "--list")) { a->list = 1; continue; }
        if (!str && !num) return fail("plan: unknown option '%s' (showdown plan --help)", f);
        if (i + 1 >= argc) return fail("plan: %s needs a value", f);
        const char *v = argv[++i];
        if (str) { *str = v; continue; }
        long lo = num == &a->c || num == &a->n || num == &a->t ? 1 : 0;
        if (parse_int(f, v, lo, 1 << 24, num)) return 1;
    }
    if (strcmp(a->out, "md") && strcmp(a->out, "json") && strcmp(a->out, "csv"))
        return fail("plan: -o expects md, json or csv, got '%s'", a->out);
    return 0;
}

/* A model given as a preset id or as a GGUF file. */
typedef struct {
    const sd_model_shape *shape;
    sd_gguf_model file;
    int is_file;
    sd_model_ref ref;
} loaded_model;

static int load_model(const char *spec, loaded_model *lm, char *err)
{
    memset(lm, 0, sizeof *lm);
    FILE *probe = fopen(spec, "rb");
    if (probe) {
        fclose(probe);
        if (sd_shape_from_gguf(spec, &lm->file, err)) return -1;
        lm->is_file = 1;
        lm->ref.shape = &lm->file.shape;
        lm->ref.params = lm->file.params;
        lm->ref.file = &lm->file;
        return 0;
    }
    lm->shape = sd_preset_find(spec, err);
    if (!lm->shape) return -1;
    lm->ref.shape = lm->shape;
    sd_shape_params(lm->shape, &lm->ref.params);
    return 0;
}

static int find_recipe(const char *name, const loaded_model *lm, sd_recipe *r, char *err)
{
    if (!strcmp(name, "file")) {
        if (!lm->is_file) { snprintf(err, SD_ERR_LEN, "--quant file needs a GGUF file as --model"); return -1; }
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "file");
        r->quality = 0;
        return 0;
    }
    return sd_plan_recipe_find(name, r, err);
}

static void json_num(FILE *o, const char *key, double v, int last)
{
    if (isfinite(v)) fprintf(o, "\"%s\": %.6g%s", key, v, last ? "" : ", ");
    else fprintf(o, "\"%s\": null%s", key, last ? "" : ", ");
}

static void json_str(FILE *o, const char *key, const char *v, int last)
{
    fprintf(o, "\"%s\": \"", key);
    for (const char *c = v; *c; c++) {
        if (*c == '"' || *c == '\\') fputc('\\', o);
        if ((unsigned char)*c >= 0x20) fputc(*c, o);
    }
    fprintf(o, "\"%s", last ? "" : ", ");
}

static void fmt_num(char *b, size_t n, double v, const char *f)
{
    if (isfinite(v)) snprintf(b, n, f, v);
    else snprintf(b, n, "-");
}

typedef struct {
    const sd_hw *hw;
    const sd_hw *host;
    const char *model, *quant;
    char best[24];
    sd_plan_result res;
} combo;

static void emit(const args *a, const combo *cs, int n, const sd_plan_opts *o)
{
    FILE *out = stdout;
    if (!strcmp(a->out, "json")) {
        fputs("[\n", out);
        for (int i = 0; i < n; i++) {
            const combo *c = &cs[i];
            const sd_plan_result *r = &c->res;
            fputs("  {", out);
            json_str(out, "hw", c->hw->id, 0);
            json_str(out, "host", c->host ? c->host->id : "-", 0);
            json_str(out, "model", c->model, 0);
            json_str(out, "quant", c->quant, 0);
            fprintf(out, "\"fits\": %s, \"runs\": %s, ", r->fits ? "true" : "false", r->runs ? "true" : "false");
            fprintf(out, "\"n_gpu_layers\": %d, \"n_cpu_moe\": %d, \"n_layer\": %d, \"n_ctx\": %d, \"n_prompt\": %d, "
                    "\"n_gen\": %d, ", r->n_gpu_layers, r->n_cpu_moe, r->n_layer, o->n_ctx, o->n_prompt, o->n_gen);
            json_num(out, "weights_bytes", r->cost.weights_bytes, 0);
            json_num(out, "kv_bytes", r->cost.kv_bytes + r->cost.state_bytes, 0);
            json_num(out, "compute_bytes", r->cost.compute_bytes, 0);
            json_num(out, "total_bytes", r->cost.total_bytes, 0);
            json_num(out, "device_bytes", r->device_bytes, 0);
            json_num(out, "host_bytes", r->host_bytes, 0);
            json_num(out, "pp_ts", r->pp_ts, 0);
            json_num(out, "tg_ts", r->tg_ts, 0);
            json_num(out, "ttft_ms", r->ttft_ms, 0);
            json_num(out, "tokens_per_joule", r->tokens_per_joule, 0);
            json_num(out, "power_w", r->power_w, 0);
            json_str(out, "energy_basis", "estimate from hardware.tsv power", 0);
            json_str(out, "limiting_factor", r->limit, 0);
            json_str(out, "pp_limiting_factor", r->pp_limit, 0);
            json_str(out, "best_full_fit_quant", c->best, 0);
            json_str(out, "note", r->note, 1);
            fprintf(out, "}%s\n", i + 1 < n ? "," : "");
        }
        fputs("]\n", out);
        return;
    }
    int csv = !strcmp(a->out, "csv");
    if (csv)
        puts("hw,model,quant,fits,n_gpu_layers,weights_bytes,kv_bytes,total_bytes,pp_ts,tg_ts,ttft_ms,"
             "tokens_per_joule,limiting_factor,best_full_fit_quant");
    else {
        printf("model %s, context %d, prompt %d tokens, decode %d tokens after it, KV %s%s\n\n", cs[0].model,
               o->n_ctx, o->n_prompt, o->n_gen, a->ctk, o->kv_on_host ? " in host memory" : "");
        puts("| hardware | quant | fits | -ngl | weights GiB | KV GiB | total GiB | pp t/s | tg t/s | TTFT ms | "
             "tok/J (est.) | limited by |");
        puts("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    }
    for (int i = 0; i < n; i++) {
        const combo *c = &cs[i];
        const sd_plan_result *r = &c->res;
        char pp[32], tg[32], tt[32], tj[32];
        fmt_num(pp, sizeof pp, r->pp_ts, csv ? "%.4g" : "%.0f");
        fmt_num(tg, sizeof tg, r->tg_ts, csv ? "%.4g" : "%.1f");
        fmt_num(tt, sizeof tt, r->ttft_ms, csv ? "%.4g" : "%.0f");
        fmt_num(tj, sizeof tj, r->tokens_per_joule, csv ? "%.4g" : "%.3f");
        if (csv) {
            printf("%s,%s,%s,%d,%d,%.0f,%.0f,%.0f,%s,%s,%s,%s,%s,%s\n", c->hw->id, c->model, c->quant, r->fits,
                   r->n_gpu_layers, r->cost.weights_bytes, r->cost.kv_bytes + r->cost.state_bytes,
                   r->cost.total_bytes, pp, tg, tt, tj, r->limit, c->best);
            continue;
        }
        const char *fits = r->fits ? "yes" : r->runs ? "split" : "no";
        char ngl[16];
        if (c->hw->kind == SD_HW_GPU) snprintf(ngl, sizeof ngl, "%d/%d", r->n_gpu_layers, r->n_layer + 1);
        else snprintf(ngl, sizeof ngl, "-");
        printf("| %s | %s | %s | %s | %.1f | %.2f | %.1f | %s | %s | %s | %s | %s |\n", c->hw->id, c->quant, fits,
               ngl, r->cost.weights_bytes / GIB, (r->cost.kv_bytes + r->cost.state_bytes) / GIB,
               r->cost.total_bytes / GIB, pp, tg, tt, tj, r->limit);
    }
    if (csv) return;
    puts("");
    const char *last = "";
    for (int i = 0; i < n; i++) {
        if (strcmp(last, cs[i].hw->id)) {
            last = cs[i].hw->id;
            printf("- %s (%s, %.0f GiB, %.0f GB/s%s%s): best format that fits entirely: %s\n", cs[i].hw->id,
                   cs[i].hw->name, cs[i].hw->usable_gib, cs[i].hw->bw_gbps, cs[i].host ? ", host " : "",
                   cs[i].host ? cs[i].host->id : "", cs[i].best);
        }
        if (cs[i].res.note[0]) printf("  - %s: %s\n", cs[i].quant, cs[i].res.note);
    }
    puts("\npp = prefill of the prompt in one pass; tg = mean decode speed; TTFT = prefill + first decode step.\n"
         "tok/J is an estimate from hardware.tsv power figures, not a measurement. Model: docs/PLANNER.md.");
}

/* The best ladder format whose everything fits on the device. */
static void best_fit(const sd_model_ref *m, const sd_hw *hw, const sd_plan_opts *o, char *name, size_t n)
{
    sd_recipe ladder[16];
    int k = sd_plan_recipe_ladder(ladder, 16);
    sd_plan_opts oo = *o;
    oo.ngl = -1;
    snprintf(name, n, "none");
    for (int i = 0; i < k; i++) {
        sd_plan_result r;
        char err[SD_ERR_LEN];
        if (!sd_plan_predict(m, &ladder[i], hw, NULL, &oo, &r, err) && r.fits) {
            snprintf(name, n, "%.23s", ladder[i].name);
            return;
        }
    }
}

static int run_published(const args *a, const sd_hw_table *t)
{
    char err[SD_ERR_LEN];
    sd_published_row *rows;
    int n;
    if (sd_published_check(a->published, t, &rows, &n, err)) return fail("%s", err);
    puts("| # | hardware (id) | model | quant | variant | pp512 pub | pp512 pred | err | tg pub | tg pred | err |");
    puts("|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|");
    double worst = 0;
    for (int i = 0; i < n; i++) {
        sd_published_row *r = &rows[i];
        char ppp[24], ppe[24];
        fmt_num(ppp, sizeof ppp, isfinite(r->pub_pp) ? r->pred_pp : NAN, "%.0f");
        fmt_num(ppe, sizeof ppe, 100.0 * (r->pred_pp / r->pub_pp - 1), "%+.0f%%");
        double e = 100.0 * (r->pred_tg / r->pub_tg - 1);
        if (fabs(e) > worst) worst = fabs(e);
        char pub[24];
        fmt_num(pub, sizeof pub, r->pub_pp, "%.0f");
        printf("| %d | %s (%s) | %s | %s | %s | %s | %s | %s | %.2f | %.2f | %+.1f%% |\n", i + 1, r->hardware, r->hw_id,
               r->preset, r->quant, r->variant[0] ? r->variant : "-", pub, ppp, ppe, r->pub_tg, r->pred_tg, e);
    }
    printf("\n%d decode measurements, worst decode error %.1f%%\n", n, worst);
    free(rows);
    return 0;
}

static int run_compare(const args *a, const sd_hw_table *t)
{
    (void)t;
    char err[SD_ERR_LEN], path[1024];
    sd_bench_row *rows;
    int n;
    if (sd_bench_jsonl_read(a->compare, &rows, &n, err)) return fail("%s", err);
    sd_calib_path(path, sizeof path);
    puts("| model | quant | test | threads | measured t/s | predicted t/s | measured / predicted |");
    puts("|---|---|---|---:|---:|---:|---:|");
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        sd_bench_row *b = &rows[i];
        loaded_model lm;
        sd_hw hw;
        sd_recipe r;
        const char *spec = a->model ? a->model : b->model_filename;
        if (load_model(spec, &lm, err)) { rc = fail("%s", err); break; }
        const char *q = a->quant ? a->quant : lm.is_file ? "file" : "q4_k_m";
        if (find_recipe(q, &lm, &r, err) || sd_hw_this(path, b->n_threads, &hw, err)) {
            rc = fail("%s", err);
            break;
        }
        sd_plan_opts o;
        sd_plan_default_opts(&o);
        o.n_prompt = b->n_prompt;
        o.n_gen = b->n_gen > 0 ? b->n_gen : 1;
        o.decode_depth = b->n_depth;
        o.n_ctx = b->n_depth + b->n_prompt + o.n_gen;
        if (lm.ref.shape->n_ctx_train && o.n_ctx > lm.ref.shape->n_ctx_train) o.n_ctx = lm.ref.shape->n_ctx_train;
        sd_plan_result res;
        if (sd_plan_predict(&lm.ref, &r, &hw, NULL, &o, &res, err)) { rc = fail("%s", err); break; }
        double pred;
        char test[48];
        if (b->n_prompt > 0 && b->n_gen > 0) {
            /* pp+tg: one figure over both phases */
            double secs = b->n_prompt / res.pp_ts + b->n_gen / res.tg_ts;
            pred = (b->n_prompt + b->n_gen) / secs;
            snprintf(test, sizeof test, "pp%d+tg%d", b->n_prompt, b->n_gen);
        } else if (b->n_prompt > 0) {
            pred = res.pp_ts;
            snprintf(test, sizeof test, "pp%d", b->n_prompt);
        } else {
            pred = res.tg_ts;
            snprintf(test, sizeof test, "tg%d", b->n_gen);
        }
        const char *base = strrchr(b->model_filename, '/');
        printf("| %s | %s | %s | %d | %.2f | %.2f | %.2f |\n", base ? base + 1 : b->model_filename, r.name, test,
               b->n_threads, b->avg_ts, pred, b->avg_ts / pred);
    }
    free(rows);
    if (!rc) puts("\nPredicted with the `cpu` efficiency factors of docs/PLANNER.md and this machine's calibrate profile.");
    return rc;
}

static int plan_main(const args *a, const sd_hw_table *t)
{
    char err[SD_ERR_LEN];
    loaded_model lm;
    if (load_model(a->model, &lm, err)) return fail("%s", err);
    const sd_model_shape *s = lm.ref.shape;
    char qbuf[512], hbuf[512];
    snprintf(qbuf, sizeof qbuf, "%s", a->quant ? a->quant : lm.is_file ? "file" : "q4_k_m");
    snprintf(hbuf, sizeof hbuf, "%s", a->hw);
    char *qs[MAX_LIST], *hs[MAX_LIST];
    int nq = split_list(qbuf, qs, MAX_LIST), nh = split_list(hbuf, hs, MAX_LIST);
    if (!nq || !nh) return fail("plan: empty --quant or --hw list");
    sd_recipe recipes[MAX_LIST];
    for (int i = 0; i < nq; i++)
        if (find_recipe(qs[i], &lm, &recipes[i], err)) return fail("%s", err);
    double kv = sd_kv_type_bytes(a->ctk);
    if (kv <= 0) return fail("plan: -ctk '%s' is not a KV cache type (f16, q8_0, q4_0, f32)", a->ctk);

    sd_plan_opts o;
    sd_plan_default_opts(&o);
    int train = s->n_ctx_train > 0 ? s->n_ctx_train : 4096;
    if (a->c > train) return fail("plan: context %ld is beyond %s's training context %d", a->c, s->name, train);
    o.n_ctx = a->c > 0 ? (int)a->c : train < 4096 ? train : 4096;
    o.n_prompt = (int)a->p;
    o.n_gen = (int)a->n;
    if (o.n_prompt + o.n_gen > o.n_ctx)
        return fail("plan: prompt %d + generated %d tokens exceed the context %d (raise -c)", o.n_prompt, o.n_gen,
                    o.n_ctx);
    o.ngl = (int)a->ngl;
    o.kv_on_host = a->nkvo;
    o.no_graph_replay = a->no_graphs;
    o.n_cpu_moe = (int)a->n_cpu_moe;
    o.kv_elem_bytes = kv;

    sd_hw hws[MAX_LIST], hosts[MAX_LIST];
    int has_host[MAX_LIST];
    for (int i = 0; i < nh; i++) {
        if (!strcmp(hs[i], "this")) {
            char cp[1024];
            if (sd_hw_this(sd_calib_path(cp, sizeof cp), a->t > 0 ? (int)a->t : 0, &hws[i], err)) return fail("%s", err);
        } else if (sd_hw_find(t, hs[i], &hws[i], err)) {
            return fail("%s", err);
        }
        has_host[i] = 0;
        const char *hid = a->host ? a->host : hws[i].host;
        if (hws[i].kind == SD_HW_GPU && strcmp(hid, "-")) {
            if (sd_hw_find(t, hid, &hosts[i], err)) return fail("%s", err);
            if (hosts[i].kind != SD_HW_CPU) return fail("plan: host '%s' is not a CPU host profile", hid);
            has_host[i] = 1;
        }
    }
    combo *cs = calloc((size_t)(nh * nq), sizeof *cs);
    if (!cs) return fail("plan: out of memory");
    int n = 0;
    for (int i = 0; i < nh; i++) {
        char best[24];
        best_fit(&lm.ref, &hws[i], &o, best, sizeof best);
        for (int j = 0; j < nq; j++, n++) {
            cs[n].hw = &hws[i];
            cs[n].host = has_host[i] ? &hosts[i] : NULL;
            cs[n].model = s->name;
            cs[n].quant = recipes[j].name;
            snprintf(cs[n].best, sizeof cs[n].best, "%s", best);
            if (sd_plan_predict(&lm.ref, &recipes[j], &hws[i], cs[n].host, &o, &cs[n].res, err)) {
                free(cs);
                return fail("%s", err);
            }
        }
    }
    emit(a, cs, n, &o);
    int rc = 0;
    if (a->svg) {
        const sd_hw *hp[MAX_LIST];
        for (int i = 0; i < nh; i++) hp[i] = has_host[i] ? &hosts[i] : NULL;
        if (sd_plan_svg(a->svg, &lm.ref, hws, hp, nh, recipes, nq, &o, err)) rc = fail("%s", err);
        else fprintf(stderr, "plan: wrote %s\n", a->svg);
    }
    free(cs);
    return rc;
}

static int run_list(const sd_hw_table *t)
{
    puts("hardware (data/hardware.tsv; NxID for N GPUs in a layer split; `this` from the calibrate profile):");
    for (int i = 0; i < t->n; i++)
        printf("  %-18s %-4s %7.0f GiB %7.0f GB/s  %s\n", t->rows[i].id,
               t->rows[i].kind == SD_HW_GPU ? "gpu" : t->rows[i].kind == SD_HW_SOC ? "soc" : "cpu",
               t->rows[i].usable_gib, t->rows[i].bw_gbps, t->rows[i].name);
    puts("  this               the machine plan runs on (showdown calibrate)\n\npresets:");
    for (int i = 0; i < sd_preset_count(); i++) {
        const sd_model_shape *s = sd_preset_at(i);
        sd_params p;
        sd_shape_params(s, &p);
        printf("  %-20s %7.2fB total %6.2fB active  %s\n", s->name, p.total / 1e9, p.active / 1e9, s->arch);
    }
    puts("\nformats: q2_k q3_k_m q4_0 q4_k_m q5_k_m q6_k q8_0 bf16 f16 f32 mxfp4 nvfp4, any single type, file");
    return 0;
}

int cmd_plan(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(usage_text, stdout); return 0; }
    args a;
    if (parse_args(argc, argv, &a)) return 1;
    char err[SD_ERR_LEN], hwpath[1024];
    const char *path = a.hw_file ? a.hw_file : sd_hw_default_path(hwpath, sizeof hwpath);
    if (!path) return fail("plan: cannot find data/hardware.tsv (set SHOWDOWN_HARDWARE or --hw-file)");
    sd_hw_table table;
    if (sd_hw_load(path, &table, err)) return fail("%s", err);
    int rc = 0;
    if (a.list) rc = run_list(&table);
    else if (a.published) rc = run_published(&a, &table);
    else if (a.compare) {
        if (!a.hw || strcmp(a.hw, "this")) rc = fail("plan: --compare compares with --hw this");
        else rc = run_compare(&a, &table);
    } else if (!a.model || !a.hw) {
        rc = fail("plan: --model and --hw are required (showdown plan --help)");
    } else {
        rc = plan_main(&a, &table);
    }
    sd_hw_free(&table);
    return rc;
}
