/* Peak RSS and page-cache residency (see memory.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "showdown.h"
#include "measure/memory.h"

uint64_t sd_peak_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        unsigned long long kb = 0;
        int found = 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) { found = 1; break; }
        fclose(f);
        if (found) return (uint64_t)kb * 1024;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#ifdef __APPLE__
    return (uint64_t)ru.ru_maxrss;          /* bytes on macOS */
#else
    return (uint64_t)ru.ru_maxrss * 1024;   /* kilobytes elsewhere */
#endif
}

int sd_peak_rss_reset(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd < 0) return -1;
    ssize_t w = write(fd, "5", 1);
    close(fd);
    return w == 1 ? 0 : -1;
}

int sd_file_cached_fraction(const char *path, double *frac, char *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) { snprintf(err, SD_ERR_LEN, "%s: %s", path, strerror(errno)); return -1; }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, SD_ERR_LEN, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (st.st_size == 0) { close(fd); *frac = 1.0; return 0; }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) { snprintf(err, SD_ERR_LEN, "%s: mmap: %s", path, strerror(errno)); return -1; }
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (len + (size_t)page - 1) / (size_t)page;
#ifdef __APPLE__
    char *vec = malloc(pages);
#else
    unsigned char *vec = malloc(pages);
#endif
    int rc = -1;
    if (!vec) snprintf(err, SD_ERR_LEN, "out of memory");
    else if (mincore(map, len, vec) != 0) snprintf(err, SD_ERR_LEN, "%s: mincore: %s", path, strerror(errno));
    else {
        size_t in = 0;
        for (size_t i = 0; i < pages; i++) in += vec[i] & 1;
        *frac = (double)in / (double)pages;
        rc = 0;
    }
    free(vec);
    munmap(map, len);
    return rc;
}

int sd_file_evict(const char *path, char *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) { snprintf(err, SD_ERR_LEN, "%s: %s", path, strerror(errno)); return -1; }
#ifdef POSIX_FADV_DONTNEED
    fdatasync(fd);
    int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    if (rc != 0) { snprintf(err, SD_ERR_LEN, "%s: posix_fadvise: %s", path, strerror(rc)); return -1; }
    return 0;
#else
    close(fd);
    snprintf(err, SD_ERR_LEN, "%s: dropping the page cache is not supported on this OS", path);
    return -1;
#endif
}

const char *sd_cache_state_name(double frac)
{
    if (frac >= 0.99) return "warm";
    if (frac <= 0.01) return "cold";
    return "partial";
}
