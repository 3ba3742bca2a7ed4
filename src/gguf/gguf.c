/* GGUF reader: every field is checked against the bytes that remain before it
 * is used, and every allocation is bounded by what the file could hold. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "showdown.h"
#include "gguf/gguf.h"
#include "tensor/types.h"

typedef struct {
    const uint8_t *p, *end;
    const char *name;
    char *err;
    int truncated;   /* set when a read ran past the buffer (header-only mode grows it) */
} cursor;

void gguf_msg_clean(char *msg)
{
    for (unsigned char *p = (unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f) *p = '?';
}

int gguf_fail(char *err, const char *name, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, SD_ERR_LEN, "%s: ", name);
    if (n < 0 || n >= SD_ERR_LEN) n = 0;
    va_start(ap, fmt);
    vsnprintf(err + n, SD_ERR_LEN - (size_t)n, fmt, ap);
    va_end(ap);
    gguf_msg_clean(err);
    return -1;
}

static int need(cursor *c, uint64_t n, const char *what)
{
    if ((uint64_t)(c->end - c->p) < n) {
        c->truncated = 1;
        return gguf_fail(c->err, c->name, "truncated file: %s runs past the end", what);
    }
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what)
{
    if (need(c, 4, what)) return -1;
    memcpy(v, c->p, 4);
    c->p += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what)
{
    if (need(c, 8, what)) return -1;
    memcpy(v, c->p, 8);
    c->p += 8;
    return 0;
}

static int rd_str(cursor *c, gguf_str *s, const char *what)
{
    uint64_t len;
    if (rd_u64(c, &len, what)) return -1;
    if (need(c, len, what)) return -1;
    s->ptr = (const char *)c->p;
    s->len = len;
    c->p += len;
    return 0;
}

size_t gguf_vtype_size(uint32_t t)
{
    static const size_t sizes[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < GGUF_VTYPE_COUNT ? sizes[t] : 0;
}

const char *gguf_vtype_name(uint32_t t)
{
    static const char *names[GGUF_VTYPE_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                  "bool", "string", "array", "u64", "i64", "f64"};
    return t < GGUF_VTYPE_COUNT ? names[t] : "unknown";
}

/* One scalar of type t at p into the kv's value union. */
static void load_scalar(gguf_kv *kv, uint32_t t, const uint8_t *p)
{
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
    float f32; uint64_t u64; int64_t i64; double f64;
    switch (t) {
    case GGUF_UINT8: case GGUF_BOOL: memcpy(&u8, p, 1); kv->v.u = u8; kv->v.i = u8; break;
    case GGUF_INT8: memcpy(&i8, p, 1); kv->v.i = i8; break;
    case GGUF_UINT16: memcpy(&u16, p, 2); kv->v.u = u16; break;
    case GGUF_INT16: memcpy(&i16, p, 2); kv->v.i = i16; break;
    case GGUF_UINT32: memcpy(&u32, p, 4); kv->v.u = u32; break;
    case GGUF_INT32: memcpy(&i32, p, 4); kv->v.i = i32; break;
    case GGUF_FLOAT32: memcpy(&f32, p, 4); kv->v.f = f32; break;
    case GGUF_UINT64: memcpy(&u64, p, 8); kv->v.u = u64; break;
    case GGUF_INT64: memcpy(&i64, p, 8); kv->v.i = i64; break;
    case GGUF_FLOAT64: memcpy(&f64, p, 8); kv->v.f = f64; break;
    }
}

static int read_kv(cursor *c, gguf_kv *kv, uint64_t idx)
{
    char what[64];
    snprintf(what, sizeof what, "metadata entry %llu", (unsigned long long)idx);
    if (rd_str(c, &kv->key, what) || rd_u32(c, &kv->type, what)) return -1;
    if (kv->type == GGUF_STRING) return rd_str(c, &kv->v.s, what);
    if (kv->type == GGUF_ARRAY) {
        if (rd_u32(c, &kv->arr_type, what) || rd_u64(c, &kv->arr_n, what)) return -1;
        if (kv->arr_type == GGUF_STRING) {
            /* Each string needs at least its 8-byte length: bounds the allocation. */
            if (kv->arr_n > (uint64_t)(c->end - c->p) / 8) {
                c->truncated = 1;
                return gguf_fail(c->err, c->name, "truncated file or absurd count: %.*s has %llu strings",
                                 (int)(kv->key.len > 80 ? 80 : kv->key.len), kv->key.ptr,
                                 (unsigned long long)kv->arr_n);
            }
            kv->arr_str = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof *kv->arr_str);
            if (!kv->arr_str) return gguf_fail(c->err, c->name, "out of memory reading %s", what);
            for (uint64_t i = 0; i < kv->arr_n; i++)
                if (rd_str(c, &kv->arr_str[i], what)) return -1;
            return 0;
        }
        size_t es = gguf_vtype_size(kv->arr_type);
        if (!es) return gguf_fail(c->err, c->name, "%s: arrays of %s are not supported", what,
                                  gguf_vtype_name(kv->arr_type));
        if (kv->arr_n > UINT64_MAX / es || need(c, kv->arr_n * es, what)) {
            c->truncated = 1;
            return gguf_fail(c->err, c->name, "truncated file or absurd count: array of %llu elements in %s",
                             (unsigned long long)kv->arr_n, what);
        }
        kv->arr_data = c->p;
        c->p += kv->arr_n * es;
        return 0;
    }
    size_t sz = gguf_vtype_size(kv->type);
    if (!sz) return gguf_fail(c->err, c->name, "%s has unknown value type %u", what, kv->type);
    if (need(c, sz, what)) return -1;
    load_scalar(kv, kv->type, c->p);
    c->p += sz;
    return 0;
}

static int read_tensor_info(cursor *c, gguf_tensor *t, uint64_t idx)
{
    char what[64];
    snprintf(what, sizeof what, "tensor info %llu", (unsigned long long)idx);
    if (rd_str(c, &t->name, what) || rd_u32(c, &t->n_dims, what)) return -1;
    int nl = (int)(t->name.len > 64 ? 64 : t->name.len);
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return gguf_fail(c->err, c->name, "tensor '%.*s' has %u dimensions (1 to %d allowed)", nl,
                         t->name.ptr, t->n_dims, GGUF_MAX_DIMS);
    uint64_t n = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && rd_u64(c, &ne, what)) return -1;
        if (ne == 0 || ne > (uint64_t)INT64_MAX || n > (uint64_t)INT64_MAX / ne)
            return gguf_fail(c->err, c->name, "tensor '%.*s' has dimensions that are zero or overflow",
                             nl, t->name.ptr);
        t->ne[d] = (int64_t)ne;
        n *= ne;
    }
    t->n_elements = n;
    if (rd_u32(c, &t->type, what) || rd_u64(c, &t->offset, what)) return -1;
    const sd_type_traits *tr = sd_type_get(t->type);
    if (!tr)
        return gguf_fail(c->err, c->name, "tensor '%.*s' has unknown or unsupported type %u", nl,
                         t->name.ptr, t->type);
    if (t->ne[0] % tr->block)
        return gguf_fail(c->err, c->name, "tensor '%.*s': row length %lld is not a multiple of %s's block of %d",
                         nl, t->name.ptr, (long long)t->ne[0], tr->name, tr->block);
    uint64_t blocks = n / (uint64_t)tr->block;
    if (blocks > UINT64_MAX / (uint64_t)tr->block_bytes)
        return gguf_fail(c->err, c->name, "tensor '%.*s' is too large", nl, t->name.ptr);
    t->n_bytes = blocks * (uint64_t)tr->block_bytes;
    return 0;
}

int gguf_str_eq(gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

static int name_cmp(const gguf_str *a, const gguf_str *b)
{
    size_t n = a->len < b->len ? (size_t)a->len : (size_t)b->len;
    int r = memcmp(a->ptr, b->ptr, n);
    return r ? r : (a->len > b->len) - (a->len < b->len);
}

static int tensor_ptr_cmp(const void *a, const void *b)
{
    return name_cmp(&(*(const gguf_tensor *const *)a)->name, &(*(const gguf_tensor *const *)b)->name);
}

/* Duplicate tensor names make "which one is meant" ambiguous: refuse them. */
static int check_duplicates(gguf_file *f, char *err)
{
    if (f->n_tensors < 2) return 0;
    const gguf_tensor **s = malloc(f->n_tensors * sizeof *s);
    if (!s) return gguf_fail(err, f->path, "out of memory");
    for (uint64_t i = 0; i < f->n_tensors; i++) s[i] = &f->tensors[i];
    qsort(s, f->n_tensors, sizeof *s, tensor_ptr_cmp);
    int rc = 0;
    for (uint64_t i = 1; i < f->n_tensors && !rc; i++)
        if (!name_cmp(&s[i - 1]->name, &s[i]->name))
            rc = gguf_fail(err, f->path, "duplicate tensor '%.*s'", (int)(s[i]->name.len > 64 ? 64 : s[i]->name.len),
                           s[i]->name.ptr);
    free(s);
    return rc;
}

static void free_parsed(gguf_file *f)
{
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++) free(f->kv[i].arr_str);
    free(f->kv);
    free(f->tensors);
    f->kv = NULL;
    f->tensors = NULL;
}

/* Parses buf[0..len) of a file of file_size bytes. When len < file_size only
 * the header is available and tensor data pointers stay NULL. */
static int parse(gguf_file *f, const uint8_t *buf, size_t len, uint64_t file_size, int *truncated, char *err)
{
    cursor c = {buf, buf + len, f->path, err, 0};
    uint32_t magic;
    *truncated = 0;
    if (rd_u32(&c, &magic, "magic")) goto out;
    if (memcmp(&magic, "GGUF", 4)) {
        gguf_fail(err, f->path, "not a GGUF file (bad magic)");
        return -1;
    }
    if (rd_u32(&c, &f->version, "version")) goto out;
    if (f->version != 2 && f->version != 3) {
        gguf_fail(err, f->path, "unsupported GGUF version %u (2 and 3 are supported)", f->version);
        return -1;
    }
    if (rd_u64(&c, &f->n_tensors, "tensor count") || rd_u64(&c, &f->n_kv, "metadata count")) goto out;
    /* A kv needs >= 12 bytes, a tensor info >= 28: counts beyond that are lies. */
    if (f->n_kv > (file_size - (uint64_t)(c.p - buf)) / 12 || f->n_tensors > file_size / 28) {
        gguf_fail(err, f->path, "absurd counts: %llu metadata entries, %llu tensors in a %llu-byte file",
                  (unsigned long long)f->n_kv, (unsigned long long)f->n_tensors, (unsigned long long)file_size);
        return -1;
    }
    f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors) { gguf_fail(err, f->path, "out of memory"); return -1; }
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (read_kv(&c, &f->kv[i], i)) goto out;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (read_tensor_info(&c, &f->tensors[i], i)) goto out;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find(f, "general.alignment");
    if (al) {
        if (al->type != GGUF_UINT32 || al->v.u == 0 || (al->v.u & (al->v.u - 1)) || al->v.u > 65536) {
            gguf_fail(err, f->path, "general.alignment must be a power of two u32 up to 65536");
            return -1;
        }
        f->alignment = al->v.u;
    }
    uint64_t off = (uint64_t)(c.p - buf);
    f->data_offset = (off + f->alignment - 1) / f->alignment * f->alignment;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        int nl = (int)(t->name.len > 64 ? 64 : t->name.len);
        if (t->offset % f->alignment) {
            gguf_fail(err, f->path, "tensor '%.*s' data offset %llu is not aligned to %llu", nl, t->name.ptr,
                      (unsigned long long)t->offset, (unsigned long long)f->alignment);
            return -1;
        }
        if (t->offset > file_size || f->data_offset > file_size - t->offset ||
            t->n_bytes > file_size - f->data_offset - t->offset) {
            gguf_fail(err, f->path, "tensor '%.*s' data (%llu bytes at offset %llu) runs past the end of the file",
                      nl, t->name.ptr, (unsigned long long)t->n_bytes, (unsigned long long)t->offset);
            return -1;
        }
        t->data = len == file_size ? buf + f->data_offset + t->offset : NULL;
    }
    if (check_duplicates(f, err)) return -1;
    f->base = buf;
    f->base_len = len;
    f->file_size = file_size;
    return 0;
out:
    *truncated = c.truncated;
    return -1;
}

static gguf_file *new_file(const char *name)
{
    gguf_file *f = calloc(1, sizeof *f);
    if (f) snprintf(f->path, sizeof f->path, "%s", name);
    return f;
}

int gguf_parse(const void *buf, size_t len, const char *name, gguf_file **out, char *err)
{
    int trunc;
    gguf_file *f = new_file(name);
    if (!f) return gguf_fail(err, name, "out of memory");
    if (parse(f, buf, len, len, &trunc, err)) {
        gguf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

static int open_file(const char *path, int *fd, uint64_t *size, char *err)
{
    struct stat st;
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return gguf_fail(err, path, "cannot open: %s", strerror(errno));
    if (fstat(*fd, &st) || !S_ISREG(st.st_mode)) {
        close(*fd);
        return gguf_fail(err, path, "not a regular file");
    }
    *size = (uint64_t)st.st_size;
    if (*size < 24) {
        close(*fd);
        return gguf_fail(err, path, "truncated file: %llu bytes is too short for a GGUF header",
                         (unsigned long long)*size);
    }
    return 0;
}

int gguf_open(const char *path, gguf_file **out, char *err)
{
    int fd, trunc;
    uint64_t size;
    if (open_file(path, &fd, &size, err)) return -1;
    if (size > SIZE_MAX) { close(fd); return gguf_fail(err, path, "file too large to map"); }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return gguf_fail(err, path, "cannot map: %s", strerror(errno));
    gguf_file *f = new_file(path);
    if (!f) { munmap(map, (size_t)size); return gguf_fail(err, path, "out of memory"); }
    f->map = map;
    f->map_len = (size_t)size;
    if (parse(f, map, (size_t)size, size, &trunc, err)) {
        gguf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

int gguf_open_header(const char *path, gguf_file **out, char *err)
{
    int fd, trunc = 1;
    uint64_t size;
    if (open_file(path, &fd, &size, err)) return -1;
    gguf_file *f = new_file(path);
    if (!f) { close(fd); return gguf_fail(err, path, "out of memory"); }
    /* Read a growing prefix until the header parses: headers are kilobytes to
     * a few megabytes (vocabularies), the data behind them may be 40 GB. */
    size_t want = 1 << 20;
    const size_t max_header = (size_t)1 << 30;
    int rc = -1;
    for (;;) {
        size_t n = size < want ? (size_t)size : want;
        if (n > max_header) { gguf_fail(err, path, "header larger than 1 GiB"); break; }
        uint8_t *nb = realloc(f->owned, n);
        if (!nb) { gguf_fail(err, path, "out of memory"); break; }
        f->owned = nb;
        ssize_t r = pread(fd, nb, n, 0);
        if (r != (ssize_t)n) { gguf_fail(err, path, "read error"); break; }
        free_parsed(f);
        rc = parse(f, nb, n, size, &trunc, err);
        if (rc == 0 || !trunc || n == size) break;
        want *= 4;
    }
    close(fd);
    if (rc) { gguf_close(f); return -1; }
    *out = f;
    return 0;
}

void gguf_close(gguf_file *f)
{
    if (!f) return;
    free_parsed(f);
    if (f->map) munmap(f->map, f->map_len);
    free(f->owned);
    free(f);
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key)
{
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (gguf_str_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static int is_unsigned(uint32_t t) { return t == GGUF_UINT8 || t == GGUF_UINT16 || t == GGUF_UINT32 || t == GGUF_UINT64 || t == GGUF_BOOL; }
static int is_signed(uint32_t t) { return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64; }

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, char *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (is_unsigned(kv->type)) { *out = kv->v.u; return 1; }
    if (is_signed(kv->type) && kv->v.i >= 0) { *out = (uint64_t)kv->v.i; return 1; }
    return gguf_fail(err, f->path, "metadata %s must be a non-negative integer", key);
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, char *err)
{
    uint64_t v;
    int r = gguf_get_u64(f, key, &v, err);
    if (r != 1) return r;
    if (v > UINT32_MAX) return gguf_fail(err, f->path, "metadata %s is out of range", key);
    *out = (uint32_t)v;
    return 1;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, char *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (kv->type == GGUF_FLOAT32 || kv->type == GGUF_FLOAT64) { *out = (float)kv->v.f; return 1; }
    if (is_unsigned(kv->type)) { *out = (float)kv->v.u; return 1; }
    if (is_signed(kv->type)) { *out = (float)kv->v.i; return 1; }
    return gguf_fail(err, f->path, "metadata %s must be a number", key);
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, char *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_STRING) return gguf_fail(err, f->path, "metadata %s must be a string", key);
    *out = kv->v.s;
    return 1;
}

const gguf_kv *gguf_get_arr(const gguf_file *f, const char *key, uint32_t arr_type)
{
    const gguf_kv *kv = gguf_find(f, key);
    return kv && kv->type == GGUF_ARRAY && kv->arr_type == arr_type ? kv : NULL;
}
