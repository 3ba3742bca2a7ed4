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

static int sweep_fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SD_ERR_LEN, fmt, ap);
    va_end(ap);
    return -1;
}

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

/* Quantizes, loads and measures one format; fills row (ok or err). */
static void one_format(const sd_sweep_params *p, sd_model *base, const char *tmp, sd_sweep_row *row, int i,
                       int n)
{
    sd_quantize_params qp = sd_quantize_default_params();
    qp.target = row->type;
    qp.n_threads = p->ppl.n_threads;
    sd_quantize_stats st;
    sd_model *q = NULL;
    int n_quant;
    if (p->progress) p->progress(p->progress_ud, i, n, row->type, "quantize");
    if (sd_quantize_file(p->base_path, tmp, &qp, &st, row->err)) return;
    row->n_fallback = st.n_fallback;
    if (census(tmp, row->formats, sizeof row->formats, &row->n_matrices, &n_quant, row->err) ||
        sd_model_load(tmp, &q, row->err))
        goto done;
    row->bpw = 8.0 * (double)sd_model_weight_bytes(q) / (double)sd_model_n_params(q);
    if (p->progress) p->progress(p->progress_ud, i, n, row->type, "measure");
    if (sd_ppl_run(q, base, p->text, p->len, &p->ppl, &row->r, row->err)) goto done;
    row->ok = 1;
done:
    sd_model_free(q);
    unlink(tmp);
}

int sd_sweep_run(const sd_sweep_params *p, const char *const *types, int n, sd_sweep_row *rows, char *err)
{
    /* The base must hold unquantized matrices: quantizing an already
     * quantized file would measure two losses at once. */
    char formats[128];
    int n_mat, n_quant;
    if (census(p->base_path, formats, sizeof formats, &n_mat, &n_quant, err)) return -1;
    if (n_quant)
        return sweep_fail(err, "%s: the sweep needs an F32, F16 or BF16 base model; its matrices are %s",
                          p->base_path, formats);
    for (int i = 0; i < n; i++)
        if (!sd_qrecipe_find(types[i])) {
            char names[512];
            sd_qrecipe_names(names, sizeof names);
            return sweep_fail(err, "unknown format '%s' (formats: %s)", types[i], names);
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
        return sweep_fail(err, "the text is %d tokens, fewer than one window of %d (-c); use -c %d or less",
                          n_tok, p->ppl.n_ctx, n_tok);
    }
    const char *dir = p->tmp_dir ? p->tmp_dir : getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    for (int i = 0; i < n; i++) {
        sd_sweep_row *row = &rows[i];
        memset(row, 0, sizeof *row);
        snprintf(row->type, sizeof row->type, "%s", sd_qrecipe_find(types[i])->name);
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s/showdown-sweep-%ld-%s.gguf", dir, (long)getpid(), row->type);
        one_format(p, base, tmp, row, i, n);
    }
    sd_model_free(base);
    return 0;
}
