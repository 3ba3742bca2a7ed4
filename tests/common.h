/* Test helpers shared by the test files: where ../shared is, file loading. */
#ifndef SD_TESTS_COMMON_H
#define SD_TESTS_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Path of a file under ../shared (SHOWDOWN_SHARED overrides). */
static inline const char *shared_path(char *buf, size_t n, const char *rel)
{
    const char *root = getenv("SHOWDOWN_SHARED");
    snprintf(buf, n, "%s/%s", root ? root : "../shared", rel);
    return buf;
}

/* The CLI binary the suite was built with (SHOWDOWN_BIN). */
static inline const char *showdown_bin(void)
{
    const char *b = getenv("SHOWDOWN_BIN");
    return b ? b : "build/showdown";
}

/* True in the ASan/UBSan build (make test-san): there the code runs ~20x
 * slower, so the heaviest end-to-end tests use less data. Their full-size
 * runs happen in the optimized build of the same suite. */
static inline int sanitized(void) { return getenv("SHOWDOWN_SANITIZED") != NULL; }

/* A fresh folder under /tmp for one suite's files (0, or -1 if it cannot be
 * made), and its removal with everything in it. */
static inline int tmp_dir_make(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/sd_test_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static inline int tmp_dir_remove(const char *dir)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* Whole file into a malloc'd buffer; NULL if unreadable. */
static inline void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b && len) *len = (size_t)n;
    return b;
}

/* A file as a NUL-terminated string; NULL if unreadable. */
static inline char *read_string(const char *path)
{
    size_t n = 0;
    char *b = read_all(path, &n), *s = b ? realloc(b, n + 1) : NULL;
    if (!s) { free(b); return NULL; }
    s[n] = 0;
    return s;
}

/* Runs `ENV showdown ARGS` (showdown_bin()) with stdout and stderr into
 * files of a fresh folder: returns stdout and *err_text stderr (malloc'd,
 * NULL where unreadable), *rc the exit status (-1: killed by a signal). */
static inline char *run_showdown(const char *env, const char *args, char **err_text, int *rc)
{
    char dir[64], cmd[2048], op[128], ep[128];
    *err_text = NULL;
    *rc = -1;
    if (tmp_dir_make(dir, sizeof dir)) return NULL;
    snprintf(op, sizeof op, "%s/out", dir);
    snprintf(ep, sizeof ep, "%s/err", dir);
    snprintf(cmd, sizeof cmd, "%s %s %s >%s 2>%s", env, showdown_bin(), args, op, ep);
    int st = system(cmd);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char *o = read_string(op);
    *err_text = read_string(ep);
    tmp_dir_remove(dir);
    return o;
}

/* Runs cmd through the shell, its stdout into *out (malloc'd,
 * NUL-terminated). Returns its exit status, -1 when it did not exit, or -2
 * (and *out NULL) when it could not be started. */
static inline int capture_cmd(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    *out = NULL;
    if (!p) return -2;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (size_t r; (r = fread(buf + len, 1, cap - len, p)) > 0;) {
        len += r;
        if (len == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    buf[len] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
