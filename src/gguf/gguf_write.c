/* GGUF v3 writer: metadata and tensor infos are kept serialized in memory,
 * the header goes out in one piece with precomputed offsets, then the tensor
 * data is streamed. Every stdio call is checked; a failed write leaves no file
 * under the final name. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf_write.h"
#include "showdown.h"
#include "tensor/types.h"

#define PROGRESS_STEP (64ull << 20)   /* report at least every 64 MiB */

typedef struct {
    char *key;
    uint32_t type;
    uint8_t *val;      /* the value as it appears in the file, after its type */
    size_t val_len;
} wkv;

typedef struct {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t n_bytes, offset;  /* offset: relative to the data section */
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    uint64_t n_t, cap_t;
    uint64_t data_size;        /* padded */
    gguf_progress_fn progress;
    void *progress_ctx;
    /* while writing */
    FILE *fp;
    char *path, *tmp;
    uint64_t alignment, header_size;  /* header_size: padded, = data section offset */
    uint64_t cur, cur_done;    /* tensor being written, bytes of it written */
    uint64_t bytes_done, next_report;
    int failed, slot;          /* slot: in the signal handler's list, or -1 */
};

static int wfail(char *err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int wfail(char *err, const char *path, const char *fmt, ...)
{
    if (!err) return -1;
    int n = snprintf(err, SD_ERR_LEN, "%s: ", path ? path : "gguf");
    if (n < 0 || n >= SD_ERR_LEN) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, SD_ERR_LEN - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

gguf_writer *gguf_writer_new(void)
{
    gguf_writer *w = calloc(1, sizeof(gguf_writer));
    if (w) w->slot = -1;
    return w;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w) return;
    gguf_writer_abort(w);
    for (size_t i = 0; i < w->n_kv; i++) { free(w->kv[i].key); free(w->kv[i].val); }
    for (uint64_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* ---- metadata ------------------------------------------------------------ */

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static wkv *find_kv(const gguf_writer *w, const char *key)
{
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return &w->kv[i];
    return NULL;
}

/* Stores (key, type, serialized value); takes ownership of val. */
static int put_kv(gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t len)
{
    if (!val || w->fp) { free(val); return -1; }
    wkv *kv = find_kv(w, key);
    if (kv) {
        free(kv->val);
    } else {
        if (w->n_kv == w->cap_kv) {
            size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
            wkv *n = realloc(w->kv, cap * sizeof *n);
            if (!n) { free(val); return -1; }
            w->kv = n;
            w->cap_kv = cap;
        }
        kv = &w->kv[w->n_kv];
        if (!(kv->key = strdup(key))) { free(val); return -1; }
        w->n_kv++;
    }
    kv->type = type;
    kv->val = val;
    kv->val_len = len;
    return 0;
}

int gguf_writer_set_scalar(gguf_writer *w, const char *key, uint32_t type, const void *value)
{
    size_t sz = gguf_vtype_size(type);
    if (!sz) return -1;
    uint8_t *v = malloc(sz);
    if (v) memcpy(v, value, sz);  /* C values are little endian on every target we build for */
    if (v && type == GGUF_BOOL) v[0] = v[0] != 0;
    return put_kv(w, key, type, v, sz);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return gguf_writer_set_scalar(w, key, GGUF_UINT32, &v);
}

int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v)
{
    return gguf_writer_set_scalar(w, key, GGUF_INT32, &v);
}

int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v)
{
    return gguf_writer_set_scalar(w, key, GGUF_UINT64, &v);
}

int gguf_writer_set_f32(gguf_writer *w, const char *key, float v)
{
    return gguf_writer_set_scalar(w, key, GGUF_FLOAT32, &v);
}

int gguf_writer_set_bool(gguf_writer *w, const char *key, int v)
{
    uint8_t b = v != 0;
    return gguf_writer_set_scalar(w, key, GGUF_BOOL, &b);
}

int gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, size_t len)
{
    uint8_t *v = malloc(8 + len);
    if (v) { put_le(v, len, 8); memcpy(v + 8, s, len); }
    return put_kv(w, key, GGUF_STRING, v, 8 + len);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s)
{
    return gguf_writer_set_strn(w, key, s, strlen(s));
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n)
{
    size_t es = gguf_vtype_size(elem_type);
    if (!es || n > (SIZE_MAX - 12) / es) return -1;
    uint8_t *v = malloc(12 + n * es);
    if (v) {
        put_le(v, elem_type, 4);
        put_le(v + 4, n, 8);
        if (n) memcpy(v + 12, data, n * es);
    }
    return put_kv(w, key, GGUF_ARRAY, v, 12 + n * es);
}

/* String arrays from either C strings or reader strings. */
static int set_arr_str(gguf_writer *w, const char *key, uint64_t n, const char *const *s, const size_t *len,
                       const gguf_str *gs)
{
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) {
        size_t l = gs ? gs[i].len : len ? len[i] : strlen(s[i]);
        if (l > SIZE_MAX - 8 - total) return -1;
        total += 8 + l;
    }
    uint8_t *v = malloc(total), *p = v;
    if (v) {
        put_le(p, GGUF_STRING, 4);
        put_le(p + 4, n, 8);
        p += 12;
        for (uint64_t i = 0; i < n; i++) {
            size_t l = gs ? gs[i].len : len ? len[i] : strlen(s[i]);
            put_le(p, l, 8);
            if (l) memcpy(p + 8, gs ? gs[i].ptr : s[i], l);
            p += 8 + l;
        }
    }
    return put_kv(w, key, GGUF_ARRAY, v, total);
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *s, const size_t *len, uint64_t n)
{
    return set_arr_str(w, key, n, s, len, NULL);
}

int gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv)
{
    char key[1024];
    if (kv->key.len >= sizeof key) return -1;
    memcpy(key, kv->key.ptr, kv->key.len);
    key[kv->key.len] = 0;
    if (kv->type == GGUF_STRING) return gguf_writer_set_strn(w, key, kv->v.s.ptr, kv->v.s.len);
    if (kv->type == GGUF_ARRAY) {
        if (kv->arr_type == GGUF_STRING) return set_arr_str(w, key, kv->arr_n, NULL, NULL, kv->arr_str);
        return gguf_writer_set_arr(w, key, kv->arr_type, kv->arr_data, kv->arr_n);
    }
    uint8_t buf[8];
    if (kv->type == GGUF_FLOAT32) {
        float f = (float)kv->v.f;
        memcpy(buf, &f, 4);
    } else if (kv->type == GGUF_FLOAT64) {
        memcpy(buf, &kv->v.f, 8);
    } else {
        put_le(buf, kv->v.u, sizeof buf);  /* signed values share the bits of v.u */
    }
    return gguf_writer_set_scalar(w, key, kv->type, buf);
}

void gguf_writer_remove(gguf_writer *w, const char *key)
{
    wkv *kv = find_kv(w, key);
    if (!kv || w->fp) return;
    free(kv->key);
    free(kv->val);
    size_t i = (size_t)(kv - w->kv);
    memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - i - 1) * sizeof *w->kv);
    w->n_kv--;
}

int gguf_writer_has(const gguf_writer *w, const char *key) { return find_kv(w, key) != NULL; }

/* ---- tensors ------------------------------------------------------------- */

/* The alignment the file will use: general.alignment when it is a sane u32. */
static uint64_t alignment_of(const gguf_writer *w)
{
    const wkv *kv = find_kv(w, "general.alignment");
    if (!kv || kv->type != GGUF_UINT32) return GGUF_DEFAULT_ALIGNMENT;
    uint32_t a;
    memcpy(&a, kv->val, 4);
    return a;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims, const int64_t *ne,
                           char *err)
{
    if (w->fp) return wfail(err, w->path, "tensor %s added after writing began", name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) return wfail(err, name, "%d dimensions", n_dims);
    if (!sd_type_get(type)) return wfail(err, name, "unknown tensor format %u", type);
    uint64_t rows = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] <= 0) return wfail(err, name, "dimension %d is %lld", d, (long long)ne[d]);
        if (d > 0) {
            if ((uint64_t)ne[d] > UINT64_MAX / rows) return wfail(err, name, "too many elements");
            rows *= (uint64_t)ne[d];
        }
    }
    size_t rb = sd_row_bytes(type, ne[0]);
    if (!rb) return wfail(err, name, "rows of %lld values do not fit %s blocks of %d", (long long)ne[0],
                          sd_type_name(type), sd_type_get(type)->block);
    if (rows > UINT64_MAX / rb) return wfail(err, name, "too many elements");
    for (uint64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return wfail(err, name, "tensor declared twice");
    if (w->n_t == w->cap_t) {
        uint64_t cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *n = realloc(w->t, cap * sizeof *n);
        if (!n) return wfail(err, name, "out of memory");
        w->t = n;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return wfail(err, name, "out of memory");
    t->type = type;
    t->n_dims = (uint32_t)n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->n_bytes = rows * rb;
    w->n_t++;
    return 0;
}

uint64_t gguf_writer_n_tensors(const gguf_writer *w) { return w->n_t; }
uint64_t gguf_writer_tensor_bytes(const gguf_writer *w, uint64_t i) { return i < w->n_t ? w->t[i].n_bytes : 0; }

void gguf_writer_set_progress(gguf_writer *w, gguf_progress_fn fn, void *ctx)
{
    w->progress = fn;
    w->progress_ctx = ctx;
}

/* ---- header ---------------------------------------------------------------- */

typedef struct { uint8_t *p; size_t n, cap; int oom; } buf;

static void emit(buf *b, const void *data, size_t n)
{
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void emit_le(buf *b, uint64_t v, size_t n)
{
    uint8_t t[8];
    put_le(t, v, n);
    emit(b, t, n);
}

static void emit_str(buf *b, const char *s)
{
    size_t n = strlen(s);
    emit_le(b, n, 8);
    emit(b, s, n);
}

/* Assigns data offsets and serializes the header, padded to the alignment. */
static int build_header(gguf_writer *w, buf *b)
{
    uint64_t a = w->alignment, off = 0;
    for (uint64_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off = align_up(off + w->t[i].n_bytes, a);
    }
    w->data_size = off;
    emit(b, "GGUF", 4);
    emit_le(b, 3, 4);
    emit_le(b, w->n_t, 8);
    emit_le(b, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        emit_str(b, w->kv[i].key);
        emit_le(b, w->kv[i].type, 4);
        emit(b, w->kv[i].val, w->kv[i].val_len);
    }
    for (uint64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        emit_str(b, t->name);
        emit_le(b, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) emit_le(b, (uint64_t)t->ne[d], 8);
        emit_le(b, t->type, 4);
        emit_le(b, t->offset, 8);
    }
    static const uint8_t zeros[64];
    size_t pad = (size_t)(align_up(b->n, a) - b->n);
    while (pad) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        emit(b, zeros, k);
        pad -= k;
    }
    w->header_size = b->n;
    return b->oom ? -1 : 0;
}

uint64_t gguf_writer_file_size(const gguf_writer *w)
{
    /* header size without building it: the same arithmetic as build_header */
    uint64_t a = alignment_of(w), h = 4 + 4 + 8 + 8, data = 0;
    for (size_t i = 0; i < w->n_kv; i++) h += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].val_len;
    for (uint64_t i = 0; i < w->n_t; i++) {
        h += 8 + strlen(w->t[i].name) + 4 + 8ull * w->t[i].n_dims + 4 + 8;
        data = align_up(data + w->t[i].n_bytes, a);
    }
    return align_up(h, a) + data;
}

/* ---- temporary files a signal handler may remove ------------------------------ */

#define MAX_ACTIVE 8
static char active_path[MAX_ACTIVE][1024];
static volatile sig_atomic_t active_used[MAX_ACTIVE];

static int track(const char *tmp)
{
    if (strlen(tmp) >= sizeof active_path[0]) return -1;
    for (int i = 0; i < MAX_ACTIVE; i++)
        if (!active_used[i]) {
            strcpy(active_path[i], tmp);
            active_used[i] = 1;
            return i;
        }
    return -1;  /* untracked: still removed on errors, just not from a signal handler */
}

static void untrack(int slot)
{
    if (slot >= 0) active_used[slot] = 0;
}

void gguf_writer_remove_temp_files(void)
{
    for (int i = 0; i < MAX_ACTIVE; i++)
        if (active_used[i]) unlink(active_path[i]);
}

/* ---- writing ----------------------------------------------------------------- */

static void report(gguf_writer *w)
{
    if (!w->progress) return;
    gguf_write_progress p = {w->bytes_done, w->data_size, w->cur, w->n_t,
                             w->n_t ? w->t[w->cur < w->n_t ? w->cur : w->n_t - 1].name : ""};
    w->progress(w->progress_ctx, &p);
}

static int io_fail(gguf_writer *w, char *err, const char *what)
{
    int e = errno;
    w->failed = 1;
    wfail(err, w->path, "%s: %s", what, e ? strerror(e) : "unknown error");
    gguf_writer_abort(w);
    return -1;
}

int gguf_writer_begin(gguf_writer *w, const char *path, char *err)
{
    if (w->fp || w->path) return wfail(err, path, "a write is already in progress");
    w->alignment = alignment_of(w);
    if (!w->alignment || (w->alignment & (w->alignment - 1)) || w->alignment > 65536)
        return wfail(err, path, "general.alignment %llu is not a power of two up to 65536",
                     (unsigned long long)w->alignment);
    size_t plen = strlen(path);
    w->path = strdup(path);
    w->tmp = malloc(plen + 32);
    if (!w->path || !w->tmp) {
        free(w->path); free(w->tmp);
        w->path = w->tmp = NULL;
        return wfail(err, path, "out of memory");
    }
    snprintf(w->tmp, plen + 32, "%s.tmp%ld", path, (long)getpid());
    buf b = {0};
    if (build_header(w, &b)) {
        free(b.p);
        wfail(err, path, "out of memory for the header");
        free(w->path); free(w->tmp);
        w->path = w->tmp = NULL;
        return -1;
    }
    errno = 0;
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) {
        int e = errno;
        free(b.p);
        wfail(err, path, "cannot create %s: %s", w->tmp, strerror(e));
        free(w->path); free(w->tmp);
        w->path = w->tmp = NULL;
        return -1;
    }
    w->slot = track(w->tmp);
    setvbuf(w->fp, NULL, _IOFBF, 1 << 20);
    w->failed = 0;
    w->cur = w->cur_done = w->bytes_done = 0;
    w->next_report = PROGRESS_STEP;
    errno = 0;
    size_t put = fwrite(b.p, 1, b.n, w->fp);
    free(b.p);
    if (put != b.n) return io_fail(w, err, "write failed");
    while (w->cur < w->n_t && w->t[w->cur].n_bytes == 0) w->cur++;
    report(w);
    return 0;
}

static int write_zeros(gguf_writer *w, uint64_t n, char *err)
{
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        errno = 0;
        if (fwrite(zeros, 1, k, w->fp) != k) return io_fail(w, err, "write failed");
        n -= k;
    }
    return 0;
}

int gguf_writer_write(gguf_writer *w, const void *data, size_t n, char *err)
{
    if (!w->fp || w->failed) return wfail(err, w->path, "write without a successful begin");
    const uint8_t *p = data;
    while (n) {
        if (w->cur >= w->n_t) {
            wfail(err, w->path, "%zu bytes more than the tensors hold", n);
            w->failed = 1;
            gguf_writer_abort(w);
            return -1;
        }
        wtensor *t = &w->t[w->cur];
        uint64_t left = t->n_bytes - w->cur_done;
        size_t k = n < left ? n : (size_t)left;
        errno = 0;
        if (fwrite(p, 1, k, w->fp) != k) return io_fail(w, err, "write failed");
        p += k;
        n -= k;
        w->cur_done += k;
        w->bytes_done += k;
        if (w->cur_done == t->n_bytes) {  /* tensor complete: pad to the next offset */
            uint64_t pad = align_up(t->n_bytes, w->alignment) - t->n_bytes;
            if (write_zeros(w, pad, err)) return -1;
            w->bytes_done += pad;
            w->cur++;
            w->cur_done = 0;
            report(w);
        } else if (w->bytes_done >= w->next_report) {
            report(w);
        }
        if (w->bytes_done >= w->next_report) w->next_report = w->bytes_done + PROGRESS_STEP;
    }
    return 0;
}

/* Closes the file and moves it into place. */
static int close_and_rename(gguf_writer *w, char *err)
{
    errno = 0;
    if (fflush(w->fp)) return io_fail(w, err, "write failed");
    FILE *fp = w->fp;
    w->fp = NULL;
    errno = 0;
    if (fclose(fp)) return io_fail(w, err, "closing failed");
    errno = 0;
    if (rename(w->tmp, w->path)) {
        int e = errno;
        wfail(err, w->path, "cannot rename %s into place: %s", w->tmp, strerror(e));
        gguf_writer_abort(w);
        return -1;
    }
    untrack(w->slot);
    w->slot = -1;
    free(w->tmp);
    free(w->path);
    w->tmp = w->path = NULL;
    return 0;
}

int gguf_writer_finish(gguf_writer *w, char *err)
{
    if (!w->fp || w->failed) return wfail(err, w->path, "finish without a successful begin");
    if (w->cur < w->n_t) {
        wfail(err, w->path, "incomplete: tensor %s (%llu of %llu) was not fully written", w->t[w->cur].name,
              (unsigned long long)w->cur + 1, (unsigned long long)w->n_t);
        gguf_writer_abort(w);
        return -1;
    }
    return close_and_rename(w, err);
}

int gguf_writer_finish_sparse(gguf_writer *w, char *err)
{
    if (!w->fp || w->failed) return wfail(err, w->path, "finish without a successful begin");
    errno = 0;
    if (fflush(w->fp)) return io_fail(w, err, "write failed");
    errno = 0;
    if (ftruncate(fileno(w->fp), (off_t)(w->header_size + w->data_size)))
        return io_fail(w, err, "cannot extend the file");
    w->cur = w->n_t;
    w->bytes_done = w->data_size;
    report(w);
    return close_and_rename(w, err);
}

void gguf_writer_abort(gguf_writer *w)
{
    if (w->fp) fclose(w->fp);
    w->fp = NULL;
    if (w->tmp) {
        remove(w->tmp);
        untrack(w->slot);
    }
    w->slot = -1;
    free(w->tmp);
    free(w->path);
    w->tmp = w->path = NULL;
}
