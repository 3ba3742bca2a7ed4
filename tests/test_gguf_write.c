/* GGUF writer: what it writes reads back through our reader (every value
 * type, string arrays, tensors of several formats, alignment and padding),
 * metadata copied from a real file survives, and every failure (a path that
 * cannot be created, short data, too much data, a full disk) leaves no file. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "showdown.h"
#include "tensor/types.h"

static char dir[64];

static void make_dir(void) { cr_assert_eq(tmp_dir_make(dir, sizeof dir), 0); }
static void remove_dir(void) { cr_assert_eq(tmp_dir_remove(dir), 0); }

TestSuite(gguf_write, .init = make_dir, .fini = remove_dir);

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Nothing in the test directory but what we expect (no temporary files). */
static int count_files(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

static int str_is(gguf_str s, const char *c) { return s.len == strlen(c) && !memcmp(s.ptr, c, s.len); }

/* Deterministic bytes for tensor data. */
static void fill_bytes(uint8_t *p, size_t n, int salt)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 31 + (size_t)salt * 7 + (i >> 8));
}

Test(gguf_write, every_value_type_and_tensor_round_trips)
{
    char path[128], err[SD_ERR_LEN];
    snprintf(path, sizeof path, "%s/all.gguf", dir);
    gguf_writer *w = gguf_writer_new();
    cr_assert_not_null(w);
    uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000;
    uint64_t u64 = 0x123456789abcdefull; int64_t i64 = -0x123456789abcll; double f64 = -2.718281828459045;
    cr_assert_eq(gguf_writer_set_u32(w, "general.alignment", 64), 0);
    cr_assert_eq(gguf_writer_set_scalar(w, "t.u8", GGUF_UINT8, &u8), 0);
    cr_assert_eq(gguf_writer_set_scalar(w, "t.i8", GGUF_INT8, &i8), 0);
    cr_assert_eq(gguf_writer_set_scalar(w, "t.u16", GGUF_UINT16, &u16), 0);
    cr_assert_eq(gguf_writer_set_scalar(w, "t.i16", GGUF_INT16, &i16), 0);
    cr_assert_eq(gguf_writer_set_u32(w, "t.u32", 4000000000u), 0);
    cr_assert_eq(gguf_writer_set_i32(w, "t.i32", -2000000000), 0);
    cr_assert_eq(gguf_writer_set_f32(w, "t.f32", 0.15625f), 0);
    cr_assert_eq(gguf_writer_set_bool(w, "t.bool", 7), 0);
    cr_assert_eq(gguf_writer_set_str(w, "t.str", "héllo"), 0);
    cr_assert_eq(gguf_writer_set_u64(w, "t.u64", u64), 0);
    cr_assert_eq(gguf_writer_set_scalar(w, "t.i64", GGUF_INT64, &i64), 0);
    cr_assert_eq(gguf_writer_set_scalar(w, "t.f64", GGUF_FLOAT64, &f64), 0);
    int32_t ints[5] = {1, -2, 3, -4, 5};
    float floats[3] = {0.5f, -1.25f, 1e-7f};
    const char *strs[4] = {"a", "", "b c", "\xe2\x96\x81x"};
    cr_assert_eq(gguf_writer_set_arr(w, "t.arr_i32", GGUF_INT32, ints, 5), 0);
    cr_assert_eq(gguf_writer_set_arr(w, "t.arr_f32", GGUF_FLOAT32, floats, 3), 0);
    cr_assert_eq(gguf_writer_set_arr(w, "t.arr_empty", GGUF_UINT8, NULL, 0), 0);
    cr_assert_eq(gguf_writer_set_arr_str(w, "t.arr_str", strs, NULL, 4), 0);
    cr_assert_eq(gguf_writer_set_scalar(w, "t.bad", GGUF_STRING, "x"), -1, "a string is not a scalar");

    /* tensors of several formats; Q8_0 rows of 64 values, a 1-D BF16, odd sizes to need padding */
    struct { const char *name; uint32_t type; int nd; int64_t ne[2]; } ts[] = {
        {"a.f32", SD_TYPE_F32, 2, {3, 5}},
        {"b.q8_0", SD_TYPE_Q8_0, 2, {64, 3}},
        {"c.bf16", SD_TYPE_BF16, 1, {7, 1}},
        {"d.f16", SD_TYPE_F16, 2, {32, 2}},
    };
    uint8_t *data[4];
    size_t sizes[4];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].nd, ts[i].ne, err), 0, "%s", err);
        sizes[i] = (size_t)gguf_writer_tensor_bytes(w, (uint64_t)i);
        cr_assert_eq(sizes[i], sd_row_bytes(ts[i].type, ts[i].ne[0]) * (size_t)ts[i].ne[1]);
        data[i] = malloc(sizes[i]);
        fill_bytes(data[i], sizes[i], i);
    }
    cr_assert_eq(gguf_writer_add_tensor(w, "a.f32", SD_TYPE_F32, 1, (int64_t[]){4}, err), -1, "duplicate name");
    cr_assert_eq(gguf_writer_add_tensor(w, "e", SD_TYPE_Q8_0, 1, (int64_t[]){33}, err), -1, "33 values in Q8_0");
    cr_assert(strstr(err, "e"), "message names the tensor: %s", err);
    uint64_t expect_size = gguf_writer_file_size(w);

    cr_assert_eq(gguf_writer_begin(w, path, err), 0, "%s", err);
    /* data in uneven pieces, one spanning two tensors */
    cr_assert_eq(gguf_writer_write(w, data[0], 10, err), 0, "%s", err);
    uint8_t *joined = malloc(sizes[0] - 10 + sizes[1]);
    memcpy(joined, data[0] + 10, sizes[0] - 10);
    memcpy(joined + sizes[0] - 10, data[1], sizes[1]);
    cr_assert_eq(gguf_writer_write(w, joined, sizes[0] - 10 + sizes[1], err), 0, "%s", err);
    free(joined);
    cr_assert_eq(gguf_writer_write(w, data[2], sizes[2], err), 0, "%s", err);
    cr_assert_eq(gguf_writer_write(w, data[3], sizes[3], err), 0, "%s", err);
    cr_assert_eq(gguf_writer_finish(w, err), 0, "%s", err);
    gguf_writer_free(w);
    cr_assert_eq(count_files(), 1, "only the finished file is left");

    gguf_file *f;
    cr_assert_eq(gguf_open(path, &f, err), 0, "%s", err);
    cr_assert_eq(f->version, 3);
    cr_assert_eq(f->alignment, 64);
    cr_assert_eq(f->file_size, expect_size, "file size %llu, predicted %llu", (unsigned long long)f->file_size,
                 (unsigned long long)expect_size);
    cr_assert_eq(f->n_kv, 17);
    cr_assert_eq(gguf_find(f, "t.u8")->v.u, 200);
    cr_assert_eq(gguf_find(f, "t.i8")->v.i, -100);
    cr_assert_eq(gguf_find(f, "t.u16")->v.u, 60000);
    cr_assert_eq(gguf_find(f, "t.i16")->v.i, -30000);
    cr_assert_eq(gguf_find(f, "t.u32")->v.u, 4000000000u);
    cr_assert_eq(gguf_find(f, "t.i32")->v.i, -2000000000);
    cr_assert_eq(gguf_find(f, "t.f32")->type, GGUF_FLOAT32);
    cr_assert_eq(gguf_find(f, "t.f32")->v.f, 0.15625);
    cr_assert_eq(gguf_find(f, "t.bool")->type, GGUF_BOOL);
    cr_assert_eq(gguf_find(f, "t.bool")->v.u, 1, "bools are stored as 0/1");
    cr_assert(str_is(gguf_find(f, "t.str")->v.s, "héllo"));
    cr_assert_eq(gguf_find(f, "t.u64")->v.u, u64);
    cr_assert_eq(gguf_find(f, "t.i64")->v.i, i64);
    cr_assert_eq(gguf_find(f, "t.f64")->v.f, f64);
    const gguf_kv *a = gguf_get_arr(f, "t.arr_i32", GGUF_INT32);
    cr_assert_not_null(a);
    cr_assert_eq(a->arr_n, 5);
    cr_assert_eq(memcmp(a->arr_data, ints, sizeof ints), 0);
    a = gguf_get_arr(f, "t.arr_f32", GGUF_FLOAT32);
    cr_assert(a && a->arr_n == 3 && !memcmp(a->arr_data, floats, sizeof floats));
    a = gguf_get_arr(f, "t.arr_empty", GGUF_UINT8);
    cr_assert(a && a->arr_n == 0);
    a = gguf_get_arr(f, "t.arr_str", GGUF_STRING);
    cr_assert(a && a->arr_n == 4);
    for (int i = 0; i < 4; i++) cr_assert(str_is(a->arr_str[i], strs[i]), "string %d", i);
    cr_assert_eq(f->n_tensors, 4);
    for (int i = 0; i < 4; i++) {
        const gguf_tensor *t = gguf_find_tensor(f, ts[i].name);
        cr_assert_not_null(t, "%s", ts[i].name);
        cr_assert_eq(t->type, ts[i].type);
        cr_assert_eq(t->n_dims, (uint32_t)ts[i].nd);
        cr_assert_eq(t->ne[0], ts[i].ne[0]);
        cr_assert_eq(t->ne[1], ts[i].ne[1]);
        cr_assert_eq(t->offset % 64, 0, "%s at offset %llu", ts[i].name, (unsigned long long)t->offset);
        cr_assert_eq((f->data_offset) % 64, 0);
        cr_assert_eq(t->n_bytes, sizes[i]);
        cr_assert_eq(memcmp(t->data, data[i], sizes[i]), 0, "%s data", ts[i].name);
        free(data[i]);
    }
    gguf_close(f);
}

Test(gguf_write, set_again_replaces_in_place_and_remove_drops)
{
    char path[128], err[SD_ERR_LEN];
    snprintf(path, sizeof path, "%s/kv.gguf", dir);
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_u32(w, "a", 1);
    gguf_writer_set_str(w, "b", "x");
    gguf_writer_set_u32(w, "c", 3);
    gguf_writer_set_str(w, "a", "now a string");
    gguf_writer_remove(w, "c");
    cr_assert(gguf_writer_has(w, "a") && gguf_writer_has(w, "b") && !gguf_writer_has(w, "c"));
    cr_assert_eq(gguf_writer_begin(w, path, err), 0, "%s", err);
    cr_assert_eq(gguf_writer_finish(w, err), 0, "%s", err);
    gguf_writer_free(w);
    gguf_file *f;
    cr_assert_eq(gguf_open(path, &f, err), 0, "%s", err);
    cr_assert_eq(f->n_kv, 2);
    cr_assert(str_is(f->kv[0].key, "a"), "first key keeps its place");
    cr_assert(str_is(f->kv[0].v.s, "now a string"));
    cr_assert(str_is(f->kv[1].key, "b"));
    cr_assert_eq(f->n_tensors, 0);
    gguf_close(f);
}

Test(gguf_write, copied_metadata_of_a_real_file_survives)
{
    char src[512], path[128], err[SD_ERR_LEN];
    gguf_file *in, *out;
    cr_assert_eq(gguf_open_header(shared_path(src, sizeof src, "models/stories260K.gguf"), &in, err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/copy.gguf", dir);
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < in->n_kv; i++) cr_assert_eq(gguf_writer_copy_kv(w, &in->kv[i]), 0);
    cr_assert_eq(gguf_writer_begin(w, path, err), 0, "%s", err);
    cr_assert_eq(gguf_writer_finish(w, err), 0, "%s", err);
    gguf_writer_free(w);
    cr_assert_eq(gguf_open(path, &out, err), 0, "%s", err);
    cr_assert_eq(out->n_kv, in->n_kv);
    for (uint64_t i = 0; i < in->n_kv; i++) {
        const gguf_kv *a = &in->kv[i], *b = &out->kv[i];
        cr_assert(a->key.len == b->key.len && !memcmp(a->key.ptr, b->key.ptr, a->key.len));
        cr_assert_eq(a->type, b->type, "%.*s", (int)a->key.len, a->key.ptr);
        if (a->type == GGUF_STRING) cr_assert(a->v.s.len == b->v.s.len && !memcmp(a->v.s.ptr, b->v.s.ptr, a->v.s.len));
        else if (a->type != GGUF_ARRAY) cr_assert_eq(a->v.u, b->v.u, "%.*s", (int)a->key.len, a->key.ptr);
        else {
            cr_assert_eq(a->arr_type, b->arr_type);
            cr_assert_eq(a->arr_n, b->arr_n);
            if (a->arr_type == GGUF_STRING)
                for (uint64_t k = 0; k < a->arr_n; k++)
                    cr_assert(a->arr_str[k].len == b->arr_str[k].len &&
                              !memcmp(a->arr_str[k].ptr, b->arr_str[k].ptr, a->arr_str[k].len));
            else
                cr_assert_eq(memcmp(a->arr_data, b->arr_data, a->arr_n * gguf_vtype_size(a->arr_type)), 0);
        }
    }
    gguf_close(in);
    gguf_close(out);
}

Test(gguf_write, path_that_cannot_be_created_leaves_nothing)
{
    char path[128], err[SD_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/no-such-dir/out.gguf", dir);
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_u32(w, "a", 1);
    cr_assert_eq(gguf_writer_begin(w, path, err), -1);
    cr_assert(strstr(err, path), "message names the file: %s", err);
    cr_assert(strstr(err, "No such file"), "message says why: %s", err);
    gguf_writer_free(w);
    cr_assert_eq(count_files(), 0);
}

Test(gguf_write, short_or_excess_data_fails_and_leaves_nothing)
{
    char path[128], err[SD_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/short.gguf", dir);
    float v[8] = {0};
    gguf_writer *w = gguf_writer_new();
    cr_assert_eq(gguf_writer_add_tensor(w, "t", SD_TYPE_F32, 1, (int64_t[]){8}, err), 0);
    cr_assert_eq(gguf_writer_begin(w, path, err), 0, "%s", err);
    cr_assert_eq(gguf_writer_write(w, v, 16, err), 0);
    cr_assert_eq(gguf_writer_finish(w, err), -1, "half a tensor is not a file");
    cr_assert(strstr(err, path) && strstr(err, "t"), "%s", err);
    cr_assert(!exists(path));
    cr_assert_eq(count_files(), 0);
    /* the same writer again, now with one byte too many */
    cr_assert_eq(gguf_writer_begin(w, path, err), 0, "%s", err);
    cr_assert_eq(gguf_writer_write(w, v, sizeof v + 1, err), -1);
    cr_assert(strstr(err, "more than"), "%s", err);
    gguf_writer_free(w);
    cr_assert_eq(count_files(), 0);
}

/* A full disk, simulated with a file size limit in a child process. */
Test(gguf_write, full_disk_is_an_error_and_leaves_nothing)
{
    char path[128];
    snprintf(path, sizeof path, "%s/full.gguf", dir);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        char err[SD_ERR_LEN] = "";
        struct rlimit rl = {1 << 16, 1 << 16};
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(10);
        gguf_writer *w = gguf_writer_new();
        gguf_writer_add_tensor(w, "big", SD_TYPE_F32, 2, (int64_t[]){1024, 256}, err);
        if (gguf_writer_begin(w, path, err)) _exit(11);
        static float row[1024];
        int failed = 0;
        for (int r = 0; r < 256 && !failed; r++) failed = gguf_writer_write(w, row, sizeof row, err) != 0;
        if (!failed) failed = gguf_writer_finish(w, err) != 0;
        gguf_writer_free(w);
        if (!failed) _exit(12);
        if (!strstr(err, path) || !strstr(err, "too large")) _exit(13);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status), "child crashed");
    cr_assert_eq(WEXITSTATUS(status), 0, "child reported %d", WEXITSTATUS(status));
    cr_assert_eq(count_files(), 0, "no temporary or final file left");
}

Test(gguf_write, sparse_header_only_file_reads_back)
{
    char path[128], err[SD_ERR_LEN];
    snprintf(path, sizeof path, "%s/sparse.gguf", dir);
    gguf_writer *w = gguf_writer_new();
    cr_assert_eq(gguf_writer_add_tensor(w, "huge", SD_TYPE_F16, 2, (int64_t[]){8192, 131072}, err), 0);
    cr_assert_eq(gguf_writer_add_tensor(w, "small", SD_TYPE_F32, 1, (int64_t[]){5}, err), 0);
    uint64_t size = gguf_writer_file_size(w);
    cr_assert_eq(gguf_writer_begin(w, path, err), 0, "%s", err);
    cr_assert_eq(gguf_writer_finish_sparse(w, err), 0, "%s", err);
    gguf_writer_free(w);
    gguf_file *f;
    cr_assert_eq(gguf_open_header(path, &f, err), 0, "%s", err);
    cr_assert_eq(f->file_size, size);
    cr_assert_eq(gguf_find_tensor(f, "huge")->n_bytes, 8192ull * 131072 * 2);
    gguf_close(f);
}
