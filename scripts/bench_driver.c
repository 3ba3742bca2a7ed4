/* CPU benchmark driver for `make bench` (scripts/bench-cpu.sh): builds the
 * 1.1B Llama shape (dim 2048, 16 layers, 32 heads, 8 KV heads, FFN 8192,
 * vocab 32000) in memory in one weight format, then times decode and prefill
 * through the library's own session. The weights are a few really quantized
 * random rows tiled over each matrix: the timing depends on the bytes and
 * the kernels, not on the values, and no multi-GB file is written.
 *
 *   bench_driver TYPE [-t threads] [-r reps] [-n decode_tokens] [-p 64,128,512] [-d 0,512,2048,4096]
 *
 * Prints one line per measurement: what, tok/s mean and stdev, and the
 * fraction of the bandwidth ceiling (decode) or of the int8/bf16/f32
 * multiply-add ceiling (prefill) measured by sd_calib_measure.
 *
 * The host's read bandwidth drifts (31-58 GB/s within an hour on the shared
 * development VMs), so a decode figure is also set against the bandwidth
 * measured right around it: the best of four streaming reads before and
 * four after each timed run (the same best-of-eight estimate as the
 * calibration's, so a conservative ceiling). Both fractions are printed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "kernels/dispatch.h"
#include "kernels/pack.h"
#include "measure/calib_kernels.h"
#include "measure/calibrate.h"
#include "model/model.h"
#include "model/session.h"
#include "tensor/types.h"

#define BRACKET_PASSES 4   /* reads of the 1 GiB buffer before and after each decode run */

static uint64_t rng = 88172645463325252ULL;
static float frand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* rows x cols in `type`: 16 encoded random rows, repeated. */
static sd_weight make_weight(uint32_t type, int64_t rows, int64_t cols, uint64_t *bytes)
{
    sd_weight w = {0};
    w.type = type; w.rows = rows; w.cols = cols; w.scale = 1.0f;
    w.row_bytes = sd_row_bytes(type, cols);
    size_t total = w.row_bytes * (size_t)rows;
    char *d = aligned_alloc(64, (total + 63) / 64 * 64);
    float *x = malloc((size_t)cols * sizeof *x);
    const sd_type_traits *tr = sd_type_get(type);
    int seed_rows = rows < 16 ? (int)rows : 16;
    for (int r = 0; r < seed_rows; r++) {
        for (int64_t i = 0; i < cols; i++) x[i] = frand() * 0.05f;
        tr->from_float(x, d + (size_t)r * w.row_bytes, cols);
    }
    for (int64_t r = seed_rows; r < rows; r++) memcpy(d + (size_t)r * w.row_bytes, d + (size_t)(r % 16) * w.row_bytes, w.row_bytes);
    free(x);
    w.data = d;
    *bytes += total;
    return w;
}

static float *ones(int n)
{
    float *v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = 1.0f;
    return v;
}

static sd_model *make_model(uint32_t type, uint64_t *per_token_bytes)
{
    sd_model *m = calloc(1, sizeof *m);
    snprintf(m->path, sizeof m->path, "synthetic-1.1b-%s", sd_type_name(type));
    sd_hparams *hp = &m->hp;
    snprintf(hp->arch_name, sizeof hp->arch_name, "llama");
    hp->n_vocab = 32000; hp->n_embd = 2048; hp->n_layer = 16; hp->n_head = 32; hp->n_head_kv = 8;
    hp->n_ff = 8192; hp->head_dim = 64; hp->n_ctx_train = 8192;
    hp->norm_eps = 1e-5f; hp->rope_base = 10000.0f; hp->rope_scale = 1.0f;
    uint64_t all = 0, stream = 0;
    m->tok_embd = make_weight(type, hp->n_vocab, hp->n_embd, &all);
    m->output = make_weight(type, hp->n_vocab, hp->n_embd, &stream);
    m->output_norm = ones(hp->n_embd);
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    int kvd = hp->n_head_kv * hp->head_dim;
    for (int l = 0; l < hp->n_layer; l++) {
        sd_layer *L = &m->layers[l];
        L->attn_norm = ones(hp->n_embd);
        L->ffn_norm = ones(hp->n_embd);
        L->wq = make_weight(type, hp->n_embd, hp->n_embd, &stream);
        L->wk = make_weight(type, kvd, hp->n_embd, &stream);
        L->wv = make_weight(type, kvd, hp->n_embd, &stream);
        L->wo = make_weight(type, hp->n_embd, hp->n_embd, &stream);
        L->w_gate = make_weight(type, hp->n_ff, hp->n_embd, &stream);
        L->w_up = make_weight(type, hp->n_ff, hp->n_embd, &stream);
        L->w_down = make_weight(type, hp->n_embd, hp->n_ff, &stream);
    }
    /* Repacked as sd_model_load does (SHOWDOWN_REPACK=0: the file's layout). */
    double t0 = sd_time_ms();
    int np = sd_model_pack(m);
    if (np > 0) fprintf(stderr, "bench_driver: repacked %d matrices in %.0f ms\n", np, sd_time_ms() - t0);
    m->weight_bytes = all + stream;
    *per_token_bytes = stream;   /* decode reads every matrix but the embedding once */
    return m;
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (s && *s && n < max) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        if (s) s++;
    }
    return n;
}

static void stats(const double *v, int n, double *mean, double *sd)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* --kernels TYPE: one thread, best of 7 alternating passes, the generic
 * kernel (traits table) against the dispatched one: a matrix-vector product
 * over 96 MB (memory-bound, as decode) and a 64-token product over 2 MB
 * (compute-bound, as prefill). Best-of is robust on a shared machine. */
static int kernels_mode(uint32_t type)
{
    const sd_type_traits *tr = sd_type_get(type);
    int64_t cols = 2048, rows_big = (int64_t)(96e6 / sd_row_bytes(type, cols)) / 16 * 16, rows_small = 512;
    uint64_t bytes = 0;
    sd_weight big = make_weight(type, rows_big, cols, &bytes), small = make_weight(type, rows_small, cols, &bytes);
    size_t xr = sd_row_bytes((uint32_t)tr->vec_dot_type, cols);
    char *xq = malloc(64 * xr);
    float *x = malloc(cols * sizeof *x), *out = malloc((size_t)rows_small * 64 * sizeof *out);
    for (int t = 0; t < 64; t++) {
        for (int i = 0; i < cols; i++) x[i] = frand();
        sd_type_get((uint32_t)tr->vec_dot_type)->from_float(x, xq + t * xr, cols);
    }
    sd_vec_dot_fn dots[2] = {tr->vec_dot, sd_kernel_vec_dot(type)};
    sd_gemm_fn gemm = sd_kernel_gemm(type);
    double best_mv[2] = {1e30, 1e30}, best_mm[3] = {1e30, 1e30, 1e30};
    volatile float sink = 0;
    for (int pass = 0; pass < 7; pass++)
        for (int k = 0; k < 2; k++) {
            double t0 = sd_time_ms();
            for (int64_t r = 0; r < rows_big; r++) sink += dots[k](cols, (const char *)big.data + r * big.row_bytes, xq);
            double dt = sd_time_ms() - t0;
            best_mv[k] = dt < best_mv[k] ? dt : best_mv[k];
            t0 = sd_time_ms();
            for (int64_t r = 0; r < rows_small; r++)
                for (int t = 0; t < 64; t++)
                    out[t * rows_small + r] = dots[k](cols, (const char *)small.data + r * small.row_bytes, xq + t * xr);
            dt = sd_time_ms() - t0;
            best_mm[k] = dt < best_mm[k] ? dt : best_mm[k];
            if (k == 1 && gemm) {
                t0 = sd_time_ms();
                gemm(cols, small.data, small.row_bytes, (int)rows_small, xq, xr, 64, out, (size_t)rows_small);
                dt = sd_time_ms() - t0;
                best_mm[2] = dt < best_mm[2] ? dt : best_mm[2];
            }
        }
    /* The same two products over the 16-row packed layout, when this CPU has it. */
    sd_packed_fn pk = sd_kernel_packed(type);
    double best_pk[2] = {1e30, 1e30};
    if (pk && sd_weight_pack(&big) == 1 && sd_weight_pack(&small) == 1) {
        float *xd = malloc(sd_pack_act_bytes(cols, 64)), *o1 = malloc((size_t)rows_big * sizeof *o1);
        int32_t *xs = (int32_t *)(xd + 64 * (cols / 32));
        for (int pass = 0; pass < 7; pass++) {
            double t0 = sd_time_ms();
            if (tr->vec_dot_type == SD_TYPE_Q8_0) sd_pack_prep_act(cols, xq, xr, 1, xd, xs);
            pk(cols, big.packed, rows_big / 16, 0, (int)(rows_big / 16), xq, xr, xd, xs, 1, o1, (size_t)rows_big);
            double dt = sd_time_ms() - t0;
            best_pk[0] = dt < best_pk[0] ? dt : best_pk[0];
            t0 = sd_time_ms();
            if (tr->vec_dot_type == SD_TYPE_Q8_0) sd_pack_prep_act(cols, xq, xr, 64, xd, xs);
            pk(cols, small.packed, rows_small / 16, 0, (int)(rows_small / 16), xq, xr, xd, xs, 64, out, (size_t)rows_small);
            dt = sd_time_ms() - t0;
            best_pk[1] = dt < best_pk[1] ? dt : best_pk[1];
        }
        free(xd); free(o1);
    }
    double mb = (double)rows_big * big.row_bytes / 1e6, macs = (double)rows_small * cols * 64 / 1e9;
    printf("%-6s matvec GB/s: generic %6.2f  %s %6.2f (x%.2f) | 64-token GMAC/s: generic %6.2f  %s vec_dot %6.2f",
           tr->name, mb / best_mv[0], sd_kernel_isa(), mb / best_mv[1], best_mv[0] / best_mv[1], macs / best_mm[0] * 1e3,
           sd_kernel_isa(), macs / best_mm[1] * 1e3);
    if (gemm) printf("  tile %6.2f (x%.2f over generic)", macs / best_mm[2] * 1e3, best_mm[0] / best_mm[2]);
    if (best_pk[0] < 1e30)
        printf(" | packed: matvec GB/s %6.2f, 64-token GMAC/s %6.2f", mb / best_pk[0], macs / best_pk[1] * 1e3);
    printf("\n");
    (void)sink;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--kernels")) {
        int ty = sd_type_from_name(argv[2]);
        if (ty < 0) { fprintf(stderr, "bench_driver: unknown type %s\n", argv[2]); return 2; }
        setvbuf(stdout, NULL, _IOLBF, 0);
        return kernels_mode((uint32_t)ty);
    }
    if (argc < 2) { fprintf(stderr, "usage: bench_driver TYPE [-t N] [-r N] [-n N] [-p LIST] [-d LIST]\n"); return 2; }
    int type = sd_type_from_name(argv[1]);
    if (type < 0) { fprintf(stderr, "bench_driver: unknown type %s\n", argv[1]); return 2; }
    int threads = 2, reps = 3, n_dec = 32, pp[8] = {64, 128, 512}, npp = 3, depth[8] = {0}, ndepth = 1;
    double bw_override = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-n")) n_dec = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-p")) npp = parse_list(argv[i + 1], pp, 8);
        else if (!strcmp(argv[i], "-d")) ndepth = parse_list(argv[i + 1], depth, 8);
        else if (!strcmp(argv[i], "--bw")) bw_override = atof(argv[i + 1]);
    }
    char err[SD_ERR_LEN];
    sd_calibration cal;
    double bw = bw_override, ops = 0;
    if (sd_calib_measure(&cal, threads, 3.0, 0, err) == 0) {
        if (bw <= 0) bw = cal.bw_gbps[threads];
        ops = type == SD_TYPE_BF16 ? cal.gflops_bf16 : type == SD_TYPE_F16 || type == SD_TYPE_F32 ? cal.gflops_f32 : cal.gops_int8;
    }
    uint64_t tok_bytes;
    sd_model *m = make_model((uint32_t)type, &tok_bytes);
    int max_depth = 0, max_pp = 0;
    for (int i = 0; i < ndepth; i++) max_depth = depth[i] > max_depth ? depth[i] : max_depth;
    for (int i = 0; i < npp; i++) max_pp = pp[i] > max_pp ? pp[i] : max_pp;
    sd_session_params sp = {max_depth + n_dec + max_pp + 8, threads, SD_KV_F16};
    const char *kv = getenv("BENCH_KV");
    if (kv && !strcmp(kv, "q8_0")) sp.kv_type = SD_KV_Q8_0;
    if (kv && !strcmp(kv, "f32")) sp.kv_type = SD_KV_F32;
    sd_session *s;
    if (sd_session_new(m, &sp, &s, err)) { fprintf(stderr, "bench_driver: %s\n", err); return 1; }
    int n_tok = max_depth > max_pp ? max_depth : max_pp;
    int32_t *toks = malloc((size_t)(n_tok + n_dec + 8) * sizeof *toks);
    for (int i = 0; i < n_tok + n_dec + 8; i++) toks[i] = (int32_t)((i * 7919) % 32000);
    double params = (double)(tok_bytes) / sd_type_bpw((uint32_t)type) * 8.0;
    setvbuf(stdout, NULL, _IOLBF, 0);   /* results as they come, also into a file */
    printf("# %s, %d threads, isa %s, %.0f MB read per decoded token, bandwidth %.1f GB/s (ceiling %.1f tok/s), "
           "multiply-add ceiling %.0f G ops/s (%.1f tok/s)\n",
           sd_type_name((uint32_t)type), threads, sd_kernel_isa(), tok_bytes / 1e6, bw, bw * 1e9 / tok_bytes, ops,
           ops * 1e9 / (2 * params));
    /* warm-up: two passes touch every weight page and the KV cache */
    sd_session_eval(s, toks, 8, NULL, err);
    sd_session_eval(s, toks, 1, NULL, err);
    /* Decode at each depth d: the cache holds d positions before the timed
     * tokens. Its contents do not change the work of a decode step, so by
     * default the positions are zeroed cache rows rather than a d-token
     * prefill (BENCH_REAL_DEPTH=1 prefills them instead; slow on a busy box). */
    int real_depth = getenv("BENCH_REAL_DEPTH") && atoi(getenv("BENCH_REAL_DEPTH"));
    size_t kv_bytes = (size_t)m->hp.n_layer * (size_t)s->n_ctx * s->kv_row;
    memset(s->k_cache, 0, kv_bytes);
    memset(s->v_cache, 0, kv_bytes);
    double v[64], dv[8][64], frac[8][64], bwlo[8], bwhi[8];
    for (int di = 0; di < 8; di++) { bwlo[di] = 1e30; bwhi[di] = 0; }
    /* The bracketing reads use sd_calib_measure's buffer size. */
    unsigned long long bw_bytes = sd_calib_bw_bytes();
    unsigned char *bw_buf = malloc(bw_bytes);
    if (!bw_buf) { fprintf(stderr, "bench_driver: cannot allocate the bandwidth buffer\n"); return 1; }
    memset(bw_buf, 1, bw_bytes);
    double bw_prev = sd_calib_bw(bw_buf, bw_bytes, threads, BRACKET_PASSES);
    for (int r = 0; r < reps && r < 64; r++) {
        for (int di = 0; di < ndepth; di++) {
            sd_session_reset(s);
            if (real_depth) {
                for (int cur = 0; cur < depth[di];) {
                    int c = depth[di] - cur < 512 ? depth[di] - cur : 512;
                    sd_session_eval(s, toks + cur, c, NULL, err);
                    cur += c;
                }
            } else {
                s->pos = depth[di];
            }
            double t0 = sd_time_ms();
            for (int i = 0; i < n_dec; i++)
                if (sd_session_eval(s, toks + i, 1, NULL, err)) { fprintf(stderr, "%s\n", err); return 1; }
            dv[di][r] = n_dec / ((sd_time_ms() - t0) / 1e3);
            double bw_next = sd_calib_bw(bw_buf, bw_bytes, threads, BRACKET_PASSES);
            double ceil_bw = bw_next > bw_prev ? bw_next : bw_prev;
            frac[di][r] = 100.0 * dv[di][r] / (ceil_bw * 1e9 / tok_bytes);
            if (ceil_bw < bwlo[di]) bwlo[di] = ceil_bw;
            if (ceil_bw > bwhi[di]) bwhi[di] = ceil_bw;
            bw_prev = bw_next;
        }
    }
    free(bw_buf);
    for (int di = 0; di < ndepth; di++) {
        double mean, sd, fmean, fsd;
        stats(dv[di], reps, &mean, &sd);
        stats(frac[di], reps, &fmean, &fsd);
        printf("tg%d@d%-5d %8.2f +- %5.2f tok/s   %5.1f%% of bandwidth ceiling (weights only);"
               " %5.1f +- %4.1f%% of the bandwidth measured around each run (%.1f-%.1f GB/s)\n",
               n_dec, depth[di], mean, sd, 100.0 * mean / (bw * 1e9 / tok_bytes), fmean, fsd, bwlo[di], bwhi[di]);
    }
    for (int pi = 0; pi < npp; pi++) {
        for (int r = 0; r < reps && r < 64; r++) {
            sd_session_reset(s);
            double t0 = sd_time_ms();
            sd_session_eval(s, toks, pp[pi], NULL, err);
            v[r] = pp[pi] / ((sd_time_ms() - t0) / 1e3);
        }
        double mean, sd;
        stats(v, reps, &mean, &sd);
        printf("pp%-5d   %8.2f +- %5.2f tok/s   %5.1f%% of multiply-add ceiling\n", pp[pi], mean, sd,
               ops > 0 ? 100.0 * mean * 2 * params / (ops * 1e9) : 0);
    }
    return 0;
}
