/* Markdown and JSON writers for `showdown ppl` (see ppl_report.h). */
#include <math.h>
#include <stdio.h>

#include "bench/emit.h"
#include "eval/ppl_report.h"

/* Small KL divergences (1e-7 for F16) would print as 0.000000 in fixed
 * notation: switch to scientific below 1e-3. */
static const char *num(char *buf, size_t n, double v)
{
    snprintf(buf, n, v != 0 && fabs(v) < 1e-3 ? "%.3e" : "%.6f", v);
    return buf;
}

static void md_header(FILE *f, const sd_ppl_info *in, const sd_ppl_result *r, const char *what, int sweep)
{
    fprintf(f, "%-7s %s (%s)\n", what, in->model, in->model_type);
    if (in->base) fprintf(f, "base    %s (%s)\n", in->base, in->base_type);
    fprintf(f, "text    %s: %zu bytes, %d tokens with BOS -> %d window%s of %d", in->text_path, in->text_bytes,
            r->n_tokens, r->n_windows, r->n_windows == 1 ? "" : "s", r->n_ctx);
    int tail = r->n_tokens - r->n_windows * r->n_ctx;
    if (tail) fprintf(f, " (last %d tokens unused)", tail);
    fprintf(f, "\nscored  %lld tokens: the second half of each window (predictions %d..%d), BOS at each window's start\n",
            (long long)r->n_scored, r->n_ctx / 2 + 1, r->n_ctx - 1);
    fprintf(f, "run     %d threads, KV cache %s", in->n_threads, in->kv);
    if (sweep) fputs(", each format measured against the base on the same windows\n", f);
    else fprintf(f, ", %.2f s\n", r->seconds);
    if (r->n_windows == 1)
        fputs("note    one window only: the ± comes from the tokens of a single passage\n", f);
}

void sd_ppl_write_md(FILE *f, const sd_ppl_info *in, const sd_ppl_result *r)
{
    char a[32], b[32];
    md_header(f, in, r, "model", 0);
    fputs("\n| statistic | value |\n|---|---|\n", f);
    fprintf(f, "| PPL | %.4f ± %.4f |\n", r->ppl, r->ppl_err);
    if (!r->has_base) return;
    fprintf(f, "| PPL (base) | %.4f ± %.4f |\n", r->base_ppl, r->base_ppl_err);
    fprintf(f, "| PPL ratio (model / base) | %.6f ± %.6f |\n", r->ratio, r->ratio_err);
    fprintf(f, "| ln(PPL ratio) | %s ± %s |\n", num(a, sizeof a, r->ln_ratio), num(b, sizeof b, r->ln_ratio_se));
    fprintf(f, "| mean KLD | %s ± %s |\n", num(a, sizeof a, r->kld.mean), num(b, sizeof b, r->kld.se));
    const struct { const char *k; double v; } q[] = {
        {"max KLD", r->kld.max}, {"99.9% KLD", r->kld.p999}, {"99% KLD", r->kld.p99},
        {"95% KLD", r->kld.p95}, {"90% KLD", r->kld.p90}, {"median KLD", r->kld.median},
        {"min KLD", r->kld.min},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) fprintf(f, "| %s | %s |\n", q[i].k, num(a, sizeof a, q[i].v));
    fprintf(f, "| same top-1 token | %.3f ± %.3f %% |\n", 100 * r->top1, 100 * r->top1_se);
    fprintf(f, "| mean Δp | %.4f ± %.4f %% |\n", 100 * r->dp_mean, 100 * r->dp_se);
    fprintf(f, "| RMS Δp | %.4f ± %.4f %% |\n", 100 * r->dp_rms, 100 * r->dp_rms_se);
    fputs("\nKLD = KL(base || model) per scored token, in nats; Δp = p_model(next token) - p_base(next token);\n"
          "± = standard error of the mean over scored tokens (PPL: propagated from the mean NLL).\n", f);
}

/* JSON numbers: NaN and infinities have no spelling there. */
static void jnum(FILE *f, const char *key, double v)
{
    if (isfinite(v)) fprintf(f, ",\"%s\":%.9g", key, v);
    else fprintf(f, ",\"%s\":null", key);
}

static void json_result(FILE *f, const sd_ppl_result *r)
{
    fprintf(f, "\"n_tokens\":%d,\"n_ctx\":%d,\"n_windows\":%d,\"n_scored\":%lld", r->n_tokens, r->n_ctx,
            r->n_windows, (long long)r->n_scored);
    jnum(f, "seconds", r->seconds);
    jnum(f, "nll", r->nll);
    jnum(f, "nll_se", r->nll_se);
    jnum(f, "ppl", r->ppl);
    jnum(f, "ppl_err", r->ppl_err);
    if (!r->has_base) return;
    const struct { const char *k; double v; } q[] = {
        {"base_ppl", r->base_ppl}, {"base_ppl_err", r->base_ppl_err}, {"ppl_ratio", r->ratio},
        {"ppl_ratio_err", r->ratio_err}, {"ln_ppl_ratio", r->ln_ratio}, {"ln_ppl_ratio_se", r->ln_ratio_se},
        {"kld_mean", r->kld.mean}, {"kld_se", r->kld.se}, {"kld_median", r->kld.median},
        {"kld_min", r->kld.min}, {"kld_max", r->kld.max}, {"kld_p90", r->kld.p90}, {"kld_p95", r->kld.p95},
        {"kld_p99", r->kld.p99}, {"kld_p999", r->kld.p999}, {"top1", r->top1}, {"top1_se", r->top1_se},
        {"dp_mean", r->dp_mean}, {"dp_se", r->dp_se}, {"dp_rms", r->dp_rms}, {"dp_rms_se", r->dp_rms_se},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) jnum(f, q[i].k, q[i].v);
}

static void json_info(FILE *f, const sd_ppl_info *in)
{
    fputs("\"model\":", f);
    sd_json_string(f, in->model);
    fputs(",\"model_type\":", f);
    sd_json_string(f, in->model_type);
    if (in->base) {
        fputs(",\"base\":", f);
        sd_json_string(f, in->base);
        fputs(",\"base_type\":", f);
        sd_json_string(f, in->base_type);
    }
    fputs(",\"text\":", f);
    sd_json_string(f, in->text_path);
    fprintf(f, ",\"text_bytes\":%zu,\"threads\":%d,\"kv\":", in->text_bytes, in->n_threads);
    sd_json_string(f, in->kv);
    fputs(",\"scoring\":\"second half of each window, BOS at window start (llama.cpp perplexity)\"", f);
}

void sd_ppl_write_json(FILE *f, const sd_ppl_info *in, const sd_ppl_result *r)
{
    fputc('{', f);
    json_info(f, in);
    fputc(',', f);
    json_result(f, r);
    fputs("}\n", f);
}

static const sd_ppl_result *first_ok(const sd_sweep_row *rows, int n)
{
    for (int i = 0; i < n; i++)
        if (rows[i].ok) return &rows[i].r;
    return NULL;
}

void sd_sweep_write_md(FILE *f, const sd_ppl_info *in, const sd_sweep_row *rows, int n)
{
    const sd_ppl_result *r0 = first_ok(rows, n);
    if (r0) {
        md_header(f, in, r0, "base", 1);
        fprintf(f, "base PPL %.4f ± %.4f\n", r0->base_ppl, r0->base_ppl_err);
    }
    fputs("\n| format | bits/weight | fallback | matrix formats written | PPL | PPL ratio | mean KLD | "
          "99% KLD | same top-1 | RMS Δp |\n|---|---:|---|---|---:|---:|---:|---:|---:|---:|\n", f);
    for (int i = 0; i < n; i++) {
        const sd_sweep_row *w = &rows[i];
        if (!w->ok) {
            fprintf(f, "| %s | | | failed: ", w->type);
            sd_md_cell(f, w->err);
            fputs(" | | | | | | |\n", f);
            continue;
        }
        char a[32], b[32], c[32];
        fprintf(f, "| %s | %.3f | ", w->type, w->bpw);
        if (w->n_fallback) fprintf(f, "%d of %d matrices", w->n_fallback, w->n_matrices);
        else fputs("none", f);
        fprintf(f, " | %s | %.4f ± %.4f | %.4f ± %.4f | %s ± %s | %s | %.2f %% | %.3f %% |\n", w->formats, w->r.ppl,
                w->r.ppl_err, w->r.ratio, w->r.ratio_err, num(a, sizeof a, w->r.kld.mean),
                num(b, sizeof b, w->r.kld.se), num(c, sizeof c, w->r.kld.p99), 100 * w->r.top1, 100 * w->r.dp_rms);
    }
    fputs("\nbits/weight: the quantized file's tensor bytes x 8 / parameters (norms and all); fallback: matrices\n"
          "whose rows do not divide into the format's blocks, stored in another format (see matrix formats);\n"
          "KLD = KL(base || quantized) per scored token in nats, ± its standard error; the base is -m as\n"
          "given (a quantized base is requantized from its decoded weights, so this is the second loss only).\n", f);
}

void sd_sweep_write_json(FILE *f, const sd_ppl_info *in, const sd_sweep_row *rows, int n)
{
    fputc('{', f);
    json_info(f, in);
    fputs(",\"formats\":[", f);
    for (int i = 0; i < n; i++) {
        const sd_sweep_row *w = &rows[i];
        fputs(i ? ",\n{\"type\":" : "\n{\"type\":", f);
        sd_json_string(f, w->type);
        if (!w->ok) {
            fputs(",\"error\":", f);
            sd_json_string(f, w->err);
            fputc('}', f);
            continue;
        }
        jnum(f, "bpw", w->bpw);
        fprintf(f, ",\"n_matrices\":%d,\"n_fallback\":%d,\"matrix_formats\":", w->n_matrices, w->n_fallback);
        sd_json_string(f, w->formats);
        fputc(',', f);
        json_result(f, &w->r);
        fputc('}', f);
    }
    fputs("]}\n", f);
}
