/* CPU model from /proc/cpuinfo (Linux) or sysctl (macOS); the caches are
 * in cacheinfo.c. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

#include "measure/sysinfo.h"

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
}

const char *sd_cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
#ifdef __APPLE__
    size_t len = n;
    if (sysctlbyname("machdep.cpu.brand_string", buf, &len, NULL, 0) != 0) snprintf(buf, n, "unknown");
#else
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return buf;
    char line[512];
    /* x86 says "model name", arm64 sometimes only "CPU part"/"Hardware". */
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) && strncmp(line, "Hardware", 8)) continue;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        trim(colon);
        if (*colon) { snprintf(buf, n, "%s", colon); break; }
    }
    fclose(f);
#endif
    return buf;
}

int sd_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
