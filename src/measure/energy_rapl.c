/* Linux powercap RAPL: /sys/class/powercap/intel-rapl:N[:M]/{name,energy_uj,
 * max_energy_range_uj}. The counter is in microjoules and wraps at
 * max_energy_range_uj; the sampling thread reads it often enough that at most
 * one wrap happens between two readings. Since Linux 5.10 energy_uj is
 * readable by root only, so "permission denied" is the usual failure and is
 * reported as such, not as a missing sensor. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "showdown.h"
#include "measure/energy.h"

#define RAPL_MAX_ZONES 16

static int default_open(const char *path, int flags) { return open(path, flags); }
int (*sd_rapl_open_fn)(const char *path, int flags) = default_open;

typedef struct {
    int n;
    int fd[RAPL_MAX_ZONES];
    uint64_t max_uj[RAPL_MAX_ZONES], prev_uj[RAPL_MAX_ZONES];
    uint64_t total_uj;
} rapl_state;

const char *sd_rapl_root(void)
{
    const char *r = getenv("SHOWDOWN_POWERCAP_ROOT");
    return r && *r ? r : "/sys/class/powercap";
}

uint64_t sd_rapl_delta_uj(uint64_t prev, uint64_t now, uint64_t max_range_uj)
{
    if (now >= prev) return now - prev;
    return max_range_uj - prev + now;   /* wrapped once: up to the top, then from 0 */
}

/* Reads a small sysfs file as text; -errno on failure. */
static int read_text(const char *path, char *buf, size_t n)
{
    int fd = sd_rapl_open_fn(path, O_RDONLY);
    if (fd < 0) return -errno;
    ssize_t r = read(fd, buf, n - 1);
    int e = errno;
    close(fd);
    if (r < 0) return -e;
    buf[r] = 0;
    while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == ' ')) buf[--r] = 0;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-') return -1;
    *out = v;
    return 0;
}

static int read_counter(int fd, uint64_t *uj)
{
    char buf[64];
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    if (r <= 0) return -1;
    buf[r] = 0;
    if (buf[r - 1] == '\n') buf[r - 1] = 0;
    return parse_u64(buf, uj);
}

static void describe_open_error(char *why, const char *path, int e)
{
    if (e == EACCES || e == EPERM)
        snprintf(why, SD_ERR_LEN, "rapl: permission denied reading %.300s (root only since Linux 5.10; "
                 "run as root or grant read access with a udev rule)", path);
    else
        snprintf(why, SD_ERR_LEN, "rapl: cannot read %.300s: %s", path, strerror(e));
}

/* Does a zone's name match the requested domain? Top-level zones are
 * packages (or psys); sub-zones are core/uncore/dram. */
static int domain_matches(const char *domain, const char *name, int top_level)
{
    if (!strcmp(domain, "package")) return top_level && !strncmp(name, "package", 7);
    if (!strcmp(domain, "psys")) return top_level && !strcmp(name, "psys");
    return !strncmp(name, domain, strlen(domain));
}

static int rapl_begin(sd_energy_backend *b, char *err)
{
    rapl_state *s = b->state;
    s->total_uj = 0;
    for (int i = 0; i < s->n; i++)
        if (read_counter(s->fd[i], &s->prev_uj[i]) != 0) {
            snprintf(err, SD_ERR_LEN, "rapl: reading energy_uj failed");
            return -1;
        }
    return 0;
}

static int rapl_sample(sd_energy_backend *b, double *joules, char *err)
{
    rapl_state *s = b->state;
    for (int i = 0; i < s->n; i++) {
        uint64_t now;
        if (read_counter(s->fd[i], &now) != 0) {
            snprintf(err, SD_ERR_LEN, "rapl: reading energy_uj failed");
            return -1;
        }
        s->total_uj += sd_rapl_delta_uj(s->prev_uj[i], now, s->max_uj[i]);
        s->prev_uj[i] = now;
    }
    *joules = (double)s->total_uj / 1e6;
    return 0;
}

static void rapl_close(sd_energy_backend *b)
{
    rapl_state *s = b->state;
    for (int i = 0; i < s->n; i++) close(s->fd[i]);
    free(s);
    free(b);
}

static void append(char *dst, size_t n, const char *s)
{
    size_t l = strlen(dst), k = strlen(s);
    if (l + k >= n) k = n - l - 1;
    memcpy(dst + l, s, k);
    dst[l + k] = 0;
}

static int zone_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int sd_energy_rapl_open(const char *domain, sd_energy_backend **out, char *why)
{
    const char *root = sd_rapl_root();
    if (strcmp(domain, "package") && strcmp(domain, "core") && strcmp(domain, "uncore") &&
        strcmp(domain, "dram") && strcmp(domain, "psys")) {
        snprintf(why, SD_ERR_LEN, "rapl: unknown domain '%s' (package, core, uncore, dram, psys)", domain);
        return -1;
    }
    DIR *d = opendir(root);
    if (!d) {
        snprintf(why, SD_ERR_LEN, "no readable sensor (%s: %s)", root, strerror(errno));
        return -1;
    }
    char *names[64];
    int n_names = 0;
    for (struct dirent *de; (de = readdir(d)) && n_names < 64;)
        if (!strncmp(de->d_name, "intel-rapl:", 11)) names[n_names++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n_names, sizeof names[0], zone_cmp);

    rapl_state *s = calloc(1, sizeof *s);
    sd_energy_backend *b = calloc(1, sizeof *b);
    int rc = -1, found_any = 0;
    char src[128] = "rapl:";
    why[0] = 0;
    for (int i = 0; s && b && i < n_names && s->n < RAPL_MAX_ZONES; i++) {
        char path[1024], text[128];
        int top = strchr(names[i] + 11, ':') == NULL;
        snprintf(path, sizeof path, "%s/%s/name", root, names[i]);
        int e = read_text(path, text, sizeof text);
        if (e) { if (!why[0]) describe_open_error(why, path, -e); continue; }
        found_any = 1;
        if (!domain_matches(domain, text, top)) continue;
        char zone_label[208];
        if (top) snprintf(zone_label, sizeof zone_label, "%s", text);
        else {
            /* sub-zone: name it after its package, e.g. package-0/dram */
            char ppath[1024], pname[64] = "?";
            snprintf(ppath, sizeof ppath, "%s/%.*s/name", root,
                     (int)(strrchr(names[i], ':') - names[i]), names[i]);
            read_text(ppath, pname, sizeof pname);
            snprintf(zone_label, sizeof zone_label, "%s/%s", pname, text);
        }
        snprintf(path, sizeof path, "%s/%s/max_energy_range_uj", root, names[i]);
        uint64_t max = 0;
        if ((e = read_text(path, text, sizeof text)) != 0) { describe_open_error(why, path, -e); goto done; }
        if (parse_u64(text, &max) != 0 || max == 0) {
            snprintf(why, SD_ERR_LEN, "rapl: %.300s holds '%.60s', not a positive integer", path, text);
            goto done;
        }
        snprintf(path, sizeof path, "%s/%s/energy_uj", root, names[i]);
        int fd = sd_rapl_open_fn(path, O_RDONLY);
        if (fd < 0) { describe_open_error(why, path, errno); goto done; }
        uint64_t v;
        if (read_counter(fd, &v) != 0) {
            snprintf(why, SD_ERR_LEN, "rapl: %.400s is not a readable counter", path);
            close(fd);
            goto done;
        }
        s->fd[s->n] = fd;
        s->max_uj[s->n] = max;
        s->n++;
        if (s->n > 1) append(src, sizeof src, "+");
        append(src, sizeof src, zone_label);
    }
    if (!s || !b) snprintf(why, SD_ERR_LEN, "out of memory");
    else if (s->n == 0 && !why[0])
        snprintf(why, SD_ERR_LEN, found_any ? "no readable sensor (no RAPL %s domain under %s)"
                                            : "no readable sensor (no intel-rapl:* zones under %s%s)",
                 found_any ? domain : root, found_any ? root : "");
    else if (s->n > 0) rc = 0;
done:
    for (int i = 0; i < n_names; i++) free(names[i]);
    if (rc != 0) {
        if (s) for (int i = 0; i < s->n; i++) close(s->fd[i]);
        free(s);
        free(b);
        return -1;
    }
    snprintf(b->source, sizeof b->source, "%s", src);
    b->is_power = 0;
    b->default_interval_ms = 1000;  /* a 32-bit AMD counter wraps after ~4 min at 250 W */
    b->state = s;
    b->begin = rapl_begin;
    b->sample = rapl_sample;
    b->close = rapl_close;
    *out = b;
    return 0;
}
