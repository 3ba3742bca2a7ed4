/* Quantizing a GGUF file: plan every tensor's output format (recipe, then
 * row-length fallback), measure NVFP4 tensors for their per-tensor scale,
 * write the header, then stream each tensor through the row encoder. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quantize.h"
#include "quant/recipe.h"
#include "quant/rows.h"
#include "showdown.h"
#include "tensor/scale.h"
#include "tensor/types.h"

#define NAME_MAX_LEN 256

sd_quantize_params sd_quantize_default_params(void)
{
    sd_quantize_params p;
    memset(&p, 0, sizeof p);
    return p;
}

static int qfail(char *err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int qfail(char *err, const char *path, const char *fmt, ...)
{
    int n = snprintf(err, SD_ERR_LEN, "%s: ", path);
    if (n < 0 || n >= SD_ERR_LEN) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, SD_ERR_LEN - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static void note(const sd_quantize_params *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const sd_quantize_params *p, const char *fmt, ...)
{
    if (!p->note) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->note(p->note_ctx, msg);
}

/* One tensor of the input and what becomes of it. */
typedef struct {
    const gguf_tensor *src;
    char name[NAME_MAX_LEN];
    uint32_t out_type;
    int copy;          /* bytes copied unchanged */
    float scale;       /* NVFP4 per-tensor scale */
} plan_row;

/* Rows of an input tensor converted to F32 (the row encoder's source);
 * scale is the source's own per-tensor factor (NVFP4), 1 otherwise. */
typedef struct { const gguf_tensor *t; size_t row_bytes; float scale; } src_rows;

static void convert_rows(void *ctx, int64_t row0, int64_t n, float *dst)
{
    const src_rows *s = ctx;
    const uint8_t *p = (const uint8_t *)s->t->data + (size_t)row0 * s->row_bytes;
    int64_t m = n * s->t->ne[0];
    sd_type_get(s->t->type)->to_float(p, dst, m);
    if (s->scale != 1.0f)
        for (int64_t i = 0; i < m; i++) dst[i] *= s->scale;
}

static src_rows rows_of(const gguf_file *f, const gguf_tensor *t)
{
    src_rows s = {t, sd_row_bytes(t->type, t->ne[0]), sd_tensor_scale(f, t)};
    return s;
}

static int model_facts(const gguf_file *f, sd_qrecipe_model *m, char *err)
{
    memset(m, 0, sizeof *m);
    m->has_output = gguf_find_tensor(f, "output.weight") != NULL;
    gguf_str arch;
    int r = gguf_get_str(f, "general.architecture", &arch, err);
    if (r < 0) return -1;
    if (r == 0) return 0;  /* not a model we know: the recipes still apply by tensor name */
    char a[64], key[128];
    snprintf(a, sizeof a, "%.*s", (int)(arch.len < 63 ? arch.len : 63), arch.ptr);
    const char *sfx[3] = {"block_count", "attention.head_count", "attention.head_count_kv"};
    int *dst[3] = {&m->n_layer, &m->n_head, &m->n_head_kv};
    for (int i = 0; i < 3; i++) {
        uint32_t v = 0;
        snprintf(key, sizeof key, "%s.%s", a, sfx[i]);
        if (gguf_get_u32(f, key, &v, err) < 0) return -1;
        *dst[i] = v > (1u << 20) ? 0 : (int)v;
    }
    if (!m->n_head_kv) m->n_head_kv = m->n_head;
    /* llama.cpp calls 80-layer llama and qwen2 models 70B */
    m->is_70b = m->n_layer == 80 && (!strcmp(a, "llama") || !strcmp(a, "qwen2"));
    return 0;
}

static int is_float_format(uint32_t t) { return t == SD_TYPE_F32 || t == SD_TYPE_F16 || t == SD_TYPE_BF16; }

/* Decides the output format of every tensor and declares it to the writer. */
static int plan(const gguf_file *f, const sd_qrecipe *r, const sd_quantize_params *p, gguf_writer *w,
                plan_row *rows, sd_quantize_stats *st, char *err)
{
    sd_qrecipe_model m;
    if (model_facts(f, &m, err)) return -1;
    sd_qrecipe_opts o = {p->pure, p->keep_output_f16};
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        plan_row *pr = &rows[i];
        pr->src = t;
        pr->scale = 1.0f;
        if (t->name.len >= NAME_MAX_LEN) return qfail(err, f->path, "tensor name of %llu bytes is too long",
                                                      (unsigned long long)t->name.len);
        memcpy(pr->name, t->name.ptr, t->name.len);
        pr->name[t->name.len] = 0;
        const sd_type_traits *tr = sd_type_get(t->type);
        if (!tr || !tr->to_float)
            return qfail(err, f->path, "tensor %s has format %s, which cannot be read", pr->name,
                         sd_type_name(t->type));
        if (sd_qrecipe_quantizes(pr->name, (int)t->n_dims)) {
            if (!is_float_format(t->type) && !p->allow_requantize)
                return qfail(err, f->path,
                             "tensor %s is already quantized (%s): quantize from an F32, F16 or BF16 file "
                             "(or allow requantizing, which adds a second loss)", pr->name,
                             sd_type_name(t->type));
            int want = sd_qrecipe_tensor_type(r, &o, &m, pr->name, t->ne[0]);
            int got = sd_type_fallback(want, t->ne[0]);
            if (got < 0 || !sd_type_get((uint32_t)got) || !sd_type_get((uint32_t)got)->from_float)
                return qfail(err, f->path, "tensor %s: no format fits rows of %lld values for %s", pr->name,
                             (long long)t->ne[0], sd_type_name((uint32_t)want));
            if (got != want) {
                note(p, "%s: rows of %lld values do not fit %s blocks, using %s", pr->name, (long long)t->ne[0],
                     sd_type_name((uint32_t)want), sd_type_name((uint32_t)got));
                st->n_fallback++;
            }
            pr->out_type = (uint32_t)got;
            if (got != SD_TYPE_F32 && got != SD_TYPE_F16 && got != SD_TYPE_BF16) st->n_quantized++;
        } else {
            /* vectors and norms: F32, as every loader expects */
            pr->out_type = is_float_format(t->type) ? SD_TYPE_F32 : t->type;
        }
        pr->copy = pr->out_type == t->type;
        int nd = (int)t->n_dims;
        if (gguf_writer_add_tensor(w, pr->name, pr->out_type, nd, t->ne, err)) return -1;
    }
    return 0;
}

/* NVFP4 tensors need their largest magnitude before the header is written. */
static int measure_scales(const gguf_file *f, plan_row *rows, sd_pool *pool, gguf_writer *w, char *err)
{
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        plan_row *pr = &rows[i];
        if (pr->out_type != SD_TYPE_NVFP4) continue;
        if (pr->copy) {
            /* copied as it is: its scale goes with it */
            pr->scale = sd_tensor_scale(f, pr->src);
        } else {
            src_rows s = rows_of(f, pr->src);
            int64_t nrows = (int64_t)(pr->src->n_elements / (uint64_t)pr->src->ne[0]);
            float amax;
            if (sd_rows_amax(pool, nrows, pr->src->ne[0], convert_rows, &s, &amax))
                return qfail(err, f->path, "out of memory measuring %s", pr->name);
            pr->scale = sd_nvfp4_scale(amax);
        }
        if (pr->scale != 1.0f) {
            char key[NAME_MAX_LEN + 64];
            snprintf(key, sizeof key, "%s%s", SD_TENSOR_SCALE_PREFIX, pr->name);
            if (gguf_writer_set_f32(w, key, pr->scale)) return qfail(err, f->path, "out of memory");
        }
    }
    return 0;
}

static int copy_metadata(const gguf_file *f, const sd_qrecipe *r, gguf_writer *w, char *err)
{
    size_t plen = strlen(SD_TENSOR_SCALE_PREFIX);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        if (kv->key.len >= plen && !memcmp(kv->key.ptr, SD_TENSOR_SCALE_PREFIX, plen)) continue;
        if (gguf_writer_copy_kv(w, kv)) return qfail(err, f->path, "cannot copy metadata %.*s",
                                                     (int)(kv->key.len > 80 ? 80 : kv->key.len), kv->key.ptr);
    }
    int quantized = r->base != SD_TYPE_F32 && r->base != SD_TYPE_F16 && r->base != SD_TYPE_BF16;
    if (gguf_writer_set_u32(w, "general.file_type", (uint32_t)r->ftype) ||
        (quantized && gguf_writer_set_u32(w, "general.quantization_version", 2)))
        return qfail(err, f->path, "out of memory");
    return 0;
}

static int write_tensors(const gguf_file *f, const char *out_path, const plan_row *rows, sd_pool *pool,
                         gguf_writer *w, sd_quantize_stats *st, char *err)
{
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const plan_row *pr = &rows[i];
        const gguf_tensor *t = pr->src;
        st->in_bytes += t->n_bytes;
        st->out_bytes += gguf_writer_tensor_bytes(w, i);
        if (pr->copy) {
            if (gguf_writer_write(w, t->data, (size_t)t->n_bytes, err)) return -1;
            continue;
        }
        src_rows s = rows_of(f, t);
        int64_t nrows = (int64_t)(t->n_elements / (uint64_t)t->ne[0]);
        if (sd_rows_write(w, out_path, pool, pr->out_type, pr->scale, nrows, t->ne[0], convert_rows, &s, err))
            return -1;
    }
    return 0;
}

int sd_quantize_file(const char *in_path, const char *out_path, const sd_quantize_params *p,
                     sd_quantize_stats *stats, char *err)
{
    sd_quantize_stats st_local;
    sd_quantize_stats *st = stats ? stats : &st_local;
    memset(st, 0, sizeof *st);
    const sd_qrecipe *r = sd_qrecipe_find(p->target);
    if (!r) {
        char names[400];
        sd_qrecipe_names(names, sizeof names);
        return qfail(err, p->target ? p->target : "(none)", "unknown quantization type (valid: %s)", names);
    }
    gguf_file *f = NULL;
    if (gguf_open(in_path, &f, err)) return -1;
    int rc = -1;
    gguf_writer *w = gguf_writer_new();
    plan_row *rows = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *rows);
    int nt = p->n_threads > 0 ? p->n_threads : sd_cpu_count();
    sd_pool *pool = nt > 1 ? sd_pool_new(nt) : NULL;
    if (!w || !rows || (nt > 1 && !pool)) {
        qfail(err, in_path, "out of memory");
        goto done;
    }
    st->n_tensors = (int)f->n_tensors;
    if (copy_metadata(f, r, w, err) || plan(f, r, p, w, rows, st, err) || measure_scales(f, rows, pool, w, err))
        goto done;
    gguf_writer_set_progress(w, p->progress, p->progress_ctx);
    if (gguf_writer_begin(w, out_path, err) || write_tensors(f, out_path, rows, pool, w, st, err) ||
        gguf_writer_finish(w, err))
        goto done;
    rc = 0;
done:
    gguf_writer_free(w);   /* aborts (removes the temporary file) after a failure */
    sd_pool_free(pool);
    free(rows);
    gguf_close(f);
    return rc;
}

int sd_quantize_plan(const char *in_path, const sd_quantize_params *p, sd_quantize_plan_fn fn, void *ctx,
                     char *err)
{
    sd_quantize_stats st;
    memset(&st, 0, sizeof st);
    const sd_qrecipe *r = sd_qrecipe_find(p->target);
    if (!r) return qfail(err, p->target ? p->target : "(none)", "unknown quantization type");
    gguf_file *f = NULL;
    if (gguf_open_header(in_path, &f, err)) return -1;
    gguf_writer *w = gguf_writer_new();
    plan_row *rows = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *rows);
    int rc = -1;
    if (!w || !rows) qfail(err, in_path, "out of memory");
    else if (!plan(f, r, p, w, rows, &st, err)) {
        for (uint64_t i = 0; i < f->n_tensors; i++)
            fn(ctx, rows[i].name, rows[i].src->ne, rows[i].src->type, rows[i].out_type);
        rc = 0;
    }
    gguf_writer_free(w);
    free(rows);
    gguf_close(f);
    return rc;
}
