/* The sweep: models x KV formats x thread counts x depths x tests, in
 * llama-bench's order. Loads each model once (timing the load and noting
 * whether its file was in the page cache), estimates the whole sweep from a
 * short probe of the first model, runs every test and hands each row out as
 * soon as it is done. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/roofline.h"
#include "bench/runner.h"
#include "gguf/gguf.h"
#include "measure/memory.h"
#include "measure/sysinfo.h"

/* One test of the sweep, before it runs. */
typedef struct { int model, ngl, kv, threads, depth, n_prompt, n_gen; } test_spec;

static int tests_per_combo(const sd_bench_config *c)
{
    int n = c->n_pg;
    for (int i = 0; i < c->n_n_prompt; i++) n += c->n_prompt[i] > 0;
    for (int i = 0; i < c->n_n_gen; i++) n += c->n_gen[i] > 0;
    return n;
}

/* The -ngl values: an empty list is the single value 0. */
static int n_ngl(const sd_bench_config *c) { return c->n_n_gpu_layers > 0 ? c->n_n_gpu_layers : 1; }
static int ngl_at(const sd_bench_config *c, int i) { return c->n_n_gpu_layers > 0 ? c->n_gpu_layers[i] : 0; }

/* Whether any test runs on a GPU (then energy prefers the GPU's probe). */
static int any_gpu(const sd_bench_config *c)
{
    for (int i = 0; i < n_ngl(c); i++)
        if (ngl_at(c, i)) return 1;
    return c->device != 0;
}

int sd_bench_count_tests(const sd_bench_config *c)
{
    return c->n_models * n_ngl(c) * c->n_kv * c->n_n_threads * c->n_n_depth * tests_per_combo(c);
}

static test_spec *expand(const sd_bench_config *c, int *n_out)
{
    int n = sd_bench_count_tests(c), k = 0;
    test_spec *t = calloc((size_t)(n > 0 ? n : 1), sizeof *t);
    if (!t) return NULL;
    for (int m = 0; m < c->n_models; m++)   /* model and -ngl outermost: one load each */
        for (int g = 0; g < n_ngl(c); g++)
        for (int kv = 0; kv < c->n_kv; kv++)
            for (int th = 0; th < c->n_n_threads; th++)
                for (int d = 0; d < c->n_n_depth; d++) {
                    test_spec base = {m, ngl_at(c, g), kv, c->n_threads[th], c->n_depth[d], 0, 0};
                    for (int i = 0; i < c->n_n_prompt; i++)
                        if (c->n_prompt[i] > 0) { t[k] = base; t[k++].n_prompt = c->n_prompt[i]; }
                    for (int i = 0; i < c->n_n_gen; i++)
                        if (c->n_gen[i] > 0) { t[k] = base; t[k++].n_gen = c->n_gen[i]; }
                    for (int i = 0; i < c->n_pg; i++) {
                        t[k] = base;
                        t[k].n_prompt = c->pg[2 * i];
                        t[k++].n_gen = c->pg[2 * i + 1];
                    }
                }
    *n_out = k;
    return t;
}

/* Predicted seconds for a test from the probe (prefill and decode rates). */
static double predict(const sd_bench_config *c, const test_spec *t, const bench_probe *p, double size_ratio)
{
    double per_rep = (t->depth + t->n_prompt) * p->pf_s + (t->n_gen + 1) * p->dec_s;
    return (c->warmup + c->reps) * per_rep * size_ratio;
}

/* Bytes of weights one decode step reads: all tensors, except that an
 * embedding table with a separate output matrix is read one row per token,
 * and a mixture of experts reads only the k of n experts it routes to. */
static uint64_t weight_bytes_per_token(sd_model *m)
{
    uint64_t all = sd_model_weight_bytes(m);
    gguf_file *g = NULL;
    char err[SD_ERR_LEN];
    if (gguf_open_header(sd_model_path(m), &g, err) != 0) return all;
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    const gguf_tensor *out = gguf_find_tensor(g, "output.weight");
    if (emb && out && emb->ne[1] > 0 && emb->n_bytes < all)
        all -= emb->n_bytes - emb->n_bytes / (uint64_t)emb->ne[1];
    const sd_hparams *hp = sd_model_hparams(m);
    for (uint64_t i = 0; hp->n_expert > 0 && i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        char name[96];
        int layer, e;
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 95 ? t->name.len : 95), t->name.ptr);
        if (strstr(name, "_exps.weight") || sscanf(name, "blk.%d.ffn_%*[a-z].%d.weight", &layer, &e) == 2)
            all -= t->n_bytes - t->n_bytes * (uint64_t)hp->n_expert_used / (uint64_t)hp->n_expert;
    }
    gguf_close(g);
    return all;
}

static void utc_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

typedef struct {
    const sd_bench_callbacks *cb;
    sd_bench_progress pr;
    double t_start, est_total, est_done, est_this;
} progress_ctx;

static void on_rep(void *ud, int rep, int warmup)
{
    progress_ctx *p = ud;
    if (!p->cb || !p->cb->on_progress) return;
    p->pr.rep = rep;
    p->pr.warmup = warmup;
    p->pr.elapsed_s = sd_time_ms() / 1e3 - p->t_start;
    if (p->est_total > 0) {
        /* scale the remaining estimate by how the estimate has fared so far */
        double ratio = p->est_done > 0 ? p->pr.elapsed_s / p->est_done : 1;
        double remain = p->est_total - p->est_done;
        p->pr.eta_s = remain * ratio;
    } else p->pr.eta_s = -1;
    p->cb->on_progress(&p->pr, p->cb->ud);
}

static void fill_common(sd_bench_row *r, const sd_bench_config *c, const test_spec *t, const char *model_path,
                        const char *cpu, const sd_cache_info *caches, const char *energy_source)
{
    memset(r, 0, sizeof *r);
    snprintf(r->model_filename, sizeof r->model_filename, "%s", model_path);
    r->n_threads = t->threads;
    r->n_prompt = t->n_prompt;
    r->n_gen = t->n_gen;
    r->n_depth = t->depth;
    snprintf(r->type_k, sizeof r->type_k, "%s", sd_kv_type_name(c->kv[t->kv]));
    snprintf(r->type_v, sizeof r->type_v, "%s", r->type_k);
    r->n_warmup = c->warmup;
    r->seed = c->seed;
    r->avg_ns = r->stddev_ns = r->avg_ts = r->stddev_ts = NAN;
    r->ttft_ms = r->stddev_ttft_ms = r->load_ms = r->load_cached_fraction = NAN;
    r->energy_j = r->stddev_energy_j = r->tokens_per_joule = NAN;
    r->roofline_ts = r->roofline_fraction = NAN;
    snprintf(r->energy_source, sizeof r->energy_source, "%s", energy_source);
    snprintf(r->cpu_info, sizeof r->cpu_info, "%s", cpu);
    r->l2_bytes = caches->llc_level > 2 ? caches->l2_bytes : 0;
    r->llc_bytes = caches->llc_bytes;
    r->llc_shared_cpus = caches->llc_shared_cpus;
    snprintf(r->build_commit, sizeof r->build_commit, "%s", SD_BUILD_COMMIT);
    snprintf(r->kernel_isa, sizeof r->kernel_isa, "%s", sd_kernel_isa());
    snprintf(r->load_cache, sizeof r->load_cache, "unknown");
    snprintf(r->backends, sizeof r->backends, "cpu");
    if (!c->calib) snprintf(r->roofline_note, sizeof r->roofline_note, "no calibration profile: run showdown calibrate");
    utc_now(r->test_time, sizeof r->test_time);
}

/* Parameters one token multiplies, for the prefill ceiling: a mixture of
 * experts' token runs k of its n experts (all of them are read per batch,
 * but each multiplies only its own tokens). */
static uint64_t active_params(sd_model *m)
{
    const sd_hparams *hp = sd_model_hparams(m);
    uint64_t all = sd_model_n_params(m);
    if (hp->n_expert <= 0 || hp->n_expert_used <= 0) return all;
    uint64_t per = (uint64_t)hp->n_layer * 3 * (uint64_t)hp->n_embd * (uint64_t)hp->n_ff_exp;
    uint64_t exps = per * (uint64_t)hp->n_expert;
    return exps < all ? all - exps + per * (uint64_t)hp->n_expert_used : all;
}

static void set_roofline(sd_bench_row *r, const sd_bench_config *c, const bench_model *bm, sd_kv_type kv)
{
    if (!c->calib) return;
    const sd_hparams *hp = sd_model_hparams(bm->m);
    sd_roofline_in in = {
        .weight_bytes_per_token = bm->weight_bytes_per_token,
        .n_params = active_params(bm->m),
        .n_layer = hp->n_layer,
        .kv_dim = hp->n_head_kv * hp->head_dim,
        .kv_elem_bytes = kv == SD_KV_F32 ? 4 : kv == SD_KV_F16 ? 2 : 34.0 / 32,
        .type_name = sd_model_type_name(bm->m),
        .n_threads = r->n_threads, .n_prompt = r->n_prompt, .n_gen = r->n_gen, .n_depth = r->n_depth,
    };
    sd_roofline_out o;
    sd_roofline_eval(c->calib, &in, &o);
    r->roofline_ts = o.ts;
    snprintf(r->roofline_ceiling, sizeof r->roofline_ceiling, "%s", o.ceiling);
    snprintf(r->roofline_note, sizeof r->roofline_note, "%s", o.note);
    if (isfinite(r->roofline_ts) && isfinite(r->avg_ts)) r->roofline_fraction = r->avg_ts / r->roofline_ts;
    /* Above a physical limit means the limit's model does not hold here: say so in the row. */
    if (r->roofline_fraction > 1) {
        size_t l = strlen(r->roofline_note);
        snprintf(r->roofline_note + l, sizeof r->roofline_note - l, "; ABOVE this ceiling (docs/BENCHMARKS-report.md)");
    }
}

/* The context the longest test needs: what the GPU's KV cache is sized for. */
static int max_ctx(const sd_bench_config *c)
{
    int d = 0, p = 0, g = 0;
    for (int i = 0; i < c->n_n_depth; i++) d = c->n_depth[i] > d ? c->n_depth[i] : d;
    for (int i = 0; i < c->n_n_prompt; i++) p = c->n_prompt[i] > p ? c->n_prompt[i] : p;
    for (int i = 0; i < c->n_n_gen; i++) g = c->n_gen[i] > g ? c->n_gen[i] : g;
    for (int i = 0; i < c->n_pg; i++) {
        p = c->pg[2 * i] > p ? c->pg[2 * i] : p;
        g = c->pg[2 * i + 1] > g ? c->pg[2 * i + 1] : g;
    }
    return d + p + g + 1;
}

static int load_model(const sd_bench_config *c, const sd_bench_callbacks *cb, const char *path, int ngl,
                      bench_model *bm, char *err)
{
    memset(bm, 0, sizeof *bm);
    char e2[SD_ERR_LEN];
    if (c->cold && sd_file_evict(path, e2) != 0) { snprintf(err, SD_ERR_LEN, "--cold: %.490s", e2); return -1; }
    if (sd_file_cached_fraction(path, &bm->cached_fraction, e2) != 0) bm->cached_fraction = NAN;
    sd_peak_rss_reset();
    double t0 = sd_time_ms();
    if (sd_model_load(path, &bm->m, err) != 0) return -1;
    if (ngl || c->device) {
        sd_kv_type kv = c->n_kv ? c->kv[0] : SD_KV_F16;
        for (int i = 1; i < c->n_kv; i++) kv = c->kv[i] == SD_KV_F32 ? SD_KV_F32 : kv;   /* the larger cache */
        sd_offload_params op = {ngl, c->device, max_ctx(c), kv, NULL, NULL};
        if (sd_model_offload(bm->m, &op, err) != 0) return -1;
        if (cb && cb->on_placement) cb->on_placement(path, sd_model_placement(bm->m), cb->ud);
    }
    bm->load_ms = sd_time_ms() - t0;
    bm->weight_bytes_per_token = weight_bytes_per_token(bm->m);
    return 0;
}

int sd_bench_run(const sd_bench_config *c, const sd_bench_callbacks *cb, char *err)
{
    int n_tests = 0, failed = 0;
    test_spec *tests = expand(c, &n_tests);
    if (!tests) { snprintf(err, SD_ERR_LEN, "out of memory"); return -1; }
    if (n_tests == 0) { free(tests); snprintf(err, SD_ERR_LEN, "no tests: every -p/-n value is 0 and no -pg"); return -1; }
    sd_bench_row *row = malloc(sizeof *row);
    /* GPU runs: the GPU's energy (NVML) where it can be read. */
    sd_energy *probe = NULL;
    if (any_gpu(c) && !strcmp(c->energy, "auto")) {
        probe = sd_energy_open("nvml", 0);
        if (probe && !sd_energy_available(probe)) { sd_energy_close(probe); probe = NULL; }
    }
    if (!probe) probe = sd_energy_open(c->energy, 0);
    if (!row || !probe) { free(tests); free(row); sd_energy_close(probe); snprintf(err, SD_ERR_LEN, "out of memory"); return -1; }
    char cpu[128];
    sd_cpu_model(cpu, sizeof cpu);
    sd_cache_info caches;
    sd_cache_info_read(NULL, &caches);   /* zeros where unknown */

    progress_ctx pc = {.cb = cb, .t_start = sd_time_ms() / 1e3};
    pc.pr.n_tests = n_tests;
    pc.pr.n_reps = c->reps;
    bench_probe bp = {0};
    int have_probe = 0, stopped = 0;
    bench_model bm = {0};
    int cur_model = -1, cur_ngl = 0, model_ok = 0;
    char model_err[SD_ERR_LEN] = "";

    for (int i = 0; i < n_tests && !stopped; i++) {
        const test_spec *t = &tests[i];
        const char *path = c->models[t->model];
        if (t->model != cur_model || t->ngl != cur_ngl) {
            if (bm.m) sd_model_free(bm.m);
            bm.m = NULL;
            cur_model = t->model;
            cur_ngl = t->ngl;
            model_ok = load_model(c, cb, path, t->ngl, &bm, model_err) == 0;
            if (model_ok && !have_probe) {
                /* Estimate once, from the first model that loads. */
                char perr[SD_ERR_LEN];
                if (sd_bench_probe(&bm, t->threads, &bp, perr) == 0) {
                    have_probe = 1;
                    for (int j = 0; j < n_tests; j++) pc.est_total += predict(c, &tests[j], &bp, 1);
                    if (cb && cb->on_estimate && cb->on_estimate(pc.est_total, cb->ud) != 0) {
                        snprintf(err, SD_ERR_LEN, "stopped before the sweep (estimated %.0f s)", pc.est_total);
                        stopped = 1;
                        break;
                    }
                }
            }
        }
        double ratio = have_probe && bm.m && bp.size_bytes > 0 ? (double)sd_model_weight_bytes(bm.m) / bp.size_bytes : 1;
        pc.est_this = have_probe ? predict(c, t, &bp, ratio) : 0;
        fill_common(row, c, t, path, cpu, &caches, sd_energy_source(probe));
        char name[96];
        pc.pr.test = i + 1;
        pc.pr.model = path;
        pc.pr.test_name = sd_bench_test_name(row, name, sizeof name);
        pc.pr.n_threads = t->threads;
        if (!model_ok) {
            snprintf(row->error, sizeof row->error, "%s", model_err);
        } else {
            snprintf(row->model_type, sizeof row->model_type, "%s", sd_model_type_name(bm.m));
            snprintf(row->backends, sizeof row->backends, "%s", sd_model_backend(bm.m));
            snprintf(row->gpu_info, sizeof row->gpu_info, "%s", sd_model_gpu_device(bm.m));
            row->n_gpu_layers = sd_model_gpu_layers(bm.m);
            row->model_size = sd_model_weight_bytes(bm.m);
            row->model_n_params = sd_model_n_params(bm.m);
            row->load_ms = bm.load_ms;
            row->load_cached_fraction = bm.cached_fraction;
            snprintf(row->load_cache, sizeof row->load_cache, "%s",
                     isfinite(bm.cached_fraction) ? sd_cache_state_name(bm.cached_fraction) : "unknown");
            if (sd_bench_run_test(c, &bm, c->kv[t->kv], probe, row, on_rep, &pc) == 0) set_roofline(row, c, &bm, c->kv[t->kv]);
            row->peak_rss_bytes = sd_peak_rss_bytes();
        }
        if (row->error[0]) failed++;
        pc.est_done += pc.est_this;
        if (cb && cb->on_row) cb->on_row(row, cb->ud);
    }
    if (bm.m) sd_model_free(bm.m);
    sd_energy_close(probe);
    free(row);
    free(tests);
    return stopped ? -1 : failed;
}
