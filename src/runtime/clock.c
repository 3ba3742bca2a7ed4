/* Clock and version: the two facts every report needs. */
#include <time.h>

#include "showdown.h"

double sd_time_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *sd_version(void) { return "0.1.0"; }
