/* The data cache hierarchy (sysinfo.h): cpu0's caches from Linux sysfs
 * (cpu0/cache/indexN/ level, type, size, shared_cpu_list), or macOS sysctl. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

#include "measure/sysinfo.h"

uint64_t sd_parse_cache_size(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    if (!isdigit((unsigned char)*s)) return 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1ULL << 10, end++;
    else if (*end == 'M' || *end == 'm') mul = 1ULL << 20, end++;
    else if (*end == 'G' || *end == 'g') mul = 1ULL << 30, end++;
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') end++;
    if (*end || v == 0 || v > (1ULL << 40) / mul) return 0;
    return (uint64_t)v * mul;
}

int sd_parse_cpu_list(const char *s)
{
    int count = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!isdigit((unsigned char)*p)) return 0;
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (*end == '-') {
            if (!isdigit((unsigned char)end[1])) return 0;
            b = strtol(end + 1, &end, 10);
        }
        if (a < 0 || b < a || b - a > 1 << 20) return 0;
        count += (int)(b - a + 1);
        p = end;
        while (*p == '\n' || *p == '\r' || *p == ' ') p++;
        if (!*p) return count;
        if (*p++ != ',') return 0;
    }
}

/* First line of root/rel into buf; 0 read, -1 absent. */
static int read_line(const char *root, const char *rel, char *buf, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    buf[strcspn(buf, "\r\n")] = 0;
    return 0;
}

static int read_sysfs(const char *root, sd_cache_info *c)
{
    char line[256], rel[256];
    if (read_line(root, "online", line, sizeof line) == 0) c->n_cpus = sd_parse_cpu_list(line);
    snprintf(rel, sizeof rel, "%s/cpu0/cache", root);
    DIR *d = opendir(rel);
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "index", 5) || !isdigit((unsigned char)e->d_name[5])) continue;
        char type[32], size[64], shared[256], level[16];
        snprintf(rel, sizeof rel, "cpu0/cache/%.64s/type", e->d_name);
        if (read_line(root, rel, type, sizeof type)) continue;
        if (strcmp(type, "Data") && strcmp(type, "Unified")) continue;   /* instruction caches hold no weights */
        snprintf(rel, sizeof rel, "cpu0/cache/%.64s/level", e->d_name);
        if (read_line(root, rel, level, sizeof level)) continue;
        snprintf(rel, sizeof rel, "cpu0/cache/%.64s/size", e->d_name);
        if (read_line(root, rel, size, sizeof size)) continue;
        snprintf(rel, sizeof rel, "cpu0/cache/%.64s/shared_cpu_list", e->d_name);
        int n_share = read_line(root, rel, shared, sizeof shared) == 0 ? sd_parse_cpu_list(shared) : 0;
        int lv = atoi(level);
        uint64_t bytes = sd_parse_cache_size(size);
        if (lv < 1 || lv > 9 || bytes == 0) continue;          /* malformed: as if absent */
        if (n_share < 1) n_share = 1;
        if (lv == 1) { c->l1d_bytes = bytes; c->l1d_shared_cpus = n_share; }
        if (lv == 2) { c->l2_bytes = bytes; c->l2_shared_cpus = n_share; }
        if (lv >= 2 && lv >= c->llc_level) { c->llc_level = lv; c->llc_bytes = bytes; c->llc_shared_cpus = n_share; }
    }
    closedir(d);
    return c->llc_bytes ? 0 : -1;
}

#ifdef __APPLE__
static uint64_t sysctl_u64(const char *name)
{
    uint64_t v = 0;
    size_t len = sizeof v;
    if (sysctlbyname(name, &v, &len, NULL, 0) != 0) return 0;
    if (len == 4) { uint32_t w; memcpy(&w, &v, 4); return w; }
    return v;
}

/* Apple silicon: the performance cluster's L2 is the last level the OS names
 * (the system-level cache is not reported); Intel Macs report an L3. */
static int read_sysctl(sd_cache_info *c)
{
    c->n_cpus = (int)sysctl_u64("hw.logicalcpu");
    c->l1d_bytes = sysctl_u64("hw.perflevel0.l1dcachesize");
    if (!c->l1d_bytes) c->l1d_bytes = sysctl_u64("hw.l1dcachesize");
    c->l1d_shared_cpus = c->l1d_bytes ? 1 : 0;
    c->l2_bytes = sysctl_u64("hw.perflevel0.l2cachesize");
    c->l2_shared_cpus = (int)sysctl_u64("hw.perflevel0.cpusperl2");
    if (!c->l2_bytes) { c->l2_bytes = sysctl_u64("hw.l2cachesize"); c->l2_shared_cpus = 1; }
    if (c->l2_bytes && c->l2_shared_cpus < 1) c->l2_shared_cpus = 1;
    uint64_t l3 = sysctl_u64("hw.l3cachesize");
    if (l3) { c->llc_bytes = l3; c->llc_level = 3; c->llc_shared_cpus = c->n_cpus; }
    else if (c->l2_bytes) { c->llc_bytes = c->l2_bytes; c->llc_level = 2; c->llc_shared_cpus = c->l2_shared_cpus; }
    return c->llc_bytes ? 0 : -1;
}
#endif

int sd_cache_info_read(const char *root, sd_cache_info *out)
{
    memset(out, 0, sizeof *out);
#ifdef __APPLE__
    if (!root) return read_sysctl(out);
#endif
    return read_sysfs(root ? root : "/sys/devices/system/cpu", out);
}

static void size_str(char *buf, size_t n, uint64_t b)
{
    if (b >= (1ULL << 20)) snprintf(buf, n, "%g MiB", (double)b / (1 << 20));
    else snprintf(buf, n, "%g KiB", (double)b / (1 << 10));
}

/* "CPU", "2 CPUs": who shares one instance */
static const char *per_cpus(int n)
{
    static _Thread_local char buf[24];
    if (n <= 1) return "CPU";
    snprintf(buf, sizeof buf, "%d CPUs", n);
    return buf;
}

const char *sd_cache_info_str(const sd_cache_info *c, char *buf, size_t n)
{
    if (!c->llc_bytes) { snprintf(buf, n, "unknown"); return buf; }
    char a[32], b[32], l[32];
    size_str(a, sizeof a, c->l1d_bytes);
    size_str(b, sizeof b, c->l2_bytes);
    size_str(l, sizeof l, c->llc_bytes);
    size_t k = 0;
    buf[0] = 0;
    if (c->l1d_bytes) k += (size_t)snprintf(buf + k, n - k, "L1d %s, ", a);
    if (c->l2_bytes && c->llc_level > 2 && k < n)
        k += (size_t)snprintf(buf + k, n - k, "L2 %s per %s, ", b, per_cpus(c->l2_shared_cpus));
    if (k < n) snprintf(buf + k, n - k, "L%d %s per %s", c->llc_level, l, per_cpus(c->llc_shared_cpus));
    return buf;
}
