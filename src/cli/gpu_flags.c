/* -ngl / --device for run, bench and ppl: parsing, the offload call, its
 * progress and the one line on stderr saying what runs where. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "cli/cli.h"

int parse_ngl(const char *flag, const char *v, int *out)
{
    long l;
    if (!strcmp(v, "auto")) { *out = SD_NGL_AUTO; return 0; }
    if (parse_int(flag, v, 0, 100000, &l)) return -1;
    *out = (int)l;
    return 0;
}

static void upload_progress(void *ctx, uint64_t done, uint64_t total)
{
    double *last = ctx, now = sd_time_ms();
    if (total < (256u << 20)) return;   /* small models load in a blink */
    if (done < total && now - *last < 500) return;
    *last = now;
    fprintf(stderr, "\rupload %.0f / %.0f MiB", done / 1048576.0, total / 1048576.0);
    if (done >= total) fputc('\n', stderr);
}

int gpu_offload(sd_model *m, int ngl, int device, int n_ctx, sd_kv_type kv)
{
    if (ngl == 0 && device == 0) return 0;
    double last = 0;
    sd_offload_params p = {ngl, device, n_ctx, kv, upload_progress, &last};
    char err[SD_ERR_LEN];
    if (sd_model_offload(m, &p, err)) return fail("%s", err);
    fprintf(stderr, "%s\n", sd_model_placement(m));
    return 0;
}
