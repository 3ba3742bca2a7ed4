/* showdown: dispatch to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "showdown.h"
#include "cli/cli.h"

static const struct { const char *name; sd_cmd_fn fn; const char *what; } commands[] = {
    {"run", cmd_run, "generate text from a prompt"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"info", cmd_info, "describe a GGUF model file"},
    {"calibrate", cmd_calibrate, "measure this machine's bandwidth and compute ceilings"},
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
