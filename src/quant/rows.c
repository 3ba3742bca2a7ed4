/* Chunked, multi-threaded row encoding into a GGUF writer. Each chunk is
 * split between the pool's threads by rows; every thread fills and encodes
 * its own rows, then the chunk is written in order, so the bytes never depend
 * on the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/rows.h"
#include "showdown.h"
#include "tensor/types.h"

#define CHUNK_VALUES (4 << 20)   /* floats per chunk: 16 MiB of F32 scratch */

float sd_nvfp4_scale(float amax)
{
    if (!(amax > 0) || !isfinite(amax)) return 1.0f;
    return amax / (6.0f * 448.0f);
}

typedef struct {
    sd_rows_fn fn;
    void *ctx;
    int64_t row0, nrows, n_per_row;
    float *f32;             /* nrows * n_per_row */
    /* encoding */
    uint32_t type;
    float scale;
    uint8_t *out;
    size_t row_bytes;
    /* amax */
    float *amax;            /* one per thread */
} chunk_job;

static void share(int64_t n, int i, int k, int64_t *a, int64_t *b)
{
    *a = n * i / k;
    *b = n * (i + 1) / k;
}

static void encode_share(void *arg, int i, int k)
{
    chunk_job *j = arg;
    int64_t a, b;
    share(j->nrows, i, k, &a, &b);
    if (a == b) return;
    float *src = j->f32 + a * j->n_per_row;
    j->fn(j->ctx, j->row0 + a, b - a, src);
    void *dst = j->out + (size_t)a * j->row_bytes;
    int64_t n = (b - a) * j->n_per_row;
    if (j->type == SD_TYPE_NVFP4) sd_quantize_nvfp4_scaled(src, dst, n, j->scale);
    else sd_type_get(j->type)->from_float(src, dst, n);  /* blocks never straddle rows */
}

static void amax_share(void *arg, int i, int k)
{
    chunk_job *j = arg;
    int64_t a, b;
    share(j->nrows, i, k, &a, &b);
    if (a == b) return;
    float *src = j->f32 + a * j->n_per_row, m = j->amax[i];
    j->fn(j->ctx, j->row0 + a, b - a, src);
    for (int64_t x = 0; x < (b - a) * j->n_per_row; x++) {
        float v = fabsf(src[x]);
        if (v > m) m = v;
    }
    j->amax[i] = m;
}

static void run(sd_pool *pool, void (*fn)(void *, int, int), chunk_job *j)
{
    if (pool) sd_pool_run(pool, fn, j);
    else fn(j, 0, 1);
}

static int64_t chunk_rows(int64_t nrows, int64_t n_per_row)
{
    int64_t r = CHUNK_VALUES / n_per_row;
    if (r < 1) r = 1;
    return r < nrows ? r : nrows;
}

int sd_rows_amax(sd_pool *pool, int64_t nrows, int64_t n_per_row, sd_rows_fn fn, void *ctx, float *amax)
{
    int nt = pool ? sd_pool_size(pool) : 1;
    int64_t cr = chunk_rows(nrows, n_per_row);
    chunk_job j = {.fn = fn, .ctx = ctx, .n_per_row = n_per_row};
    j.f32 = malloc((size_t)(cr * n_per_row) * sizeof(float));
    j.amax = calloc((size_t)nt, sizeof(float));
    if (!j.f32 || !j.amax) { free(j.f32); free(j.amax); return -1; }
    for (int64_t r = 0; r < nrows; r += cr) {
        j.row0 = r;
        j.nrows = nrows - r < cr ? nrows - r : cr;
        run(pool, amax_share, &j);
    }
    float m = 0;
    for (int i = 0; i < nt; i++) m = j.amax[i] > m ? j.amax[i] : m;
    *amax = m;
    free(j.f32);
    free(j.amax);
    return 0;
}

int sd_rows_encode(sd_pool *pool, uint32_t type, float scale, int64_t nrows, int64_t n_per_row, sd_rows_fn fn,
                   void *ctx, void *dst)
{
    const sd_type_traits *tr = sd_type_get(type);
    size_t rb = sd_row_bytes(type, n_per_row);
    if (!tr || !tr->from_float || !rb) return -1;
    int64_t cr = chunk_rows(nrows, n_per_row);
    chunk_job j = {.fn = fn, .ctx = ctx, .n_per_row = n_per_row, .type = type, .scale = scale, .row_bytes = rb};
    if (!(j.f32 = malloc((size_t)(cr * n_per_row) * sizeof(float)))) return -1;
    for (int64_t r = 0; r < nrows; r += cr) {
        j.row0 = r;
        j.nrows = nrows - r < cr ? nrows - r : cr;
        j.out = (uint8_t *)dst + (size_t)r * rb;
        run(pool, encode_share, &j);
    }
    free(j.f32);
    return 0;
}

int sd_rows_write(gguf_writer *w, const char *path, sd_pool *pool, uint32_t type, float scale, int64_t nrows,
                  int64_t n_per_row, sd_rows_fn fn, void *ctx, char *err)
{
    const sd_type_traits *tr = sd_type_get(type);
    size_t rb = sd_row_bytes(type, n_per_row);
    if (!tr || !tr->from_float || !rb) {
        snprintf(err, SD_ERR_LEN, "%s: cannot encode rows of %lld values as %s", path, (long long)n_per_row,
                 sd_type_name(type));
        return -1;
    }
    int64_t cr = chunk_rows(nrows, n_per_row);
    chunk_job j = {.fn = fn, .ctx = ctx, .n_per_row = n_per_row, .type = type, .scale = scale, .row_bytes = rb};
    j.f32 = malloc((size_t)(cr * n_per_row) * sizeof(float));
    j.out = malloc((size_t)cr * rb);
    if (!j.f32 || !j.out) {
        free(j.f32);
        free(j.out);
        snprintf(err, SD_ERR_LEN, "%s: out of memory for a chunk of %lld rows", path, (long long)cr);
        return -1;
    }
    int rc = 0;
    for (int64_t r = 0; r < nrows && !rc; r += cr) {
        j.row0 = r;
        j.nrows = nrows - r < cr ? nrows - r : cr;
        run(pool, encode_share, &j);
        rc = gguf_writer_write(w, j.out, (size_t)j.nrows * rb, err);
    }
    free(j.f32);
    free(j.out);
    return rc;
}
