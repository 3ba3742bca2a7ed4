/* showdown run: generate text from a prompt, timing summary on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "cli/cli.h"
#include "cli/chat_loop.h"
#include "eval/logits_file.h"

#include <unistd.h>

static void run_usage(FILE *out)
{
    fputs("usage: showdown run -m MODEL [-p PROMPT | -f FILE] [options]\n\n"
          "  -m, --model FILE     GGUF model\n"
          "  -p, --prompt TEXT    prompt text\n"
          "  -f, --file FILE      prompt from a file (bytes as they are)\n"
          "  -n, --n-predict N    tokens to generate (default 128; stops early at end of text)\n"
          "  -t, --threads N      threads (default: all CPUs)\n"
          "  -c, --ctx-size N     context length (default: the model's, at most 4096)\n"
          "  -ctk, --cache-type TYPE   KV cache format: f16 (default), f32 or q8_0\n"
          "  --temp T             temperature (default 0.8; 0 = greedy)\n"
          "  --top-k K            keep the K most likely tokens (default 40; 0 = off)\n"
          "  --top-p P            nucleus sampling (default 0.95; 1 = off)\n"
          "  --min-p P            drop tokens below P x the top probability (default 0.05; 0 = off)\n"
          "  --seed S             sampling seed (default 42)\n"
          "  --no-bos             do not add the beginning-of-text token\n"
          "  -ngl, --n-gpu-layers N  layers on the GPU, counted from the last (99: all and the output;\n"
          "                       auto: as many as fit; default 0)\n"
          "  --device N           GPU device (showdown devices; default 0)\n"
          "  --logits-out FILE    write prompt, generated tokens and every logits row\n"
          "                       (the ../shared/reference format)\n"
          "  --chat               converse through the model's chat template: -p/-f (or stdin\n"
          "                       when it is not a terminal) is one user turn; without them,\n"
          "                       interactive on the terminal (earlier turns stay in the KV cache)\n"
          "  -i, --interactive    --chat: read one user turn per line from stdin even when it is\n"
          "                       not a terminal (scripted conversations)\n"
          "  --system TEXT        system prompt for --chat\n"
          "  --chat-template NAME template instead of the file's own: chatml, llama2, llama3,\n"
          "                       llama3.1, mistral, mistral-tekken, gemma, phi3, deepseek, harmony\n"
          "  --dump-experts FILE  mixture-of-experts models: per token and layer, the experts\n"
          "                       chosen (position, token, layer, ids best first; tab-separated)\n",
          out);
}

typedef struct {
    const char *model, *prompt, *prompt_file, *logits_out, *system, *chat_template, *dump_experts;
    long n_predict, threads, ctx;
    int no_bos, chat, interactive, ngl;
    long device;
    sd_kv_type kv;
    sd_sampler_params sp;
} run_opts;

static int parse_run_args(int argc, char **argv, run_opts *o)
{
    o->n_predict = 128;
    o->kv = SD_KV_F16;
    o->sp = sd_sampler_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        double d;
#define FLAG(s, l2) (!strcmp(a, s) || !strcmp(a, l2))
        if (FLAG("-h", "--help")) { run_usage(stdout); exit(0); }
        if (FLAG("--no-bos", "--no-bos")) { o->no_bos = 1; continue; }
        if (FLAG("--chat", "--chat")) { o->chat = 1; continue; }
        if (FLAG("-i", "--interactive")) { o->interactive = 1; continue; }
        static const char *valued[] = {"-m", "--model", "-p", "--prompt", "-f", "--file", "--logits-out", "-n",
                                       "--n-predict", "-t", "--threads", "-c", "--ctx-size", "-ctk", "--cache-type",
                                       "--temp", "--temperature", "--top-k", "--top-p", "--min-p", "--seed",
                                       "--system", "--chat-template", "-ngl", "--n-gpu-layers", "--device",
                                       "--dump-experts"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) known |= !strcmp(a, valued[k]);
        if (!known) return fail("unknown option '%s' (showdown run --help)", a);
        if (!v) return fail("%s needs a value (showdown run --help)", a);
        i++;
        if (FLAG("-m", "--model")) o->model = v;
        else if (FLAG("-p", "--prompt")) o->prompt = v;
        else if (FLAG("-f", "--file")) o->prompt_file = v;
        else if (FLAG("--logits-out", "--logits-out")) o->logits_out = v;
        else if (FLAG("--dump-experts", "--dump-experts")) o->dump_experts = v;
        else if (FLAG("--system", "--system")) o->system = v;
        else if (FLAG("--chat-template", "--chat-template")) o->chat_template = v;
        else if (FLAG("-n", "--n-predict")) { if (parse_int(a, v, 0, 1 << 24, &o->n_predict)) return 1; }
        else if (FLAG("-t", "--threads")) { if (parse_int(a, v, 1, 512, &o->threads)) return 1; }
        else if (FLAG("-c", "--ctx-size")) { if (parse_int(a, v, 1, 1 << 22, &o->ctx)) return 1; }
        else if (FLAG("-ctk", "--cache-type")) {
            if (!strcmp(v, "f16")) o->kv = SD_KV_F16;
            else if (!strcmp(v, "f32")) o->kv = SD_KV_F32;
            else if (!strcmp(v, "q8_0")) o->kv = SD_KV_Q8_0;
            else return fail("%s: unknown KV cache type '%s' (f16, f32, q8_0)", a, v);
        }
        else if (FLAG("-ngl", "--n-gpu-layers")) { if (parse_ngl(a, v, &o->ngl)) return 1; }
        else if (FLAG("--device", "--device")) { if (parse_int(a, v, 0, 15, &o->device)) return 1; }
        else if (FLAG("--temp", "--temperature")) { if (parse_float(a, v, 0, 100, &d)) return 1; o->sp.temp = (float)d; }
        else if (FLAG("--top-k", "--top-k")) { if (parse_int(a, v, 0, 1 << 24, &l)) return 1; o->sp.top_k = (int)l; }
        else if (FLAG("--top-p", "--top-p")) { if (parse_float(a, v, 0, 1, &d)) return 1; o->sp.top_p = (float)d; }
        else if (FLAG("--min-p", "--min-p")) { if (parse_float(a, v, 0, 1, &d)) return 1; o->sp.min_p = (float)d; }
        else if (FLAG("--seed", "--seed")) { if (parse_int(a, v, 0, 0x7fffffffL, &l)) return 1; o->sp.seed = (uint64_t)l; }
        else return fail("unknown option '%s' (showdown run --help)", a);
#undef FLAG
    }
    if (!o->model) return fail("run: -m MODEL is required (showdown run --help)");
    if (o->prompt && o->prompt_file) return fail("run: give -p or -f, not both");
    if (!o->chat && (o->system || o->chat_template || o->interactive))
        return fail("run: --system, --chat-template and --interactive need --chat");
    if (o->interactive && (o->prompt || o->prompt_file)) return fail("run: --interactive reads stdin: no -p or -f");
    if (o->chat && o->no_bos) return fail("run: --no-bos does not apply to --chat (the template decides)");
    if (o->chat && o->dump_experts) return fail("run: --dump-experts does not apply to --chat");
    return 0;
}

/* --chat: the user turn from -p, -f or a piped stdin; interactive otherwise. */
static int run_chat(const run_opts *o)
{
    chat_opts c = {o->model, NULL, o->system, o->chat_template, o->logits_out, o->n_predict, o->threads, o->ctx,
                   o->kv, o->sp};
    char *text = NULL;
    size_t len = 0;
    if (o->prompt_file) {
        if (!(text = read_file_bytes(o->prompt_file, &len))) return fail("%s: cannot read the prompt file", o->prompt_file);
    } else if (o->prompt) {
        text = strdup(o->prompt);
    } else if (!isatty(0) && !o->interactive) {
        if (!(text = read_file_bytes("/dev/stdin", &len))) return fail("run: cannot read stdin");
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0;  /* echo's newline */
    }
    if ((o->prompt || o->prompt_file || text) && !text) return fail("out of memory");
    if (!text && o->logits_out) return fail("run: --logits-out with --chat needs -p or -f (one turn)");
    c.user = text;
    int rc = chat_run(&c);
    free(text);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    run_opts o = {0};
    if (parse_run_args(argc, argv, &o)) return 1;
    if (o.chat) return run_chat(&o);
    char err[SD_ERR_LEN];
    size_t plen = 0;
    char *ptext = NULL;
    if (o.prompt_file) {
        ptext = read_file_bytes(o.prompt_file, &plen);
        if (!ptext) return fail("%s: cannot read the prompt file", o.prompt_file);
    } else {
        ptext = strdup(o.prompt ? o.prompt : "");
        plen = strlen(ptext);
    }

    double t0 = sd_time_ms();
    sd_model *m;
    if (sd_model_load(o.model, &m, err)) { free(ptext); return fail("%s", err); }
    show_tokenizer_warning(o.model, sd_model_tokenizer(m));
    const sd_hparams *hp = sd_model_hparams(m);
    sd_tokenizer *tok = sd_model_tokenizer(m);
    sd_session_params sp = {(int)o.ctx, (int)o.threads, o.kv};
    sd_session *s = NULL;
    int32_t *ptoks = NULL, *gen = NULL;
    float *rows = NULL;
    sd_sampler *smp = NULL;
    FILE *dump = NULL;
    int n_prompt = 0, n_gen = 0, rc = 1;
    if (gpu_offload(m, o.ngl, (int)o.device, (int)o.ctx, o.kv)) goto done;
    if (sd_session_new(m, &sp, &s, err)) { fail("%s", err); goto done; }
    double t_load = sd_time_ms() - t0;
    if (sd_tokenize(tok, ptext, plen, !o.no_bos, &ptoks, &n_prompt, err)) { fail("%s", err); goto done; }
    if (n_prompt == 0) { fail("run: the prompt is empty and --no-bos leaves no token to start from"); goto done; }
    int n_ctx = sd_session_n_ctx(s);
    if (n_prompt > n_ctx) { fail("run: prompt of %d tokens does not fit the context of %d (-c)", n_prompt, n_ctx); goto done; }
    long n_want = o.n_predict < n_ctx - n_prompt ? o.n_predict : n_ctx - n_prompt;
    int nv = hp->n_vocab;
    gen = malloc(((size_t)n_want + 1) * sizeof *gen);
    if (o.logits_out) rows = malloc(((size_t)n_prompt + (size_t)n_want) * (size_t)nv * sizeof *rows);
    smp = sd_sampler_new(&o.sp, nv);
    if (!gen || (o.logits_out && !rows) || !smp) { fail("run: out of memory"); goto done; }

    if (o.dump_experts && !hp->n_expert) { fail("run: --dump-experts: %s has no experts", o.model); goto done; }
    if (o.dump_experts && !(dump = fopen(o.dump_experts, "w"))) { fail("%s: cannot write", o.dump_experts); goto done; }
    double t1 = sd_time_ms();
    if (dump ? dump_experts_eval(dump, s, ptoks, n_prompt, rows, err) : sd_session_eval(s, ptoks, n_prompt, rows, err)) {
        fail("%s", err);
        goto done;
    }
    double t_prompt = sd_time_ms() - t1, t_first = 0;
    double t2 = sd_time_ms();
    for (; n_gen < n_want; n_gen++) {
        int32_t next = sd_sample(smp, sd_session_logits(s));
        if (n_gen == 0) t_first = sd_time_ms() - t1;
        if (next == sd_token_eos(tok)) break;
        gen[n_gen] = next;
        size_t len;
        const char *piece = sd_token_piece(tok, next, &len);
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
        /* Consume the token; its logits row is the next prediction. */
        if (n_gen + 1 < n_want || o.logits_out) {
            float *row = rows ? rows + ((size_t)n_prompt + (size_t)n_gen) * nv : NULL;
            if (sd_session_eval(s, &next, 1, row, err)) { fail("%s", err); goto done; }
            if (dump && dump_experts(dump, s, &next, n_prompt + n_gen)) { fail("%s: write failed", o.dump_experts); goto done; }
        }
    }
    double t_gen = sd_time_ms() - t2;
    fputc('\n', stdout);
    fprintf(stderr, "\nload %.1f ms | prompt %d tokens, %.2f tokens/s | generated %d tokens, %.2f tokens/s | "
                    "first token after %.1f ms | %s kernels | KV cache %.1f MiB\n",
            t_load, n_prompt, n_prompt / (t_prompt / 1e3), n_gen, n_gen ? n_gen / (t_gen / 1e3) : 0.0, t_first,
            sd_kernel_isa(), sd_session_kv_bytes(s) / 1048576.0);
    if (o.logits_out && sd_logits_file_write(o.logits_out, nv, ptoks, n_prompt, gen, n_gen, rows, err)) {
        fail("%s", err);
        goto done;
    }
    if (dump && fclose(dump)) { dump = NULL; fail("%s: write failed", o.dump_experts); goto done; }
    dump = NULL;
    rc = 0;
done:
    if (dump) fclose(dump);
    free(ptext); free(ptoks); free(gen); free(rows);
    sd_sampler_free(smp);
    sd_session_free(s);
    sd_model_free(m);
    return rc;
}
