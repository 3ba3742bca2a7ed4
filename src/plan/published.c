/* Predicts every measurement in docs/published-train.tsv so the efficiency
 * factors can be checked (tests) and the per-row error shown (docs/PLANNER.md,
 * `showdown plan --published FILE`). The mapping from the file's free-text
 * hardware and model names to our ids lives here, in one table each. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "plan/plan.h"

enum { SWEEP = 1, KV_PAIR = 2 };

/* First match wins, so the more specific names come first. */
static const struct { const char *text, *hw, *host; int variant; } hw_map[] = {
    /* llama-bench README sweep: same author, model and speed as PR 4812's 3090 Ti;
     * in 2023 llama.cpp offloaded the KV cache only at -ngl n_layer+3. */
    {"partial offload", "rtx-3090-ti", "host-ddr4", SWEEP},
    {"KV cache on GPU vs on CPU", "rtx-3090-ti", "host-ddr4", KV_PAIR},
    {"2x NVIDIA RTX 4090", "2xrtx-4090", NULL, 0},
    {"2x NVIDIA RTX 3090", "2xrtx-3090", NULL, 0},
    {"3x NVIDIA RTX 3090", "3xrtx-3090", NULL, 0},
    {"A100 80", "a100-80g", NULL, 0},
    {"Ryzen AI Max+ 395", "ryzen-ai-max-395", NULL, 0},
    {"DGX Spark", "dgx-spark", NULL, 0},
    {"RTX 2080", "rtx-2080", "host-hedt-ddr4", 0},
    {"RTX 5090", "rtx-5090", NULL, 0},
    {"RTX 4090", "rtx-4090", NULL, 0},
    {"RTX 3090 Ti", "rtx-3090-ti", NULL, 0},
    {"RTX 3090", "rtx-3090", NULL, 0},
    {"RTX 3070", "rtx-3070", NULL, 0},
    {"M1 8-core", "m1-8", NULL, 0},
    {"M1 Max", "m1-max-32", NULL, 0},
    {"M2 Max 30-core", "m2-max-30", NULL, 0},
    {"M3 Ultra 80-core", "m3-ultra-80", NULL, 0},
    {"M2 Ultra", "m2-ultra-76", NULL, 0},
    {"M4 10-core", "m4-10", NULL, 0},
};

static const struct { const char *text, *preset; } model_map[] = {
    {"LLaMA 2 7B", "llama-2-7b"}, {"LLaMA 7B", "llama-2-7b"},   /* LLaMA 1 7B has the same shape */
    {"Llama 3 8B", "llama-3-8b"}, {"Llama 3 70B", "llama-3-70b"},
    {"gpt-oss 20B", "gpt-oss-20b"}, {"gpt-oss 120B", "gpt-oss-120b"}, {"Qwen3 30B-A3B", "qwen3-30b-a3b"},
    {"Qwen3-Next 80B-A3B", "qwen3-next-80b-a3b"},
};

/* "373.36 (ngl 10) / 2400.01 (ngl 35)" -> values and their ngl tags (-1 untagged). */
static int parse_values(const char *s, double *v, int *tag, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        double x = strtod(s, &end);
        if (end == s) break;
        v[n] = x;
        tag[n] = -1;
        const char *slash = strchr(end, '/');
        const char *ngl = strstr(end, "(ngl ");
        if (ngl && (!slash || ngl < slash)) tag[n] = atoi(ngl + 5);
        n++;
        if (!slash) break;
        s = slash + 1;
    }
    return n;
}

/* The test a row measured, named in its source column: "tgN" (N tokens
 * generated one at a time; default 128) and "@ dN" (N tokens already in the
 * cache when it starts, llama-bench -d; default 0). */
static void parse_test(const char *src, int *n_gen, int *depth)
{
    *n_gen = 128;
    *depth = 0;
    for (const char *p = src; (p = strstr(p, "tg")) != NULL; p += 2)
        if (isdigit((unsigned char)p[2]) && (p == src || !isalnum((unsigned char)p[-1]))) {
            int n = atoi(p + 2);
            if (n > 0 && n <= 65536) *n_gen = n;
        }
    const char *d = strstr(src, "@ d");
    if (d && isdigit((unsigned char)d[3])) {
        int n = atoi(d + 3);
        if (n > 0 && n <= 1 << 20) *depth = n;
    }
}

static void split_tabs(char *line, char **f, int *n, int max)
{
    *n = 0;
    for (char *p = line; *n < max;) {
        f[(*n)++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
}

static int predict_one(const sd_hw_table *t, sd_published_row *r, int n_gen, int depth, char *err)
{
    sd_hw hw, host;
    if (sd_hw_find(t, r->hw_id, &hw, err)) return -1;
    const char *host_id = r->host_id[0] ? r->host_id : hw.host;
    int have_host = hw.kind == SD_HW_GPU && strcmp(host_id, "-") && !sd_hw_find(t, host_id, &host, err);
    const sd_model_shape *s = sd_preset_find(r->preset, err);
    sd_recipe rec;
    if (!s || sd_plan_recipe_find(r->quant, &rec, err)) return -1;
    sd_model_ref m = {.shape = s};
    sd_shape_params(s, &m.params);
    sd_plan_opts o;
    sd_plan_default_opts(&o);
    if (s->n_ctx_train > 0 && depth + n_gen > s->n_ctx_train) {
        snprintf(err, SD_ERR_LEN, "tg%d after %d tokens is beyond %s's context of %d", n_gen, depth, s->name,
                 s->n_ctx_train);
        return -1;
    }
    o.n_ctx = 4096;
    while (o.n_ctx < depth + n_gen || o.n_ctx < 512 + n_gen) o.n_ctx *= 2;
    if (s->n_ctx_train > 0 && o.n_ctx > s->n_ctx_train) o.n_ctx = s->n_ctx_train;
    o.n_prompt = 512;
    o.n_gen = n_gen;
    o.decode_depth = depth;   /* tg N after depth tokens (llama-bench -d; 0 by default) */
    o.ngl = r->ngl;
    o.kv_on_host = r->kv_on_host;
    if (r->n_cpu_moe > 0) o.n_cpu_moe = r->n_cpu_moe;
    o.no_graph_replay = r->no_graph_replay;
    sd_plan_result res;
    if (sd_plan_predict(&m, &rec, &hw, have_host ? &host : NULL, &o, &res, err)) return -1;
    r->pred_pp = res.pp_ts;
    r->pred_tg = res.tg_ts;
    return 0;
}

int sd_published_check(const char *tsv_path, const sd_hw_table *t, sd_published_row **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    FILE *fp = fopen(tsv_path, "r");
    if (!fp) { snprintf(err, SD_ERR_LEN, "%s: cannot open", tsv_path); return -1; }
    char line[2048];
    int cap = 0, lineno = 0;
    sd_published_row *rows = NULL;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *f[12];
        int nf;
        split_tabs(line, f, &nf, 12);
        if (nf < 10) { snprintf(err, SD_ERR_LEN, "%s:%d: expected 10 fields, got %d", tsv_path, lineno, nf); goto fail; }
        int hi = -1, mi = -1;
        for (size_t i = 0; hi < 0 && i < sizeof hw_map / sizeof hw_map[0]; i++)
            if (strstr(f[0], hw_map[i].text)) hi = (int)i;
        for (size_t i = 0; mi < 0 && i < sizeof model_map / sizeof model_map[0]; i++)
            if (strstr(f[4], model_map[i].text)) mi = (int)i;
        if (hi < 0 || mi < 0) {
            snprintf(err, SD_ERR_LEN, "%s:%d: no mapping for hardware '%.60s' / model '%.40s'", tsv_path, lineno, f[0], f[4]);
            goto fail;
        }
        double pp[8], tg[8];
        int ppt[8], tgt[8];
        int npp = parse_values(f[7], pp, ppt, 8), ntg = parse_values(f[8], tg, tgt, 8);
        int n_gen, depth;
        parse_test(f[9], &n_gen, &depth);
        static const int sweep_ngl[] = {10, 20, 30, 33, 35};
        for (int k = 0; k < ntg; k++) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 32;
                sd_published_row *nr = realloc(rows, (size_t)cap * sizeof *nr);
                if (!nr) { snprintf(err, SD_ERR_LEN, "out of memory"); goto fail; }
                rows = nr;
            }
            sd_published_row *r = &rows[(*n)++];
            memset(r, 0, sizeof *r);
            snprintf(r->hardware, sizeof r->hardware, "%.127s", f[0]);
            snprintf(r->model, sizeof r->model, "%.63s", f[4]);
            snprintf(r->source, sizeof r->source, "%.159s", f[9]);
            snprintf(r->hw_id, sizeof r->hw_id, "%s", hw_map[hi].hw);
            snprintf(r->host_id, sizeof r->host_id, "%s", hw_map[hi].host ? hw_map[hi].host : "");
            snprintf(r->preset, sizeof r->preset, "%s", model_map[mi].preset);
            snprintf(r->quant, sizeof r->quant, "%.23s", f[6]);
            for (char *c = r->quant; *c; c++) *c = (char)tolower((unsigned char)*c);
            r->ngl = -1;
            /* llama.cpp replays CUDA graphs since May 2024 (PR 6766); the 2023 rows ran without. */
            r->no_graph_replay = hw_map[hi].variant == SWEEP || hw_map[hi].variant == KV_PAIR || strstr(f[9], "2023");
            const char *cm = strstr(f[0], "--n-cpu-moe ");
            if (cm) {   /* the experts of this many layers ran in host RAM */
                r->n_cpu_moe = atoi(cm + 12);
                snprintf(r->variant, sizeof r->variant, "--n-cpu-moe %d", r->n_cpu_moe);
            }
            r->pub_tg = tg[k];
            r->pub_pp = NAN;
            if (hw_map[hi].variant == SWEEP && k < 5) {
                /* -ngl 33 = all layers + head; 35 also moved the K and V caches. */
                r->ngl = sweep_ngl[k] > 33 ? 33 : sweep_ngl[k];
                r->kv_on_host = sweep_ngl[k] < 35;
                snprintf(r->variant, sizeof r->variant, "-ngl %d (2023 numbering)%s", sweep_ngl[k],
                         r->kv_on_host ? ", KV on host" : "");
                for (int j = 0; j < npp; j++)
                    if (ppt[j] == sweep_ngl[k]) r->pub_pp = pp[j];
            } else if (hw_map[hi].variant == KV_PAIR) {
                r->kv_on_host = k == 1;
                snprintf(r->variant, sizeof r->variant, "KV cache on %s", k ? "host (-nkvo)" : "GPU");
                if (k < npp) r->pub_pp = pp[k];
            } else if (k < npp) {
                r->pub_pp = pp[k];
            }
            if (n_gen != 128 || depth) {   /* not llama-bench's default tg128: say which test */
                size_t used = strlen(r->variant);
                if (depth)
                    snprintf(r->variant + used, sizeof r->variant - used, "%stg%d @ d%d", used ? ", " : "", n_gen, depth);
                else
                    snprintf(r->variant + used, sizeof r->variant - used, "%stg%d", used ? ", " : "", n_gen);
            }
            if (predict_one(t, r, n_gen, depth, err)) {
                char why[SD_ERR_LEN];
                snprintf(why, sizeof why, "%s", err);
                snprintf(err, SD_ERR_LEN, "%s:%d: %.400s", tsv_path, lineno, why);
                goto fail;
            }
        }
    }
    fclose(fp);
    *out = rows;
    return 0;
fail:
    fclose(fp);
    free(rows);
    *n = 0;
    return -1;
}
