/* The markdown table: llama-bench's columns plus showdown's (TTFT, roofline,
 * energy, memory, load). Definitions follow the table so a pasted result
 * carries its meaning. */
#include <math.h>
#include <stdio.h>

#include "bench/emit.h"

void sd_bench_md_header(FILE *f)
{
    fputs("| model | size | params | threads | kv | test | t/s | TTFT ms | roofline | J | tokens/J | peak RSS | load ms |\n"
          "| ----- | ---: | -----: | ------: | -- | ---: | --: | ------: | -------: | -: | -------: | -------: | ------: |\n", f);
}

static const char *basename_of(const char *p)
{
    const char *s = p;
    for (const char *q = p; *q; q++)
        if (*q == '/') s = q + 1;
    return s;
}

void sd_bench_md_row(FILE *f, const sd_bench_row *r)
{
    char test[96];
    sd_bench_test_name(r, test, sizeof test);
    fputs("| ", f);
    sd_md_cell(f, basename_of(r->model_filename));
    if (r->model_type[0]) { fputs(" (", f); sd_md_cell(f, r->model_type); fputc(')', f); }
    fprintf(f, " | %.2f MiB | %.2f M | %d | %s | %s | ", r->model_size / 1048576.0, r->model_n_params / 1e6,
            r->n_threads, r->type_k, test);
    if (r->error[0]) {
        fputs("error: ", f);
        sd_md_cell(f, r->error);
        fputs(" | | | | | | |\n", f);
        return;
    }
    fprintf(f, "%.2f ± %.2f | %.2f ± %.2f | ", r->avg_ts, r->stddev_ts, r->ttft_ms, r->stddev_ttft_ms);
    /* "!": above its ceiling, which a physical limit cannot be; the note says why it may happen */
    if (isfinite(r->roofline_fraction))
        fprintf(f, "%.1f%%%s %s | ", 100 * r->roofline_fraction, r->roofline_fraction > 1 ? "!" : "",
                r->roofline_ceiling);
    else fputs("n/a | ", f);
    if (isfinite(r->energy_j)) fprintf(f, "%.3f ± %.3f | %.1f | ", r->energy_j, r->stddev_energy_j, r->tokens_per_joule);
    else fputs("n/a | n/a | ", f);
    fprintf(f, "%.1f MiB | %.1f (%s) |\n", r->peak_rss_bytes / 1048576.0, r->load_ms, r->load_cache);
}

void sd_bench_md_footer(FILE *f, const sd_bench_row *last)
{
    if (!last) return;
    fputs("\n", f);
    fprintf(f, "cpu: %s", last->cpu_info);
    if (last->llc_bytes) {
        if (last->l2_bytes) fprintf(f, " (L2 %.4g MiB, ", last->l2_bytes / 1048576.0);
        else fputs(" (", f);
        fprintf(f, "LLC %.4g MiB per %d CPUs)", last->llc_bytes / 1048576.0, last->llc_shared_cpus);
    }
    fprintf(f, "; kernels: %s; build: %s; %d repetitions after %d warm-up runs, seed %llu\n", last->kernel_isa,
            last->build_commit, last->n_reps, last->n_warmup, (unsigned long long)last->seed);
    fprintf(f, "energy: %s%s\n", last->energy_source,
            isfinite(last->energy_j) ? " (joules per repetition over the timed region)" : "");
    if (last->roofline_note[0]) fprintf(f, "roofline: %s\n", last->roofline_note);
    fputs("roofline: t/s over the ceiling named beside it (compute: multiply-add rate; dram, cache, cache+dram:\n"
          "the bytes a decode step reads, the part the caches can hold at the cache read rate); \"!\": above it\n", f);
    fputs("t/s: mean ± sample sd over repetitions. pp N: N prompt tokens in one pass; tg N: N single-token\n"
          "decode steps (random token ids, greedy argmax each step included) after the d-token context;\n"
          "TTFT: prefill + one decode step + argmax. load: sd_model_load, page cache state measured before it.\n", f);
}
