/* Energy probes: joules from a hardware counter over exactly a timed region,
 * with the boundary named (CPU package via RAPL, GPU board via NVML, SoC via
 * powermetrics). A probe that cannot read a sensor is still a probe: it says
 * "unavailable: <why>" and never produces a number, so nothing downstream can
 * print an estimate as a measurement.
 *
 *   sd_energy *e = sd_energy_open("auto", 0);
 *   sd_energy_begin(e, err); ...timed work...; sd_energy_end(e, &joules, err);
 */
#ifndef SD_ENERGY_H
#define SD_ENERGY_H

#include <stdint.h>

typedef struct sd_energy sd_energy;

/* which: "auto" (RAPL package on Linux, powermetrics on macOS), "rapl",
 * "rapl:package" / "rapl:core" / "rapl:dram" / "rapl:psys", "nvml",
 * "powermetrics", "none". interval_ms: how often a background thread samples
 * (catches counter wrap-around on long regions, integrates power readings);
 * 0 = the backend's default, -1 = no thread (tests). Never NULL except when
 * out of memory. */
sd_energy *sd_energy_open(const char *which, int interval_ms);
void sd_energy_close(sd_energy *e);
int sd_energy_available(const sd_energy *e);
/* "rapl:package-0", "nvml:gpu0", "powermetrics:soc", or "unavailable: <why>". */
const char *sd_energy_source(const sd_energy *e);
int sd_energy_begin(sd_energy *e, char *err);
/* Joules since begin. -1 (message in err) if unavailable or a read failed. */
int sd_energy_end(sd_energy *e, double *joules, char *err);

/* ---- backends (energy_*.c) -------------------------------------------- */

/* A backend either reports a cumulative energy counter (joules since its
 * begin; it handles its own wrap-around) or an instantaneous power in watts
 * that the core integrates over time. */
typedef struct sd_energy_backend {
    char source[128];
    int is_power;               /* 1: sample() gives watts; 0: joules since begin */
    int default_interval_ms;
    void *state;
    int (*begin)(struct sd_energy_backend *b, char *err);
    int (*sample)(struct sd_energy_backend *b, double *value, char *err);
    void (*close)(struct sd_energy_backend *b);
} sd_energy_backend;

/* Each returns 0 with *out filled, or -1 with the reason it is unavailable
 * in why (e.g. "permission denied reading ..."). */
int sd_energy_rapl_open(const char *domain, sd_energy_backend **out, char *why);
int sd_energy_nvml_open(sd_energy_backend **out, char *why);
int sd_energy_powermetrics_open(sd_energy_backend **out, char *why);

/* RAPL internals exposed for tests. */
/* Energy between two readings of a counter that wraps at max_range_uj. */
uint64_t sd_rapl_delta_uj(uint64_t prev, uint64_t now, uint64_t max_range_uj);
/* Where the powercap tree is: $SHOWDOWN_POWERCAP_ROOT, else /sys/class/powercap. */
const char *sd_rapl_root(void);
/* How the probe opens sysfs files; tests swap it to simulate a kernel that
 * refuses access (tests run as root, and chmod 000 does not stop root). */
extern int (*sd_rapl_open_fn)(const char *path, int flags);

#endif
