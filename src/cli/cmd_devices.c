/* showdown devices: the GPU devices each backend sees, with memory and driver. */
#include <stdio.h>
#include <string.h>

#include "showdown.h"
#include "cli/cli.h"
#include "gpu/backend.h"

int cmd_devices(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        puts("usage: showdown devices\n\nLists the GPU devices (index for --device, memory, driver, whether the\n"
             "driver is a software one running on the CPU, such as Mesa's lavapipe).");
        return 0;
    }
    if (argc > 1) return fail("devices: unexpected argument '%s' (showdown devices --help)", argv[1]);
    int total = 0;
    for (int b = 0; sd_gpu_backends[b]; b++) {
        sd_gpu_device_info info[16];
        char err[SD_ERR_LEN] = "";
        int n = sd_gpu_backends[b]->list(info, 16, err);
        if (n == 0) printf("%s: none (%s)\n", sd_gpu_backends[b]->name, err);
        for (int i = 0; i < n; i++) {
            printf("%s device %d: %s\n", sd_gpu_backends[b]->name, i, info[i].name);
            printf("  memory   %.2f GiB, %.2f GiB free\n", info[i].mem_total / 1073741824.0, info[i].mem_free / 1073741824.0);
            printf("  driver   %s (%s)\n", info[i].driver, info[i].api);
            printf("  type     %s\n", info[i].software ? "software (runs on the CPU: only correctness counts)" : "hardware");
        }
        total += n;
    }
    if (!total) puts("no GPU device: every command runs on the CPU");
    return 0;
}
