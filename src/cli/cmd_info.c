/* showdown info: what a GGUF model file holds. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "showdown.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "model/arch_qwen3next.h"
#include "model/model.h"
#include "tensor/types.h"

static void human(char *buf, size_t n, double v, const char *unit)
{
    const char *p[] = {"", "K", "M", "G", "T"};
    int i = 0;
    while (v >= 1000 && i < 4) { v /= 1000; i++; }
    snprintf(buf, n, "%.2f %s%s", v, p[i], unit);
}

int cmd_info(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        puts("usage: showdown info MODEL\n\n"
             "Prints the architecture, hyper-parameters, tensor count, weight formats with\n"
             "their share of the bytes, parameter count and file size of a GGUF model.");
        return 0;
    }
    if (argc != 2) return fail("info: expected one model file (showdown info --help)");
    char err[SD_ERR_LEN], a[32], b[32];
    sd_model *m;
    if (sd_model_load(argv[1], &m, err)) return fail("%s", err);
    show_tokenizer_warning(argv[1], sd_model_tokenizer(m));
    const sd_hparams *hp = sd_model_hparams(m);
    const gguf_file *g = m->gguf;
    printf("file           %s (GGUF v%u)\n", argv[1], g->version);
    human(a, sizeof a, (double)g->file_size, "B");
    printf("file size      %s (%" PRIu64 " bytes)\n", a, g->file_size);
    printf("architecture   %s\n", hp->arch_name);
    human(a, sizeof a, (double)sd_model_n_params(m), "");
    printf("parameters     %s\n", a);
    printf("type           %s\n", sd_model_type_name(m));
    printf("vocabulary     %d\nembedding      %d\nlayers         %d\nheads          %d (KV heads %d, head size %d)\n"
           "feed-forward   %d\ncontext        %d (training)\nrope           base %g, linear scale %g, %s\n"
           "rms epsilon    %g\noutput         %s\n",
           hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff,
           hp->n_ctx_train, hp->rope_base, hp->rope_scale, hp->rope_neox ? "neox (halves)" : "normal (pairs)",
           hp->norm_eps, m->output.data == m->tok_embd.data ? "tied to the token embedding" : "own matrix");
    if (m->yarn.freq_scale > 0) printf("rope scaling   YaRN (the factor above)\n");
    if (hp->n_expert)
        printf("experts        %d, %d per token, feed-forward %d each\n", hp->n_expert, hp->n_expert_used, hp->n_ff_exp);
    if (m->qnext) {
        const struct sd_qnext *q = m->qnext;
        printf("shared expert  feed-forward %d\n", q->n_ff_shexp);
        printf("DeltaNet       %d of %d layers (attention every %d-th, RoPE on %d of %d values per head); %d key heads, "
               "%d value heads of %d; convolution of %d; recurrent state %.1f MiB per sequence\n",
               q->n_recurrent, hp->n_layer, q->interval, q->n_rot, hp->head_dim, q->n_k_heads, q->n_v_heads, q->head_v,
               q->d_conv, (double)sd_qnext_state_bytes(m) / (1 << 20));
    }
    printf("tensors        %" PRIu64 "\n", g->n_tensors);
    uint64_t bytes[SD_TYPE_COUNT] = {0}, count[SD_TYPE_COUNT] = {0}, total = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        bytes[g->tensors[i].type] += g->tensors[i].n_bytes;
        count[g->tensors[i].type]++;
        total += g->tensors[i].n_bytes;
    }
    printf("formats        %-8s %8s %14s %7s\n", "", "tensors", "bytes", "share");
    for (int t = 0; t < SD_TYPE_COUNT; t++)
        if (count[t]) {
            human(b, sizeof b, (double)bytes[t], "B");
            printf("               %-8s %8" PRIu64 " %14s %6.1f%%\n", sd_type_name((uint32_t)t), count[t], b,
                   100.0 * (double)bytes[t] / (double)(total ? total : 1));
        }
    human(a, sizeof a, (double)total, "B");
    printf("weights        %s, %.2f bits per parameter\n", a, 8.0 * (double)total / (double)sd_model_n_params(m));
    sd_model_free(m);
    return 0;
}
