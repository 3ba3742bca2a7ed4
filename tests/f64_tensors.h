/* What the float64 derivations of a model (test_moe_derive.c,
 * qwen3next_derive.h) share: a GGUF file's tensors dequantized to doubles,
 * cached by name, and RMS norm. They read only the GGUF tensors, never
 * model/ or kernels/ code. */
#ifndef SD_TESTS_F64_TENSORS_H
#define SD_TESTS_F64_TENSORS_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tensor/types.h"

#define F64_MAX_TENSORS 512

typedef struct {
    char names[F64_MAX_TENSORS][64];
    double *data[F64_MAX_TENSORS];
    int n;
} f64_tensors;

/* The tensor named by fmt and ap, dequantized to doubles (cached); NULL
 * where the file has none. */
static inline const double *f64_tensor_v(f64_tensors *c, const gguf_file *g, const char *fmt, va_list ap)
{
    char name[64];
    vsnprintf(name, sizeof name, fmt, ap);
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name)) return c->data[i];
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t) return NULL;
    cr_assert_lt(c->n, F64_MAX_TENSORS);
    float *f = malloc(t->n_elements * sizeof *f);
    sd_type_get(t->type)->to_float(t->data, f, (int64_t)t->n_elements);
    double *x = malloc(t->n_elements * sizeof *x);
    for (uint64_t i = 0; i < t->n_elements; i++) x[i] = f[i];
    free(f);
    snprintf(c->names[c->n], 64, "%s", name);
    c->data[c->n] = x;
    return c->data[c->n++];
}

static inline void f64_tensors_free(f64_tensors *c)
{
    for (int i = 0; i < c->n; i++) free(c->data[i]);
    c->n = 0;
}

/* o = x / rms(x) * w (w NULL: 1). */
static inline void rmsnorm(double *o, const double *x, const double *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) o[i] = x[i] * s * (w ? w[i] : 1.0);
}

#endif
