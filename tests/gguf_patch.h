/* A GGUF file held in memory for the hostile-model suites: patch a header
 * field or a name in place, write the copy, and expect the load to be
 * refused with one line naming the file. Each including test file gets its
 * own buffer; the suite fills buf and buf_len before patching. */
#ifndef SD_TESTS_GGUF_PATCH_H
#define SD_TESTS_GGUF_PATCH_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "gguf/gguf.h"

static unsigned char *buf;
static size_t buf_len;

/* Position in b (n bytes) just after the first length-prefixed occurrence
 * of s. */
static inline size_t gguf_find_str(const unsigned char *b, size_t n, const char *s)
{
    size_t l = strlen(s);
    for (size_t i = 8; i + l <= n; i++) {
        uint64_t len;
        memcpy(&len, b + i - 8, 8);
        if (len == l && !memcmp(b + i, s, l)) return i + l;
    }
    cr_assert_fail("'%s' not in the file", s);
    return 0;
}

static inline size_t find_str(const char *s) { return gguf_find_str(buf, buf_len, s); }

static inline void set_u32(const char *key, uint32_t v)
{
    size_t at = find_str(key);
    uint32_t type;
    memcpy(&type, buf + at, 4);
    cr_assert_eq(type, GGUF_UINT32, "%s is not u32 in the fixture", key);
    memcpy(buf + at + 4, &v, 4);
}

/* Writes the patched copy (a name with tag in /tmp) and expects the load
 * to fail with needle; frees the buffer. */
static inline void expect_refused_as(const char *tag, const char *needle)
{
    char path[64], err[SD_ERR_LEN] = "";
    snprintf(path, sizeof path, "/tmp/sd-%s-bad-%d.gguf", tag, (int)getpid());
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(buf, 1, buf_len, f), buf_len);
    fclose(f);
    sd_model *m = NULL;
    cr_assert_eq(sd_model_load(path, &m, err), -1, "accepted (%s)", needle);
    cr_expect(strstr(err, path) == err, "message should start with the file: %s", err);
    cr_expect(strstr(err, needle), "expected '%s' in: %s", needle, err);
    cr_expect(!strchr(err, '\n'), "one line: %s", err);
    unlink(path);
    free(buf);
}

#endif
