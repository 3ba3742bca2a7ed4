/* showdown: dispatch to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "showdown.h"
#include "cli/cli.h"

static const struct { const char *name; sd_cmd_fn fn; const char *what; } commands[] = {
    {"run", cmd_run, "generate text from a prompt"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"info", cmd_info, "describe a GGUF model file"},
    {"synth", cmd_synth, "write a random-weight model of a real model's shape"},
    {"quantize", cmd_quantize, "convert a model's weights to another format or recipe"},
    {"bench", cmd_bench, "measure tokens/s, TTFT, memory, energy (llama-bench flags); --url: any OpenAI server under load"},
    {"report", cmd_report, "draw bench results (JSON lines) as an SVG or HTML report"},
    {"calibrate", cmd_calibrate, "measure this machine's bandwidth and compute ceilings"},
    {"ppl", cmd_ppl, "perplexity, KL divergence vs a base model, quality cost per format"},
    {"plan", cmd_plan, "will a model fit a machine, in which format, how fast (on paper)"},
    {"devices", cmd_devices, "list the GPU devices (Vulkan) with memory and driver"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server (continuous batching)"},
};

static void usage(FILE *out)
{
    fprintf(out, "showdown %s: run GGUF language models and measure how they run\n\n"
                 "usage: showdown COMMAND [options]   (showdown COMMAND --help for its options)\n\n"
                 "commands:\n", sd_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].what);
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 1; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) { printf("showdown %s\n", sd_version()); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s' (showdown --help lists them)\n", argv[1]);
    return 1;
}
