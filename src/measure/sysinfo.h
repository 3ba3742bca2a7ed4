/* Facts about the machine that every benchmark row records. */
#ifndef SD_SYSINFO_H
#define SD_SYSINFO_H

#include <stddef.h>

/* CPU model name ("AMD EPYC 9454P ..."), "unknown" when the OS does not say. */
const char *sd_cpu_model(char *buf, size_t n);
int sd_online_cpus(void);

#endif
