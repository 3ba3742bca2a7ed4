/* Generic transformer operations and the threaded matrix product. */
#include <math.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "tensor/types.h"

void sd_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float s = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * s * w[i];
}

void sd_softmax(float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - mx); sum += x[i]; }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

float sd_silu(float x) { return x / (1.0f + expf(-x)); }

void sd_rope(float *v, int n_heads, int head_dim, int pos, float base, float scale, int neox,
             const float *freq_factors)
{
    int half = head_dim / 2;
    float p = (float)pos / scale;
    for (int i = 0; i < half; i++) {
        float theta = p * powf(base, -2.0f * (float)i / (float)head_dim);
        if (freq_factors) theta /= freq_factors[i];
        float c = cosf(theta), s = sinf(theta);
        for (int h = 0; h < n_heads; h++) {
            float *hv = v + (size_t)h * head_dim;
            int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float x0 = hv[a], x1 = hv[b];
            hv[a] = x0 * c - x1 * s;
            hv[b] = x0 * s + x1 * c;
        }
    }
}

size_t sd_matmul_scratch_bytes(unsigned type, long long cols, int n_tok)
{
    const sd_type_traits *tr = sd_type_get(type);
    if (!tr) return 0;
    return sd_row_bytes((unsigned)tr->vec_dot_type, cols) * (size_t)n_tok;
}

typedef struct {
    const sd_weight *w;
    sd_vec_dot_fn dot;
    const void *xq;
    size_t xq_row;
    int n_tok;
    float *out;
} matmul_job;

/* Each thread takes a contiguous band of weight rows and multiplies it with
 * every token, so a weight row is read from memory once per batch. */
static void matmul_band(void *ctx, int i, int n)
{
    const matmul_job *j = ctx;
    const sd_weight *w = j->w;
    int64_t r0 = w->rows * i / n, r1 = w->rows * (i + 1) / n;
    for (int64_t r = r0; r < r1; r++) {
        const char *row = (const char *)w->data + (size_t)r * w->row_bytes;
        for (int t = 0; t < j->n_tok; t++)
            j->out[(size_t)t * w->rows + r] =
                w->scale * j->dot(w->cols, row, (const char *)j->xq + (size_t)t * j->xq_row);
    }
}

void sd_matmul(sd_pool *pool, const sd_weight *w, const float *x, int n_tok, float *out, void *scratch)
{
    const sd_type_traits *tr = sd_type_get(w->type);
    sd_from_float_fn enc = sd_kernel_quantize_act((unsigned)tr->vec_dot_type);
    size_t xq_row = sd_row_bytes((unsigned)tr->vec_dot_type, w->cols);
    const void *xq = x;
    if (tr->vec_dot_type != 0) {  /* F32 activations are used as they are */
        for (int t = 0; t < n_tok; t++)
            enc(x + (size_t)t * w->cols, (char *)scratch + (size_t)t * xq_row, w->cols);
        xq = scratch;
    }
    matmul_job j = {w, sd_kernel_vec_dot(w->type), xq, xq_row, n_tok, out};
    sd_pool_run(pool, matmul_band, &j);
}
