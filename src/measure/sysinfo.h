/* Facts about the machine that every benchmark row records. */
#ifndef SD_SYSINFO_H
#define SD_SYSINFO_H

#include <stddef.h>
#include <stdint.h>

/* CPU model name ("AMD EPYC 9454P ..."), "unknown" when the OS does not say. */
const char *sd_cpu_model(char *buf, size_t n);
int sd_online_cpus(void);

/* The data cache hierarchy as cpu0 sees it; 0 in a field: unknown. Sizes
 * are of one instance; *_shared_cpus is how many logical CPUs share that
 * instance (SMT siblings for a private L2, a socket or CCX for the LLC). */
typedef struct {
    uint64_t l1d_bytes, l2_bytes, llc_bytes;
    int l1d_shared_cpus, l2_shared_cpus, llc_shared_cpus;
    int llc_level;                     /* 3 usually; 2 where there is no L3 */
    int n_cpus;                        /* online logical CPUs */
} sd_cache_info;

/* Reads the hierarchy: Linux sysfs under root (NULL: /sys/devices/system/cpu;
 * tests pass a fixture directory), macOS sysctl when root is NULL. 0 when
 * the LLC size was found, -1 otherwise (fields left 0: unknown). */
int sd_cache_info_read(const char *root, sd_cache_info *out);
/* "L1d 48 KiB, L2 1.25 MiB per CPU, L3 48 MiB per 2 CPUs", or "unknown". */
const char *sd_cache_info_str(const sd_cache_info *c, char *buf, size_t n);
/* Parsers the reader uses (tested on their own): "48K", "1280K", "32M",
 * "4096" (bytes) -> bytes, 0 when malformed; "0-3,8-11" -> 8, 0 when malformed. */
uint64_t sd_parse_cache_size(const char *s);
int sd_parse_cpu_list(const char *s);

#endif
