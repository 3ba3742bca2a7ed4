/* showdown quantize: rewrite an F32/F16/BF16 model in another weight format
 * or one of the ecosystem's mixed recipes. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "cli/cli.h"
#include "quant/quantize.h"
#include "quant/recipe.h"
#include "tensor/types.h"

static void usage(FILE *out)
{
    char names[400];
    sd_qrecipe_names(names, sizeof names);
    fprintf(out,
            "usage: showdown quantize IN.gguf OUT.gguf TYPE [options]\n\n"
            "Rewrites an F32, F16 or BF16 model with its matrices in TYPE (any case):\n"
            "  %s\n"
            "A format name puts every matrix in that format; Q2_K, Q3_K_S/M/L, Q4_K_S/M,\n"
            "Q5_K_S/M and Q6_K are llama.cpp's mixes, giving some tensors more bits\n"
            "(docs/FORMATS.md). Vectors and norms stay F32. Rows that do not fit a format's\n"
            "blocks fall back to one that does (reported on stderr).\n\n"
            "options:\n"
            "  --pure               no per-tensor bumps: every matrix in the base format\n"
            "  --keep-output-f16    the output matrix (or tied embedding) in F16\n"
            "  --allow-requantize   accept a quantized IN: its matrices are decoded and encoded\n"
            "                       again (two losses add up); one already in its format is copied\n"
            "  -t, --threads N      threads (default: every CPU)\n"
            "  --dry-run            print each tensor's format before and after, write nothing\n"
            "  --progress           progress on stderr even when it is not a terminal\n"
            "  -q, --quiet          no progress, no notes\n",
            names);
}

static void print_plan(void *ctx, const char *name, const int64_t *ne, uint32_t from, uint32_t to)
{
    (void)ctx;
    printf("%-32s [%6lld, %6lld]  %-6s -> %s\n", name, (long long)ne[0], (long long)ne[1], sd_type_name(from),
           sd_type_name(to));
}

int cmd_quantize(int argc, char **argv)
{
    const char *pos[3];
    int n_pos = 0, progress = isatty(2), quiet = 0, dry_run = 0;
    sd_quantize_params p = sd_quantize_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--pure")) p.pure = 1;
        else if (!strcmp(a, "--keep-output-f16")) p.keep_output_f16 = 1;
        else if (!strcmp(a, "--allow-requantize")) p.allow_requantize = 1;
        else if (!strcmp(a, "--progress")) progress = 1;
        else if (!strcmp(a, "--dry-run")) dry_run = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc) return fail("%s: needs a value", a);
            if (parse_int(a, argv[++i], 1, 4096, &v)) return 1;
            p.n_threads = (int)v;
        } else if (a[0] == '-' && a[1]) {
            return fail("quantize: unknown option '%s' (showdown quantize --help)", a);
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            return fail("quantize: too many arguments (showdown quantize --help)");
        }
    }
    if (n_pos != 3) return fail("quantize: expected IN.gguf OUT.gguf TYPE (showdown quantize --help)");
    p.target = pos[2];
    if (!sd_qrecipe_find(p.target)) {
        char names[400];
        sd_qrecipe_names(names, sizeof names);
        return fail("%s: unknown quantization type (valid: %s)", p.target, names);
    }
    char err[SD_ERR_LEN];
    if (!quiet) p.note = write_note;
    if (dry_run) return sd_quantize_plan(pos[0], &p, print_plan, NULL, err) ? fail("%s", err) : 0;
    write_progress ps = {0, 0.0};
    if (progress && !quiet) { p.progress = write_progress_show; p.progress_ctx = &ps; }
    sd_quantize_stats st;
    double t0 = sd_time_ms();
    write_remove_temp_on_signals();
    int rc = sd_quantize_file(pos[0], pos[1], &p, &st, err);
    if (p.progress && !ps.done) fputc('\n', stderr);
    if (rc) return fail("%s", err);
    printf("%s -> %s (%s): %d tensors, %d quantized%s, %.1f MB -> %.1f MB in %.1f s\n", pos[0], pos[1],
           sd_qrecipe_find(p.target)->name, st.n_tensors, st.n_quantized,
           st.n_fallback ? " (some with fallback formats)" : "", (double)st.in_bytes / 1e6,
           (double)st.out_bytes / 1e6, (sd_time_ms() - t0) / 1000.0);
    return 0;
}
