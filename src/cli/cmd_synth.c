/* showdown synth: write a random-weight model of a real model's exact shape. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "cli/cli.h"
#include "model/synth.h"
#include "quant/recipe.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: showdown synth [--preset NAME] [options] -o OUT.gguf\n\n"
            "Writes a model with random weights (deterministic for a seed) and the exact\n"
            "shape of a real one: as fast to run as the real thing, useless for text.\n"
            "The weights are generated while the file is written, so even the 70B shape\n"
            "needs little memory (but its disk space).\n\n"
            "options:\n"
            "  --preset NAME        shape to copy (default tiny); --list shows them\n"
            "  --type TYPE          weight format or recipe: F32, F16 (default), BF16, Q8_0,\n"
            "                       Q4_K_M, NVFP4, ... (as showdown quantize takes)\n"
            "  --seed S             random seed (default 42)\n"
            "  --vocab FILE.gguf    copy the tokenizer of this file (its size sets the\n"
            "                       vocabulary); default: a synthesized byte-level BPE one\n"
            "  --arch A             llama, qwen2 (Q/K/V biases), qwen3 (Q/K norms) or gemma3\n"
            "                       (Q/K norms, post-norms, GELU, a window of 8, logits\n"
            "                       capped at 30) (the MoE presets: qwen3moe, gpt-oss,\n"
            "                       llama = mixtral, qwen3next)\n"
            "  --dim N --layers N --heads N --kv-heads N --head-dim N --ffn N\n"
            "  --vocab-size N --ctx N --rope-base F\n"
            "                       change the preset's shape (--dim/--heads without\n"
            "                       --head-dim set the head size to dim/heads)\n"
            "  --experts N --experts-used K --expert-ffn N\n"
            "                       mixture-of-experts presets: routed experts, experts\n"
            "                       per token (lowered to N with --experts), expert FFN size\n"
            "  --shared-ffn N --ssm-state N --ssm-groups N --ssm-heads N --rope-dim N\n"
            "                       qwen3next: shared expert size, DeltaNet head size, key\n"
            "                       heads, value heads, rotated values per attention head\n"
            "                       (a new --head-dim keeps the preset's rotated fraction)\n"
            "  -t, --threads N      threads (default: every CPU)\n"
            "  --progress           progress on stderr even when it is not a terminal\n"
            "  --header-only        write the header with the data left as a sparse hole\n"
            "                       (the full size on paper, almost no disk): for tools that\n"
            "                       only read shapes, e.g. showdown plan\n"
            "  --dry-run            print the shape and size, write nothing\n"
            "  --list               list the presets\n");
}

/* "1.24B", "0.52M": parameter counts as people write them. */
static const char *params_text(const sd_synth_shape *s, char *buf, size_t n)
{
    double v = (double)sd_synth_n_params(s);
    if (v >= 1e9) snprintf(buf, n, "%.2fB", v / 1e9);
    else snprintf(buf, n, "%.2fM", v / 1e6);
    return buf;
}

static void list_presets(void)
{
    printf("%-16s %-6s %6s %6s %5s %4s %5s %6s %7s %7s  %s\n", "preset", "arch", "dim", "layers", "heads", "kv",
           "hsize", "ffn", "vocab", "params", "shape of");
    for (int i = 0; i < sd_synth_n_presets(); i++) {
        const sd_synth_shape *s = sd_synth_preset_at(i);
        char pt[32];
        printf("%-16s %-6s %6d %6d %5d %4d %5d %6d %7d %7s  %s\n", s->name, s->arch, s->n_embd, s->n_layer,
               s->n_head, s->n_head_kv, s->head_dim, s->n_ff, s->n_vocab, params_text(s, pt, sizeof pt), s->what);
    }
}

static int same_shape(const sd_synth_shape *a, const sd_synth_shape *b)
{
    return !strcmp(a->arch, b->arch) && a->n_embd == b->n_embd && a->n_layer == b->n_layer &&
           a->n_head == b->n_head && a->n_head_kv == b->n_head_kv && a->head_dim == b->head_dim &&
           a->n_ff == b->n_ff && a->n_vocab == b->n_vocab && a->n_ctx == b->n_ctx && a->rope_base == b->rope_base &&
           a->n_expert == b->n_expert && a->n_expert_used == b->n_expert_used && a->n_ff_exp == b->n_ff_exp &&
           a->n_ff_shexp == b->n_ff_shexp && a->ssm_state == b->ssm_state && a->ssm_groups == b->ssm_groups &&
           a->ssm_heads == b->ssm_heads && a->n_rot == b->n_rot;
}

/* The integer shape flags and where each goes. */
typedef struct { const char *flag; int *dst; long lo, hi; } int_flag;

int cmd_synth(int argc, char **argv)
{
    sd_synth_params p = sd_synth_default_params();
    const char *preset = "tiny", *arch = NULL, *out = NULL;
    int progress = isatty(2), dry_run = 0, head_dim_set = 0, dims_changed = 0;
    sd_synth_shape edit;       /* values given on the command line, -1 = not given */
    memset(&edit, 0xff, sizeof edit);
    double rope_base = -1;
    const int_flag ints[] = {
        {"--dim", &edit.n_embd, 2, 1 << 16},      {"--layers", &edit.n_layer, 1, 1024},
        {"--heads", &edit.n_head, 1, 1024},       {"--kv-heads", &edit.n_head_kv, 1, 1024},
        {"--head-dim", &edit.head_dim, 2, 4096},  {"--ffn", &edit.n_ff, 1, 1 << 20},
        {"--vocab-size", &edit.n_vocab, 1, 1 << 24}, {"--ctx", &edit.n_ctx, 1, 1 << 24},
        {"--experts", &edit.n_expert, 1, 4096},   {"--experts-used", &edit.n_expert_used, 1, 64},
        {"--expert-ffn", &edit.n_ff_exp, 1, 1 << 20},
        {"--shared-ffn", &edit.n_ff_shexp, 1, 1 << 20}, {"--ssm-state", &edit.ssm_state, 1, 4096},
        {"--ssm-groups", &edit.ssm_groups, 1, 4096}, {"--ssm-heads", &edit.ssm_heads, 1, 4096},
        {"--rope-dim", &edit.n_rot, 2, 4096},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--list")) { list_presets(); return 0; }
        if (!strcmp(a, "--progress")) { progress = 1; continue; }
        if (!strcmp(a, "--header-only")) { p.header_only = 1; continue; }
        if (!strcmp(a, "--dry-run")) { dry_run = 1; continue; }
        if (a[0] != '-') return fail("synth: unexpected argument '%s' (showdown synth --help)", a);
        if (i + 1 >= argc) return fail("%s: needs a value", a);
        const char *val = argv[++i];
        const int_flag *f = NULL;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
            if (!strcmp(a, ints[k].flag)) f = &ints[k];
        if (f) {
            if (parse_int(a, val, f->lo, f->hi, &v)) return 1;
            *f->dst = (int)v;
            if (f->dst == &edit.head_dim) head_dim_set = 1;
            if (f->dst == &edit.n_embd || f->dst == &edit.n_head) dims_changed = 1;
        } else if (!strcmp(a, "--preset")) preset = val;
        else if (!strcmp(a, "--type")) p.type = val;
        else if (!strcmp(a, "--vocab")) p.vocab_path = val;
        else if (!strcmp(a, "--arch")) arch = val;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = val;
        else if (!strcmp(a, "--seed")) {
            if (parse_int(a, val, 0, 0x7fffffffffffffffL, &v)) return 1;
            p.seed = (uint64_t)v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (parse_int(a, val, 1, 4096, &v)) return 1;
            p.n_threads = (int)v;
        } else if (!strcmp(a, "--rope-base")) {
            if (parse_float(a, val, 1, 1e9, &rope_base)) return 1;
        } else {
            return fail("synth: unknown option '%s' (showdown synth --help)", a);
        }
    }
    const sd_synth_shape *base = sd_synth_preset(preset);
    if (!base) return fail("--preset: unknown preset '%s' (showdown synth --list shows them)", preset);
    sd_synth_shape s = *base;
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        int *src = ints[k].dst, off = (int)((char *)src - (char *)&edit);
        if (*src >= 0) *(int *)((char *)&s + off) = *src;
    }
    if (dims_changed && !head_dim_set) {
        if (s.n_embd % s.n_head) return fail("--dim: %d is not a multiple of %d heads", s.n_embd, s.n_head);
        s.head_dim = s.n_embd / s.n_head;
    }
    if (edit.n_head >= 0 && edit.n_head_kv < 0 && s.n_head % s.n_head_kv) s.n_head_kv = s.n_head;
    if (base->n_rot && edit.n_rot < 0 && s.head_dim != base->head_dim)   /* qwen3next: the same fraction turns */
        s.n_rot = (int)((int64_t)s.head_dim * base->n_rot / base->head_dim) & ~1;
    if (base->n_rot && s.n_rot < 2) s.n_rot = 2;
    if (edit.ssm_groups >= 0 && edit.ssm_heads < 0 && s.ssm_heads % s.ssm_groups) s.ssm_heads = s.ssm_groups;
    if (edit.n_expert >= 0 && edit.n_expert_used < 0 && s.n_expert_used > s.n_expert) s.n_expert_used = s.n_expert;
    if (edit.n_expert >= 0 && !base->n_expert) return fail("--experts: preset %s is not a mixture of experts", base->name);
    if (rope_base > 0) s.rope_base = (float)rope_base;
    if (arch && sd_synth_set_arch(&s, arch))
        return fail("--arch: unknown architecture '%s' (llama, qwen2, qwen3, qwen3moe, gpt-oss, gemma3)", arch);
    if (!same_shape(&s, base)) {
        if (s.rope_base != base->rope_base || s.head_dim != base->head_dim) s.rope_llama3_factor = 0;
        snprintf(s.name, sizeof s.name, "%.24s-custom", base->name);
    }
    if (p.type && !sd_qrecipe_find(p.type)) {
        char names[400];
        sd_qrecipe_names(names, sizeof names);
        return fail("--type: unknown weight type '%s' (valid: %s)", p.type, names);
    }
    char err[SD_ERR_LEN], pt[32];
    if (!p.vocab_path && sd_synth_check(&s, err)) return fail("synth: %s", err);
    if (dry_run) {
        printf("%s: %s, %d layers, dim %d, %d heads (%d KV, size %d), FFN %d, vocabulary %d, context %d, "
               "%s parameters\n", s.name, s.arch, s.n_layer, s.n_embd, s.n_head, s.n_head_kv, s.head_dim, s.n_ff,
               s.n_vocab, s.n_ctx, params_text(&s, pt, sizeof pt));
        return 0;
    }
    if (!out) return fail("synth: no output file (-o OUT.gguf)");
    p.shape = s;
    write_progress ps = {0, 0.0};
    if (progress) { p.progress = write_progress_show; p.progress_ctx = &ps; }
    p.note = write_note;
    double t0 = sd_time_ms();
    write_remove_temp_on_signals();
    int rc = sd_synth_write(&p, out, err);
    if (p.progress && !ps.done) fputc('\n', stderr);
    if (rc) return fail("%s", err);
    const char *type = sd_qrecipe_find(p.type ? p.type : "F16")->name;
    printf("wrote %s: %s (%s, %s parameters, %s) in %.1f s%s\n", out, s.name, s.arch, params_text(&s, pt, sizeof pt),
           type, (sd_time_ms() - t0) / 1000.0, p.header_only ? " (header only, sparse data)" : "");
    return 0;
}
