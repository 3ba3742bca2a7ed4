/* Shared by the fuzz targets whose loaders take a path: the input goes into
 * one memfd, reopened through /proc/self/fd/N, so nothing touches the disk. */
#ifndef SD_FUZZ_COMMON_H
#define SD_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("showdown-fuzz", 0);
        if (fd < 0) { perror("memfd_create"); abort(); }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) { perror("memfd write"); abort(); }
    return path;
}

/* Every refusal must be one line that names the file. */
static void fuzz_check_err(const char *err, const char *path)
{
    if (!err[0] || strchr(err, '\n') || !strstr(err, path)) {
        fprintf(stderr, "bad error message (empty, multi-line or no file name): '%s'\n", err);
        abort();
    }
}

#endif
