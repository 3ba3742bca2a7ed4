/* The GGUF reader: real files parse, and hostile ones are refused with a
 * message naming the problem (never a crash). Hostile files are built byte by
 * byte here so each test breaks exactly one thing. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "showdown.h"
#include "gguf/gguf.h"
#include "common.h"

typedef struct { uint8_t b[8192]; size_t n; } buf;

static void put(buf *x, const void *p, size_t n) { memcpy(x->b + x->n, p, n); x->n += n; }
static void u32(buf *x, uint32_t v) { put(x, &v, 4); }
static void u64(buf *x, uint64_t v) { put(x, &v, 8); }
static void str(buf *x, const char *s) { u64(x, strlen(s)); put(x, s, strlen(s)); }
static void kv_str(buf *x, const char *k, const char *v) { str(x, k); u32(x, GGUF_STRING); str(x, v); }
static void kv_u32(buf *x, const char *k, uint32_t v) { str(x, k); u32(x, GGUF_UINT32); u32(x, v); }
static void tinfo(buf *x, const char *name, uint64_t ne0, uint64_t ne1, uint32_t type, uint64_t off)
{
    str(x, name);
    u32(x, 2);
    u64(x, ne0);
    u64(x, ne1);
    u32(x, type);
    u64(x, off);
}
static void pad(buf *x) { while (x->n % 32) x->b[x->n++] = 0; }

/* A valid file: 2 kvs, two F32 tensors of 8x2 (64 bytes each). */
static void valid(buf *x)
{
    x->n = 0;
    put(x, "GGUF", 4);
    u32(x, 3);
    u64(x, 2);
    u64(x, 2);
    kv_str(x, "general.architecture", "llama");
    kv_u32(x, "llama.block_count", 1);
    tinfo(x, "a", 8, 2, 0, 0);
    tinfo(x, "b", 8, 2, 0, 64);
    pad(x);
    for (int i = 0; i < 32; i++) { float f = (float)i; put(x, &f, 4); }
}

static int parse_fails_with(buf *x, const char *needle)
{
    char err[SD_ERR_LEN] = "";
    gguf_file *f = NULL;
    int rc = gguf_parse(x->b, x->n, "hostile.gguf", &f, err);
    if (rc == 0) { gguf_close(f); return 0; }
    cr_assert(strstr(err, "hostile.gguf: ") == err, "message should name the file: %s", err);
    cr_assert(strstr(err, needle), "expected '%s' in: %s", needle, err);
    return 1;
}

Test(gguf, valid_file_parses)
{
    buf x;
    valid(&x);
    char err[SD_ERR_LEN];
    gguf_file *f;
    cr_assert_eq(gguf_parse(x.b, x.n, "ok.gguf", &f, err), 0, "%s", err);
    cr_assert_eq(f->n_tensors, 2);
    const gguf_tensor *b = gguf_find_tensor(f, "b");
    cr_assert_not_null(b);
    cr_assert_eq(((const float *)b->data)[0], 16.0f);
    uint32_t v;
    cr_assert_eq(gguf_get_u32(f, "llama.block_count", &v, err), 1);
    cr_assert_eq(v, 1);
    gguf_str s;
    cr_assert_eq(gguf_get_str(f, "general.architecture", &s, err), 1);
    cr_assert(gguf_str_eq(s, "llama"));
    cr_assert_eq(gguf_get_str(f, "llama.block_count", &s, err), -1);
    gguf_close(f);
}

Test(gguf, every_truncation_is_refused)
{
    buf x;
    valid(&x);
    size_t full = x.n;
    for (size_t n = 0; n < full; n++) {
        x.n = n;
        char err[SD_ERR_LEN] = "";
        gguf_file *f = NULL;
        int rc = gguf_parse(x.b, n, "cut.gguf", &f, err);
        cr_assert_eq(rc, -1, "truncated at %zu parsed", n);
        cr_assert(strstr(err, "cut.gguf: "), "%s", err);
    }
}

Test(gguf, bad_magic_and_version)
{
    buf x;
    valid(&x);
    x.b[0] = 'X';
    cr_assert(parse_fails_with(&x, "not a GGUF file"));
    valid(&x);
    x.b[4] = 9;
    cr_assert(parse_fails_with(&x, "unsupported GGUF version 9"));
}

Test(gguf, absurd_counts)
{
    buf x;
    valid(&x);
    uint64_t huge = (uint64_t)1 << 60;
    memcpy(x.b + 8, &huge, 8);
    cr_assert(parse_fails_with(&x, "absurd counts"));
    valid(&x);
    memcpy(x.b + 16, &huge, 8);
    cr_assert(parse_fails_with(&x, "absurd counts"));
}

Test(gguf, absurd_string_length)
{
    buf x;
    valid(&x);
    uint64_t huge = UINT64_MAX - 3;
    memcpy(x.b + 24, &huge, 8); /* length of the first key */
    cr_assert(parse_fails_with(&x, "truncated"));
}

Test(gguf, absurd_string_array)
{
    buf x;
    x.n = 0;
    put(&x, "GGUF", 4);
    u32(&x, 3);
    u64(&x, 0);
    u64(&x, 1);
    str(&x, "tokenizer.ggml.tokens");
    u32(&x, GGUF_ARRAY);
    u32(&x, GGUF_STRING);
    u64(&x, (uint64_t)1 << 40);
    cr_assert(parse_fails_with(&x, "strings"));
}

static void one_tensor(buf *x, uint64_t ne0, uint64_t ne1, uint32_t type, uint64_t off, int data_bytes)
{
    x->n = 0;
    put(x, "GGUF", 4);
    u32(x, 3);
    u64(x, 1);
    u64(x, 0);
    tinfo(x, "t", ne0, ne1, type, off);
    pad(x);
    memset(x->b + x->n, 0, (size_t)data_bytes);
    x->n += (size_t)data_bytes;
}

Test(gguf, unknown_tensor_type)
{
    buf x;
    one_tensor(&x, 8, 1, 77, 0, 64);
    cr_assert(parse_fails_with(&x, "unknown or unsupported type 77"));
}

Test(gguf, overflowing_dimensions)
{
    buf x;
    one_tensor(&x, (uint64_t)1 << 40, (uint64_t)1 << 40, 0, 0, 64);
    cr_assert(parse_fails_with(&x, "overflow"));
    one_tensor(&x, 0, 4, 0, 0, 64);
    cr_assert(parse_fails_with(&x, "zero"));
}

Test(gguf, offsets_past_end_or_misaligned)
{
    buf x;
    one_tensor(&x, 8, 2, 0, 32, 64);
    cr_assert(parse_fails_with(&x, "runs past the end"));
    one_tensor(&x, 8, 2, 0, 3, 128);
    cr_assert(parse_fails_with(&x, "not aligned"));
    one_tensor(&x, 8, 2, 0, UINT64_MAX - 31, 64);
    cr_assert(parse_fails_with(&x, "runs past the end"));
}

Test(gguf, row_not_multiple_of_block)
{
    buf x;
    one_tensor(&x, 33, 1, 8 /* Q8_0, block 32 */, 0, 64);
    cr_assert(parse_fails_with(&x, "not a multiple"));
}

Test(gguf, duplicate_tensors)
{
    buf x;
    x.n = 0;
    put(&x, "GGUF", 4);
    u32(&x, 3);
    u64(&x, 2);
    u64(&x, 0);
    tinfo(&x, "same", 8, 1, 0, 0);
    tinfo(&x, "same", 8, 1, 0, 32);
    pad(&x);
    memset(x.b + x.n, 0, 64);
    x.n += 64;
    cr_assert(parse_fails_with(&x, "duplicate tensor 'same'"));
}

Test(gguf, bad_alignment)
{
    buf x;
    x.n = 0;
    put(&x, "GGUF", 4);
    u32(&x, 3);
    u64(&x, 0);
    u64(&x, 1);
    kv_u32(&x, "general.alignment", 24);
    cr_assert(parse_fails_with(&x, "alignment"));
}

Test(gguf, real_files_parse_and_header_only_matches)
{
    const char *names[] = {"models/stories260K.gguf", "models/tiny-q4_k_m.gguf", "models/vocab-llama-spm.gguf"};
    for (size_t i = 0; i < 3; i++) {
        char p[512], err[SD_ERR_LEN];
        gguf_file *f, *h;
        cr_assert_eq(gguf_open(shared_path(p, sizeof p, names[i]), &f, err), 0, "%s", err);
        cr_assert_eq(gguf_open_header(p, &h, err), 0, "%s", err);
        cr_assert_eq(f->n_tensors, h->n_tensors);
        cr_assert_eq(f->n_kv, h->n_kv);
        cr_assert_eq(f->data_offset, h->data_offset);
        for (uint64_t t = 0; t < f->n_tensors; t++) {
            cr_assert_not_null(f->tensors[t].data);
            cr_assert_null(h->tensors[t].data);
            cr_assert_eq(f->tensors[t].n_bytes, h->tensors[t].n_bytes);
        }
        gguf_close(f);
        gguf_close(h);
    }
}

Test(gguf, missing_file_is_named)
{
    char err[SD_ERR_LEN];
    gguf_file *f;
    cr_assert_eq(gguf_open("/nonexistent/x.gguf", &f, err), -1);
    cr_assert(strstr(err, "/nonexistent/x.gguf: cannot open"), "%s", err);
}
