/* The format-vs-quality sweep (see sweep.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/sweep.h"
#include "gguf/gguf.h"
#include "quant/quantize.h"
#include "quant/recipe.h"
#include "tensor/types.h"
#include "runtime/errf.h"

/* The formats of a file's matrices ("Q4_0 x30, Q6_K x1"), read back from
 * the file itself so the table shows what was written, not what was asked. */
static int census(const char *path, char *out, size_t cap, int *n_matrices, int *n_quantized, char *err)
{
    gguf_file *f = NULL;
    if (gguf_open_header(path, &f, err)) return -1;
    int count[SD_TYPE_COUNT] = {0}, other = 0;
    *n_matrices = *n_quantized = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 255 ? t->name.len : 255), t->name.ptr);
        if (!sd_qrecipe_quantizes(name, (int)t->n_dims)) continue;
        ++*n_matrices;
        if (t->type < SD_TYPE_COUNT) count[t->type]++; else other++;
        if (t->type != SD_TYPE_F32 && t->type != SD_TYPE_F16 && t->type != SD_TYPE_BF16) ++*n_quantized;
    }
    gguf_close(f);
    size_t used = 0;
    out[0] = 0;
    for (int ty = 0; ty < SD_TYPE_COUNT; ty++) {
        if (!count[ty]) continue;
        int w = snprintf(out + used, cap - used, "%s%s x%d", used ? ", " : "", sd_type_name((uint32_t)ty),
                         count[ty]);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
    if (other && used < cap) snprintf(out + used, cap - used, "%sother x%d", used ? ", " : "", other);
    return 0;
}

/* Quantizes and loads one format into *q (NULL with row->err on failure). A
 * quantized base is requantized from its decoded weights. */
static void one_format(const sd_sweep_params *p, const char *tmp, sd_sweep_row *row, int i, int n, sd_model **q)
{
    sd_quantize_params qp = sd_quantize_default_params();
    qp.target = row->type;
    qp.n_threads = p->ppl.n_threads;
    qp.allow_requantize = 1;
    sd_quantize_stats st;
    int n_quant;
    *q = NULL;
    if (p->progress) p->progress(p->progress_ud, i, n, row->type, "quantize");
    if (sd_quantize_file(p->base_path, tmp, &qp, &st, row->err)) return;
    row->n_fallback = st.n_fallback;
    if (census(tmp, row->formats, sizeof row->formats, &row->n_matrices, &n_quant, row->err) ||
        sd_model_load(tmp, q, row->err)) {
        sd_model_free(*q);
        *q = NULL;
        return;
    }
    row->bpw = 8.0 * (double)sd_model_weight_bytes(*q) / (double)sd_model_n_params(*q);
}

int sd_sweep_run(const sd_sweep_params *p, const char *const *types, int n, sd_sweep_row *rows, char *err)
{
    char formats[128];
    int n_mat, n_quant;
    if (census(p->base_path, formats, sizeof formats, &n_mat, &n_quant, err)) return -1;
    for (int i = 0; i < n; i++)
        if (!sd_qrecipe_find(types[i])) {
            char names[512];
            sd_qrecipe_names(names, sizeof names);
            return sd_errf(err, "unknown format '%s' (formats: %s)", types[i], names);
        }

    sd_model *base = NULL;
    if (sd_model_load(p->base_path, &base, err)) return -1;
    /* A text too short for one window would fail every row the same way. */
    int32_t *tok = NULL;
    int n_tok = 0;
    if (sd_tokenize(sd_model_tokenizer(base), p->text, p->len, 1, &tok, &n_tok, err)) {
        sd_model_free(base);
        return -1;
    }
    free(tok);
    if (n_tok < p->ppl.n_ctx) {
        sd_model_free(base);
        return sd_errf(err, "the text is %d tokens, fewer than one window of %d (-c); use -c %d or less",
                          n_tok, p->ppl.n_ctx, n_tok);
    }
    const char *dir = p->tmp_dir ? p->tmp_dir : getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    /* Every format is quantized and loaded first, then all are measured in
     * one pass over the text, so the base runs once per window, not once per
     * format. The files are unlinked once loaded (the mapping keeps them). */
    sd_model **q = calloc((size_t)n, sizeof *q);
    sd_ppl_result *res = calloc((size_t)n, sizeof *res);
    int *idx = calloc((size_t)n, sizeof *idx);
    if (!q || !res || !idx) {
        free(q); free(res); free(idx);
        sd_model_free(base);
        return sd_errf(err, "out of memory");
    }
    int n_ok = 0;
    for (int i = 0; i < n; i++) {
        sd_sweep_row *row = &rows[i];
        memset(row, 0, sizeof *row);
        snprintf(row->type, sizeof row->type, "%s", sd_qrecipe_find(types[i])->name);
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s/showdown-sweep-%ld-%s.gguf", dir, (long)getpid(), row->type);
        one_format(p, tmp, row, i, n, &q[n_ok]);
        unlink(tmp);
        if (q[n_ok]) idx[n_ok++] = i;
    }
    if (n_ok) {
        if (p->progress) p->progress(p->progress_ud, n - 1, n, "all", "measure");
        char merr[SD_ERR_LEN];
        if (sd_ppl_run_many(q, n_ok, base, p->text, p->len, &p->ppl, res, merr))
            for (int j = 0; j < n_ok; j++) snprintf(rows[idx[j]].err, sizeof rows[idx[j]].err, "%s", merr);
        else
            for (int j = 0; j < n_ok; j++) { rows[idx[j]].r = res[j]; rows[idx[j]].ok = 1; }
    }
    for (int j = 0; j < n_ok; j++) sd_model_free(q[j]);
    free(q); free(res); free(idx);
    sd_model_free(base);
    return 0;
}
