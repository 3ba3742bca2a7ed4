/* GGUF v2/v3 reader. The file is parsed from one buffer (usually the mmap of
 * the whole file); every count, length, offset and dimension is checked against
 * the buffer and against overflow before it is used. Strings and tensor data
 * point into the buffer: nothing is copied. */
#ifndef SD_GGUF_H
#define SD_GGUF_H

#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3,
    GGUF_UINT32 = 4, GGUF_INT32 = 5, GGUF_FLOAT32 = 6, GGUF_BOOL = 7,
    GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10, GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12, GGUF_VTYPE_COUNT = 13
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct { const char *ptr; uint64_t len; } gguf_str; /* not NUL-terminated */

typedef struct {
    gguf_str key;
    uint32_t type;              /* enum gguf_vtype */
    union { uint64_t u; int64_t i; double f; gguf_str s; } v;  /* scalars */
    uint32_t arr_type;          /* arrays: element type */
    uint64_t arr_n;
    const uint8_t *arr_data;    /* arrays of numbers: raw little-endian elements */
    gguf_str *arr_str;          /* arrays of strings: arr_n entries */
} gguf_kv;

typedef struct {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];  /* ne[0] is the row length; unused dims are 1 */
    uint32_t type;              /* GGUF tensor type id (see tensor/types.h) */
    uint64_t offset;            /* relative to the data section */
    uint64_t n_elements, n_bytes;
    const void *data;           /* NULL when only the header was read */
} gguf_tensor;

typedef struct gguf_file {
    char path[256];
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    uint64_t alignment, data_offset, file_size;
    const uint8_t *base;        /* the parsed buffer */
    size_t base_len;
    void *map; size_t map_len;  /* owned mmap, if any */
    uint8_t *owned;             /* owned read buffer, if any */
} gguf_file;

/* Maps and parses a whole file. */
int gguf_open(const char *path, gguf_file **out, char *err);
/* Reads only as much of the file as the header needs (for `plan` on a 40 GB
 * file): tensor data pointers are NULL, offsets are still checked against the
 * file size. */
int gguf_open_header(const char *path, gguf_file **out, char *err);
/* Parses a caller-owned buffer (fuzzing, tests). name is used in messages. */
int gguf_parse(const void *buf, size_t len, const char *name, gguf_file **out, char *err);
void gguf_close(gguf_file *f);

const gguf_kv *gguf_find(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);
int gguf_str_eq(gguf_str s, const char *c);

/* Typed getters: 1 found and converted, 0 absent, -1 present with a wrong type
 * (message in err). Integer getters accept any integer type that fits. */
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, char *err);
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, char *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, char *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, char *err);
/* Array of the given element type; arr_type GGUF_STRING fills kv->arr_str. */
const gguf_kv *gguf_get_arr(const gguf_file *f, const char *key, uint32_t arr_type);

/* Turns control bytes (a newline or escape inside a tensor name or key the
 * file supplied) into '?', so an error message stays one harmless line. */
void gguf_msg_clean(char *msg);
/* Writes "name: message" into err (SD_ERR_LEN), cleaned as above; returns -1.
 * The one formatter of file errors for the readers built on this one. */
int gguf_fail(char *err, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Element size of a scalar value type, 0 for string/array/unknown. */
size_t gguf_vtype_size(uint32_t t);
const char *gguf_vtype_name(uint32_t t);

#endif
