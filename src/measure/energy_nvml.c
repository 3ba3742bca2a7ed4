/* NVIDIA GPU board energy through NVML, loaded at run time with dlopen so the
 * build has no dependency on the driver. Where the GPU has a total-energy
 * counter (Volta and later) it is read at both ends of the region; otherwise
 * board power is sampled every 100 ms and integrated by the core. All GPUs
 * are summed and named in the source ("nvml:gpu0+gpu1"). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "measure/energy.h"

#define NVML_MAX_GPUS 16
#define NVML_OK 0
#define NVML_NOT_SUPPORTED 3
#define NVML_NO_PERMISSION 4

typedef struct nvml_dev *nvml_device;   /* opaque nvmlDevice_t */

typedef struct {
    void *lib;
    int (*shutdown)(void);
    int (*energy)(nvml_device, unsigned long long *);  /* mJ since driver load */
    int (*power)(nvml_device, unsigned int *);         /* mW */
    const char *(*errstr)(int);
    unsigned n;
    nvml_device dev[NVML_MAX_GPUS];
    unsigned long long start_mj[NVML_MAX_GPUS];
} nvml_state;

static const char *nv_err(nvml_state *s, int rc)
{
    return s->errstr ? s->errstr(rc) : "NVML error";
}

static int nvml_begin(sd_energy_backend *b, char *err)
{
    nvml_state *s = b->state;
    if (b->is_power) return 0;
    for (unsigned i = 0; i < s->n; i++) {
        int rc = s->energy(s->dev[i], &s->start_mj[i]);
        if (rc != NVML_OK) {
            snprintf(err, SD_ERR_LEN, "nvml: gpu%u energy counter: %s", i, nv_err(s, rc));
            return -1;
        }
    }
    return 0;
}

static int nvml_sample(sd_energy_backend *b, double *value, char *err)
{
    nvml_state *s = b->state;
    double sum = 0;
    for (unsigned i = 0; i < s->n; i++) {
        int rc;
        if (b->is_power) {
            unsigned int mw;
            if ((rc = s->power(s->dev[i], &mw)) != NVML_OK) {
                snprintf(err, SD_ERR_LEN, "nvml: gpu%u power: %s", i, nv_err(s, rc));
                return -1;
            }
            sum += mw / 1e3;
        } else {
            unsigned long long mj;
            if ((rc = s->energy(s->dev[i], &mj)) != NVML_OK) {
                snprintf(err, SD_ERR_LEN, "nvml: gpu%u energy counter: %s", i, nv_err(s, rc));
                return -1;
            }
            sum += (double)(mj - s->start_mj[i]) / 1e3;
        }
    }
    *value = sum;
    return 0;
}

static void nvml_close(sd_energy_backend *b)
{
    nvml_state *s = b->state;
    if (s->shutdown) s->shutdown();
    dlclose(s->lib);
    free(s);
    free(b);
}

int sd_energy_nvml_open(sd_energy_backend **out, char *why)
{
    const char *name = getenv("SHOWDOWN_NVML_LIB");
    if (!name || !*name) name = "libnvidia-ml.so.1";
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(why, SD_ERR_LEN, "no readable sensor (nvml: %s not found: no NVIDIA driver)", name);
        return -1;
    }
    nvml_state *s = calloc(1, sizeof *s);
    sd_energy_backend *b = calloc(1, sizeof *b);
    int (*init)(void) = (int (*)(void))dlsym(lib, "nvmlInit_v2");
    int (*count)(unsigned *) = (int (*)(unsigned *))dlsym(lib, "nvmlDeviceGetCount_v2");
    int (*handle)(unsigned, nvml_device *) = (int (*)(unsigned, nvml_device *))dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
    if (!s || !b) { snprintf(why, SD_ERR_LEN, "out of memory"); goto fail; }
    s->lib = lib;
    s->shutdown = (int (*)(void))dlsym(lib, "nvmlShutdown");
    s->energy = (int (*)(nvml_device, unsigned long long *))dlsym(lib, "nvmlDeviceGetTotalEnergyConsumption");
    s->power = (int (*)(nvml_device, unsigned *))dlsym(lib, "nvmlDeviceGetPowerUsage");
    s->errstr = (const char *(*)(int))dlsym(lib, "nvmlErrorString");
    if (!init || !count || !handle || !s->shutdown || !s->power) {
        snprintf(why, SD_ERR_LEN, "nvml: %s lacks the functions it should have", name);
        goto fail;
    }
    int rc = init();
    if (rc != NVML_OK) {
        snprintf(why, SD_ERR_LEN, "nvml: initialization failed: %s", nv_err(s, rc));
        s->shutdown = NULL;
        goto fail;
    }
    unsigned n = 0;
    if ((rc = count(&n)) != NVML_OK || n == 0) {
        snprintf(why, SD_ERR_LEN, "no readable sensor (nvml: %s)", rc != NVML_OK ? nv_err(s, rc) : "no GPUs");
        goto fail;
    }
    if (n > NVML_MAX_GPUS) n = NVML_MAX_GPUS;
    int counters = s->energy != NULL;
    char src[128] = "nvml:";
    for (unsigned i = 0; i < n; i++) {
        if ((rc = handle(i, &s->dev[i])) != NVML_OK) {
            snprintf(why, SD_ERR_LEN, "nvml: gpu%u: %s", i, nv_err(s, rc));
            goto fail;
        }
        unsigned long long mj;
        unsigned mw;
        if (counters && s->energy(s->dev[i], &mj) != NVML_OK) counters = 0;
        if (!counters && (rc = s->power(s->dev[i], &mw)) != NVML_OK) {
            snprintf(why, SD_ERR_LEN, rc == NVML_NO_PERMISSION ? "nvml: gpu%u: permission denied reading power"
                                                               : "nvml: gpu%u cannot report power or energy (%s)",
                     i, nv_err(s, rc));
            goto fail;
        }
        size_t l = strlen(src);
        snprintf(src + l, sizeof src - l, "%sgpu%u", i ? "+" : "", i);
    }
    s->n = n;
    snprintf(b->source, sizeof b->source, "%s", src);
    b->is_power = !counters;
    b->default_interval_ms = counters ? 1000 : 100;
    b->state = s;
    b->begin = nvml_begin;
    b->sample = nvml_sample;
    b->close = nvml_close;
    *out = b;
    return 0;
fail:
    if (s && s->shutdown) s->shutdown();
    free(s);
    free(b);
    dlclose(lib);
    return -1;
}
