/* showdown tokenize: print the token ids of a text. Reads only the GGUF
 * metadata's vocabulary, so vocabulary-only files work too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "text/tokenizer.h"

static void usage(FILE *out)
{
    fputs("usage: showdown tokenize -m MODEL [--no-bos] [--special] (-p TEXT | -f FILE)\n\n"
          "Prints the token ids of TEXT (or of FILE's bytes, exactly) on one line.\n\n"
          "  -m, --model FILE   GGUF file holding the vocabulary\n"
          "  -p, --prompt TEXT  text to tokenize\n"
          "  -f, --file FILE    tokenize this file's contents\n"
          "      --no-bos       do not add the beginning-of-sequence token\n"
          "      --special      control tokens written in the text (<|im_start|>) become their ids\n"
          "  -h, --help         this help\n", out);
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *file = NULL;
    int add_bos = 1, special = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--no-bos")) { add_bos = 0; continue; }
        if (!strcmp(a, "--special")) { special = 1; continue; }
        const char **dst = !strcmp(a, "-m") || !strcmp(a, "--model") ? &model
                         : !strcmp(a, "-p") || !strcmp(a, "--prompt") ? &prompt
                         : !strcmp(a, "-f") || !strcmp(a, "--file") ? &file : NULL;
        if (!dst) return fail("tokenize: unknown option '%s' (showdown tokenize --help)", a);
        if (i + 1 >= argc) return fail("tokenize: %s needs a value", a);
        *dst = argv[++i];
    }
    if (!model) return fail("tokenize: no model given (-m MODEL)");
    if (!prompt == !file) return fail("tokenize: give exactly one of -p TEXT or -f FILE");

    size_t len;
    char *text = NULL;
    if (file) {
        if (!(text = read_file_bytes(file, &len))) return fail("%s: cannot read file", file);
    } else {
        len = strlen(prompt);
    }

    char err[SD_ERR_LEN];
    gguf_file *f = NULL;
    sd_tokenizer *t = NULL;
    int32_t *ids = NULL;
    int n = 0, rc = 1;
    if (gguf_open(model, &f, err) || sd_tokenizer_from_gguf(f, &t, err)) {
        fail("%s", err);
        goto done;
    }
    show_tokenizer_warning(model, t);
    if ((special ? sd_tokenize_special : sd_tokenize)(t, file ? text : prompt, len, add_bos, &ids, &n, err)) {
        fail("%s", err);
        goto done;
    }
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    rc = fflush(stdout) ? fail("tokenize: cannot write the output") : 0;
done:
    free(ids);
    sd_tokenizer_free(t);
    gguf_close(f);
    free(text);
    return rc;
}
