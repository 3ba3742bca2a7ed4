/* The row's fields in output order: llama-bench's names first where the
 * meaning is the same, then what showdown adds. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/fields.h"

#define F(name, kind) {#name, kind, offsetof(sd_bench_row, name)}

const sd_bench_field sd_bench_fields[] = {
    {"bench_schema", FK_SCHEMA, 0},
    F(build_commit, FK_STR),
    F(cpu_info, FK_STR),
    F(l2_bytes, FK_U64),
    F(llc_bytes, FK_U64),
    F(llc_shared_cpus, FK_INT),
    F(kernel_isa, FK_STR),
    F(model_filename, FK_STR),
    F(model_type, FK_STR),
    F(model_size, FK_U64),
    F(model_n_params, FK_U64),
    F(n_threads, FK_INT),
    F(backends, FK_STR),
    F(n_gpu_layers, FK_INT),
    F(gpu_info, FK_STR),
    F(type_k, FK_STR),
    F(type_v, FK_STR),
    F(n_prompt, FK_INT),
    F(n_gen, FK_INT),
    F(n_depth, FK_INT),
    {"test", FK_TEST, 0},
    F(test_time, FK_STR),
    F(n_reps, FK_INT),
    F(n_warmup, FK_INT),
    F(seed, FK_U64),
    F(avg_ns, FK_NUM),
    F(stddev_ns, FK_NUM),
    F(avg_ts, FK_NUM),
    F(stddev_ts, FK_NUM),
    {"samples_ns", FK_SAMPLES_NS, 0},
    {"samples_ts", FK_SAMPLES_TS, 0},
    F(ttft_ms, FK_NUM),
    F(stddev_ttft_ms, FK_NUM),
    F(load_ms, FK_NUM),
    F(load_cache, FK_STR),
    F(load_cached_fraction, FK_NUM),
    F(peak_rss_bytes, FK_U64),
    F(energy_j, FK_NUM),
    F(stddev_energy_j, FK_NUM),
    F(energy_source, FK_STR),
    F(tokens_per_joule, FK_NUM),
    F(roofline_ts, FK_NUM),
    F(roofline_fraction, FK_NUM),
    F(roofline_ceiling, FK_STR),
    F(roofline_note, FK_STR),
    F(error, FK_ERROR),
};
const int sd_bench_n_fields = (int)(sizeof sd_bench_fields / sizeof sd_bench_fields[0]);

const char *sd_bench_test_name(const sd_bench_row *r, char *buf, unsigned long n)
{
    if (r->n_prompt > 0 && r->n_gen > 0) snprintf(buf, n, "pp%d+tg%d", r->n_prompt, r->n_gen);
    else if (r->n_prompt > 0) snprintf(buf, n, "pp%d", r->n_prompt);
    else snprintf(buf, n, "tg%d", r->n_gen);
    if (r->n_depth > 0) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, " @ d%d", r->n_depth);
    }
    return buf;
}

const char *sd_kv_type_name(sd_kv_type t)
{
    return t == SD_KV_F32 ? "f32" : t == SD_KV_F16 ? "f16" : t == SD_KV_Q8_0 ? "q8_0" : "?";
}

int sd_kv_type_parse(const char *s, sd_kv_type *out)
{
    if (!strcmp(s, "f32")) *out = SD_KV_F32;
    else if (!strcmp(s, "f16")) *out = SD_KV_F16;
    else if (!strcmp(s, "q8_0")) *out = SD_KV_Q8_0;
    else return -1;
    return 0;
}
