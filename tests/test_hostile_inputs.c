/* Hostile input, library and CLI. The first half replays, byte for byte, the
 * inputs the fuzz targets (fuzz/) found, each with the clear error it must
 * now get; the second half gives every subcommand a bad flag, a missing
 * value, a non-number, an out-of-range number, a missing file, a directory
 * and a truncated GGUF: one line "error: ...", naming the flag or file, a
 * non-zero exit that is not a signal, and no output file left behind. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "showdown.h"
#include "bench/listarg.h"
#include "bench/report.h"
#include "eval/logits_file.h"
#include "gguf/gguf.h"
#include "measure/calibrate.h"
#include "plan/plan.h"
#include "text/tokenizer.h"
#include "common.h"

/* ---- small files ------------------------------------------------------- */

static const char *tmp_path(const char *name)
{
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "/tmp/sd-hostile-%d-%s", (int)getpid(), name);
    return p[k];
}

static const char *write_file(const char *name, const void *b, size_t n)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
    return path;
}

static const char *write_text(const char *name, const char *s) { return write_file(name, s, strlen(s)); }

static void assert_one_line(const char *err, const char *needle)
{
    cr_assert(err[0] && !strchr(err, '\n'), "not one line: '%s'", err);
    cr_assert(strstr(err, needle), "expected '%s' in: %s", needle, err);
}

/* ---- a little GGUF writer for hand-made headers ------------------------- */

typedef struct { uint8_t b[4096]; size_t n; } gbuf;

static void put(gbuf *g, const void *p, size_t n) { cr_assert(g->n + n <= sizeof g->b); memcpy(g->b + g->n, p, n); g->n += n; }
static void put_u32(gbuf *g, uint32_t v) { put(g, &v, 4); }
static void put_u64(gbuf *g, uint64_t v) { put(g, &v, 8); }
static void put_str(gbuf *g, const char *s) { put_u64(g, strlen(s)); put(g, s, strlen(s)); }
static void head(gbuf *g, uint64_t n_tensors, uint64_t n_kv) { g->n = 0; put(g, "GGUF", 4); put_u32(g, 3); put_u64(g, n_tensors); put_u64(g, n_kv); }
static void kv_str(gbuf *g, const char *k, const char *v) { put_str(g, k); put_u32(g, GGUF_STRING); put_str(g, v); }
static void kv_bool(gbuf *g, const char *k, uint8_t v) { put_str(g, k); put_u32(g, GGUF_BOOL); put(g, &v, 1); }

static void kv_strs(gbuf *g, const char *k, const char **v, int n)
{
    put_str(g, k); put_u32(g, GGUF_ARRAY); put_u32(g, GGUF_STRING); put_u64(g, (uint64_t)n);
    for (int i = 0; i < n; i++) put_str(g, v[i]);
}

static void kv_i32s(gbuf *g, const char *k, const int32_t *v, int n)
{
    put_str(g, k); put_u32(g, GGUF_ARRAY); put_u32(g, GGUF_INT32); put_u64(g, (uint64_t)n);
    put(g, v, 4 * (size_t)n);
}

/* ---- GGUF and tokenizer ------------------------------------------------ */

/* fuzz_model_load: a tensor name holding a newline went straight into the
 * message, which then spanned two lines. */
Test(hostile_lib, gguf_names_with_newlines_stay_on_one_line)
{
    gbuf g;
    head(&g, 1, 0);
    put_str(&g, "to\nken_embd.weigh");
    put_u32(&g, 628);
    char err[SD_ERR_LEN] = "";
    gguf_file *f = NULL;
    cr_assert_eq(gguf_parse(g.b, g.n, "evil.gguf", &f, err), -1);
    assert_one_line(err, "evil.gguf: tensor 'to?ken_embd.weigh' has 628 dimensions");
}

/* fuzz_tokenizer_gguf: the same through the tokenizer's own messages. */
Test(hostile_lib, tokenizer_model_name_with_newline)
{
    gbuf g;
    head(&g, 0, 1);
    kv_str(&g, "tokenizer.ggml.model", "lla\nma\x1b[2J");
    char err[SD_ERR_LEN] = "";
    gguf_file *f = NULL;
    sd_tokenizer *t = NULL;
    cr_assert_eq(gguf_parse(g.b, g.n, "evil.gguf", &f, err), 0, "%s", err);
    cr_assert_eq(sd_tokenizer_from_gguf(f, &t, err), -1);
    assert_one_line(err, "evil.gguf: unsupported tokenizer.ggml.model 'lla?ma?[2J'");
    cr_assert(!strchr(err, 0x1b), "terminal escape in: %s", err);
    gguf_close(f);
}

/* fuzz_tokenizer_gguf: with two user-defined tokens, the second split pass
 * started with a NULL array it believed had room, and wrote through it as
 * soon as the first pass had cut the text into three or more pieces. */
Test(hostile_lib, tokenizer_two_user_defined_tokens)
{
    static const char *toks[] = {"a", "b", "<x>", "<yy>"};
    static const int32_t types[] = {1, 1, 4, 4};
    static const char *merges[] = {"a b"};
    gbuf g;
    head(&g, 0, 5);
    kv_str(&g, "tokenizer.ggml.model", "gpt2");
    kv_strs(&g, "tokenizer.ggml.tokens", toks, 4);
    kv_i32s(&g, "tokenizer.ggml.token_type", types, 4);
    kv_strs(&g, "tokenizer.ggml.merges", merges, 1);
    kv_bool(&g, "tokenizer.ggml.add_bos_token", 0);
    char err[SD_ERR_LEN] = "";
    gguf_file *f = NULL;
    sd_tokenizer *t = NULL;
    cr_assert_eq(gguf_parse(g.b, g.n, "ud.gguf", &f, err), 0, "%s", err);
    cr_assert_eq(sd_tokenizer_from_gguf(f, &t, err), 0, "%s", err);
    gguf_close(f);
    const char *text = "a<yy>b<yy>a<x>";
    int32_t *ids = NULL;
    int n = 0;
    cr_assert_eq(sd_tokenize(t, text, strlen(text), 1, &ids, &n, err), 0, "%s", err);
    static const int32_t want[] = {0, 3, 1, 3, 0, 2};
    cr_assert_eq(n, 6, "got %d tokens", n);
    for (int i = 0; i < n; i++) cr_assert_eq(ids[i], want[i], "token %d is %d, want %d", i, ids[i], want[i]);
    free(ids);
    sd_tokenizer_free(t);
}

/* `plan --model FILE`: the header's architecture name is quoted back. */
Test(hostile_lib, plan_shape_architecture_with_newline)
{
    gbuf g;
    head(&g, 1, 1);
    kv_str(&g, "general.architecture", "x\ny");
    put_str(&g, "token_embd.weight");
    put_u32(&g, 2);
    put_u64(&g, 2);
    put_u64(&g, 2);
    put_u32(&g, 0);   /* F32 */
    put_u64(&g, 0);
    while (g.n % 32) put(&g, "", 1);
    static const float w[4] = {1, 2, 3, 4};
    put(&g, w, sizeof w);
    const char *path = write_file("arch.gguf", g.b, g.n);
    char err[SD_ERR_LEN] = "";
    sd_gguf_model m;
    cr_assert_eq(sd_shape_from_gguf(path, &m, err), -1);
    assert_one_line(err, "x?y.embedding_length is missing");
    cr_assert(strstr(err, path) == err, "%s", err);
    unlink(path);
}

/* ---- logits files ------------------------------------------------------ */

static void expect_logits_refused(const uint32_t hdr[3], const char *needle)
{
    uint8_t b[16];
    memcpy(b, "SDRL", 4);
    memcpy(b + 4, hdr, 12);
    const char *path = write_file("l.sdrl", b, sizeof b);
    sd_logits_file lf;
    char err[SD_ERR_LEN] = "";
    cr_assert_eq(sd_logits_file_read(path, &lf, err), -1, "header %u/%u/%u accepted", hdr[0], hdr[1], hdr[2]);
    assert_one_line(err, needle);
    cr_assert_null(lf.logits);
    unlink(path);
}

/* fuzz_logits_file: no rows but a 4-billion-token vocabulary made the reader
 * allocate 16 GB for a 16-byte file. */
Test(hostile_lib, logits_huge_vocab_no_rows)
{
    const uint32_t hdr[3] = {0xff000004u, 0, 0};
    expect_logits_refused(hdr, "vocabulary of 4278190084 tokens is absurd");
}

/* Counts whose byte size wraps 2^64 to exactly 16 matched the file size
 * (4 * 2^30 rows * 2^32 = 2^64); and a plain lie about the row count. */
Test(hostile_lib, logits_size_that_wraps)
{
    const uint32_t wrap[3] = {0xffffffffu, 1u << 30, 0};
    expect_logits_refused(wrap, "vocabulary of 4294967295 tokens is absurd");
    const uint32_t lie[3] = {8, 3, 1};
    expect_logits_refused(lie, "size 16 does not match its header");
}

/* ---- list flags -------------------------------------------------------- */

/* The step after the last value overflowed a long (undefined; in practice it
 * wrapped negative and the range went on). */
Test(hostile_lib, list_range_step_never_overflows)
{
    const char *cases[] = {"2-3*4611686018427387904", "1-9223372036854775807+9223372036854775807"};
    const int first[] = {2, 1};
    for (int k = 0; k < 2; k++) {
        int *v = NULL, n = 0;
        char err[SD_ERR_LEN] = "";
        int rc = sd_parse_int_list("-p", cases[k], 0, 9223372036854775807L, &v, &n, err);
        cr_assert_eq(rc, 0, "'%s': %s", cases[k], err);
        cr_assert_eq(n, 1, "'%s' gave %d values", cases[k], n);
        cr_assert_eq(v[0], first[k]);
        free(v);
    }
}

/* ---- bench results (report and plan --compare) -------------------------- */

#define ROW_HEAD "{\"bench_schema\": \"showdown-bench/1\", \"model_filename\": \"m.gguf\", \"avg_ts\": 5"

/* fuzz_report_load: a key with an escaped newline was echoed into the message. */
Test(hostile_lib, report_key_with_newline)
{
    const char *path = write_text("nl.jsonl", "{\"beecu\\nh009\", \"x\": 1}\n");
    sd_report_row *rows;
    int n;
    char err[SD_ERR_LEN] = "";
    cr_assert_eq(sd_report_load(path, &rows, &n, err), -1);
    assert_one_line(err, "expected ':' after \"beecu?h009\"");
    cr_assert(strstr(err, path) == err, "%s", err);
    unlink(path);
}

/* Converting 1e300 or -nan to int is undefined: such counts read as 0. */
Test(hostile_lib, report_counts_out_of_int_range)
{
    const char *path = write_text("big.jsonl", ROW_HEAD ", \"n_threads\": 1e300, \"n_gen\": -nan, \"n_prompt\": -1e20}\n");
    sd_report_row *rows;
    int n;
    char err[SD_ERR_LEN] = "";
    cr_assert_eq(sd_report_load(path, &rows, &n, err), 0, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_eq(rows[0].threads, 0);
    cr_assert_eq(rows[0].n_gen, 0);
    cr_assert_eq(rows[0].n_prompt, 0);
    free(rows);
    unlink(path);
}

Test(hostile_lib, compare_rows_with_nan_counts)
{
    const char *path = write_text("nan.jsonl", "{\"model_filename\": \"m.gguf\", \"n_prompt\": nan, \"n_gen\": 1, "
                                               "\"avg_ts\": 5, \"n_threads\": 1}\n");
    sd_bench_row *rows = NULL;
    int n;
    char err[SD_ERR_LEN] = "";
    cr_assert_eq(sd_bench_jsonl_read(path, &rows, &n, err), -1);
    assert_one_line(err, ":1: not a bench row");
    unlink(path);
}

/* Every loader that fopen()s a path: a directory opens, then fails to read,
 * which used to look like an empty file ("no result rows"). */
Test(hostile_lib, directories_are_not_files)
{
    const char *dir = tmp_path("dir");
    cr_assert_eq(mkdir(dir, 0755), 0);
    char err[SD_ERR_LEN] = "";
    sd_report_row *rows;
    sd_bench_row *brows;
    sd_calibration c;
    sd_hw_table t;
    int n;
    cr_assert_eq(sd_report_load(dir, &rows, &n, err), -1);
    assert_one_line(err, "cannot read: Is a directory");
    cr_assert_eq(sd_bench_jsonl_read(dir, &brows, &n, err), -1);
    assert_one_line(err, "cannot read: Is a directory");
    cr_assert_eq(sd_calib_load(&c, dir, err), -1);
    assert_one_line(err, "cannot read: Is a directory");
    cr_assert_eq(sd_hw_load(dir, &t, err), -1);
    assert_one_line(err, "cannot read: Is a directory");
    rmdir(dir);
}

/* ---- calibration profile and hardware table ----------------------------- */

#define PROFILE "# showdown calibration profile v1\nmax_threads\t1\n"

Test(hostile_lib, profile_bandwidth_must_be_a_real_number)
{
    const char *bad[] = {PROFILE "bw_gbps\t1\tnan\n", PROFILE "bw_gbps\t1\tinf\n", PROFILE "bw_gbps\t1\t-nan\n"};
    for (int i = 0; i < 3; i++) {
        const char *path = write_text("p.tsv", bad[i]);
        sd_calibration c;
        char err[SD_ERR_LEN] = "";
        cr_assert_eq(sd_calib_load(&c, path, err), -1, "accepted: %s", bad[i]);
        assert_one_line(err, ":3: malformed line");
        unlink(path);
    }
    const char *path = write_text("p.tsv", PROFILE "bw_gbps\t1\t12.5\n");
    sd_calibration c;
    char err[SD_ERR_LEN] = "";
    cr_assert_eq(sd_calib_load(&c, path, err), 0, "%s", err);
    cr_assert_float_eq(c.bw_gbps[1], 12.5, 1e-9);
    unlink(path);
}

#define HW_ROW(bw, cores) "cpu-x\tSome CPU\tcpu\tcpu\t64\t56\t" bw "\t-\t2\t4\t0\t0\t120\t30\t" cores "\tavx2\t-\thttps://example.com/x\n"

/* (int)nan for the core count is undefined; a nan bandwidth passed "<= 0". */
Test(hostile_lib, hardware_numbers_must_be_finite)
{
    struct { const char *tsv, *needle; } cases[] = {
        {HW_ROW("80", "nan"), ":1: cores 'nan' is not a count"},
        {HW_ROW("nan", "16"), ":1: field 7 'nan' is not a number"},
        {HW_ROW("inf", "16"), ":1: field 7 'inf' is not a number"},
    };
    for (int i = 0; i < 3; i++) {
        const char *path = write_text("hw.tsv", cases[i].tsv);
        sd_hw_table t;
        char err[SD_ERR_LEN] = "";
        cr_assert_eq(sd_hw_load(path, &t, err), -1, "accepted: %s", cases[i].tsv);
        assert_one_line(err, cases[i].needle);
        unlink(path);
    }
    const char *path = write_text("hw.tsv", HW_ROW("80", "16"));
    sd_hw_table t;
    char err[SD_ERR_LEN] = "";
    cr_assert_eq(sd_hw_load(path, &t, err), 0, "%s", err);
    cr_assert_eq(t.n, 1);
    cr_assert_eq(t.rows[0].cores, 16);
    sd_hw_free(&t);
    unlink(path);
}

/* ---- the CLI ----------------------------------------------------------- */

/* Placeholders in a case's arguments: %M a good model, %F an F32 model (for
 * quantize), %T a truncated copy of it, %D a directory, %N no such file,
 * %O and %S output paths, .gguf and .svg (neither may exist afterwards), %P a
 * bad profile. */
typedef struct { const char *args, *needle; } cli_case;

static char dir_path[128], trunc_path[128], out_path[128], svg_path[128], prof_path[128];

static void cli_setup(void)
{
    char p[512];
    size_t n = 0;
    unsigned char *m = read_all(shared_path(p, sizeof p, "models/stories260K.gguf"), &n);
    cr_assert_not_null(m, "cannot read %s", p);
    cr_assert_gt(n, 5000);
    /* Cut inside the vocabulary: the header itself runs past the end. */
    snprintf(trunc_path, sizeof trunc_path, "%s", write_file("cut.gguf", m, 5000));
    free(m);
    snprintf(dir_path, sizeof dir_path, "%s", tmp_path("d"));
    cr_assert_eq(mkdir(dir_path, 0755), 0);
    snprintf(out_path, sizeof out_path, "%s", tmp_path("out.gguf"));
    snprintf(svg_path, sizeof svg_path, "%s", tmp_path("out.svg"));
    snprintf(prof_path, sizeof prof_path, "%s", write_text("prof.tsv", PROFILE "bw_gbps\t1\tnan\n"));
    setenv("SHOWDOWN_PROFILE", prof_path, 1);   /* never the user's real profile */
}

static void cli_teardown(void)
{
    unlink(trunc_path);
    unlink(prof_path);
    rmdir(dir_path);
}

static void expand(const char *in, char *out, size_t n)
{
    char p[512], f[512];
    shared_path(p, sizeof p, "models/stories260K.gguf");
    shared_path(f, sizeof f, "models/tiny-f32.gguf");
    size_t o = 0;
    for (; *in && o + 1 < n; in++) {
        const char *sub = NULL;
        if (in[0] == '%' && in[1]) {
            switch (in[1]) {
            case 'M': sub = p; break;
            case 'F': sub = f; break;
            case 'T': sub = trunc_path; break;
            case 'D': sub = dir_path; break;
            case 'N': sub = "/nonexistent/x.gguf"; break;
            case 'O': sub = out_path; break;
            case 'S': sub = svg_path; break;
            case 'P': sub = prof_path; break;
            }
        }
        if (sub) { o += (size_t)snprintf(out + o, n - o, "%s", sub); in++; }
        else out[o++] = *in;
    }
    out[o < n ? o : n - 1] = 0;
}

/* Runs showdown with args; the exit status (-1: killed by a signal), stderr in errb. */
static int run_cli(const char *args, char *errb, size_t en)
{
    char cmd[2048], ep[128];
    snprintf(ep, sizeof ep, "%s", tmp_path("stderr"));
    snprintf(cmd, sizeof cmd, "%s %s </dev/null >/dev/null 2>%s", showdown_bin(), args, ep);
    int st = system(cmd);
    size_t n = 0;
    char *b = read_all(ep, &n);
    snprintf(errb, en, "%.*s", (int)n, b ? b : "");
    free(b);
    unlink(ep);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_cli_errors(const cli_case *cases, int n)
{
    for (int i = 0; i < n; i++) {
        char args[1024], needle[256], errb[8192];
        expand(cases[i].args, args, sizeof args);
        expand(cases[i].needle, needle, sizeof needle);
        int rc = run_cli(args, errb, sizeof errb);
        cr_expect(rc > 0 && rc < 128, "showdown %s: exit %d (a signal or success), stderr: %s", args, rc, errb);
        size_t len = strlen(errb);
        int one_line = len > 0 && errb[len - 1] == '\n' && strchr(errb, '\n') == errb + len - 1;
        cr_expect(!strncmp(errb, "error: ", 7) && one_line, "showdown %s: want one 'error: ' line, got: %s", args, errb);
        cr_expect(strstr(errb, needle), "showdown %s: '%s' not named in: %s", args, needle, errb);
        struct stat st;
        cr_expect(stat(out_path, &st) != 0, "showdown %s left %s behind", args, out_path);
        cr_expect(stat(svg_path, &st) != 0, "showdown %s left %s behind", args, svg_path);
        unlink(out_path);
        unlink(svg_path);
    }
}

#define CLI_TEST(name, ...)                                                                   \
    Test(hostile_cli, name, .init = cli_setup, .fini = cli_teardown, .timeout = 60)            \
    {                                                                                         \
        static const cli_case cases[] = {__VA_ARGS__};                                        \
        expect_cli_errors(cases, (int)(sizeof cases / sizeof cases[0]));                     \
    }

CLI_TEST(run,
         {"run --bogus", "--bogus"},
         {"run -m", "-m"},
         {"run -m %M -p hi -n abc", "-n"},
         {"run -m %M -p hi -n 99999999999", "-n"},
         {"run -m %M -p hi --top-p 7", "--top-p"},
         {"run -m %N -p hi", "%N"},
         {"run -m %D -p hi", "%D"},
         {"run -m %T -p hi", "%T"},
         {"run -m %M -f %D", "%D"})

CLI_TEST(tokenize,
         {"tokenize --bogus", "--bogus"},
         {"tokenize -m", "-m"},
         {"tokenize -m %N -p hi", "%N"},
         {"tokenize -m %D -p hi", "%D"},
         {"tokenize -m %T -p hi", "%T"},
         {"tokenize -m %M -f %N", "%N"},
         {"tokenize -m %M -f %D", "%D"})

CLI_TEST(info,
         {"info --bogus", "--bogus"},
         {"info", "info"},
         {"info %N", "%N"},
         {"info %D", "%D"},
         {"info %T", "%T"})

CLI_TEST(bench_flags,
         {"bench --bogus", "--bogus"},
         {"bench -m", "-m"},
         {"bench -m %M -p abc", "-p"},
         {"bench -m %M -t 0", "-t"},
         {"bench -m %M -r 99999999999", "-r"},
         {"bench -m %N", "%N"})

CLI_TEST(report,
         {"report --bogus", "--bogus"},
         {"report %M -o", "-o"},
         {"report %N -o %S", "%N"},
         {"report %D -o %S", "%D"},
         {"report %T -o %S", "%T"},
         {"report %P -o %S", "%P"})

CLI_TEST(calibrate,
         {"calibrate --bogus", "--bogus"},
         {"calibrate --show --profile", "--profile"},
         {"calibrate --seconds abc", "--seconds"},
         {"calibrate -t 99999999999", "-t"},
         {"calibrate --show --profile %N", "%N"},
         {"calibrate --show --profile %D", "%D"},
         {"calibrate --show --profile %T", "%T"},
         {"calibrate --show --profile %P", "%P"})

CLI_TEST(plan,
         {"plan --bogus", "--bogus"},
         {"plan --model", "--model"},
         {"plan --model llama-2-7b --hw rtx-4090 -c abc", "-c"},
         {"plan --model llama-2-7b --hw rtx-4090 -c 99999999999", "-c"},
         {"plan --model %N --hw rtx-4090", "%N"},
         {"plan --model %D --hw rtx-4090", "%D"},
         {"plan --model %T --hw rtx-4090", "%T"},
         {"plan --model llama-2-7b --hw rtx-4090 --hw-file %D", "%D"},
         {"plan --model llama-2-7b --hw rtx-4090 --hw-file %T", "%T"},
         {"plan --hw this --model llama-2-7b", "%P"},
         {"plan --hw this --compare %D", "%D"})

CLI_TEST(quantize,
         {"quantize --bogus", "--bogus"},
         {"quantize %F %O Q8_0 -t", "-t"},
         {"quantize %F %O Q8_0 -t abc", "-t"},
         {"quantize %F %O Q8_0 -t 99999999999", "-t"},
         {"quantize %F %O Q9_X", "Q9_X"},
         {"quantize %N %O Q8_0", "%N"},
         {"quantize %D %O Q8_0", "%D"},
         {"quantize %T %O Q8_0", "%T"})

CLI_TEST(synth,
         {"synth --bogus", "--bogus"},
         {"synth -o", "-o"},
         {"synth --dim abc -o %O", "--dim"},
         {"synth --dim 99999999999 -o %O", "--dim"},
         {"synth --preset nope -o %O", "nope"},
         {"synth --vocab %N -o %O", "%N"},
         {"synth --vocab %D -o %O", "%D"},
         {"synth --vocab %T -o %O", "%T"})

CLI_TEST(ppl,
         {"ppl --bogus", "--bogus"},
         {"ppl -m", "-m"},
         {"ppl -m %M -f %P -c abc", "-c"},
         {"ppl -m %M -f %P -c 99999999999", "-c"},
         {"ppl -m %N -f %P", "%N"},
         {"ppl -m %D -f %P", "%D"},
         {"ppl -m %T -f %P", "%T"},
         {"ppl -m %M -f %D", "%D"},
         {"ppl -m %M -f %P --kld-base %T", "%T"})

/* bench refuses a model that is not a readable GGUF before running anything,
 * and quantize without its three arguments says so in one line. */
Test(hostile_cli, bench_bad_model_files, .init = cli_setup, .fini = cli_teardown)
{
    static const cli_case cases[] = {{"bench -m %D", "%D"}, {"bench -m %T", "%T"}};
    expect_cli_errors(cases, 2);
}

Test(hostile_cli, quantize_missing_arguments, .init = cli_setup, .fini = cli_teardown)
{
    static const cli_case cases[] = {{"quantize", "quantize"}, {"quantize %F", "quantize"}};
    expect_cli_errors(cases, 2);
}

/* Names from the file are cleaned before they reach a message. */
Test(hostile_lib, model_architecture_with_newline)
{
    gbuf g;
    head(&g, 0, 1);
    kv_str(&g, "general.architecture", "lla\nma");
    while (g.n < 64) put(&g, "", 1);
    const char *path = write_file("archnl.gguf", g.b, g.n);
    char err[SD_ERR_LEN] = "";
    sd_model *m = NULL;
    cr_assert_eq(sd_model_load(path, &m, err), -1);
    assert_one_line(err, "unsupported architecture 'lla?ma'");
    unlink(path);
}
