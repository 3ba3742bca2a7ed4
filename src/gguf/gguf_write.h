/* GGUF v3 writer. Metadata and tensor descriptions are collected in memory;
 * then the header is written with every tensor's offset already known, and
 * the tensor data is streamed in order, so a file far larger than memory can
 * be written. The file is written as PATH.tmpPID and renamed to PATH only when
 * everything was written and closed without error; on any failure the
 * temporary file is removed and the message names PATH. */
#ifndef SD_GGUF_WRITE_H
#define SD_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"

typedef struct gguf_writer gguf_writer;

/* Where a write stands, for progress lines. */
typedef struct {
    uint64_t bytes_done, bytes_total;   /* tensor data, padding included */
    uint64_t tensors_done, n_tensors;
    const char *tensor_name;            /* the tensor being written (or last done) */
} gguf_write_progress;
typedef void (*gguf_progress_fn)(void *ctx, const gguf_write_progress *p);

gguf_writer *gguf_writer_new(void);    /* NULL when out of memory */
/* Frees; a write begun and not finished is aborted (temporary file removed). */
void gguf_writer_free(gguf_writer *w);

/* ---- metadata ------------------------------------------------------------
 * Keys keep the order they were first set in; setting a key again replaces
 * its value. All return 0, or -1 when out of memory or given a bad type. */

/* Any scalar type; value points to a C value of gguf_vtype_size(type) bytes
 * (GGUF_BOOL: one byte, 0 or 1). */
int gguf_writer_set_scalar(gguf_writer *w, const char *key, uint32_t type, const void *value);
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s);
int gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, size_t len);
/* Array of numbers (any scalar type but string): n elements, little endian. */
int gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n);
/* Array of strings; len NULL means NUL-terminated strings. */
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *s, const size_t *len, uint64_t n);
/* A key-value pair exactly as the reader parsed it (any type). */
int gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv);
void gguf_writer_remove(gguf_writer *w, const char *key);
int gguf_writer_has(const gguf_writer *w, const char *key);

/* ---- tensors ------------------------------------------------------------- */

/* Declares the next tensor: ne[0] is the row length and must fit the format's
 * block. 0, or -1 with a message (unknown format, bad shape, duplicate name). */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims, const int64_t *ne,
                           char *err);
uint64_t gguf_writer_n_tensors(const gguf_writer *w);
/* Bytes of tensor i's data (no padding). */
uint64_t gguf_writer_tensor_bytes(const gguf_writer *w, uint64_t i);
/* Size the finished file will have (header, padding, data). */
uint64_t gguf_writer_file_size(const gguf_writer *w);

void gguf_writer_set_progress(gguf_writer *w, gguf_progress_fn fn, void *ctx);

/* ---- writing -------------------------------------------------------------
 * begin, then the data of every tensor in the order declared (any number of
 * write calls; a call may span tensors; padding is added by the writer), then
 * finish. Metadata and tensors cannot change after begin. general.alignment
 * (u32, a power of two) is honoured when set; 32 otherwise. */

int gguf_writer_begin(gguf_writer *w, const char *path, char *err);
int gguf_writer_write(gguf_writer *w, const void *data, size_t n, char *err);
/* Checks that every tensor was written, closes, renames into place. */
int gguf_writer_finish(gguf_writer *w, char *err);
/* Instead of writing data: the file gets its full size with the data section
 * left as a hole (reads as zeros, takes no disk space on most filesystems).
 * For inspecting the header of huge shapes without writing them. */
int gguf_writer_finish_sparse(gguf_writer *w, char *err);
/* Stops a write: closes and removes the temporary file. */
void gguf_writer_abort(gguf_writer *w);
/* Removes the temporary files of every write in progress in this process.
 * Async-signal-safe: for a SIGINT/SIGTERM handler, so an interrupted 40 GB
 * write does not leave 40 GB behind. */
void gguf_writer_remove_temp_files(void);

#endif
