/* Process memory and page-cache facts for `bench`: peak resident set, and
 * whether a model file was already in the page cache before it was loaded. */
#ifndef SD_MEMORY_H
#define SD_MEMORY_H

#include <stdint.h>

/* Peak resident set of this process in bytes (VmHWM; ru_maxrss elsewhere). 0 if unknown. */
uint64_t sd_peak_rss_bytes(void);
/* Resets the peak to the current RSS where the OS allows it (Linux
 * /proc/self/clear_refs "5"). Returns 0 when reset, -1 when the peak stays
 * process-wide (then rows report the peak since process start). */
int sd_peak_rss_reset(void);
/* Fraction (0..1) of the file's pages resident in the page cache (mincore). */
int sd_file_cached_fraction(const char *path, double *frac, char *err);
/* Asks the kernel to drop the file's clean pages from the page cache
 * (posix_fadvise DONTNEED): works without root for pages nobody maps. */
int sd_file_evict(const char *path, char *err);
/* "cold", "warm" or "partial" for a cached fraction. */
const char *sd_cache_state_name(double frac);

#endif
